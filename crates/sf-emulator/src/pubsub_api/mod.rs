//! Salesforce's Pub/Sub API (`eventbus.v1.PubSub`, gRPC over HTTP/2) serving the
//! change events of `crate::cdc`.
//!
//! | fact | source |
//! | --- | --- |
//! | Every call carries `accesstoken`, `instanceurl`, `tenantid` metadata (a session token from any OAuth flow; tenantid is the org id) | service comment of pubsub_api.proto; "Pub/Sub API as a gRPC API", Pub/Sub API Developer Guide |
//! | A failure is a gRPC status with Salesforce's code in the `error-code` trailer and "rpcId: <id>" at the end of the message | "Handle Errors", https://developer.salesforce.com/docs/platform/pub-sub-api/guide/handling-errors.html |
//! | Bad authentication: `sfdc.platform.eventbus.grpc.service.auth.error` | same page, General Errors table |
//! | Invalid or too old replay id: INVALID_ARGUMENT, `...subscription.fetch.replayid.corrupted` | same page's example; "Retry Long-Lived RPC Calls After an Error Occurs" |
//! | A broken stream reads UNAVAILABLE ("RST_STREAM closed stream"); clients retry | "Handle Errors" table |
//! | Flow control: events sent never exceed those requested; more requests add up, to at most 100 outstanding | "Pull Subscription and Flow Control", https://developer.salesforce.com/docs/platform/pub-sub-api/guide/flow-control.html |
//! | replay_preset/replay_id count only in the first FetchRequest; a later one naming another topic fails with INVALID_ARGUMENT | Subscribe comment in pubsub_api.proto |
//! | With nothing to deliver the server sends an empty FetchResponse with the latest replay id, within 270 seconds | FetchResponse comment in pubsub_api.proto; "Subscribe RPC Method" keepalive section |
//! | Change event channels cannot be published to | "Subscription Channels", Change Data Capture Developer Guide (change events are published by Salesforce) |
//! | A custom channel's topic is `/data/<Name>__chn`, its name case-sensitive; it carries the change events of its members' entities only | "Subscription Channels"; "Compose Streams of Change Data Capture Notifications with Custom Channels", same guide |
//!
//! Unconfirmed, chosen here: the status of an unknown topic (NOT_FOUND; a custom
//! channel that does not exist, or no longer does, too) and of an unknown schema id
//! (NOT_FOUND) and their error-code strings, the auth status (UNAUTHENTICATED), the
//! trailer name `rpc-id`, TopicInfo.schema_id left empty for `/data/ChangeEvents` and
//! custom channels (their events use one schema per object), that a stream with
//! nothing requested stays open (Salesforce may close it after a while), and that a
//! stream of a custom channel deleted while it is open stays open and delivers
//! nothing more.

mod serve;

pub use serve::start;

use crate::app::App;
use crate::cdc::bus::{replay_id, ReplayError, Stored};
use pubsub::channel::Channel;
use pubsub::errors;
use pubsub::pub_sub_server::PubSub;
use pubsub::{
    ConsumerEvent, FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse,
    ProducerEvent, PublishRequest, PublishResponse, SchemaInfo, SchemaRequest, TopicInfo,
    TopicRequest,
};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status, Streaming};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct Service {
    app: Arc<App>,
}

impl Service {
    pub fn new(app: Arc<App>) -> Service {
        Service { app }
    }
}

fn rpc_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let h: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A failure as Pub/Sub API reports it.
fn failure(code: Code, error_code: &str, message: &str) -> Status {
    let id = rpc_id();
    let mut st = Status::new(code, format!("{message} rpcId: {id}"));
    if let Ok(v) = error_code.parse() {
        st.metadata_mut().insert(errors::TRAILER_ERROR_CODE, v);
    }
    if let Ok(v) = id.parse() {
        st.metadata_mut().insert(errors::TRAILER_RPC_ID, v);
    }
    st
}

fn meta<'a, T>(req: &'a Request<T>, key: &str) -> Option<&'a str> {
    req.metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// What a subscription delivers (see `crate::cdc::bus` for which events).
enum Topic {
    /// The standard channel's events.
    All,
    /// Every event of one object.
    Object(String),
    /// The events of a custom channel's members; the channel's full name.
    Custom(String),
}

/// A topic's filter for one delivery, with a custom channel's members as they are
/// now.
enum Filter {
    Standard,
    Entity(String),
    Entities(Vec<String>),
}

impl Topic {
    fn filter(&self, bus: &crate::cdc::Bus) -> Filter {
        match self {
            Topic::All => Filter::Standard,
            Topic::Object(o) => Filter::Entity(o.clone()),
            Topic::Custom(c) => Filter::Entities(bus.channel_members(c).unwrap_or_default()),
        }
    }
}

