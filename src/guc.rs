//! Settings read from postgresql.conf.

use std::ffi::CString;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static DATABASE_NAME: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));

pub fn register() {
    GucRegistry::define_string_guc(
        c"sequin_sf.database_name",
        c"Database whose syncs the sequin_sf background worker runs.",
        c"The worker connects to this database at server start; syncs created elsewhere are not run.",
        &DATABASE_NAME,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

pub fn database_name() -> String {
    DATABASE_NAME
        .get()
        .and_then(|c| c.into_string().ok())
        .unwrap_or_else(|| "postgres".to_string())
}
