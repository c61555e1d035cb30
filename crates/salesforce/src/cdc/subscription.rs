//! A Subscribe stream with pull flow control and a resume point.
//!
//! Flow control: the first FetchRequest asks for `batch` events; another is sent only
//! when everything asked for has arrived and the caller comes back for more, so events
//! are never pushed faster than the caller applies them ("Pull Subscription and Flow
//! Control", Pub/Sub API Developer Guide: the server sends at most what was requested;
//! requests add up, to at most 100 outstanding).
//!
//! Resume point: the replay id of the last event handed out, or, when only keepalives
//! came since, the `latest_replay_id` of the newest keepalive ("Subscribe Keepalive
//! Behavior": an idle stream gets empty FetchResponses carrying the latest replay id, so
//! a resubscription need not start from a very old replay id).
//!
//! Taking a keepalive's position is safe because this client only waits with events
//! requested: had any event of the topic been waiting before that position, the server
//! would have sent it instead of the keepalive.
//!
//! An auth failure (the token expired while the stream was open) refreshes the REST
//! session once and resubscribes from the resume point; other failures end the call
//! with an [`Error`] and leave resubscribing (and its backoff) to the caller.

use ::pubsub::{FetchRequest, FetchResponse};
use tokio::sync::mpsc;
use tonic::Streaming;

use super::connection::PubSub;
use super::event::{self, ChangeEvent};
use super::status::{error_from_status, stream_closed, Call, PubSubErrorKind};
use crate::error::{Error, Result};

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Only events published after subscribing (ReplayPreset LATEST).
    Latest,
    /// Every retained event (EARLIEST; change events are kept 72 hours).
    Earliest,
    /// The events after this stored replay id (CUSTOM).
    After(Vec<u8>),
}

impl Replay {
    fn preset(&self) -> ::pubsub::ReplayPreset {
        match self {
            Replay::Latest => ::pubsub::ReplayPreset::Latest,
            Replay::Earliest => ::pubsub::ReplayPreset::Earliest,
            Replay::After(_) => ::pubsub::ReplayPreset::Custom,
        }
    }

    fn replay_id(&self) -> Vec<u8> {
        match self {
            Replay::After(id) => id.clone(),
            _ => Vec::new(),
        }
    }
}

/// What one FetchResponse brought.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The decoded events in stream order; empty for a keepalive.
    pub events: Vec<ChangeEvent>,
    /// The replay id to resume after once these events are applied: the last event's,
    /// or for a keepalive the server's latest. Store it with the rows it produced.
    pub resume_replay_id: Option<Vec<u8>>,
    /// Events still owed on the stream's current request.
    pub pending: i32,
}

impl Batch {
    pub fn is_keepalive(&self) -> bool {
        self.events.is_empty()
    }
}

/// An open Subscribe stream.
pub struct Subscription {
    pubsub: PubSub,
    topic: String,
    batch: i32,
    start: Replay,
    /// The session generation the stream was opened with.
    generation: u64,
    tx: mpsc::Sender<FetchRequest>,
    rx: Streaming<FetchResponse>,
    /// Events requested and not yet received.
    outstanding: i32,
    resume: Option<Vec<u8>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("batch", &self.batch)
            .field("outstanding", &self.outstanding)
            .field("resume", &self.resume)
            .finish()
    }
}

/// The open stream of one Subscribe call.
struct Stream {
    generation: u64,
    tx: mpsc::Sender<FetchRequest>,
    rx: Streaming<FetchResponse>,
}

/// Calls Subscribe with `first` as the first FetchRequest, refreshing the session once
/// when the server refuses it.
async fn open_stream(pubsub: &PubSub, first: FetchRequest, stale: Option<u64>) -> Result<Stream> {
    let mut session = pubsub.session(stale).await?;
    let mut refreshed = stale.is_some();
    loop {
        // The first request travels with the call: the server reads it before it
        // answers (topic, replay position and the first num_requested).
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(first.clone())
            .map_err(|_| Error::Config("could not queue the first FetchRequest".into()))?;
        let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
        let req = pubsub.request(&session, outbound)?;
        match pubsub.grpc().subscribe(req).await {
            Ok(resp) => {
                return Ok(Stream {
                    generation: session.generation,
                    tx,
                    rx: resp.into_inner(),
                })
            }
            Err(status) => {
                let err = error_from_status(&status, Call::Subscribe);
                if err.pubsub_error_kind() == Some(PubSubErrorKind::Auth) && !refreshed {
                    refreshed = true;
                    session = pubsub.session(Some(session.generation)).await?;
                    continue;
                }
                return Err(err);
            }
        }
    }
}