impl Filter {
    fn wants(&self, e: &Stored) -> bool {
        match self {
            Filter::Standard => e.standard,
            Filter::Entity(o) => e.entity == *o,
            Filter::Entities(objects) => objects.iter().any(|o| o.eq_ignore_ascii_case(&e.entity)),
        }
    }
}

impl Service {
    /// Checks the session metadata against the emulator's issued tokens and org.
    fn authenticate<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let token_ok = meta(req, pubsub::META_ACCESS_TOKEN).is_some_and(|t| {
            self.app
                .tokens
                .valid(t, self.app.config.token_lifetime_secs)
        });
        let org = &self.app.org.org_id;
        let tenant_ok = meta(req, pubsub::META_TENANT_ID)
            .is_some_and(|t| t == org.as_str() || (t.len() == 15 && org.starts_with(t)));
        let instance_ok = meta(req, pubsub::META_INSTANCE_URL)
            .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
        if token_ok && tenant_ok && instance_ok {
            return Ok(());
        }
        Err(failure(
            Code::Unauthenticated,
            errors::AUTH,
            "Authentication failed: send a valid session in the accesstoken, instanceurl and tenantid metadata.",
        ))
    }

    fn topic(&self, name: &str) -> Result<(Topic, Option<crate::org::ObjRef>), Status> {
        let unknown = || {
            failure(
                Code::NotFound,
                errors::TOPIC_NOT_FOUND,
                &format!(
                    "Topic {name} does not exist or is not a change event channel of this org."
                ),
            )
        };
        match pubsub::channel::parse(name).ok_or_else(unknown)? {
            Channel::All => Ok((Topic::All, None)),
            Channel::Custom(c) => {
                // Spelled as created: a channel name is case-sensitive.
                self.app.cdc.channel_members(&c).ok_or_else(unknown)?;
                Ok((Topic::Custom(c), None))
            }
            Channel::Object(o) => {
                let obj = self.app.org.object(&o).ok_or_else(unknown)?;
                let canonical = obj.read().def.name.clone();
                // The channel name must match the object's spelling exactly.
                if pubsub::channel::object_channel(&canonical) != name {
                    return Err(unknown());
                }
                Ok((Topic::Object(canonical), Some(obj)))
            }
        }
    }
}

fn replay_failure(e: ReplayError) -> Status {
    let why = match e {
        ReplayError::Malformed => "is not a replay id of this org",
        ReplayError::Expired => "is outside the retention window",
        ReplayError::Unknown => "does not refer to a stored event",
    };
    failure(
        Code::InvalidArgument,
        errors::REPLAY_ID_CORRUPTED,
        &format!("The replay id validation failed: the replay id {why}."),
    )
}

#[tonic::async_trait]
impl PubSub for Service {
    type SubscribeStream = ResponseStream<FetchResponse>;
    type PublishStreamStream = ResponseStream<PublishResponse>;
    type ManagedSubscribeStream = ResponseStream<ManagedFetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.authenticate(&request)?;
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.ok_or_else(|| {
            failure(
                Code::InvalidArgument,
                errors::TOPIC_NOT_FOUND,
                "The first FetchRequest must name a topic.",
            )
        })?;
        let (topic, _) = self.topic(&first.topic_name)?;
        let cursor = self
            .app
            .cdc
            .start(first.replay_preset, &first.replay_id)
            .map_err(replay_failure)?;
        let (tx, rx) = mpsc::channel(4);
        let sub = Subscription {
            app: self.app.clone(),
            topic,
            topic_name: first.topic_name.clone(),
            cursor,
            pending: requested(0, first.num_requested),
            keepalive: Duration::from_millis(self.app.config.pubsub_keepalive_ms.max(10)),
            tx,
        };
        tokio::spawn(sub.run(inbound));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        self.authenticate(&request)?;
        let id = request.into_inner().schema_id;
        let json = self.app.cdc.schema(&id).ok_or_else(|| {
            failure(
                Code::NotFound,
                errors::SCHEMA_NOT_FOUND,
                &format!("No schema with id {id}."),
            )
        })?;
        Ok(Response::new(SchemaInfo {
            schema_json: json,
            schema_id: id,
            rpc_id: rpc_id(),
        }))
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        self.authenticate(&request)?;
        let name = request.into_inner().topic_name;
        let (_, obj) = self.topic(&name)?;
        let schema_id = obj
            .map(|o| self.app.cdc.layout(&o.read().def).schema_id.clone())
            .unwrap_or_default();
        Ok(Response::new(TopicInfo {
            topic_name: name,
            tenant_guid: self.app.org.org_id.clone(),
            can_publish: false,
            can_subscribe: true,
            schema_id,
            rpc_id: rpc_id(),
        }))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        self.authenticate(&request)?;
        let name = request.into_inner().topic_name;
        self.topic(&name)?;
        Err(failure(
            Code::PermissionDenied,
            errors::PUBLISH_NOT_ALLOWED,
            &format!(
                "Publishing to {name} is not allowed: change events are published by the org."
            ),
        ))
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        self.authenticate(&request)?;
        Err(Status::unimplemented(
            "the emulator does not accept published events",
        ))
    }

    async fn managed_subscribe(
        &self,
        request: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        self.authenticate(&request)?;
        Err(Status::unimplemented(
            "managed subscriptions (beta) are not emulated",
        ))
    }
}

