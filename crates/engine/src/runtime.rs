//! Per-sync state the worker keeps between loop iterations: the Salesforce client, the
//! request budget, the tokio runtime, and per-collection schedules. The write path
//! (`write::run_once`) receives it too, through the `WriterHost` trait.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use salesforce::pacing::{Backoff, Budget, Permit, WaitReason};
use sync_core::schedule::{Periodic, Pruning};
use sync_core::ColumnSpec;

use crate::catalog::SyncConfig;
use crate::db::Database;
use crate::error::StepError;
use crate::inflight::{Ahead, BulkDownload, RestFetched};
use crate::stream::ChangeStream;

/// In-memory state of one collection (what the catalog does not need to persist).
pub struct CollectionRuntime {
    /// The active columns, as stored in `sequin_sf._columns`.
    pub columns: Vec<ColumnSpec>,
    /// The continuation of the REST backfill query, valid while the worker lives.
    pub next_records_url: Option<String>,
    /// That continuation's page, already requested (`max_concurrent_requests` >= 2).
    pub next_page: Option<(String, Ahead<RestFetched>)>,
    /// Bulk backfill: the next results page, being downloaded.
    pub bulk_next: Option<BulkDownload>,
    pub describe: Periodic,
    pub deleted: Periodic,
    /// Bulk backfill: the job was seen complete (results can be read).
    pub bulk_complete: bool,
    /// Bulk backfill: when to ask for the job's state next, and the growing wait.
    pub bulk_check_at: Option<Instant>,
    pub bulk_wait: Duration,
    /// Id -> stamp of records applied by recent polls: the overlap window re-reads
    /// them every round, and skipping them in Rust spares the database the no-op.
    pub applied: HashMap<String, String>,
    /// The table's shape (`CollectionRow::table_shape`) last seen; None until seen, and
    /// after the worker itself changed the table.
    pub table_shape: Option<String>,
    /// Read the next describe whole (not If-Modified-Since): the table changed under us.
    pub describe_in_full: bool,
    /// A Bulk job of this backfill ended Failed or Aborted: do not switch back to Bulk.
    pub bulk_failed: bool,
    /// Backfill pages (REST or Bulk) are taken as new to the table (plain inserts)
    /// until one meets a row already stored (`read::insert_new_or_upsert`).
    pub rows_new: bool,
    /// REST backfill pages are cut to this many records after a QUERY_TIMEOUT.
    pub rest_limit: Option<u32>,
    /// The backfill's COUNT() timed out: it goes on without a total.
    pub count_timed_out: bool,
    /// A REST backfill read in Id ranges (`read::backfill`): each range's query
    /// continuation and the page asked for ahead, by the range's key.
    pub ranges: HashMap<String, RangeFlight>,
    /// The range whose page is applied next (they take turns).
    pub range_turn: usize,
    /// The Ids left no room to split the backfill: it is read as one query.
    pub unsplittable: bool,
}

/// One Id range of a REST backfill in flight.
#[derive(Default)]
pub struct RangeFlight {
    pub next_url: Option<String>,
    pub ahead: Option<Ahead<RestFetched>>,
}

/// The first wait before asking for a new Bulk job's state; it doubles up to
/// `read::bulk`'s maximum.
pub const BULK_FIRST_WAIT: Duration = Duration::from_millis(500);

impl CollectionRuntime {
    pub fn new(
        columns: Vec<ColumnSpec>,
        describe_every: Duration,
        deleted_every: Duration,
    ) -> Self {
        CollectionRuntime {
            columns,
            next_records_url: None,
            next_page: None,
            bulk_next: None,
            describe: Periodic::new(describe_every),
            deleted: Periodic::new(deleted_every),
            bulk_complete: false,
            bulk_check_at: None,
            bulk_wait: BULK_FIRST_WAIT,
            applied: HashMap::new(),
            table_shape: None,
            describe_in_full: false,
            bulk_failed: false,
            rows_new: true,
            rest_limit: None,
            count_timed_out: false,
            ranges: HashMap::new(),
            range_turn: 0,
            unsplittable: false,
        }
    }
}

