//! The background workers. The launcher (`launcher`) starts one worker for the database
//! named by `sequin_sf.database_name`: the supervisor (`sequin_sf_worker_main`), which
//! starts a worker of its own for every sync that is not paused (`sequin_sf_sync_main`),
//! starts it again when it stops, and runs a sync itself only while no worker slot is
//! free for it (see max_worker_processes). A sync's worker runs, in a loop, its write
//! path and then one step of its read path, so a slow or failing org delays no other.

mod allocations;
mod catalog;
mod child;
mod error;
mod launcher;
mod pg;
mod read;
mod runtime;
mod signals;
mod status;
mod stream;
mod write;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pgrx::bgworkers::*;
use pgrx::prelude::*;

use child::{Check, Child};
use pg::tx;
use runtime::SyncRuntime;
use signals::stopping;

/// Registers the launcher, which starts this worker once its database exists.
pub fn register() {
    launcher::register();
}

/// Sleep between iterations when nothing is pending; short enough for sub-second
/// poll schedules.
const IDLE_NAP: Duration = Duration::from_millis(100);
/// Sleep while a change event stream flows: an event waits at most this long.
const STREAMING_NAP: Duration = Duration::from_millis(20);
/// Sleep while more work is ready at once.
const BUSY_NAP: Duration = Duration::from_millis(1);

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sequin_sf_worker_main(_arg: pg_sys::Datum) {
    signals::attach();
    let db = crate::guc::database_name();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    log!("sequin_sf worker started for database {db}");
    set_session();
    read::remove_leftover_pages();
    let mut children: HashMap<String, Child> = HashMap::new();
    let mut here = Syncs::default();
    let mut nap = IDLE_NAP;
    while signals::wait_latch(nap) {
        here.reload_if_asked();
        let Some(syncs) = load_syncs() else {
            continue;
        };
        let active: Vec<&catalog::SyncConfig> = syncs.iter().filter(|s| !s.paused).collect();
        children.retain(|name, _| active.iter().any(|s| &s.name == name));
        let mut homeless = Vec::new();
        for cfg in &active {
            let child = children.entry(cfg.name.clone()).or_insert_with(Child::new);
            match child.check() {
                Check::Running => continue,
                Check::Stopped(delay) => {
                    log!(
                        "sequin_sf: the worker of sync {} stopped; starting it again in {} s",
                        cfg.name,
                        delay.as_secs()
                    );
                    read::remove_leftover_pages();
                }
                Check::Idle => {}
            }
            if child.due() && child.started(start_sync_worker(&cfg.name)) {
                continue;
            }
            homeless.push(*cfg);
        }
        nap = here.run_homeless(&homeless);
        if stopping() {
            break;
        }
    }
    log!("sequin_sf worker stopping");
}

/// A sync's own worker. It waits for its sync's lock (a worker of the sync from before
/// may still be finishing), then runs the sync until it is paused or dropped, or its
/// supervisor is gone.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sequin_sf_sync_main(arg: pg_sys::Datum) {
    signals::attach();
    let sync = BackgroundWorker::get_extra().to_string();
    let supervisor = arg.value() as i32;
    BackgroundWorker::connect_worker_to_spi(Some(&crate::guc::database_name()), None);
    set_session();
    // pg_stat_activity shows which sync a worker runs
    tx(|| {
        Spi::run_with_args(
            "SELECT set_config('application_name', $1, false)",
            &[format!("sequin_sf sync {sync}").into()],
        )
    })
    .unwrap_or_else(|e| warning!("sequin_sf: {e}"));
    while !take_sync_lock(&sync) {
        if !signals::wait_latch(Duration::from_secs(1)) || !alive(supervisor) {
            return;
        }
    }
    log!("sequin_sf: worker of sync {sync} started");
    let mut own = Syncs::default();
    let mut nap = IDLE_NAP;
    while signals::wait_latch(nap) {
        own.reload_if_asked();
        if !alive(supervisor) {
            break;
        }
        let Some(syncs) = load_syncs() else {
            continue;
        };
        let Some(cfg) = syncs.iter().find(|s| s.name == sync && !s.paused) else {
            break;
        };
        nap = own.run(&[cfg]);
        if stopping() {
            break;
        }
    }
    log!("sequin_sf: worker of sync {sync} stopping");
}

fn start_sync_worker(sync: &str) -> Option<DynamicBackgroundWorker> {
    // SAFETY: MyProcPid is this process's pid, set before any worker code runs.
    let me = unsafe { pg_sys::MyProcPid };
    BackgroundWorkerBuilder::new(&format!("sequin_sf sync {sync}"))
        .set_function("sequin_sf_sync_main")
        .set_library("sequin_sf")
        .set_type("sequin_sf sync")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        // the supervisor restarts it, with a backoff
        .set_restart_time(None)
        .set_argument(Some(pg_sys::Datum::from(me)))
        .set_extra(sync)
        .set_notify_pid(me)
        .load_dynamic()
        .ok()
}

