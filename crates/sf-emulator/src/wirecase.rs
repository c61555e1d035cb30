//! Header names on the wire spelled as Salesforce spells them on HTTP/1.1.
//!
//! hyper keeps header names lower-case (`content-type`), as HTTP allows, but
//! Salesforce answers `Content-Type`, `Sforce-Limit-Info`, `Sforce-Locator`,
//! `Sforce-NumberOfRecords`, and some clients look headers up in a plain,
//! case-sensitive dictionary. Two hyper facilities do it without touching the bytes
//! ourselves:
//! - `title_case_headers` on the HTTP/1 server connection writes `Content-Type`,
//!   `Sforce-Locator`, `Last-Modified`, ... for every name;
//! - a response carrying hyper's (crate-private) header-case map is written with the
//!   spellings it records. That map can only be made by hyper itself, when it parses a
//!   message with `preserve_header_case`: [`template`] has hyper's HTTP/1 client read a
//!   canned response holding the names whose Salesforce spelling is not plain title
//!   case, and keeps the resulting extensions to attach to every response.

use bytes::Bytes;
use http_body_util::Empty;
use hyper::http::Extensions;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Names Salesforce writes other than in title case (title case would give
/// `Sforce-Numberofrecords`), plus the common ones, spelled as Salesforce does.
pub const SALESFORCE_NAMES: &[&str] = &[
    "Sforce-NumberOfRecords",
    "Sforce-Locator",
    "Sforce-Limit-Info",
    "Content-Type",
    "Last-Modified",
    "Location",
];

/// Response extensions that make hyper write [`SALESFORCE_NAMES`] with that spelling.
/// Falls back to empty extensions (title case only) if hyper refuses the exchange.
pub async fn template() -> Extensions {
    read_canned().await.unwrap_or_default()
}

async fn read_canned() -> Option<Extensions> {
    let (client_io, mut server_io) = tokio::io::duplex(16 * 1024);
    let mut canned = b"HTTP/1.1 200 OK\r\n".to_vec();
    for name in SALESFORCE_NAMES {
        canned.extend_from_slice(name.as_bytes());
        canned.extend_from_slice(b": x\r\n");
    }
    canned.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let server = async move {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = server_io.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        server_io.write_all(&canned).await.ok()?;
        // Keep our end open until the client has read the answer.
        let _ = server_io.read(&mut buf).await;
        Some(())
    };
    let client = async move {
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(client_io))
            .await
            .ok()?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::get("/").body(Empty::new()).ok()?;
        let resp = sender.send_request(req).await.ok();
        drop(sender);
        conn.abort();
        resp.map(|r| r.extensions().clone())
    };
    let (ext, _) = tokio::join!(client, server);
    ext
}