/// The sync's change event stream and what the read path knows about it
/// (`read::events`).
#[derive(Default)]
pub struct EventsRuntime {
    pub stream: Option<ChangeStream>,
    /// The objects the running stream registered field types for.
    pub stream_objects: Vec<String>,
    /// The stream is subscribed: collections on events are only reconciled by polls.
    /// While it is not, they are polled as the others are.
    pub flowing: bool,
    /// The running stream's subscription is open (`flowing` stays true while a stream
    /// is started again after a batch failed; this does not).
    pub subscribed: bool,
    /// What the stream handed out last says it is at the newest events: a keepalive,
    /// a subscription from the newest events, or a batch smaller than what was asked
    /// for (the server had no more). False while it replays a backlog.
    pub at_head: bool,
    /// The last step took every report the stream had waiting.
    pub drained: bool,
    /// Objects the org selected for Change Data Capture (None: not read yet).
    pub selected: Option<BTreeSet<String>>,
    /// Why the selection could not be read (no object goes on events then).
    pub selection_problem: Option<String>,
    pub selection_read_at: Option<Instant>,
    /// With a channel of the sync's own: the collections it was last made to hold
    /// (a different wanted set keeps it again at once), and why a collection that
    /// wants events is not on it (the org's entity limit).
    pub channel_kept_for: Option<BTreeSet<String>>,
    pub not_on_channel: HashMap<String, String>,
    /// The topic the running stream follows.
    pub stream_topic: String,
    /// Why no collection takes events now though they could: the org's daily event
    /// deliveries are nearly used (`Allocations::events_refusal`).
    pub deliveries_low: Option<String>,
    /// Collections to poll at once: a gap or overflow event, an update of a row the
    /// table lacks, a replay id lost.
    pub catch_up: HashSet<String>,
    /// When each collection on events was last polled (none yet: due at once, which
    /// catches up what happened before its events were applied).
    pub reconciled: HashMap<String, Instant>,
    /// When the collections on events were last marked caught up while the stream
    /// idled (keepalives may be minutes apart).
    pub idle_mark: Option<Instant>,
    /// What was last written to `syncs.events_status`.
    pub status_shown: Option<String>,
    /// What was last written as each collection's change source and note.
    pub sources_written: HashMap<String, (bool, String)>,
}

/// The longest the read side waits before trying again after a fault that passes by
/// itself (a 503, a dropped connection, a lock timeout): once Salesforce answers again,
/// the tables are current within this and one poll round. A longer backoff saves
/// nothing that matters (each try is one request, paced by the sync's budget) and
/// would leave the tables behind long after the fault ended, while writes go on.
pub const READ_RETRY_CAP: Duration = Duration::from_secs(5);

pub struct SyncRuntime {
    /// The database the sync keeps (the host's).
    pub db: Rc<dyn Database>,
    pub sync_name: String,
    pub schema_name: String,
    pub client: salesforce::Client,
    pub budget: Budget,
    tokio: tokio::runtime::Runtime,
    /// Identifies the configuration the client and budget were built from.
    pub(crate) fingerprint: String,
    pub(crate) collections: HashMap<String, CollectionRuntime>,
    pub(crate) poll: Periodic,
    /// Groups of the poll round in progress already polled (the budget cut it short).
    pub(crate) poll_groups_done: usize,
    /// Pruning of old events (read path) and of settled write-log entries.
    pub(crate) prune: Pruning,
    pub(crate) write_prune: Pruning,
    /// The read side's wait after an error that passes by itself (at most
    /// [`READ_RETRY_CAP`]), and when it tries again.
    pub(crate) backoff: Backoff,
    pub(crate) resume_at: Option<Instant>,
    /// Errors in a row that may need a person (`error::may_need_a_person`).
    pub(crate) refusals: u32,
    /// `_syncs.read_retry_since`/`read_retry_at` may be set (by this runtime, or by a
    /// worker of the sync before it): cleared by the next step that succeeds.
    pub(crate) read_retry_shown: bool,
    /// `client.stats().requests` and `.bulk_result_bytes` already written to
    /// `sequin_sf._api_usage`.
    pub(crate) requests_recorded: u64,
    pub(crate) bulk_bytes_recorded: u64,
    pub(crate) has_error: bool,
    /// Set when a request was held back because the org's usage reached the ceiling.
    pub(crate) org_ceiling_hit: bool,
    pub(crate) events: EventsRuntime,
    /// The org's allocations as `/limits` last reported them (allocations.rs).
    pub(crate) allocations: Option<crate::allocations::Allocations>,
    /// Refusals for the org's long-running requests seen so far (`client.stats()`), and
    /// until when the sync sends one request at a time after the last.
    pub(crate) long_refusals_seen: u64,
    pub(crate) long_held_until: Option<Instant>,
    /// The hold is shown in `last_error` (once per hold and refusal, not every pass).
    pub(crate) long_hold_shown: bool,
}

