//! The syncs one process runs, with their state between passes: each pass runs, for
//! every sync, its write path and then one step of its read path, so a slow or failing
//! org delays no other. Errors are shown in `sync_status.last_error` and retried: the
//! read side within seconds when they pass by themselves, rarely when a person must
//! act. The host decides which syncs a process runs (`catalog::load_syncs`, the sync's
//! lock) and how long it sleeps between passes (what `Syncs::run` returns).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::catalog::{self, SyncConfig};
use crate::db::{guarded, tx, Database};
use crate::error;
use crate::runtime::SyncRuntime;
use crate::status;
use crate::stop::stopping;
use crate::{read, write};

/// How the host builds a Salesforce client from a stored credential (it holds the
/// credentials' key), with the `Sforce-Call-Options` client a sync's requests name.
pub type ClientSource = Box<dyn Fn(&str, Option<&str>) -> Result<salesforce::Client, String>>;

/// Sleep between iterations when nothing is pending; short enough for sub-second
/// poll schedules.
pub const IDLE_NAP: Duration = Duration::from_millis(100);
/// Sleep while a change event stream flows: an event waits at most this long.
const STREAMING_NAP: Duration = Duration::from_millis(20);
/// Sleep while more work is ready at once.
const BUSY_NAP: Duration = Duration::from_millis(1);

/// Settings of the session the engine runs on, for every transaction it opens (a host
/// sets them once per connection):
/// - search_path: nothing any role creates in a schema of its own can stand in for a
///   function or operator the engine's SQL (or a function it calls) uses;
/// - lock_timeout: the engine waits for the application, never the other way round: a
///   lock held by an idle transaction makes the engine's statement fail (and be retried
///   later) instead of queueing the application's statements behind it.
pub fn set_session(db: &dyn Database) -> Result<(), crate::db::DbError> {
    tx(db, |s| {
        s.execute(
            "SELECT set_config('search_path', 'pg_catalog, pg_temp', false),
                    set_config('lock_timeout', '2s', false)",
            &[],
        )
    })
}

/// The session-level advisory lock that only the process running a sync holds: a sync
/// is never run by two processes at once (a worker ending while its successor starts,
/// the supervisor running it while no slot was free).
pub fn take_sync_lock(db: &dyn Database, sync: &str) -> bool {
    tx(db, |s| {
        s.query_one(
            "SELECT pg_try_advisory_lock(hashtext('sequin_sf sync'), hashtext($1))",
            &[sync.into()],
        )
    })
    .ok()
    .flatten()
    .and_then(|r| r.bool(0))
    .unwrap_or(false)
}

fn release_sync_lock(db: &dyn Database, sync: &str) {
    let released = tx(db, |s| {
        s.execute(
            "SELECT pg_advisory_unlock(hashtext('sequin_sf sync'), hashtext($1))",
            &[sync.into()],
        )
    });
    if let Err(e) = released {
        log::warn!("sequin_sf: {e}");
    }
}

/// The catalog's syncs, or None (said in the log) when it cannot be read; none while
/// the database's SQL objects are of another release than `release` (the host's): say
/// before `ALTER EXTENSION ... UPDATE` brought them to the library's.
pub fn load_syncs(db: &dyn Database, release: &str) -> Option<Vec<SyncConfig>> {
    let syncs = tx(db, |s| match catalog::installed_version(s)? {
        Some(v) if same_release(&v, release) => catalog::load_syncs(s),
        _ => Ok(Vec::new()),
    });
    match syncs {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("sequin_sf: could not read the catalog: {e}");
            None
        }
    }
}

/// The syncs one process runs, with their state between passes.
pub struct Syncs {
    db: Rc<dyn Database>,
    clients: ClientSource,
    runtimes: HashMap<String, SyncRuntime>,
    failed_builds: HashMap<String, Instant>,
    /// Syncs whose lock this process holds through `run_locked` (the extension's
    /// supervisor, for syncs no worker slot was free for; a process beside the database,
    /// for all).
    locked: HashSet<String>,
    /// When the channels syncs left (`_event_channels_left`) were last looked at, and
    /// the runtime their deletion runs on.
    channels_checked: Option<Instant>,
    cleanup: Option<tokio::runtime::Runtime>,
}