/// Settings of a worker's session, for every transaction it runs:
/// - log_min_messages: table DDL and the write path's idempotent installs raise
///   NOTICEs on every (re)creation; keep the server log for what matters.
/// - search_path: the worker runs as a superuser; nothing any role creates in a
///   schema of its own can stand in for a function or operator the worker's SQL
///   (or a function it calls) uses.
/// - lock_timeout: the worker waits for the application, never the other way round:
///   a lock held by an idle transaction makes the worker's statement fail (and be
///   retried later) instead of queueing the application's statements behind it.
fn set_session() {
    tx(|| {
        Spi::run(
            "SELECT set_config('log_min_messages', 'warning', false),
                    set_config('search_path', 'pg_catalog, pg_temp', false),
                    set_config('lock_timeout', '2s', false)",
        )
    })
    .unwrap_or_else(|e| warning!("sequin_sf: {e}"));
}

/// Whether the process `pid` (the supervisor) still runs.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks for the process without sending anything.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// The session-level advisory lock that only the process running a sync holds: a sync
/// is never run by two processes at once (a worker ending while its successor starts,
/// the supervisor running it while no slot was free).
fn take_sync_lock(sync: &str) -> bool {
    tx(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_try_advisory_lock(hashtext('sequin_sf sync'), hashtext($1))",
            &[sync.into()],
        )
    })
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn release_sync_lock(sync: &str) {
    let released = tx(|| {
        Spi::get_one_with_args::<bool>(
            "SELECT pg_advisory_unlock(hashtext('sequin_sf sync'), hashtext($1))",
            &[sync.into()],
        )
    });
    if let Err(e) = released {
        warning!("sequin_sf: {e}");
    }
}

/// The catalog's syncs, or None (said in the log) when it cannot be read; none before
/// `ALTER EXTENSION ... UPDATE` brought the SQL objects to this library's release.
fn load_syncs() -> Option<Vec<catalog::SyncConfig>> {
    let syncs = tx(|| -> pgrx::spi::SpiResult<_> {
        match catalog::installed_version()? {
            Some(v) if same_release(&v) => catalog::load_syncs(),
            _ => Ok(Vec::new()),
        }
    });
    match syncs {
        Ok(s) => Some(s),
        Err(e) => {
            warning!("sequin_sf: could not read the catalog: {e}");
            None
        }
    }
}

/// The syncs one process runs, with their state between passes.
#[derive(Default)]
struct Syncs {
    runtimes: HashMap<String, SyncRuntime>,
    failed_builds: HashMap<String, Instant>,
    /// Syncs whose lock this process holds while running them without a worker of
    /// their own (the supervisor only).
    locked: HashSet<String>,
}

impl Syncs {
    /// After SIGHUP: the configuration file is read again and every runtime rebuilt.
    fn reload_if_asked(&mut self) {
        if signals::reload_requested() {
            // SAFETY: called from the worker's main thread, outside a transaction.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            log!("sequin_sf worker reloaded its configuration");
            self.runtimes.clear();
        }
    }

    /// The supervisor runs the syncs it could not give a worker, each while it holds
    /// the sync's lock, and lets go of those that have one again. Returns how long to
    /// sleep before the next pass.
    fn run_homeless(&mut self, homeless: &[&catalog::SyncConfig]) -> Duration {
        let gone: Vec<String> = self
            .locked
            .iter()
            .filter(|name| !homeless.iter().any(|s| &s.name == *name))
            .cloned()
            .collect();
        for name in gone {
            self.runtimes.remove(&name);
            release_sync_lock(&name);
            self.locked.remove(&name);
        }
        let mut mine = Vec::new();
        for cfg in homeless {
            if self.locked.contains(&cfg.name) || take_sync_lock(&cfg.name) {
                if self.locked.insert(cfg.name.clone()) {
                    warning!(
                        "sequin_sf: no background worker slot is free for sync {} \
                         (max_worker_processes): the database's worker runs it, with the others it runs",
                        cfg.name
                    );
                }
                mine.push(*cfg);
            }
        }
        self.run(&mine)
    }

    /// One pass over `syncs`; returns how long to sleep before the next.
    fn run(&mut self, syncs: &[&catalog::SyncConfig]) -> Duration {
        iteration(&mut self.runtimes, &mut self.failed_builds, syncs)
    }
}

