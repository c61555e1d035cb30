//! The background worker: one per server, serving the database named by
//! `sequin_sf.database_name`, started (and restarted) by the launcher. Each loop
//! iteration reads the catalog, then for every sync that is not paused runs the write
//! path first and one step of the read path.

mod catalog;
mod error;
mod launcher;
mod pg;
mod read;
mod runtime;
mod status;
mod write;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgrx::bgworkers::*;
use pgrx::prelude::*;

use pg::stopping;
use pg::tx;
use runtime::SyncRuntime;

/// Registers the launcher, which starts this worker once its database exists.
pub fn register() {
    launcher::register();
}

/// Sleep between iterations when nothing is pending; short enough for sub-second
/// poll schedules.
const IDLE_NAP: Duration = Duration::from_millis(100);

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sequin_sf_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = crate::guc::database_name();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    log!("sequin_sf worker started for database {db}");
    // Session settings of the worker, for every transaction it runs:
    // - log_min_messages: table DDL and the write path's idempotent installs raise
    //   NOTICEs on every (re)creation; keep the server log for what matters.
    // - search_path: the worker runs as a superuser; nothing any role creates in a
    //   schema of its own can stand in for a function or operator the worker's SQL
    //   (or a function it calls) uses.
    // - lock_timeout: the worker waits for the application, never the other way round:
    //   a lock held by an idle transaction makes the worker's statement fail (and be
    //   retried later) instead of queueing the application's statements behind it.
    tx(|| {
        Spi::run(
            "SELECT set_config('log_min_messages', 'warning', false),
                    set_config('search_path', 'pg_catalog, pg_temp', false),
                    set_config('lock_timeout', '2s', false)",
        )
    })
    .unwrap_or_else(|e| warning!("sequin_sf: {e}"));
    read::remove_leftover_pages();
    let mut runtimes: HashMap<String, SyncRuntime> = HashMap::new();
    let mut failed_builds: HashMap<String, Instant> = HashMap::new();
    let mut nap = IDLE_NAP;
    while BackgroundWorker::wait_latch(Some(nap)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: called from the worker's main thread, outside a transaction.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            runtimes.clear();
            log!("sequin_sf worker reloaded its configuration");
        }
        let busy = iteration(&mut runtimes, &mut failed_builds);
        if stopping() {
            break;
        }
        nap = if busy {
            Duration::from_millis(1)
        } else {
            IDLE_NAP
        };
    }
    log!("sequin_sf worker stopping");
}

/// One pass over all syncs. True when some sync has more work ready at once.
fn iteration(
    runtimes: &mut HashMap<String, SyncRuntime>,
    failed_builds: &mut HashMap<String, Instant>,
) -> bool {
    let syncs = tx(|| -> pgrx::spi::SpiResult<_> {
        match catalog::installed_version()? {
            Some(v) if same_release(&v) => catalog::load_syncs(),
            _ => Ok(Vec::new()),
        }
    });
    let syncs = match syncs {
        Ok(s) => s,
        Err(e) => {
            warning!("sequin_sf: could not read the catalog: {e}");
            return false;
        }
    };
    runtimes.retain(|name, rt| {
        syncs
            .iter()
            .any(|s| &s.name == name && !s.paused && s.fingerprint() == rt.fingerprint)
    });
    let mut busy = false;
    for cfg in syncs.iter().filter(|s| !s.paused) {
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
                busy |= more;
                rt.backoff.reset();
                rt.resume_at = None;
                // an error of the writer in this iteration stays shown
                if rt.has_error && !writer_failed {
                    if let Err(e) = tx(|| status::set_sync_error(&cfg.name, None)) {
                        warning!("sequin_sf: {e}");
                    }
                    rt.has_error = false;
                }
            }
            Err(e) => {
                let max = Duration::from_secs(30);
                let (delay, why) = match &e {
                    error::StepError::Salesforce(se) if needs_a_person(se) => (
                        NEEDS_A_PERSON_RETRY,
                        "this will not pass by itself: check the credential and the integration user's permissions; ",
                    ),
                    error::StepError::Salesforce(se) => (rt.backoff.next_delay_for(se).min(max), ""),
                    _ => (rt.backoff.next_delay().min(max), ""),
                };
                rt.resume_at = Some(Instant::now() + delay);
                report_error(
                    &cfg.name,
                    &format!("{e} ({why}retrying in {:.1} s)", delay.as_secs_f64()),
                );
                rt.has_error = true;
            }
        }
        record_usage(rt);
    }
    busy
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

/// Refused logins and refused access (401/403 that are not the daily quota).
fn needs_a_person(e: &salesforce::Error) -> bool {
    !e.is_transient()
        && (matches!(e.status(), Some(401 | 403)) || matches!(e, salesforce::Error::Auth { .. }))
}

fn build_runtime(cfg: &catalog::SyncConfig) -> Result<SyncRuntime, String> {
    let client = tx(|| crate::client::client_for(&cfg.credential)).map_err(|e| e.to_string())?;
    SyncRuntime::new(cfg, client).map_err(|e| format!("could not start the HTTP runtime: {e}"))
}

fn report_error(sync: &str, msg: &str) {
    warning!("sequin_sf: sync {sync}: {msg}");
    if let Err(e) = tx(|| status::set_sync_error(sync, Some(msg))) {
        warning!("sequin_sf: could not record the error of sync {sync}: {e}");
    }
}

/// Writes the requests made since the last call to `sequin_sf._api_usage`.
fn record_usage(rt: &mut SyncRuntime) {
    let total = rt.client.stats().requests;
    let delta = total.saturating_sub(rt.requests_recorded);
    if delta == 0 {
        return;
    }
    match tx(|| status::record_usage(&rt.sync_name, delta as i64)) {
        Ok(()) => rt.requests_recorded = total,
        Err(e) => warning!("sequin_sf: could not record API usage: {e}"),
    }
}