/// How often the channels syncs left are looked for.
const LEFT_CHANNELS_EVERY: Duration = Duration::from_secs(60);

impl Syncs {
    pub fn new(db: Rc<dyn Database>, clients: ClientSource) -> Self {
        Syncs {
            db,
            clients,
            runtimes: HashMap::new(),
            failed_builds: HashMap::new(),
            locked: HashSet::new(),
            channels_checked: None,
            cleanup: None,
        }
    }

    /// Deletes in Salesforce the Change Data Capture channels of dropped syncs, once a
    /// minute at most (`read::remove_left_event_channels`). Run by the process that
    /// runs the database's syncs (the supervisor, sequin-sf), not by each sync's worker.
    fn remove_left_channels(&mut self) {
        if self
            .channels_checked
            .is_some_and(|t| t.elapsed() < LEFT_CHANNELS_EVERY)
        {
            return;
        }
        self.channels_checked = Some(Instant::now());
        if self.cleanup.is_none() {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => self.cleanup = Some(rt),
                Err(e) => {
                    log::warn!("sequin_sf: cannot start a runtime to delete left channels: {e}");
                    return;
                }
            }
        }
        let Some(rt) = &self.cleanup else { return };
        let db = self.db.clone();
        if let Err(e) = guarded(&*db, || {
            read::remove_left_event_channels(&*db, &self.clients, rt).map_err(|e| e.to_string())
        })
        .and_then(|r| r)
        {
            log::warn!("sequin_sf: deleting the channels of dropped syncs: {e}");
        }
    }

    /// Every runtime is built again at the next pass (the host's settings changed).
    pub fn forget_runtimes(&mut self) {
        self.runtimes.clear();
    }

    /// Runs those of `syncs` whose lock this process holds or can take now, and lets go
    /// of the locks of syncs no longer given. Returns how long to sleep before the next
    /// pass, and the syncs whose lock it took in this one.
    pub fn run_locked(&mut self, syncs: &[&SyncConfig]) -> (Duration, Vec<String>) {
        let gone: Vec<String> = self
            .locked
            .iter()
            .filter(|name| !syncs.iter().any(|s| &s.name == *name))
            .cloned()
            .collect();
        for name in gone {
            self.runtimes.remove(&name);
            release_sync_lock(&*self.db, &name);
            self.locked.remove(&name);
        }
        let mut mine = Vec::new();
        let mut taken = Vec::new();
        for cfg in syncs {
            if self.locked.contains(&cfg.name) || take_sync_lock(&*self.db, &cfg.name) {
                if self.locked.insert(cfg.name.clone()) {
                    taken.push(cfg.name.clone());
                }
                mine.push(*cfg);
            }
        }
        self.remove_left_channels();
        (self.run(&mine), taken)
    }

    /// One pass over `syncs`; returns how long to sleep before the next.
    pub fn run(&mut self, syncs: &[&SyncConfig]) -> Duration {
        self.runtimes.retain(|name, rt| {
            syncs
                .iter()
                .any(|s| &s.name == name && s.fingerprint() == rt.fingerprint)
        });
        let mut nap = IDLE_NAP;
        for cfg in syncs {
            if stopping() {
                break;
            }
            let Some(rt) = self.runtime(cfg) else {
                continue;
            };
            nap = nap.min(pass(rt, cfg));
        }
        nap
    }

    /// The sync's runtime, built when missing (at most twice a minute while building
    /// fails: say the key file changed).
    fn runtime(&mut self, cfg: &SyncConfig) -> Option<&mut SyncRuntime> {
        if !self.runtimes.contains_key(&cfg.name) {
            if self
                .failed_builds
                .get(&cfg.name)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(30))
            {
                return None;
            }
            let built = (self.clients)(&cfg.credential, Some(&cfg.call_options_client)).and_then(
                |client| {
                    SyncRuntime::new(self.db.clone(), cfg, client)
                        .map_err(|e| format!("could not start the HTTP runtime: {e}"))
                },
            );
            match built {
                Ok(rt) => {
                    self.failed_builds.remove(&cfg.name);
                    self.runtimes.insert(cfg.name.clone(), rt);
                }
                Err(msg) => {
                    report_error(&*self.db, &cfg.name, &format!("{msg} (retrying in 30 s)"));
                    self.failed_builds.insert(cfg.name.clone(), Instant::now());
                    return None;
                }
            }
        }
        self.runtimes.get_mut(&cfg.name)
    }
}

