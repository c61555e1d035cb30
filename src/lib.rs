//! sequin_sf: keeps Salesforce orgs mirrored into Postgres tables.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod guc;
mod worker;

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    worker::register();
}