/// One pass over `syncs` (none paused). Returns how long to sleep before the next:
/// hardly at all while some sync has more work ready at once, briefly while a change
/// event stream flows.
fn iteration(
    runtimes: &mut HashMap<String, SyncRuntime>,
    failed_builds: &mut HashMap<String, Instant>,
    syncs: &[&catalog::SyncConfig],
) -> Duration {
    runtimes.retain(|name, rt| {
        syncs
            .iter()
            .any(|s| &s.name == name && s.fingerprint() == rt.fingerprint)
    });
    let mut nap = IDLE_NAP;
    for cfg in syncs {
        if stopping() {
            break;
        }
        if !runtimes.contains_key(&cfg.name) {
            if failed_builds
                .get(&cfg.name)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(30))
            {
                continue;
            }
            match build_runtime(cfg) {
                Ok(rt) => {
                    failed_builds.remove(&cfg.name);
                    runtimes.insert(cfg.name.clone(), rt);
                }
                Err(msg) => {
                    // e.g. the key file changed: say so, and retry twice a minute
                    report_error(&cfg.name, &format!("{msg} (retrying in 30 s)"));
                    failed_builds.insert(cfg.name.clone(), Instant::now());
                    continue;
                }
            }
        }
        let Some(rt) = runtimes.get_mut(&cfg.name) else {
            continue;
        };
        // Writes go first, even while the read side backs off: the writer keeps its own
        // per-entry retry schedule.
        let written = pg::catch_errors(|| write::run_once(rt).map_err(|e| e.to_string()));
        let writer_failed = match written.and_then(|r| r) {
            Ok(()) => false,
            Err(msg) => {
                report_error(&cfg.name, &format!("writing back failed: {msg} (retrying)"));
                true
            }
        };
        if stopping() {
            break;
        }
        if rt.resume_at.is_some_and(|t| Instant::now() < t) {
            record_usage(rt);
            continue;
        }
        rt.has_error = cfg.has_error || writer_failed;
        rt.org_ceiling_hit = false;
        match read::guarded_step(rt, cfg) {
            Err(error::StepError::Stopping) => break,
            Ok(_) if rt.org_ceiling_hit && rt.has_error => {}
            Ok(_) if rt.org_ceiling_hit => {
                let usage = rt
                    .client
                    .api_usage()
                    .map(|u| format!("{}/{}", u.used, u.max));
                report_error(
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
                    match tx(|| status::set_read_retry(&cfg.name, None)) {
                        Ok(()) => rt.read_retry_shown = false,
                        Err(e) => warning!("sequin_sf: {e}"),
                    }
                }
                // an error of the writer in this iteration stays shown
                if rt.has_error && !writer_failed {
                    if let Err(e) = tx(|| status::set_sync_error(&cfg.name, None)) {
                        warning!("sequin_sf: {e}");
                    }
                    rt.has_error = false;
                }
            }
            Err(e) => {
                let (delay, why) = read_retry(rt, &e);
                rt.resume_at = Some(Instant::now() + delay);
                let msg = format!("{e} ({why}retrying in {:.1} s)", delay.as_secs_f64());
                warning!("sequin_sf: sync {}: {msg}", cfg.name);
                let shown = tx(|| {
                    status::set_sync_error(&cfg.name, Some(&msg))?;
                    status::set_read_retry(&cfg.name, Some(delay.as_secs_f64()))
                });
                match shown {
                    Ok(()) => rt.read_retry_shown = true,
                    Err(e) => warning!(
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
    }
    nap
}

/// Whether the SQL objects are those of this library's release. After a new release is
/// installed, the old objects stay until `ALTER EXTENSION sequin_sf UPDATE`; until then
/// no sync runs (this worker's SQL needs the new ones), and the log says why, once.
fn same_release(installed: &str) -> bool {
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let library = env!("CARGO_PKG_VERSION");
    if installed == library {
        return true;
    }
    if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
        warning!(
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

fn build_runtime(cfg: &catalog::SyncConfig) -> Result<SyncRuntime, String> {
    let client = tx(|| crate::client::client_for(&cfg.credential, Some(&cfg.call_options_client)))
        .map_err(|e| e.to_string())?;
    SyncRuntime::new(cfg, client).map_err(|e| format!("could not start the HTTP runtime: {e}"))
}

fn report_error(sync: &str, msg: &str) {
    warning!("sequin_sf: sync {sync}: {msg}");
    if let Err(e) = tx(|| status::set_sync_error(sync, Some(msg))) {
        warning!("sequin_sf: could not record the error of sync {sync}: {e}");
    }
}

/// Writes the requests made since the last call to `sequin_sf._api_usage`, and the org's
/// usage as the last response reported it.
fn record_usage(rt: &mut SyncRuntime) {
    let total = rt.client.stats().requests;
    let delta = total.saturating_sub(rt.requests_recorded);
    if delta == 0 {
        return;
    }
    let org = rt.client.api_usage();
    let record = || {
        status::record_usage(&rt.sync_name, delta as i64)?;
        match org {
            Some(u) => status::record_org_usage(&rt.sync_name, u.used, u.max),
            None => Ok(()),
        }
    };
    match tx(record) {
        Ok(()) => rt.requests_recorded = total,
        Err(e) => warning!("sequin_sf: could not record API usage: {e}"),
    }
}