/// One pass of one sync (not paused): its writes, then one step of its read side.
/// Returns how long to sleep before the next: hardly at all while it has more work
/// ready at once, briefly while a change event stream flows.
fn pass(rt: &mut SyncRuntime, cfg: &SyncConfig) -> Duration {
    let mut nap = IDLE_NAP;
    let db = rt.db.clone();
    let holding_back = rt.keep_long_requests_in_share(cfg);
    // Writes go first, even while the read side backs off: the writer keeps its own
    // per-entry retry schedule.
    let written = guarded(&*db, || write::run_once(rt).map_err(|e| e.to_string()));
    let writer_failed = match written.and_then(|r| r) {
        Ok(()) => false,
        Err(msg) => {
            report_error(
                &*db,
                &cfg.name,
                &format!("writing back failed: {msg} (retrying)"),
            );
            true
        }
    };
    if stopping() {
        return nap;
    }
    if rt.resume_at.is_some_and(|t| Instant::now() < t) {
        record_usage(rt);
        return nap;
    }
    rt.has_error = cfg.has_error || writer_failed;
    rt.org_ceiling_hit = false;
    match read::guarded_step(rt, cfg) {
        Err(error::StepError::Stopping) => return nap,
        Ok(_) if rt.org_ceiling_hit && rt.has_error => {}
        Ok(_) if rt.org_ceiling_hit => {
            let usage = rt
                .client
                .api_usage()
                .map(|u| format!("{}/{}", u.used, u.max));
            report_error(
                &*db,
                &cfg.name,
                &format!(
                    "waiting: the org has used {} of its daily API requests, at or above this sync's ceiling of {:.0}%; raise it with sequin_sf.alter_sync(name, org_usage_ceiling => ...) or wait for usage to fall",
                    usage.unwrap_or_else(|| "most".into()),
                    cfg.org_usage_ceiling * 100.0
                ),
            );
            rt.has_error = true;
        }
        Ok(more) => {
            if more {
                nap = BUSY_NAP;
            }
            rt.backoff.reset();
            rt.resume_at = None;
            rt.refusals = 0;
            if rt.read_retry_shown {
                match tx(&*db, |s| status::set_read_retry(s, &cfg.name, None)) {
                    Ok(()) => rt.read_retry_shown = false,
                    Err(e) => log::warn!("sequin_sf: {e}"),
                }
            }
            // an error of the writer in this iteration stays shown; while the sync holds
            // back for the org's long-running requests, that is shown instead
            if let Some(note) = &holding_back {
                if !rt.long_hold_shown && !writer_failed {
                    report_error(&*db, &cfg.name, note);
                    rt.long_hold_shown = true;
                }
            } else if rt.has_error && !writer_failed {
                if let Err(e) = tx(&*db, |s| status::set_sync_error(s, &cfg.name, None)) {
                    log::warn!("sequin_sf: {e}");
                }
                rt.has_error = false;
            }
        }
        Err(e) => {
            let (delay, why) = read_retry(rt, &e);
            rt.resume_at = Some(Instant::now() + delay);
            let msg = format!("{e} ({why}retrying in {:.1} s)", delay.as_secs_f64());
            log::warn!("sequin_sf: sync {}: {msg}", cfg.name);
            let shown = tx(&*db, |s| {
                status::set_sync_error(s, &cfg.name, Some(&msg))?;
                status::set_read_retry(s, &cfg.name, Some(delay.as_secs_f64()))
            });
            match shown {
                Ok(()) => rt.read_retry_shown = true,
                Err(e) => log::warn!(
                    "sequin_sf: could not record the error of sync {}: {e}",
                    cfg.name
                ),
            }
            rt.has_error = true;
        }
    }
    if rt.events.flowing {
        nap = nap.min(STREAMING_NAP);
    }
    record_usage(rt);
    nap
}

/// Whether the SQL objects are those of this library's release. After a new release is
/// installed, the old objects stay until `ALTER EXTENSION sequin_sf UPDATE`; until then
/// no sync runs (this worker's SQL needs the new ones), and the log says why, once.
fn same_release(installed: &str, library: &str) -> bool {
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if installed == library {
        return true;
    }
    if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
        log::warn!(
            "sequin_sf: the extension in this database is version {installed} but the library is {library}; no syncs run until you run ALTER EXTENSION sequin_sf UPDATE"
        );
    }
    false
}

