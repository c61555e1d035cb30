//! The Pub/Sub API listener: tonic's HTTP/2 server over plain TCP, or over TLS with
//! the REST side's certificate (`--tls-cert/--tls-key`, ALPN `h2`).

use crate::app::App;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

/// A TLS connection handed to tonic.
struct TlsConn(TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Binds `addr` and serves the Pub/Sub API until the emulator shuts down; returns the
/// bound address and the server task.
pub async fn start(
    app: Arc<App>,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), crate::Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| crate::Error::Bind { addr, source })?;
    let mut stop = app.shutdown.clone();
    let service = pubsub::pub_sub_server::PubSubServer::new(super::Service::new(app.clone()));
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(service);
    let shutdown = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    let task = match tls {
        None => {
            let incoming = TcpListenerStream::new(listener);
            tokio::spawn(async move {
                let _ = router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await;
            })
        }
        Some(acceptor) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<TlsConn>>(16);
            tokio::spawn(accept_tls(listener, acceptor, tx, app.shutdown.clone()));
            tokio::spawn(async move {
                let _ = router
                    .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
                    .await;
            })
        }
    };
    Ok((bound, task))
}

/// Accepts TCP connections and hands each one to tonic once its TLS handshake is
/// done; a failed handshake costs only that connection.
async fn accept_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: tokio::sync::mpsc::Sender<std::io::Result<TlsConn>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|v| *v) => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Ok(s) = acceptor.accept(stream).await {
                let _ = tx.send(Ok(TlsConn(s))).await;
            }
        });
    }
}
