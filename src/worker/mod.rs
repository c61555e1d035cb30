//! The background worker: one per server, serving the database named by
//! `sequin_sf.database_name`.

use std::time::Duration;

use pgrx::bgworkers::*;
use pgrx::prelude::*;

pub fn register() {
    BackgroundWorkerBuilder::new("sequin_sf worker")
        .set_function("sequin_sf_worker_main")
        .set_library("sequin_sf")
        .set_type("sequin_sf")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn sequin_sf_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = crate::guc::database_name();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    log!("sequin_sf worker started for database {db}");
    while BackgroundWorker::wait_latch(Some(Duration::from_millis(500))) {}
    log!("sequin_sf worker stopping");
}
