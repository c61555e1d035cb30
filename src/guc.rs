//! Settings read from postgresql.conf.

use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static DATABASE_NAME: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// On while the worker (or a management function) changes synced tables itself, so the
/// capture triggers skip those changes. Superuser-only: a session that could set it
/// could change a synced table without the change reaching Salesforce.
pub static APPLYING: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Where the database's worker serves `/metrics` and `/healthz` (unset: nowhere).
pub static METRICS_LISTEN: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Hosts besides loopback that login URLs may name with plain http (a test emulator on
/// another container). Superuser-only: anyone else could send tokens in clear text.
pub static PLAIN_HTTP_HOSTS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// The settings of the server as a whole, defined only while the library is preloaded:
/// Postgres refuses (FATAL) a server-start setting defined by a library loaded later, as
/// `pg_upgrade` and a `CREATE EXTENSION` without the preload load it.
pub fn register_server_settings() {
    GucRegistry::define_string_guc(
        c"sequin_sf.database_name",
        c"Database whose syncs the sequin_sf background worker runs.",
        c"The worker connects to this database at server start; syncs created elsewhere are not run.",
        &DATABASE_NAME,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"sequin_sf.metrics_listen",
        c"Address where the database's sequin_sf worker serves /metrics (Prometheus text) and /healthz.",
        c"Empty (the default): no endpoint. A bare port (9187) listens on loopback; host:port listens there.",
        &METRICS_LISTEN,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

/// `sequin_sf.metrics_listen`, if set.
pub fn metrics_listen() -> Option<String> {
    METRICS_LISTEN
        .get()
        .and_then(|c| c.into_string().ok())
        .filter(|s| !s.trim().is_empty())
}

/// The settings a session reads, defined whenever the library is loaded.
pub fn register_session_settings() {
    GucRegistry::define_bool_guc(
        c"sequin_sf.applying",
        c"Set by sequin_sf itself while it applies Salesforce's changes (not captured).",
        c"Only superusers can set it, so no application session can switch write capture off.",
        &APPLYING,
        GucContext::Suset,
        GucFlags::DISALLOW_IN_FILE,
    );
    GucRegistry::define_string_guc(
        c"sequin_sf.plain_http_hosts",
        c"Hosts (comma-separated) that credentials may log in to over plain http.",
        c"Loopback addresses are always allowed (a local emulator); every other login URL must be https. Superusers only.",
        &PLAIN_HTTP_HOSTS,
        GucContext::Suset,
        GucFlags::default(),
    );
}

pub fn database_name() -> String {
    DATABASE_NAME
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".to_string())
}