/// How often a sync retries after an error no retry can cure (a refused login, missing
/// permissions): rarely enough not to spend the org's quota on it, often enough to
/// resume soon after someone fixes it.
const NEEDS_A_PERSON_RETRY: Duration = Duration::from_secs(300);

/// A refusal is taken as needing a person when it comes this many times in a row: once
/// or twice may be a fault on the way (a session refused just after a login, a login
/// answer lost in a proxy), and waiting 5 minutes on it would leave the tables that
/// long behind while the writer, with the same credential, goes on.
const REFUSALS_BEFORE_WAITING: u32 = 3;

/// The longest wait Salesforce may ask of the read side (`Retry-After`, the daily
/// quota spent).
const LONGEST_ASKED_WAIT: Duration = Duration::from_secs(30);

/// How long the read side waits after the step failed with `e`, and what its message
/// says about it. Faults that pass by themselves are retried within
/// `runtime::READ_RETRY_CAP`; longer only when Salesforce asks for it (`Retry-After`, or
/// REQUEST_LIMIT_EXCEEDED while the org's usage shows its daily requests spent) or when
/// a refusal repeats (`REFUSALS_BEFORE_WAITING`).
fn read_retry(rt: &mut SyncRuntime, e: &error::StepError) -> (Duration, &'static str) {
    let error::StepError::Salesforce(se) = e else {
        return (rt.backoff.next_delay(), "");
    };
    let backoff = rt.backoff.next_delay();
    if error::may_need_a_person(se) {
        rt.refusals += 1;
        if rt.refusals >= REFUSALS_BEFORE_WAITING {
            return (
                NEEDS_A_PERSON_RETRY,
                "this will not pass by itself: check the credential and the integration user's permissions; ",
            );
        }
        return (backoff, "");
    }
    let asked = match se {
        salesforce::Error::Api {
            retry_after: Some(d),
            ..
        } => Some(*d),
        // REQUEST_LIMIT_EXCEEDED with requests left in the org's day (its last
        // Sforce-Limit-Info): not the daily quota, nothing to wait a minute for
        _ if quota_left(rt) => None,
        _ => se.retry_after_hint(),
    };
    let delay = asked.map_or(backoff, |d| d.max(backoff));
    (delay.min(LONGEST_ASKED_WAIT), "")
}

/// Whether the org's usage Salesforce last reported leaves requests in its day.
fn quota_left(rt: &SyncRuntime) -> bool {
    rt.client.api_usage().is_some_and(|u| u.used < u.max)
}

fn report_error(db: &dyn Database, sync: &str, msg: &str) {
    log::warn!("sequin_sf: sync {sync}: {msg}");
    if let Err(e) = tx(db, |s| status::set_sync_error(s, sync, Some(msg))) {
        log::warn!("sequin_sf: could not record the error of sync {sync}: {e}");
    }
}

/// Writes the requests made (and the Bulk results downloaded) since the last call to
/// `sequin_sf._api_usage`, and the org's usage as the last response reported it.
fn record_usage(rt: &mut SyncRuntime) {
    let stats = rt.client.stats();
    let delta = stats.requests.saturating_sub(rt.requests_recorded);
    let bytes = stats
        .bulk_result_bytes
        .saturating_sub(rt.bulk_bytes_recorded);
    if delta == 0 && bytes == 0 {
        return;
    }
    let org = rt.client.api_usage();
    let record = |s: &mut dyn crate::db::Session| {
        status::record_usage(s, &rt.sync_name, delta as i64)?;
        if bytes > 0 {
            status::record_bulk_results(s, &rt.sync_name, bytes as i64)?;
        }
        match org {
            Some(u) => status::record_org_usage(s, &rt.sync_name, u.used, u.max),
            None => Ok(()),
        }
    };
    match tx(&*rt.db, record) {
        Ok(()) => {
            rt.requests_recorded = stats.requests;
            rt.bulk_bytes_recorded = stats.bulk_result_bytes;
        }
        Err(e) => log::warn!("sequin_sf: could not record API usage: {e}"),
    }
}
