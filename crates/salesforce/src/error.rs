//! The crate's one error type, and the Salesforce error codes it can carry.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Everything a call into Salesforce can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OAuth token endpoint refused the credential.
    #[error("{}", auth_message(login_url, grant, *status, error, description))]
    Auth {
        /// The login host the token request went to.
        login_url: String,
        /// The grant that was attempted (`refresh_token`, `password`, ...).
        grant: &'static str,
        /// HTTP status of the token response.
        status: u16,
        /// Salesforce's `error` field (`invalid_grant`, `invalid_client_id`, ...).
        error: String,
        /// Salesforce's `error_description` field.
        description: String,
    },
    /// A data call returned an error status with Salesforce's error array.
    #[error("{}", api_message(*status, errors))]
    Api {
        status: u16,
        errors: Vec<ApiError>,
        /// From a `Retry-After` header, when the response carried one.
        retry_after: Option<Duration>,
    },
    /// A conditional update (`If-Unmodified-Since`) found the record changed since (HTTP 412).
    #[error("conflict: the record changed in Salesforce since the given time ({message})")]
    Conflict { message: String },
    /// No connection could be made (DNS, refused, TLS handshake, connect timeout): the
    /// request was certainly not processed.
    #[error("could not connect to Salesforce: {0}")]
    Connect(String),
    /// The connection broke after the request may have been sent (reset, closed before
    /// the response): a write may or may not have been applied.
    #[error("lost the connection to Salesforce: {0}")]
    Transport(String),
    /// The total request timeout elapsed after the request was sent: a write may or may
    /// not have been applied.
    #[error("Salesforce request timed out: {0}")]
    Timeout(String),
    /// Salesforce answered with a body this client could not understand.
    #[error("unexpected response from Salesforce: {0}")]
    Decode(String),
    /// The client was configured or called wrongly (bad key, bad URL, too many records).
    #[error("invalid Salesforce client configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What Salesforce's `REQUEST_LIMIT_EXCEEDED` says when the org's long-running requests
/// (20 s or more, shared by every integration) are all taken.
pub(crate) const LONG_REQUESTS_TAKEN: &str = "ConcurrentPerOrgLongTxn";

impl Error {
    /// True when retrying the same request later can succeed: server unavailability,
    /// timeouts, dropped connections, row lock contention, quota exhaustion and query
    /// timeouts. Authentication and validation errors are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect(_) | Error::Transport(_) | Error::Timeout(_) => true,
            Error::Api { status, errors, .. } => {
                matches!(status, 500 | 502 | 503 | 504)
                    || errors.iter().any(|e| e.error_code.is_transient())
            }
            Error::Auth { status, .. } => *status >= 500,
            Error::Conflict { .. } | Error::Decode(_) | Error::Config(_) => false,
        }
    }

    /// How long Salesforce asked us to wait, when it said so (`Retry-After`), or a
    /// conservative default for quota exhaustion, which no short retry can cure.
    pub fn retry_after_hint(&self) -> Option<Duration> {
        match self {
            Error::Api {
                retry_after: Some(d),
                ..
            } => Some(*d),
            // The daily quota only frees as the rolling 24 h window moves; too many
            // concurrent long requests (ConcurrentPerOrgLongTxn, same code) clear as soon
            // as one finishes, so ordinary backoff suits them.
            Error::Api { errors, .. }
                if errors.iter().any(|e| {
                    e.error_code == ErrorCode::RequestLimitExceeded
                        && !e.message.contains(LONG_REQUESTS_TAKEN)
                }) =>
            {
                Some(Duration::from_secs(60))
            }
            _ => None,
        }
    }

    /// True when Salesforce may have applied the request although no answer arrived
    /// (timeouts and broken connections after sending). Writes that fail this way
    /// have an unknown outcome and must not be blindly repeated.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::Transport(_) | Error::Timeout(_))
    }

    /// The first Salesforce error code the error carries, if any.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { errors, .. } => errors.first().map(|e| &e.error_code),
            _ => None,
        }
    }

    /// True when the error carries the given code anywhere in its error array.
    pub fn has_code(&self, code: &ErrorCode) -> bool {
        match self {
            Error::Api { errors, .. } => errors.iter().any(|e| &e.error_code == code),
            _ => false,
        }
    }

    /// The HTTP status, for errors that came with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Auth { status, .. } => Some(*status),
            Error::Conflict { .. } => Some(412),
            _ => None,
        }
    }
}

