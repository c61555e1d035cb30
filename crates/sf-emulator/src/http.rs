//! Request and response values, and the server loop (plain TCP or rustls).

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

/// Request bodies above this are refused (Bulk uploads are the largest, 150 MB).
const MAX_BODY: usize = 160 * 1024 * 1024;

pub const JSON: &str = "application/json;charset=UTF-8";

/// A fully read request.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    /// The path without its trailing slash.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn new(method: Method, path_and_query: &str, headers: HeaderMap, body: Bytes) -> Req {
        let (path, q) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, q),
            None => (path_and_query, ""),
        };
        let mut path = path.to_string();
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        let query = form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Req {
            method,
            path,
            query,
            headers,
            body,
        }
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, with Salesforce's error for anything unparsable.
    pub fn json(&self) -> Result<serde_json::Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::json_parse(
                "The HTTP entity body is required, but this request has no entity body.",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::json_parse(format!(
                "Unexpected character or end of input: {} at [line:{}, column:{}]",
                e,
                e.line(),
                e.column()
            ))
        })
    }

    /// Form fields of the body merged after the query string's.
    pub fn form(&self) -> Vec<(String, String)> {
        let mut out = self.query.clone();
        out.extend(
            form_urlencoded::parse(&self.body).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
        out
    }
}

/// A response about to be sent.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Resp {
    pub fn json(status: u16, v: &serde_json::Value) -> Resp {
        Resp::raw_json(status, serde_json::to_vec(v).unwrap_or_default())
    }

    pub fn raw_json(status: u16, body: Vec<u8>) -> Resp {
        Resp {
            status,
            content_type: Some(JSON),
            headers: Vec::new(),
            body: Bytes::from(body),
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
        Resp {
            status,
            content_type: Some(content_type),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn error(e: &ApiError) -> Resp {
        Resp::json(e.status, &e.body())
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Resp {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_hyper(self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(self.body));
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        if let Some(ct) = self.content_type {
            r.headers_mut()
                .insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().append(HeaderName::from_static(k), v);
            }
        }
        r
    }
}

impl From<ApiError> for Resp {
    fn from(e: ApiError) -> Resp {
        Resp::error(&e)
    }
}

/// What the router decided: answer, or close the connection without answering.
pub enum Outcome {
    Reply(Resp),
    Drop,
}

/// Salesforce's bound on one REST request's URI and headers together ("In each REST
/// call, the maximum length for the combined URI and headers is 16,384 bytes": a URI
/// over it alone is answered 414, URI and headers over it together 431, both before
/// any API error body exists, as the front end's HTML page). Long SOQL in a GET
/// `/query?q=` meets this well before its own 100,000-character limit.
pub const MAX_URI_AND_HEADERS: usize = 16_384;

/// The front end's answer to a request line or headers over [`MAX_URI_AND_HEADERS`].
fn too_long(pq: &str, headers: &HeaderMap) -> Option<Resp> {
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let (status, reason) = if pq.len() > MAX_URI_AND_HEADERS {
        (414, "URI Too Long")
    } else if pq.len() + header_bytes > MAX_URI_AND_HEADERS {
        (431, "Request Header Fields Too Large")
    } else {
        return None;
    };
    Some(Resp::text(
        status,
        "text/html;charset=iso-8859-1",
        format!("<h1>Bad Message {status}</h1><pre>reason: {reason}</pre>"),
    ))
}

/// Reads a hyper request into a [`Req`]; oversized or broken bodies become errors, as
/// does a URI (with headers) longer than Salesforce takes.
pub async fn read_request(req: Request<Incoming>) -> Result<Req, Resp> {
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    if let Some(refused) = too_long(&pq, &parts.headers) {
        return Err(refused);
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Err(Resp::error(&ApiError::new(
                413,
                "REQUEST_ENTITY_TOO_LARGE",
                "The request body is too large or could not be read",
            )))
        }
    };
    Ok(Req::new(parts.method, &pq, parts.headers, body))
}

/// A `tokio_rustls` acceptor from PEM files, speaking HTTP/1.1.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, crate::Error> {
    tls_acceptor_for(cert, key, &[b"http/1.1"])
}

/// A `tokio_rustls` acceptor from PEM files offering the ALPN protocols `alpn` (the
/// Pub/Sub API server offers `h2`, which gRPC clients require).
pub fn tls_acceptor_for(
    cert: &std::path::Path,
    key: &std::path::Path,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::TlsAcceptor, crate::Error> {
    use tokio_rustls::rustls;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| crate::Error::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| crate::Error::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(crate::Error::Tls("no certificate in --tls-cert".into()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| crate::Error::Tls(format!("key: {e}")))?
        .ok_or_else(|| crate::Error::Tls("no private key in --tls-key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| crate::Error::Tls(e.to_string()))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
