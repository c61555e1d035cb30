//! Change Data Capture over Salesforce's Pub/Sub API: the client side.
//!
//! [`PubSub`] connects to a Pub/Sub endpoint with the REST [`Client`]'s session,
//! reads topics and schemas, and opens [`Subscription`]s; a subscription hands out
//! [`Batch`]es of decoded [`ChangeEvent`]s, each a typed header plus the record's
//! field values as REST names them, ready to merge into a row.
//! [`Client::cdc_selection`](crate::Client::cdc_selection) tells which objects the org
//! selected for Change Data Capture (the others have no change events to subscribe to).
//!
//! Why here and not in a crate of its own: a subscription lives off the REST client's
//! session (the token, instance URL and org id travel as gRPC metadata, and an expired
//! token is refreshed the way REST calls refresh it), and its failures are the crate's
//! [`Error`] so a worker handles REST and stream failures alike. The wire contract
//! (generated `eventbus.v1` client, Avro codec, bitmaps, channel names) stays in the
//! `pubsub` crate, used here without its server half.
//!
//! | fact relied on | source |
//! | --- | --- |
//! | Endpoints `api.pubsub.salesforce.com:443` or `:7443` (and `api.deu.pubsub.salesforce.com`), gRPC over HTTP/2 and TLS | "Pub/Sub API Endpoints", Pub/Sub API Developer Guide, https://developer.salesforce.com/docs/platform/pub-sub-api/guide/pub-sub-endpoints.html |
//! | Every call carries `accesstoken`, `instanceurl`, `tenantid` (org id) metadata | service comment of pubsub_api.proto; `pubsub::META_*` |
//! | Subscribe is pull-based: `num_requested` at most 100, requests add up, each FetchResponse tells `pending_num_requested` | "Subscribe RPC Method", https://developer.salesforce.com/docs/platform/pub-sub-api/references/methods/subscribe-rpc.html; "Pull Subscription and Flow Control" |
//! | With nothing to send, the server sends keepalive FetchResponses with no events and the latest replay id, which a client keeps to resume from | "Subscribe Keepalive Behavior", same page; FetchResponse comment in pubsub_api.proto |
//! | Replay ids are opaque bytes, not contiguous, kept by the subscriber and passed back with ReplayPreset CUSTOM; events are kept 72 hours | "Event Message Durability", https://developer.salesforce.com/docs/platform/pub-sub-api/guide/event-message-durability.html |
//! | A failure is a gRPC status with the Pub/Sub code in the `error-code` trailer; a stream broken by the network reads UNAVAILABLE ("RST_STREAM closed stream") and is retried | "Handle Errors", https://developer.salesforce.com/docs/platform/pub-sub-api/guide/handling-errors.html |
//! | An invalid or too old replay id is INVALID_ARGUMENT with `...subscription.fetch.replayid.corrupted`; retry with another preset | "Retry Long-Lived RPC Calls After an Error Occurs", https://developer.salesforce.com/docs/platform/pub-sub-api/guide/retry-rpc-calls.html |
//! | Payloads are Avro binary without a container header, written with the schema GetSchema returns for `schema_id` | "Event Data Serialization with Apache Avro", Pub/Sub API Developer Guide |
//!
//! Event decoding facts are cited in `event` and `fields`. The emulator's unconfirmed
//! choices followed here: the status codes of an unknown topic or schema (NOT_FOUND)
//! and of bad authentication (UNAUTHENTICATED), the error-code strings of unknown
//! topics and schemas (`ErrorCode::PubSubTopicNotFound`, `PubSubSchemaNotFound`), and
//! the Avro types of dates (`int` days) and datetimes (`long` milliseconds) (see
//! crates/sf-emulator/src/pubsub_api and src/cdc/layout.rs).
//!
//! [`Client`]: crate::Client
//! [`Error`]: crate::Error

mod channels;
mod connection;
mod event;
mod fields;
mod selection;
mod status;
mod subscription;

pub use channels::{ChannelError, ChannelMember, CUSTOMIZE_APPLICATION};
pub use connection::{EventSchema, PubSub, PubSubConfig, TopicInfo, SALESFORCE_PUBSUB_ENDPOINT};
pub use event::{ChangeEvent, ChangeType};
pub use selection::{CdcSelection, SelectionError, VIEW_SETUP_PERMISSION};
pub use status::PubSubErrorKind;
pub use subscription::{Batch, Replay, Subscription};

pub use ::pubsub::channel::{
    change_event_name, custom_channel_topic, object_channel, object_of_change_event,
    ALL_CHANGE_EVENTS,
};
pub use ::pubsub::MAX_NUM_REQUESTED;