/// One entry of Salesforce's top-level error array
/// (`[{"message":"...","errorCode":"...","fields":[...]}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    pub error_code: ErrorCode,
    #[serde(default)]
    pub message: String,
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub fields: Vec<String>,
}

/// One entry of a record's `errors` in a save result (note `statusCode`, not `errorCode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    pub status_code: ErrorCode,
    #[serde(default)]
    pub message: String,
    #[serde(default, deserialize_with = "crate::de::null_default")]
    pub fields: Vec<String>,
}

macro_rules! error_codes {
    ($($variant:ident => $text:literal,)*) => {
        /// Salesforce error codes (`errorCode` / `statusCode`). Codes not listed here
        /// arrive as `Other` with their text intact.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
            Other(String),
        }

        impl ErrorCode {
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Other(s) => s,
                }
            }

            pub fn parse(s: &str) -> ErrorCode {
                match s {
                    $($text => ErrorCode::$variant,)*
                    other => ErrorCode::Other(other.to_string()),
                }
            }
        }
    };
}

error_codes! {
    RequiredFieldMissing => "REQUIRED_FIELD_MISSING",
    FieldCustomValidationException => "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    InvalidField => "INVALID_FIELD",
    MalformedQuery => "MALFORMED_QUERY",
    InvalidType => "INVALID_TYPE",
    MalformedId => "MALFORMED_ID",
    NotFound => "NOT_FOUND",
    EntityIsDeleted => "ENTITY_IS_DELETED",
    DuplicateValue => "DUPLICATE_VALUE",
    UnableToLockRow => "UNABLE_TO_LOCK_ROW",
    InvalidQueryLocator => "INVALID_QUERY_LOCATOR",
    QueryTimeout => "QUERY_TIMEOUT",
    RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
    LimitExceeded => "LIMIT_EXCEEDED",
    ServerUnavailable => "SERVER_UNAVAILABLE",
    InvalidSessionId => "INVALID_SESSION_ID",
    AllOrNoneOperationRolledBack => "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    JobNotComplete => "JOB_NOT_COMPLETE",
    PreconditionFailed => "PRECONDITION_FAILED",
    InvalidOrNullForRestrictedPicklist => "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    InvalidFieldForInsertUpdate => "INVALID_FIELD_FOR_INSERT_UPDATE",
    InvalidCrossReferenceKey => "INVALID_CROSS_REFERENCE_KEY",
    InvalidIdField => "INVALID_ID_FIELD",
    InvalidSearch => "INVALID_SEARCH",
    InvalidAuthHeader => "INVALID_AUTH_HEADER",
    InvalidEmailAddress => "INVALID_EMAIL_ADDRESS",
    InvalidQueryFilterOperator => "INVALID_QUERY_FILTER_OPERATOR",
    InvalidOperation => "INVALID_OPERATION",
    InvalidJob => "INVALIDJOB",
    InvalidJobState => "INVALIDJOBSTATE",
    StringTooLong => "STRING_TOO_LONG",
    NumberOutsideValidRange => "NUMBER_OUTSIDE_VALID_RANGE",
    FieldIntegrityException => "FIELD_INTEGRITY_EXCEPTION",
    InsufficientAccess => "INSUFFICIENT_ACCESS",
    InsufficientAccessOrReadonly => "INSUFFICIENT_ACCESS_OR_READONLY",
    InsufficientAccessOnCrossReferenceEntity => "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
    CannotInsertUpdateActivateEntity => "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
    DuplicatesDetected => "DUPLICATES_DETECTED",
    EntityIsLocked => "ENTITY_IS_LOCKED",
    DeleteFailed => "DELETE_FAILED",
    ExceededIdLimit => "EXCEEDED_ID_LIMIT",
    ApiDisabledForOrg => "API_DISABLED_FOR_ORG",
    ApiCurrentlyDisabled => "API_CURRENTLY_DISABLED",
    JsonParserError => "JSON_PARSER_ERROR",
    MethodNotAllowed => "METHOD_NOT_ALLOWED",
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
    InvalidInput => "INVALID_INPUT",
    NotAcceptable => "NOT_ACCEPTABLE",
    ConcurrentRequestLimitExceeded => "CONCURRENT_REQUEST_LIMIT_EXCEEDED",
    TxnSecurityNoAccess => "TXN_SECURITY_NO_ACCESS",
    UnknownException => "UNKNOWN_EXCEPTION",
    // Pub/Sub API codes, sent in the `error-code` trailer of a failed gRPC call
    // ("Handle Errors", Pub/Sub API Developer Guide); `crate::cdc` maps calls onto them.
    PubSubAuth => "sfdc.platform.eventbus.grpc.service.auth.error",
    PubSubReplayIdCorrupted => "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted",
    PubSubServiceUnavailable => "sfdc.platform.eventbus.grpc.service.unavailable",
    PubSubTopicNotFound => "sfdc.platform.eventbus.grpc.topic.notfound",
    PubSubSchemaNotFound => "sfdc.platform.eventbus.grpc.schema.notfound",
}