impl SyncRuntime {
    pub fn new(
        db: Rc<dyn Database>,
        cfg: &SyncConfig,
        client: salesforce::Client,
    ) -> std::io::Result<Self> {
        Ok(SyncRuntime {
            db,
            sync_name: cfg.name.clone(),
            schema_name: cfg.schema_name.clone(),
            client,
            budget: budget_for(cfg),
            tokio: http_runtime()?,
            fingerprint: cfg.fingerprint(),
            collections: HashMap::new(),
            poll: Periodic::new(Duration::from_secs(5)),
            poll_groups_done: 0,
            prune: Pruning::default(),
            write_prune: Pruning::default(),
            backoff: Backoff::new(Duration::from_millis(500), READ_RETRY_CAP),
            resume_at: None,
            refusals: 0,
            read_retry_shown: true,
            requests_recorded: 0,
            bulk_bytes_recorded: 0,
            has_error: false,
            org_ceiling_hit: false,
            events: EventsRuntime::default(),
            allocations: None,
            long_refusals_seen: 0,
            long_held_until: None,
            long_hold_shown: false,
        })
    }

    /// Keeps the requests in flight within the sync's share of the org's long-running
    /// requests, and at one for `LONG_REQUESTS_HOLD` after Salesforce refused one of
    /// them because the org's were all taken (by whichever integration): the sync makes
    /// room rather than competing for the last. Returns what to show while it holds back.
    pub(crate) fn keep_long_requests_in_share(&mut self, cfg: &SyncConfig) -> Option<String> {
        use crate::allocations::{concurrency, LONG_REQUESTS_HOLD};
        let now = Instant::now();
        let refused = self.client.stats().long_request_refusals;
        if refused > self.long_refusals_seen {
            self.long_refusals_seen = refused;
            self.long_held_until = Some(now + LONG_REQUESTS_HOLD);
            // the refusal's own error replaced the note: shown again after it
            self.long_hold_shown = false;
        }
        let held = self.long_held_until.filter(|t| now < *t);
        let share = self
            .allocations
            .as_ref()
            .and_then(|a| a.long_requests_share(cfg.org_usage_ceiling));
        let n = concurrency(
            cfg.max_concurrent_requests.max(1) as usize,
            share,
            held.is_some(),
        );
        if n != self.budget.max_concurrent() {
            self.budget.set_max_concurrent(n);
        }
        if held.is_none() {
            self.long_hold_shown = false;
        }
        held.map(|_| {
            format!(
                "holding back: Salesforce refused a request because the org's long-running requests \
                 (20 s or more, ConcurrentPerOrgLongTxn, shared by every integration) were all taken; \
                 this sync sends one request at a time until {} minutes after the last such refusal",
                LONG_REQUESTS_HOLD.as_secs() / 60
            )
        })
    }

    /// Runs a future on the worker's runtime, abandoning it as soon as the worker is
    /// asked to stop (SIGTERM), so a slow request never delays a shutdown: None then.
    /// Never call it with a transaction open.
    pub fn run_unless_stopping<F: Future>(&self, f: F) -> Option<F::Output> {
        self.tokio.block_on(async {
            tokio::select! {
                r = f => Some(r),
                _ = stop_requested() => None,
            }
        })
    }

    /// The runtime's handle, to start a task that outlives a step (the change stream).
    pub(crate) fn tokio_handle(&self) -> tokio::runtime::Handle {
        self.tokio.handle().clone()
    }

    /// Runs a Salesforce call for the read path (see `run_unless_stopping`).
    pub(crate) fn call<T>(
        &self,
        f: impl Future<Output = salesforce::Result<T>>,
    ) -> Result<T, StepError> {
        match self.run_unless_stopping(f) {
            Some(r) => r.map_err(StepError::from),
            None => Err(StepError::Stopping),
        }
    }

    /// The in-memory state of a collection the step loaded; an error, not a panic, if
    /// it is missing (say the collection was removed in the middle of the step).
    pub(crate) fn collection(&self, object: &str) -> Result<&CollectionRuntime, StepError> {
        self.collections
            .get(object)
            .ok_or_else(|| not_loaded(object))
    }

    pub(crate) fn collection_mut(
        &mut self,
        object: &str,
    ) -> Result<&mut CollectionRuntime, StepError> {
        self.collections
            .get_mut(object)
            .ok_or_else(|| not_loaded(object))
    }

