//! Salesforce-shaped API errors and the crate's own error type.

use serde_json::json;

/// Failures of starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("bad JWT public key: {0}")]
    JwtKey(String),
    #[error("schema catalog: {0}")]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("cannot generate data: {0}")]
    Generate(String),
}

/// One Salesforce API error: answered as `[{"message","errorCode","fields"}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> ApiError {
        self.fields = fields;
        self
    }

    pub fn bad(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    pub fn session() -> ApiError {
        ApiError::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    pub fn method_not_allowed(method: &str) -> ApiError {
        ApiError::new(
            405,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are GET,HEAD,PATCH,POST,DELETE"),
        )
    }

    pub fn json_parse(detail: impl std::fmt::Display) -> ApiError {
        ApiError::bad("JSON_PARSER_ERROR", detail.to_string())
    }

    /// A record id in a URL that is not an id of `object`.
    pub fn malformed_id_for(object: &str, id: &str) -> ApiError {
        ApiError::bad(
            "MALFORMED_ID",
            format!("{object} ID: id value of incorrect type: {id}"),
        )
        .with_fields(vec!["Id".into()])
    }

    /// `{"message","errorCode","fields"}`.
    pub fn item(&self) -> serde_json::Value {
        json!({"message": self.message, "errorCode": self.code, "fields": self.fields})
    }

    /// `{"statusCode","message","fields"}`, the form inside collection results.
    pub fn status_item(&self) -> serde_json::Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::Value::Array(vec![self.item()])
    }
}

impl From<soql::SoqlError> for ApiError {
    fn from(e: soql::SoqlError) -> ApiError {
        ApiError::bad(e.code.as_str(), e.message)
    }
}
