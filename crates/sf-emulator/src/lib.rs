//! An in-memory Salesforce org that speaks Salesforce's REST, OAuth, SOAP login and
//! Bulk APIs on the wire, for tests, benchmarks and demos.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sf_emulator::Error> {
//! let running = sf_emulator::start(sf_emulator::Config::default()).await?;
//! println!("{}", running.base_url());
//! # Ok(()) }
//! ```
#![recursion_limit = "256"]

mod app;
mod auth;
mod bounded;
mod bulk1;
mod bulk2;
mod bulk2_ingest;
pub mod catalog;
mod cdc;
mod collections;
mod composite;
mod config;
mod control;
mod csvout;
mod describe;
mod error;
mod faults;
mod fieldchange;
pub mod generate;
mod http;
pub mod ids;
mod jsonw;
mod limits;
mod locators;
mod org;
mod pubsub_api;
mod query;
mod records;
mod router;
pub mod schema;
pub mod store;
pub mod timefmt;
mod tooling;
mod txn;
mod validate;
mod wirecase;

pub use config::{Config, GenerateSpec};
pub use error::{ApiError, Error};

use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A started emulator; stops serving when dropped or on [`Running::shutdown`].
pub struct Running {
    addr: SocketAddr,
    base_url: String,
    pubsub_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    pubsub_task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// `http://127.0.0.1:PORT` (https with TLS).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Address of the Pub/Sub API server (`--pubsub-listen`), when it runs.
    pub fn pubsub_addr(&self) -> Option<SocketAddr> {
        self.pubsub_addr
    }

    /// Stops accepting, closes connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        if let Some(t) = self.pubsub_task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds, builds the org (and generates `--generate` data), then serves in the
/// background on the current tokio runtime.
pub async fn start(config: Config) -> Result<Running, Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(http::tls_acceptor(c, k)?),
        _ => None,
    };
    let pubsub_tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) if config.pubsub_listen.is_some() => {
            Some(http::tls_acceptor_for(c, k, &[b"h2"])?)
        }
        _ => None,
    };
    let pubsub_listen = config.pubsub_listen;
    let cdc_objects = config.cdc_objects.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let generate = config.generate.clone();
    let seed = config.seed;
    let mut app = app::App::new(config, base_url.clone(), stop_rx.clone())?;
    app.header_case = wirecase::template().await;
    let app = Arc::new(app);
    let selected = cdc::control::canonical_names(&app, &cdc_objects)
        .map_err(|e| Error::Generate(format!("--cdc-objects: {e}")))?;
    app.cdc.select(selected);
    if !generate.0.is_empty() {
        let a = app.clone();
        tokio::task::spawn_blocking(move || generate::generate_spec(&a.org, &generate, seed))
            .await
            .map_err(|e| Error::Generate(e.to_string()))?
            .map_err(Error::Generate)?;
    }
    let (pubsub_addr, pubsub_task) = match pubsub_listen {
        Some(a) => {
            let (bound, task) = pubsub_api::start(app.clone(), a, pubsub_tls).await?;
            let _ = app.pubsub_addr.set(bound.to_string());
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    let task = tokio::spawn(accept_loop(listener, tls, app, stop_rx));
    Ok(Running {
        addr,
        base_url,
        pubsub_addr,
        stop,
        task: Some(task),
        pubsub_task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<app::App>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|v| *v) => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(stream).await {
                        serve_conn(TokioIo::new(s), app, stop).await;
                    }
                }
                None => serve_conn(TokioIo::new(stream), app, stop).await,
            }
        });
    }
}

async fn serve_conn<I>(io: I, app: Arc<app::App>, mut stop: tokio::sync::watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { router::serve(app, req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .title_case_headers(true)
        .serve_connection(io, svc);
    tokio::select! {
        _ = conn => {}
        _ = stop.wait_for(|v| *v) => {}
    }
}