    /// Takes `cost` requests from the sync's budget for a call the worker is about to
    /// make itself; false when the budget (or the org-wide usage ceiling) is spent for
    /// now. While requests started ahead hold every slot of `max_concurrent_requests`,
    /// it waits for one of them to end (a request's time at most): the worker's calls
    /// are one at a time, so with that wait they never take the sync past its limit.
    pub fn try_spend(&mut self, cost: u64) -> bool {
        loop {
            match self.acquire(cost) {
                Ok(_) => return true,
                Err(WaitReason::Concurrency) if self.budget.in_flight() > 0 => {
                    let slot_freed = tokio::time::sleep(Duration::from_millis(2));
                    if self.run_unless_stopping(slot_freed).is_none() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn acquire(&mut self, cost: u64) -> Result<Permit, WaitReason> {
        let now = Instant::now();
        if let Some(u) = self.client.api_usage() {
            self.budget.observe_usage(u, now);
        }
        self.budget.try_acquire(cost, now).map_err(|wait| {
            self.org_ceiling_hit |= wait.reason == WaitReason::OrgCeiling;
            wait.reason
        })
    }

    /// Starts a request now, to be awaited later (`fetched`), while the worker does
    /// something else: at a `max_concurrent_requests` of 2 or more, and within it (the
    /// worker's own calls wait for a slot, `try_spend`); None when it may not start
    /// (the budget or the limit).
    pub fn fetch_ahead<T: Send + 'static>(
        &mut self,
        f: impl Future<Output = salesforce::Result<T>> + Send + 'static,
    ) -> Option<Ahead<T>> {
        if self.budget.max_concurrent() < 2 {
            return None;
        }
        let permit = self.acquire(1).ok()?;
        Some(Ahead(Some(self.tokio.spawn(async move {
            let r = f.await;
            drop(permit);
            r
        }))))
    }

    /// Whether only one request may be in flight (`max_concurrent_requests` 1, or the
    /// sync holding back): nothing can be started ahead.
    pub fn one_at_a_time(&self) -> bool {
        self.budget.max_concurrent() < 2
    }

    /// Runs a request now, holding the slot while it runs, and hands it over done, as
    /// `fetch_ahead` would once it finished: for a caller that takes requests started
    /// ahead when only one may be in flight. None when it may not start, or the sync is
    /// stopping.
    pub fn fetch_now<T: Send + 'static>(
        &mut self,
        f: impl Future<Output = salesforce::Result<T>> + Send + 'static,
    ) -> Option<Ahead<T>> {
        let permit = self.acquire(1).ok()?;
        let r = self.run_unless_stopping(f)?;
        drop(permit);
        Some(Ahead(Some(self.tokio.spawn(async move { r }))))
    }

    /// The result of a request started by `fetch_ahead` (waiting for it if needed).
    pub fn fetched<T>(&self, mut ahead: Ahead<T>) -> Result<T, StepError> {
        let Some(handle) = ahead.0.take() else {
            return Err(StepError::Stopping);
        };
        match self.run_unless_stopping(handle) {
            Some(Ok(r)) => r.map_err(StepError::from),
            Some(Err(join)) => Err(StepError::Collection {
                object: String::new(),
                message: format!("a request started ahead failed: {join}"),
            }),
            None => Err(StepError::Stopping),
        }
    }
}

fn not_loaded(object: &str) -> StepError {
    StepError::Collection {
        object: object.to_string(),
        message: "the collection is no longer part of the sync".into(),
    }
}

pub(crate) fn budget_for(cfg: &SyncConfig) -> Budget {
    Budget::new(
        cfg.rate_limit_requests.max(1) as u64,
        Duration::from_secs_f64(cfg.rate_limit_interval_secs.max(1.0)),
        cfg.max_concurrent_requests.max(1) as usize,
        cfg.org_usage_ceiling,
    )
    .with_org_recheck(Duration::from_secs(15))
}

/// Resolves once SIGTERM arrived. It runs inside `block_on`, on the worker's main
/// thread, where reading Postgres' signal flag is safe.
async fn stop_requested() {
    while !crate::stop::stopping() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A host's signals (a Postgres backend's SIGTERM, SIGHUP, SIGUSR1 ...) must be handled
/// by the thread that runs the steps: a thread started by tokio blocks them all.
fn block_all_signals() {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigfillset(set.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), std::ptr::null_mut());
    }
}

/// The runtime a sync's requests run on. Futures given to `block_on` run on the
/// calling thread; one thread of its own lets a request started ahead
/// (`SyncRuntime::fetch_ahead`) go on while the caller applies the previous page.
/// Nothing it runs touches the database.
pub fn http_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .max_blocking_threads(2)
        .on_thread_start(block_all_signals)
        .build()
}