impl ErrorCode {
    /// Codes whose condition passes with time (lock contention, quota, load).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ErrorCode::UnableToLockRow
                | ErrorCode::RequestLimitExceeded
                | ErrorCode::QueryTimeout
                | ErrorCode::ServerUnavailable
                | ErrorCode::ConcurrentRequestLimitExceeded
                | ErrorCode::PubSubServiceUnavailable
        )
    }

    /// Codes of the Pub/Sub API (`sfdc.platform.eventbus...`), known or not.
    pub fn is_pubsub(&self) -> bool {
        self.as_str().starts_with("sfdc.platform.eventbus.")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        Ok(ErrorCode::parse(s.as_deref().unwrap_or("")))
    }
}

fn api_message(status: u16, errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return format!("Salesforce returned HTTP {status}");
    }
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.fields.is_empty() {
                format!("{}: {}", e.error_code, e.message)
            } else {
                format!(
                    "{}: {} (fields: {})",
                    e.error_code,
                    e.message,
                    e.fields.join(", ")
                )
            }
        })
        .collect();
    let hint = errors
        .iter()
        .find_map(|e| code_hint(&e.error_code))
        .map(|h| format!(". {h}"))
        .unwrap_or_default();
    // Pub/Sub API failures are gRPC statuses; `status` is only their HTTP equivalent
    // (see `crate::cdc`), so the message does not claim an HTTP answer.
    if errors.iter().all(|e| e.error_code.is_pubsub()) {
        return format!(
            "Salesforce Pub/Sub API call failed: {}{hint}",
            parts.join("; ")
        );
    }
    format!(
        "Salesforce returned HTTP {status}: {}{hint}",
        parts.join("; ")
    )
}

