//! The launcher: the one worker registered at server start. It connects to no database,
//! checks that the database named by `sequin_sf.database_name` exists, and only then
//! starts the sync worker (`sequin_sf_worker_main`) for it, restarting that worker when
//! it stops. A missing database is reported once and watched for, instead of a worker
//! failing to connect and being restarted every few seconds for ever.

use std::ffi::CStr;
use std::time::Duration;

use pgrx::bgworkers::*;
use pgrx::prelude::*;

use super::child::{Check, Child};

/// How often the launcher looks at the database and its worker.
const TICK: Duration = Duration::from_secs(1);
pub fn register() {
    BackgroundWorkerBuilder::new("sequin_sf launcher")
        .set_function("sequin_sf_launcher_main")
        .set_library("sequin_sf")
        .set_type("sequin_sf launcher")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sequin_sf_launcher_main(_arg: pg_sys::Datum) {
    super::signals::attach();
    // No database: only the shared catalogs (pg_database) are needed here.
    BackgroundWorker::connect_worker_to_spi(None, None);
    let db = crate::guc::database_name();
    let mut worker = Child::new();
    let mut reported_missing = false;
    while super::signals::wait_latch(TICK) {
        if super::signals::stopping() {
            break;
        }
        match worker.check() {
            Check::Running => continue,
            Check::Stopped(delay) => log!(
                "sequin_sf launcher: the worker for database {db} stopped; starting it again in {} s",
                delay.as_secs()
            ),
            Check::Idle => {}
        }
        if !worker.due() {
            continue;
        }
        if !database_exists(&db) {
            if !reported_missing {
                warning!(
                    "sequin_sf: database \"{db}\" named by sequin_sf.database_name does not exist; \
                     no syncs run until it is created (or the setting names another database \
                     and the server is restarted)"
                );
                reported_missing = true;
            }
            continue;
        }
        reported_missing = false;
        if !worker.started(start_worker()) {
            warning!(
                "sequin_sf launcher: could not start the worker for database {db} \
                 (max_worker_processes reached?); retrying in {} s",
                worker.retry_in().as_secs()
            );
        }
    }
}

/// Scans pg_database (a shared catalog) the way autovacuum's launcher does: without a
/// database only a heap scan works; index and syscache lookups need pg_class.
fn database_exists(name: &str) -> bool {
    let wanted = name.as_bytes().to_vec();
    BackgroundWorker::transaction(move || {
        // SAFETY: inside a transaction; the relation is opened, scanned and closed here,
        // and each tuple's struct is read while the scan holds it.
        unsafe {
            let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
            let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, lock);
            let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
            let mut found = false;
            loop {
                let tup = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tup.is_null() {
                    break;
                }
                let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tup);
                let datname = CStr::from_ptr((*form).datname.data.as_ptr());
                if datname.to_bytes() == wanted.as_slice() {
                    found = true;
                    break;
                }
            }
            pg_sys::table_endscan(scan);
            pg_sys::table_close(rel, lock);
            found
        }
    })
}

fn start_worker() -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new("sequin_sf worker")
        .set_function("sequin_sf_worker_main")
        .set_library("sequin_sf")
        .set_type("sequin_sf")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        // the launcher restarts it, with a backoff
        .set_restart_time(None)
        // SAFETY: MyProcPid is this process's pid, set before any worker code runs.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic()
        .ok()
}