impl Subscription {
    pub(crate) async fn open(
        pubsub: PubSub,
        topic: &str,
        start: Replay,
        batch: i32,
    ) -> Result<Subscription> {
        if !(1..=::pubsub::MAX_NUM_REQUESTED).contains(&batch) {
            return Err(Error::Config(format!(
                "a Subscribe batch is 1 to {} events, not {batch}",
                ::pubsub::MAX_NUM_REQUESTED
            )));
        }
        let first = fetch_request(topic, &start, batch);
        let stream = open_stream(&pubsub, first, None).await?;
        Ok(Subscription {
            pubsub,
            topic: topic.to_string(),
            batch,
            resume: match &start {
                Replay::After(id) => Some(id.clone()),
                _ => None,
            },
            start,
            generation: stream.generation,
            tx: stream.tx,
            rx: stream.rx,
            outstanding: batch,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The replay id to resume after: the last event handed out or the latest
    /// keepalive position (None before either arrived, unless started from one).
    pub fn resume_replay_id(&self) -> Option<&[u8]> {
        self.resume.as_deref()
    }

    /// Where to subscribe again after this stream failed: after the resume point, or
    /// from where this subscription started when nothing arrived yet.
    pub fn resume_from(&self) -> Replay {
        match &self.resume {
            Some(id) => Replay::After(id.clone()),
            None => self.start.clone(),
        }
    }

    /// Events requested on the stream and not yet received.
    pub fn outstanding(&self) -> i32 {
        self.outstanding
    }

    /// Waits for the next FetchResponse and decodes its events; asks for the next
    /// batch first when everything asked for has arrived. A keepalive comes back as a
    /// [`Batch`] without events. Errors end the stream: see
    /// [`Error::pubsub_error_kind`] for what to do.
    pub async fn next_batch(&mut self) -> Result<Batch> {
        let mut reopened = false;
        loop {
            if self.outstanding <= 0 {
                self.request_more().await?;
            }
            match self.rx.message().await {
                Ok(Some(resp)) => return self.accept(resp).await,
                Ok(None) => return Err(stream_closed()),
                Err(status) => {
                    let err = error_from_status(&status, Call::Subscribe);
                    if err.pubsub_error_kind() != Some(PubSubErrorKind::Auth) || reopened {
                        return Err(err);
                    }
                    reopened = true;
                    // The token expired under an open stream: log in again and pick
                    // up where the stream was.
                    self.reopen(Some(self.generation)).await?;
                }
            }
        }
    }

    async fn request_more(&mut self) -> Result<()> {
        let more = FetchRequest {
            topic_name: self.topic.clone(),
            num_requested: self.batch,
            ..Default::default()
        };
        if self.tx.send(more).await.is_err() {
            // The call is over; its status (or end) is what `message` reports next.
            return Ok(());
        }
        self.outstanding += self.batch;
        Ok(())
    }

    async fn accept(&mut self, resp: FetchResponse) -> Result<Batch> {
        let mut events = Vec::with_capacity(resp.events.len());
        for ce in resp.events {
            let Some(ev) = ce.event else {
                continue;
            };
            let schema = self.pubsub.schema(&ev.schema_id).await?;
            let pubsub = &self.pubsub;
            events.push(event::decode(ce.replay_id, &ev, &schema, |entity| {
                pubsub.types_of(entity)
            })?);
        }
        // The server's count is authoritative (it caps requests at 100).
        self.outstanding = resp.pending_num_requested.max(0);
        if let Some(last) = events.last() {
            self.resume = Some(last.replay_id.clone());
        } else if !resp.latest_replay_id.is_empty() {
            self.resume = Some(resp.latest_replay_id);
        }
        Ok(Batch {
            events,
            resume_replay_id: self.resume.clone(),
            pending: self.outstanding,
        })
    }

    /// Subscribes again from the resume point (or the original start) on a new call.
    async fn reopen(&mut self, stale: Option<u64>) -> Result<()> {
        let from = self.resume_from();
        let stream = open_stream(
            &self.pubsub,
            fetch_request(&self.topic, &from, self.batch),
            stale,
        )
        .await?;
        self.generation = stream.generation;
        self.tx = stream.tx;
        self.rx = stream.rx;
        self.outstanding = self.batch;
        Ok(())
    }
}

fn fetch_request(topic: &str, from: &Replay, batch: i32) -> FetchRequest {
    FetchRequest {
        topic_name: topic.to_string(),
        replay_preset: from.preset() as i32,
        replay_id: from.replay_id(),
        num_requested: batch,
        auth_refresh: String::new(),
    }
}
