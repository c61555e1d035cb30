//! sequin_sf: keeps Salesforce orgs mirrored into Postgres tables.
//!
//! The extension crate is the Postgres shell: catalog SQL (`sql/`), the management
//! helpers that need Rust (secrets, login checks), and the background worker. Sync
//! decisions live in `sync-core`, the HTTP client in `salesforce`.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod capture;
mod client;
mod guc;
mod management;
mod secrets;
mod spi;
mod worker;

extension_sql_file!("../sql/bootstrap.sql", bootstrap);
extension_sql_file!("../sql/capture.sql", name = "capture");
extension_sql_file!("../sql/worker.sql", name = "worker");
extension_sql_file!("../sql/api.sql", name = "api", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register_session_settings();
    // SAFETY: a flag Postgres sets while it loads shared_preload_libraries
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        guc::register_server_settings();
        worker::register();
    }
}

/// Required by `cargo pgrx test`; the worker is tested end to end from `tests/`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
