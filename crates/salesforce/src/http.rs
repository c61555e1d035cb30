//! Sending one data request: auth header, limit-info capture, 401 refresh-and-retry,
//! error decoding.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Error, ErrorCode, Result};

/// A request described so it can be rebuilt for the retry after a token refresh.
#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    pub method: Method,
    /// Either a path relative to `/services/data/vNN.N/` (no leading slash) or an
    /// absolute path on the instance (leading slash, e.g. a `nextRecordsUrl`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub json: Option<serde_json::Value>,
    pub headers: Vec<(HeaderName, String)>,
    pub accept: &'static str,
}

impl RequestSpec {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        RequestSpec {
            method,
            path: path.into(),
            query: Vec::new(),
            json: None,
            headers: Vec::new(),
            accept: "application/json",
        }
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_string(), value.into()));
        self
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.json = Some(body);
        self
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn accept(mut self, accept: &'static str) -> Self {
        self.accept = accept;
        self
    }
}

/// A response whose status was accepted by the caller's rules (2xx or 304).
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Decode(format!(
                "{what}: {e} (body starts with {:?})",
                snippet(&self.body)
            ))
        })
    }
}

pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

/// Turns an error response into [`Error::Api`], keeping Salesforce's codes.
pub(crate) fn api_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Error::Api {
        status,
        errors: parse_error_body(status, body),
        retry_after,
    }
}

/// Salesforce sends an array; some gateways send one object, or HTML. Anything that is
/// not the array still yields one entry so the caller sees what came back.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> Vec<ApiError> {
    if let Ok(errors) = serde_json::from_slice::<Vec<ApiError>>(body) {
        return errors;
    }
    if let Ok(one) = serde_json::from_slice::<ApiError>(body) {
        return vec![one];
    }
    let code = match status {
        503 => ErrorCode::ServerUnavailable,
        _ => ErrorCode::Other(format!("HTTP_{status}")),
    };
    vec![ApiError {
        error_code: code,
        message: snippet(body),
        fields: Vec::new(),
    }]
}

/// Redirects are not followed (a bearer token must not travel to another host); 300
/// (several upsert matches) and 304 (not modified) are answers, not redirects.
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

pub(crate) fn redirect_error(status: u16, headers: &HeaderMap) -> Error {
    let location = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(no Location header)");
    Error::Api {
        status,
        errors: vec![ApiError {
            error_code: ErrorCode::Other(format!("HTTP_{status}")),
            message: format!(
                "Salesforce redirected the request to {location}; the client does not follow \
                 redirects. If the org moved or enforces its My Domain, use that host as the \
                 credential's login URL"
            ),
            fields: Vec::new(),
        }],
        retry_after: None,
    }
}

pub(crate) fn is_invalid_session(status: u16, body: &[u8]) -> bool {
    status == 401
        && parse_error_body(status, body)
            .iter()
            .any(|e| e.error_code == ErrorCode::InvalidSessionId)
}

/// reqwest's Display hides the cause chain; the cause is what tells a user what broke.
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn transport_error(e: reqwest::Error) -> Error {
    let detail = describe_reqwest_error(&e);
    if e.is_connect() {
        Error::Connect(detail)
    } else if e.is_timeout() {
        Error::Timeout(detail)
    } else if e.is_decode() {
        Error::Decode(detail)
    } else {
        Error::Transport(detail)
    }
}

/// Reading the body failed after the status arrived: the connection broke (or timed
/// out) mid-response. reqwest calls some of these "decode" errors, but nothing of ours
/// was decoded yet, and repeating the request may well succeed.
pub(crate) fn body_error(e: reqwest::Error) -> Error {
    let detail = describe_reqwest_error(&e);
    if e.is_timeout() {
        Error::Timeout(detail)
    } else {
        Error::Transport(format!("reading the response body: {detail}"))
    }
}

pub(crate) fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| Error::Config(format!("invalid header value {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_become_errors_naming_the_target() {
        assert!(is_redirect(302) && is_redirect(308));
        assert!(!is_redirect(300) && !is_redirect(304) && !is_redirect(200));
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::LOCATION,
            HeaderValue::from_static("https://acme.my.salesforce.com/x"),
        );
        let e = redirect_error(302, &headers);
        assert_eq!(e.status(), Some(302));
        assert!(
            e.to_string().contains("https://acme.my.salesforce.com/x"),
            "{e}"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn non_json_error_bodies_still_yield_an_entry() {
        let errors = parse_error_body(502, b"<html>Bad Gateway</html>");
        assert_eq!(errors[0].error_code, ErrorCode::Other("HTTP_502".into()));
        assert!(errors[0].message.contains("Bad Gateway"));
        let errors = parse_error_body(503, b"");
        assert_eq!(errors[0].error_code, ErrorCode::ServerUnavailable);
        let one = parse_error_body(400, br#"{"errorCode":"INVALID_FIELD","message":"m"}"#);
        assert_eq!(one[0].error_code, ErrorCode::InvalidField);
    }
}
