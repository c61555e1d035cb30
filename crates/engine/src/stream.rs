//! The change event stream of one sync: a task on the sync's tokio runtime keeps a
//! Pub/Sub API subscription open and hands what it receives to the worker's main
//! thread through a small channel; the main thread applies each batch and stores its
//! replay id in the same transaction (`read::events`).
//!
//! The task never touches Postgres. It resubscribes by itself after a failure, from
//! the last position it handed out (those batches are still in the channel, in
//! order), waiting 1 s, then twice as long each time up to a minute. A replay id the
//! server no longer knows (older than the 72 hours change events are kept) is
//! reported, and the task starts again from the newest events: the worker then
//! re-reads what it may have missed by polling.
//!
//! Flow control: the subscription asks for another batch only after the previous one
//! went into the channel, and the channel holds a few batches, so a slow database
//! holds the stream back instead of filling memory.

use std::time::Duration;

use salesforce::cdc::{Batch, PubSub, PubSubConfig, Replay};
use tokio::sync::mpsc;

/// Events asked for at a time (the Pub/Sub API allows at most 100).
const BATCH: i32 = 100;
/// Batches waiting for the main thread at most.
const QUEUED_BATCHES: usize = 4;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// What the stream task tells the main thread.
pub enum Report {
    /// A subscription is open (first time or again), starting at `from`.
    Subscribed { from: Replay },
    /// Events (or a keepalive) to apply, in stream order.
    Batch(Batch),
    /// The subscription failed; the task tries again in `retry_in`. `replay_lost`:
    /// the stored replay id is no longer valid, the next subscription starts from the
    /// newest events.
    Lost {
        message: String,
        replay_lost: bool,
        retry_in: Duration,
    },
}

/// Field types of one object, so its events' dates read as dates: (object,
/// [(field, describe type, compound field)]).
pub type ObjectFields = (String, Vec<(String, String, Option<String>)>);

/// A running stream; dropping it stops the task.
pub struct ChangeStream {
    reports: mpsc::Receiver<Report>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChangeStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChangeStream {
    /// Starts following `topic` (`/data/ChangeEvents`, every object the org selected
    /// for Change Data Capture, or the sync's own channel: one stream per sync) from
    /// `from`.
    pub fn start(
        tokio: &tokio::runtime::Handle,
        client: salesforce::Client,
        config: PubSubConfig,
        (topic, objects): (String, Vec<ObjectFields>),
        from: Replay,
    ) -> ChangeStream {
        let (tx, reports) = mpsc::channel(QUEUED_BATCHES);
        let task = tokio.spawn(follow(client, config, (topic, objects), from, tx));
        ChangeStream { reports, task }
    }

    /// The next report, if one is waiting.
    pub fn next_report(&mut self) -> Option<Report> {
        self.reports.try_recv().ok()
    }
}

async fn follow(
    client: salesforce::Client,
    config: PubSubConfig,
    (topic, objects): (String, Vec<ObjectFields>),
    mut from: Replay,
    tx: mpsc::Sender<Report>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let failure = match subscribe(&client, &config, (&topic, &objects), &from).await {
            Ok(mut sub) => {
                if tx
                    .send(Report::Subscribed { from: from.clone() })
                    .await
                    .is_err()
                {
                    return;
                }
                loop {
                    match sub.next_batch().await {
                        Ok(batch) => {
                            retry = FIRST_RETRY;
                            if tx.send(Report::Batch(batch)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            from = sub.resume_from();
                            break e;
                        }
                    }
                }
            }
            Err(e) => e,
        };
        let replay_lost = failure.is_replay_id_invalid();
        if replay_lost {
            from = Replay::Latest;
        }
        let report = Report::Lost {
            message: failure.to_string(),
            replay_lost,
            retry_in: retry,
        };
        if tx.send(report).await.is_err() {
            return;
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

async fn subscribe(
    client: &salesforce::Client,
    config: &PubSubConfig,
    (topic, objects): (&str, &[ObjectFields]),
    from: &Replay,
) -> salesforce::Result<salesforce::cdc::Subscription> {
    let pubsub = PubSub::connect(client, config.clone()).await?;
    for (object, fields) in objects {
        pubsub.register_fields(object, fields.iter().cloned());
    }
    pubsub.subscribe(topic, from.clone(), BATCH).await
}