/// What a user can do about the codes that usually need a person, not a retry.
fn code_hint(code: &ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::RequestLimitExceeded => {
            "The org's API request quota (a rolling 24 hours) is spent or too many long \
             requests run at once; requests resume when usage drops. Lower the sync's rate \
             limit or ask Salesforce for a higher quota if this repeats"
        }
        ErrorCode::InvalidSessionId => {
            "The access token was refused even after a fresh login: the session may have been \
             revoked or the user's IP is not allowed; check the Connected App's session and \
             IP policies"
        }
        ErrorCode::ApiDisabledForOrg | ErrorCode::ApiCurrentlyDisabled => {
            "API access is off for this org or user: it needs an edition with API access and \
             the 'API Enabled' permission for the user"
        }
        ErrorCode::InvalidType => {
            "The object does not exist in this org or the user cannot see it; check the name \
             (custom objects end in __c) and the user's object permissions"
        }
        ErrorCode::InvalidField => {
            "The field does not exist or the user lacks field-level security access to it"
        }
        // Salesforce's front end, before the API: an HTML page, no error array
        ErrorCode::Other(c) if c == "HTTP_414" || c == "HTTP_431" => {
            "The request's URI and headers are longer than the 16,384 bytes Salesforce \
             takes: a query selecting this many fields of a wide object has to be split into \
             queries of fewer fields"
        }
        ErrorCode::InsufficientAccess
        | ErrorCode::InsufficientAccessOrReadonly
        | ErrorCode::InsufficientAccessOnCrossReferenceEntity => {
            "The user lacks permission for this record or object; check sharing and profile \
             permissions"
        }
        ErrorCode::PubSubAuth => {
            "The Pub/Sub API refused the session even after a fresh login: check that the \
             user may use the API and that the org id and instance URL of the session match \
             the Pub/Sub endpoint's org"
        }
        ErrorCode::PubSubReplayIdCorrupted => {
            "The stored replay id is no longer valid (older than the event retention, 72 \
             hours for change events, or from another org): events may have been missed, so \
             re-read the records and subscribe again from LATEST"
        }
        ErrorCode::PubSubServiceUnavailable => {
            "The event stream was closed by the server or the network; subscribe again from \
             the last replay id after a backoff"
        }
        ErrorCode::PubSubTopicNotFound => {
            "The channel name is wrong or not a channel of this org: change event channels \
             are /data/ChangeEvents, /data/<Object>ChangeEvent and \
             /data/<Name>__ChangeEvent for custom objects, and the object must be selected for \
             Change Data Capture in Setup"
        }
        _ => return None,
    })
}

fn auth_message(
    login_url: &str,
    grant: &str,
    status: u16,
    error: &str,
    description: &str,
) -> String {
    let said = if description.is_empty() {
        error.to_string()
    } else {
        format!("{error}: {description}")
    };
    let hint = auth_hint(login_url, grant, error, description);
    format!(
        "Salesforce login at {login_url} failed ({grant} grant, HTTP {status}): Salesforce said \"{said}\". {hint}"
    )
}

