//! Salesforce's Pub/Sub API contract, shared by the emulator (server) and the
//! extension (client): the generated `eventbus.v1` messages and gRPC client (and,
//! with the `server` feature, the server trait), plus what reading and writing change
//! events needs: a small Avro binary codec, the `changedFields`-style bitmaps,
//! channel names and the error codes Salesforce documents.

pub mod avro;
pub mod bitmap;
pub mod channel;
pub mod errors;

/// The generated `eventbus.v1` types, client (`pub_sub_client`) and, with the
/// `server` feature, server (`pub_sub_server`).
pub mod eventbus {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("eventbus.v1");
}

pub use eventbus::*;

/// The metadata keys every call carries ("Pub/Sub API as a gRPC API", Pub/Sub API
/// Developer Guide; also the service comment in Salesforce's pubsub_api.proto).
pub const META_ACCESS_TOKEN: &str = "accesstoken";
pub const META_INSTANCE_URL: &str = "instanceurl";
pub const META_TENANT_ID: &str = "tenantid";

/// Largest number of events a Subscribe call can have outstanding: "The maximum
/// value for num_requested is 100 ... If a client requests more than 100 events, the
/// server considers the number of requested events to be 100" ("Subscribe RPC
/// Method" and "Pull Subscription and Flow Control", Pub/Sub API Developer Guide,
/// https://developer.salesforce.com/docs/platform/pub-sub-api/guide/flow-control.html).
pub const MAX_NUM_REQUESTED: i32 = 100;