/// Events still owed after a request for `more` (negative requests add nothing).
fn requested(pending: i32, more: i32) -> i32 {
    pending
        .saturating_add(more.max(0))
        .min(pubsub::MAX_NUM_REQUESTED)
}

/// One open Subscribe stream.
struct Subscription {
    app: Arc<App>,
    topic: Topic,
    topic_name: String,
    /// Position after which events are still to be delivered.
    cursor: u64,
    pending: i32,
    keepalive: Duration,
    tx: mpsc::Sender<Result<FetchResponse, Status>>,
}

/// Counts open streams for `POST /__emulator/cdc/drop_streams`.
struct OpenStream(Arc<crate::cdc::Bus>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Subscription {
    async fn run(mut self, mut inbound: Streaming<FetchRequest>) {
        let bus = self.app.cdc.clone();
        bus.open_streams.fetch_add(1, Ordering::SeqCst);
        let _open = OpenStream(bus.clone());
        let mut head = bus.watch_head();
        let mut drops = bus.watch_drops();
        let mut shutdown = self.app.shutdown.clone();
        let mut stopped = Box::pin(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        });
        let mut inbound_open = true;
        let mut last_sent = tokio::time::Instant::now();
        loop {
            if self.pending > 0 {
                match self.deliver().await {
                    Err(()) => return,
                    // Sent a batch: more may be waiting and owed.
                    Ok(true) => {
                        last_sent = tokio::time::Instant::now();
                        continue;
                    }
                    Ok(false) => {}
                }
            }
            let idle_deadline = last_sent + self.keepalive;
            tokio::select! {
                msg = inbound.message(), if inbound_open => match msg {
                    Ok(Some(req)) => {
                        if !req.topic_name.is_empty() && req.topic_name != self.topic_name {
                            let _ = self.tx.send(Err(failure(
                                Code::InvalidArgument,
                                errors::TOPIC_MISMATCH,
                                "A FetchRequest named another topic than the first one of the stream.",
                            ))).await;
                            return;
                        }
                        self.pending = requested(self.pending, req.num_requested);
                    }
                    // The client stopped sending; what it asked for is still delivered.
                    Ok(None) => inbound_open = false,
                    Err(_) => return,
                },
                _ = head.changed() => {}
                _ = drops.changed() => {
                    let _ = self.tx.send(Err(failure(
                        Code::Unavailable,
                        errors::SERVICE_UNAVAILABLE,
                        "RST_STREAM closed stream: the emulator dropped the stream.",
                    ))).await;
                    return;
                }
                _ = tokio::time::sleep_until(idle_deadline) => {
                    if self.keepalive_response().await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
                _ = &mut stopped => return,
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Sends what is available, at most what is pending, in one FetchResponse;
    /// Ok(true) when it sent one.
    async fn deliver(&mut self) -> Result<bool, ()> {
        // Read before each delivery, so membership changes reach open streams.
        let filter = self.topic.filter(&self.app.cdc);
        let (events, reached) =
            self.app
                .cdc
                .read_after(self.cursor, |e| filter.wants(e), self.pending as usize);
        if events.is_empty() {
            // Nothing for this topic up to `reached`: the position moves on.
            self.cursor = reached;
            return Ok(false);
        }
        self.cursor = events.last().map_or(reached, |e| e.seq);
        self.pending -= events.len() as i32;
        self.app.deliveries.count(events.len());
        let resp = FetchResponse {
            events: events.iter().map(|e| consumer_event(e)).collect(),
            latest_replay_id: replay_id(self.cursor),
            rpc_id: rpc_id(),
            pending_num_requested: self.pending,
        };
        self.tx.send(Ok(resp)).await.map(|_| true).map_err(|_| ())
    }

    /// An empty FetchResponse: keepalive and the latest position.
    async fn keepalive_response(&mut self) -> Result<(), ()> {
        let resp = FetchResponse {
            events: Vec::new(),
            latest_replay_id: replay_id(self.cursor),
            rpc_id: rpc_id(),
            pending_num_requested: self.pending,
        };
        self.tx.send(Ok(resp)).await.map_err(|_| ())
    }
}

fn consumer_event(e: &Stored) -> ConsumerEvent {
    ConsumerEvent {
        event: Some(ProducerEvent {
            id: e.event_id.clone(),
            schema_id: e.schema_id.clone(),
            payload: e.payload.to_vec(),
            headers: Vec::new(),
        }),
        replay_id: replay_id(e.seq),
    }
}
