//! Pub/Sub API failures as the crate's [`Error`].
//!
//! A failed call is a gRPC status plus Salesforce's code in the `error-code` trailer
//! ("Handle Errors", Pub/Sub API Developer Guide). It becomes [`Error::Api`] with that
//! code and, as `status`, the HTTP status the gRPC code corresponds to (the mapping in
//! the comments of google.rpc.Code: UNAUTHENTICATED 401, PERMISSION_DENIED 403,
//! NOT_FOUND 404, INVALID_ARGUMENT 400, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, ...),
//! so code that already sorts REST failures (auth on 401, retry on 503 via
//! [`Error::is_transient`]) sorts stream failures the same way. When the trailer is
//! missing (a connection reset, a proxy), the code is inferred from the gRPC status
//! for the kinds a caller must tell apart, so [`Error::pubsub_error_kind`] always
//! answers for them.

use crate::error::{ApiError, Error, ErrorCode};
use tonic::Code;

/// What a Pub/Sub API failure means to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubSubErrorKind {
    /// The session was refused (after one refresh): not retryable without a person.
    Auth,
    /// The topic (channel) does not exist for this org.
    UnknownTopic,
    /// The schema id is unknown.
    UnknownSchema,
    /// The stored replay id is invalid or older than the retention window: events may
    /// have been missed; re-read what the stream would have carried, then subscribe
    /// from LATEST (or EARLIEST).
    ReplayIdInvalid,
    /// The stream or the service went away (UNAVAILABLE): subscribe again from the
    /// last replay id after a backoff.
    Unavailable,
    /// Any other Pub/Sub failure.
    Other,
}

/// Which call failed, to name what was not found when the trailer does not say.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    Topic,
    Schema,
    Subscribe,
}

/// The HTTP status a gRPC code corresponds to (google.rpc.Code comments).
fn http_equivalent(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

fn trailer_code(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get(::pubsub::errors::TRAILER_ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The Pub/Sub code for a status without a trailer, where the gRPC code alone says it.
fn inferred_code(code: Code, call: Call) -> ErrorCode {
    match (code, call) {
        (Code::Unauthenticated, _) => ErrorCode::PubSubAuth,
        (Code::Unavailable, _) => ErrorCode::PubSubServiceUnavailable,
        (Code::NotFound, Call::Schema) => ErrorCode::PubSubSchemaNotFound,
        (Code::NotFound, _) => ErrorCode::PubSubTopicNotFound,
        // Not a Salesforce code: marks the failure as a Pub/Sub one (kind Other) and
        // names the gRPC status.
        (other, _) => ErrorCode::Other(format!(
            "sfdc.platform.eventbus.grpc.status.{}",
            format!("{other:?}").to_ascii_lowercase()
        )),
    }
}

/// A failed Pub/Sub call as an [`Error`].
pub(crate) fn error_from_status(status: &tonic::Status, call: Call) -> Error {
    let code = trailer_code(status)
        .map(|c| ErrorCode::parse(&c))
        .unwrap_or_else(|| inferred_code(status.code(), call));
    let mut message = format!("gRPC {:?}", status.code());
    if !status.message().is_empty() {
        message.push_str(": ");
        message.push_str(status.message());
    }
    Error::Api {
        status: http_equivalent(status.code()),
        errors: vec![ApiError {
            error_code: code,
            message,
            fields: Vec::new(),
        }],
        retry_after: None,
    }
}

/// A stream that ended without a status: the server or a proxy closed it.
pub(crate) fn stream_closed() -> Error {
    Error::Api {
        status: 503,
        errors: vec![ApiError {
            error_code: ErrorCode::PubSubServiceUnavailable,
            message: "the Subscribe stream ended without a status".into(),
            fields: Vec::new(),
        }],
        retry_after: None,
    }
}

impl Error {
    /// For a failed Pub/Sub API call (see `crate::cdc`), what it means to a subscriber;
    /// None for other errors.
    pub fn pubsub_error_kind(&self) -> Option<PubSubErrorKind> {
        let Error::Api { errors, .. } = self else {
            return None;
        };
        let code = &errors.first()?.error_code;
        if !code.is_pubsub() {
            return None;
        }
        Some(match code {
            ErrorCode::PubSubAuth => PubSubErrorKind::Auth,
            ErrorCode::PubSubTopicNotFound => PubSubErrorKind::UnknownTopic,
            ErrorCode::PubSubSchemaNotFound => PubSubErrorKind::UnknownSchema,
            ErrorCode::PubSubReplayIdCorrupted => PubSubErrorKind::ReplayIdInvalid,
            ErrorCode::PubSubServiceUnavailable => PubSubErrorKind::Unavailable,
            _ => PubSubErrorKind::Other,
        })
    }

    /// True when a subscription must not trust its stored replay id any more (see
    /// [`PubSubErrorKind::ReplayIdInvalid`]).
    pub fn is_replay_id_invalid(&self) -> bool {
        self.pubsub_error_kind() == Some(PubSubErrorKind::ReplayIdInvalid)
    }

    /// True when the event stream was dropped and subscribing again can succeed.
    pub fn is_stream_dropped(&self) -> bool {
        self.pubsub_error_kind() == Some(PubSubErrorKind::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, trailer: Option<&str>) -> tonic::Status {
        let mut st = tonic::Status::new(code, "boom rpcId: 1");
        if let Some(t) = trailer {
            st.metadata_mut()
                .insert(::pubsub::errors::TRAILER_ERROR_CODE, t.parse().unwrap());
        }
        st
    }

    #[test]
    fn kinds_follow_trailers_and_fall_back_on_the_grpc_code() {
        let replay = error_from_status(
            &status(
                Code::InvalidArgument,
                Some(::pubsub::errors::REPLAY_ID_CORRUPTED),
            ),
            Call::Subscribe,
        );
        assert!(replay.is_replay_id_invalid());
        assert!(!replay.is_transient());
        assert_eq!(replay.status(), Some(400));
        let text = replay.to_string();
        assert!(
            text.starts_with("Salesforce Pub/Sub API call failed"),
            "{text}"
        );
        assert!(text.contains("re-read the records"), "{text}");

        let dropped = error_from_status(&status(Code::Unavailable, None), Call::Subscribe);
        assert!(dropped.is_stream_dropped() && dropped.is_transient());
        assert!(stream_closed().is_stream_dropped());

        let auth = error_from_status(&status(Code::Unauthenticated, None), Call::Topic);
        assert_eq!(auth.pubsub_error_kind(), Some(PubSubErrorKind::Auth));
        assert_eq!(auth.status(), Some(401));

        let schema = error_from_status(&status(Code::NotFound, None), Call::Schema);
        assert_eq!(
            schema.pubsub_error_kind(),
            Some(PubSubErrorKind::UnknownSchema)
        );
        let other = error_from_status(
            &status(
                Code::ResourceExhausted,
                Some("sfdc.platform.eventbus.grpc.concurrent.client.limit.exceeded"),
            ),
            Call::Subscribe,
        );
        assert_eq!(other.pubsub_error_kind(), Some(PubSubErrorKind::Other));
        assert_eq!(other.status(), Some(429));
        assert_eq!(Error::Connect("x".into()).pubsub_error_kind(), None);
    }
}
