//! The background workers. The launcher (`launcher`) starts one worker for the database
//! named by `sequin_sf.database_name`: the supervisor (`sequin_sf_worker_main`), which
//! starts a worker of its own for every sync that is not paused (`sequin_sf_sync_main`),
//! starts it again when it stops, and runs a sync itself only while no worker slot is
//! free for it (see max_worker_processes). What a sync does is the engine's
//! (`sync_engine::syncs`); these processes host it: SPI for its database (`spi`), the
//! server log for its log records (`server_log`), the latch and signals (`signals`).

mod child;
mod launcher;
mod metrics_endpoint;
mod server_log;
mod signals;
mod spi;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use pgrx::bgworkers::*;
use pgrx::prelude::*;
use sync_engine::catalog::SyncConfig;
use sync_engine::db::{tx, DbError, Param};
use sync_engine::syncs::{self, Syncs};

use child::{Check, Child};
use signals::stopping;

/// Registers the launcher, which starts this worker once its database exists.
pub fn register() {
    launcher::register();
}

/// Sleep between passes when nothing is pending.
const IDLE_NAP: Duration = syncs::IDLE_NAP;

/// What the engine needs of its host per process: when to stop, where page files go
/// (the data directory, where `COPY` may read them; named for this database), and a
/// place for its log records.
fn host_engine() {
    sync_engine::stop::set_check(signals::stopping);
    // SAFETY: set once the worker is connected to its database.
    let database = unsafe { pg_sys::MyDatabaseId }.to_u32();
    sync_engine::read::use_page_dir(crate::secrets::data_dir(), database.to_string());
    server_log::install();
}

/// The syncs this process runs, on SPI, with clients built from stored credentials.
fn new_syncs() -> Syncs {
    Syncs::new(
        Rc::new(spi::Spi),
        Box::new(|credential: &str, call_options: Option<&str>| {
            let built = tx(&spi::Spi, |_| {
                let client = crate::client::client_for(credential, call_options);
                Ok::<_, DbError>(client)
            });
            built.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
        }),
    )
}

/// After SIGHUP: the configuration file is read again and every runtime rebuilt.
fn reload_if_asked(syncs: &mut Syncs) {
    if signals::reload_requested() {
        // SAFETY: called from the worker's main thread, outside a transaction.
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        log!("sequin_sf worker reloaded its configuration");
        syncs.forget_runtimes();
    }
}

/// The catalog's syncs (None when it cannot be read), while the extension's SQL objects
/// are of this library's release.
fn load_syncs() -> Option<Vec<SyncConfig>> {
    syncs::load_syncs(&spi::Spi, env!("CARGO_PKG_VERSION"))
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sequin_sf_worker_main(_arg: pg_sys::Datum) {
    signals::attach();
    let db = crate::guc::database_name();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    pgrx::log!("sequin_sf worker started for database {db}");
    set_session();
    host_engine();
    sync_engine::read::remove_leftover_pages();
    let mut children: HashMap<String, Child> = HashMap::new();
    let mut here = new_syncs();
    let mut metrics = metrics_endpoint::MetricsEndpoint::default();
    let mut nap = IDLE_NAP;
    while signals::wait_latch(nap) {
        reload_if_asked(&mut here);
        metrics.keep();
        let Some(syncs) = load_syncs() else {
            continue;
        };
        let active: Vec<&SyncConfig> = syncs.iter().filter(|s| !s.paused).collect();
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
                    sync_engine::read::remove_leftover_pages();
                }
                Check::Idle => {}
            }
            if child.due() && child.started(start_sync_worker(&cfg.name)) {
                continue;
            }
            homeless.push(*cfg);
        }
        let (wait, taken) = here.run_locked(&homeless);
        for name in taken {
            warning!(
                "sequin_sf: no background worker slot is free for sync {name} \
                 (max_worker_processes): the database's worker runs it, with the others it runs"
            );
        }
        nap = wait;
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
    run_own(
        "SELECT set_config('application_name', $1, false)",
        &[(&format!("sequin_sf sync {sync}")).into()],
    );
    while !syncs::take_sync_lock(&spi::Spi, &sync) {
        if !signals::wait_latch(Duration::from_secs(1)) || !alive(supervisor) {
            return;
        }
    }
    log!("sequin_sf: worker of sync {sync} started");
    host_engine();
    let mut own = new_syncs();
    let mut nap = IDLE_NAP;
    while signals::wait_latch(nap) {
        reload_if_asked(&mut own);
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

/// Settings of a worker's session: the engine's (`syncs::set_session`), and
/// log_min_messages: table DDL and the write path's idempotent installs raise NOTICEs
/// on every (re)creation; keep the server log for what matters.
fn set_session() {
    if let Err(e) = syncs::set_session(&spi::Spi) {
        warning!("sequin_sf: {e}");
    }
    run_own(
        "SELECT set_config('log_min_messages', 'warning', false)",
        &[],
    );
}

/// A statement of the worker's own, in a transaction of its own; a failure is logged.
fn run_own(sql: &str, params: &[Param<'_>]) {
    if let Err(e) = tx(&spi::Spi, |s| s.execute(sql, params)) {
        warning!("sequin_sf: {e}");
    }
}

/// Whether the process `pid` (the supervisor) still runs.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks for the process without sending anything.
    unsafe { libc::kill(pid, 0) == 0 }
}
