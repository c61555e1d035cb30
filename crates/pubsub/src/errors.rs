//! The error codes Pub/Sub API puts in the `error-code` trailer of a failed call
//! ("Handle Errors", Pub/Sub API Developer Guide,
//! https://developer.salesforce.com/docs/platform/pub-sub-api/guide/handling-errors.html:
//! "The Pub/Sub API adds a custom error code in the Trailers section of the exception";
//! the RPC id follows "rpcId:" in the message and is also a trailer).

/// Trailer holding the error code.
pub const TRAILER_ERROR_CODE: &str = "error-code";
/// Trailer holding the call's RPC id (name as the emulator sends it; the guide says
/// the id is in the trailers without naming the key: unconfirmed).
pub const TRAILER_RPC_ID: &str = "rpc-id";

/// "An authentication exception occurred. Provide valid authentication via metadata
/// headers." (Handle Errors, General Errors table.)
pub const AUTH: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
/// "The specified Replay ID value is invalid. One possible cause is that it's an old
/// Replay ID outside the 72-hour retention period" ("Retry Long-Lived RPC Calls After
/// an Error Occurs", https://developer.salesforce.com/docs/platform/pub-sub-api/guide/retry-rpc-calls.html),
/// sent with status INVALID_ARGUMENT (the Handle Errors example).
pub const REPLAY_ID_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
/// "The Pub/Sub API service is unavailable." (Handle Errors, General Errors.)
pub const SERVICE_UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";
/// Unknown topic. The code string could not be confirmed in the guide's table; this
/// is the emulator's choice.
pub const TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.notfound";
/// Unknown schema id (code string unconfirmed; the emulator's choice).
pub const SCHEMA_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.schema.notfound";
/// A later FetchRequest names another topic than the first (status INVALID_ARGUMENT
/// per the Subscribe comment in pubsub_api.proto; code string unconfirmed).
pub const TOPIC_MISMATCH: &str = "sfdc.platform.eventbus.grpc.subscription.topic.mismatch";
/// Publishing where it is not allowed (change event channels; code unconfirmed).
pub const PUBLISH_NOT_ALLOWED: &str = "sfdc.platform.eventbus.grpc.publish.not.allowed";