fn auth_hint(login_url: &str, grant: &str, error: &str, description: &str) -> String {
    let sandbox = "Sandbox orgs log in at https://test.salesforce.com, production orgs at \
                   https://login.salesforce.com or their My Domain host.";
    match (error, grant) {
        ("invalid_client_id", _) => format!(
            "Check the client id (the Connected App's consumer key) and that the Connected App \
             exists in the org behind {login_url}. {sandbox}"
        ),
        ("invalid_client", _) => "Check the client secret (the Connected App's consumer secret) \
             and that it belongs to this client id."
            .to_string(),
        ("unsupported_grant_type", "client_credentials") => format!(
            "The client credentials grant only works on an org's My Domain host \
             (https://YOURDOMAIN.my.salesforce.com), not on {login_url}, and the Connected App \
             must enable the Client Credentials Flow."
        ),
        ("unsupported_grant_type", _) => {
            "The Connected App or login host does not allow this kind of credential; \
             enable the flow in the Connected App or use another credential kind."
                .to_string()
        }
        ("invalid_grant", "refresh_token") => {
            "The refresh token was revoked, expired, or issued for another Connected App or \
             org; obtain a new refresh token and update the credential."
                .to_string()
        }
        ("invalid_grant", "password") => format!(
            "Check the username and password (append the user's security token to the password \
             unless the login comes from a trusted IP range), that the user may use this \
             Connected App, and that the user belongs to the org behind {login_url}. {sandbox}"
        ),
        ("invalid_grant", "jwt_bearer") if description.contains("audience") => format!(
            "The JWT audience was {} (derived from the login URL {login_url}): use \
             https://login.salesforce.com or a My Domain host for production orgs and \
             https://test.salesforce.com or a sandbox My Domain host for sandboxes.",
            crate::auth::jwt_audience(login_url)
        ),
        ("invalid_grant", "jwt_bearer") => format!(
            "Check that the certificate uploaded to the Connected App matches the private key, \
             that the user is pre-authorized for the Connected App (admin approved users), and \
             that the username belongs to the org behind {login_url}. {sandbox}"
        ),
        ("invalid_grant", "client_credentials") => {
            "Check the Connected App's Client Credentials Flow settings, including its \
             'Run As' user."
                .to_string()
        }
        _ => {
            format!("Check the credential's settings and that {login_url} is the right login host.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_array() {
        let body = r#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]},
                       {"message":"x","errorCode":"SOMETHING_NEW"}]"#;
        let errors: Vec<ApiError> = serde_json::from_str(body).unwrap();
        assert_eq!(errors[0].error_code, ErrorCode::RequiredFieldMissing);
        assert_eq!(errors[0].fields, vec!["LastName".to_string()]);
        assert_eq!(
            errors[1].error_code,
            ErrorCode::Other("SOMETHING_NEW".into())
        );
        assert!(errors[1].fields.is_empty());
    }

    #[test]
    fn codes_round_trip() {
        for code in [
            "UNABLE_TO_LOCK_ROW",
            "INVALID_SESSION_ID",
            "JOB_NOT_COMPLETE",
            "X_Y",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
    }

    #[test]
    fn transient_classification() {
        let api = |status, code: &str| Error::Api {
            status,
            errors: vec![ApiError {
                error_code: ErrorCode::parse(code),
                message: String::new(),
                fields: vec![],
            }],
            retry_after: None,
        };
        assert!(api(503, "SERVER_UNAVAILABLE").is_transient());
        assert!(api(400, "UNABLE_TO_LOCK_ROW").is_transient());
        assert!(api(403, "REQUEST_LIMIT_EXCEEDED").is_transient());
        assert!(api(400, "QUERY_TIMEOUT").is_transient());
        assert!(!api(400, "REQUIRED_FIELD_MISSING").is_transient());
        assert!(!api(404, "NOT_FOUND").is_transient());
        assert!(Error::Timeout("t".into()).is_transient());
        assert!(Error::Timeout("t".into()).outcome_unknown());
        assert!(!Error::Connect("c".into()).outcome_unknown());
        assert!(!Error::Conflict {
            message: String::new()
        }
        .is_transient());
        assert_eq!(
            api(403, "REQUEST_LIMIT_EXCEEDED").retry_after_hint(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(api(400, "MALFORMED_QUERY").retry_after_hint(), None);
    }

    #[test]
    fn api_message_lists_codes_fields_and_a_hint() {
        let e = Error::Api {
            status: 400,
            errors: vec![ApiError {
                error_code: ErrorCode::InvalidField,
                message: "No such column 'Foo__c' on entity 'Contact'".into(),
                fields: vec!["Foo__c".into()],
            }],
            retry_after: None,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("Salesforce returned HTTP 400: INVALID_FIELD: No such column"),
            "{text}"
        );
        assert!(text.contains("(fields: Foo__c)"), "{text}");
        assert!(text.contains("field-level security"), "{text}");
        let plain = Error::Api {
            status: 400,
            errors: vec![ApiError {
                error_code: ErrorCode::MalformedQuery,
                message: "unexpected token".into(),
                fields: vec![],
            }],
            retry_after: None,
        };
        assert_eq!(
            plain.to_string(),
            "Salesforce returned HTTP 400: MALFORMED_QUERY: unexpected token"
        );
        let too_long = Error::Api {
            status: 414,
            errors: crate::http::parse_error_body(
                414,
                b"<h1>Bad Message 414</h1><pre>reason: URI Too Long</pre>",
            ),
            retry_after: None,
        };
        let text = too_long.to_string();
        assert!(text.contains("URI Too Long"), "{text}");
        assert!(text.contains("16,384 bytes"), "{text}");
    }

    #[test]
    fn auth_message_names_host_and_what_to_check() {
        let e = Error::Auth {
            login_url: "https://login.salesforce.com".into(),
            grant: "password",
            status: 400,
            error: "invalid_grant".into(),
            description: "authentication failure".into(),
        };
        let text = e.to_string();
        assert!(text.contains("https://login.salesforce.com"), "{text}");
        assert!(text.contains("authentication failure"), "{text}");
        assert!(text.contains("security token"), "{text}");
    }
}
