//! sequin_sf's objects installed with plain SQL and PL/pgSQL, for a database where the
//! extension's library cannot be loaded (a managed Postgres): the extension's own SQL
//! files, less the blocks marked "extension only", with `sql/plain/library.sql`
//! standing in for the functions the library defines. The role that installs them owns
//! them and is the role the syncs run as.
//!
//! Where the extension is installed, nothing is done: its objects are the extension's,
//! and `ALTER EXTENSION sequin_sf UPDATE` upgrades them.

use postgres::Client;

use sync_engine::catalog::{installed_release, Release};

use crate::wire::{describe, WireSession};

/// The scripts in the order they run, by the name errors give them.
const SCRIPTS: [(&str, &str); 6] = [
    (
        "sql/bootstrap.sql",
        include_str!("../../../sql/bootstrap.sql"),
    ),
    (
        "sql/plain/library.sql",
        include_str!("../../../sql/plain/library.sql"),
    ),
    ("sql/capture.sql", include_str!("../../../sql/capture.sql")),
    ("sql/worker.sql", include_str!("../../../sql/worker.sql")),
    ("sql/api.sql", include_str!("../../../sql/api.sql")),
    (
        "sql/plain/finish.sql",
        include_str!("../../../sql/plain/finish.sql"),
    ),
];

/// Installs the objects of `release` unless the database has them (as the extension or
/// installed here before). A database holding another release, or a schema sequin_sf
/// that is not ours, is an error saying what to do; nothing of it is changed.
pub fn ensure(client: &mut Client, release: &str) -> Result<Release, String> {
    let mut tx = client.transaction().map_err(|e| describe(&e))?;
    // two processes starting at once: the second waits, then finds the objects
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('sequin_sf install'))",
        &[],
    )
    .map_err(|e| describe(&e))?;
    let found = installed_release(&mut WireSession::new(&mut tx)).map_err(|e| e.to_string())?;
    match found {
        Some(Release::Plain(v)) if v != release => {
            return Err(format!(
                "this database holds sequin_sf objects of release {v}, and this sequin-sf is release {release}; \
                 run the sequin-sf of release {v}, or one of release {v}'s successors once it ships an upgrade from {v}"
            ))
        }
        Some(found) => return Ok(found),
        None => {}
    }
    let schema_taken: bool = tx
        .query_one("SELECT to_regnamespace('sequin_sf') IS NOT NULL", &[])
        .map_err(|e| describe(&e))?
        .get(0);
    if schema_taken {
        return Err("a schema named sequin_sf exists but holds no sequin_sf release; \
                    sequin-sf installs its objects there and never touches a schema it did not create: \
                    rename or drop that schema, or point sequin-sf at another database"
            .into());
    }
    // as CREATE EXTENSION runs its script: a function's body may name what a later
    // script creates (api.sql's write_settings, named in worker.sql)
    tx.batch_execute("SET LOCAL check_function_bodies = off; CREATE SCHEMA sequin_sf")
        .map_err(|e| format!("creating schema sequin_sf: {}", describe(&e)))?;
    for (name, sql) in SCRIPTS {
        tx.batch_execute(&without_extension_only(sql))
            .map_err(|e| format!("installing {name}: {}", describe(&e)))?;
    }
    tx.execute(
        "INSERT INTO sequin_sf._release (version) VALUES ($1)",
        &[&release],
    )
    .map_err(|e| describe(&e))?;
    tx.commit().map_err(|e| describe(&e))?;
    log::info!("sequin-sf: installed the sequin_sf objects of release {release}");
    Ok(Release::Plain(release.to_string()))
}

/// Tries again what needs more than CREATE (sql/plain/finish.sql) on objects installed
/// here before: `sequin-sf install` run by a role that may, after a first install by
/// one that could not.
pub fn finish(client: &mut Client) -> Result<(), String> {
    let (name, sql) = SCRIPTS[SCRIPTS.len() - 1];
    client
        .batch_execute(sql)
        .map_err(|e| format!("running {name}: {}", describe(&e)))
}

/// The script without its "-- begin: extension only" ... "-- end: extension only"
/// blocks: what only `CREATE EXTENSION` may run (marking configuration tables for
/// pg_dump) or what needs a superuser (tried in sql/plain/finish.sql instead).
fn without_extension_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut skipping = false;
    for line in sql.lines() {
        if line.starts_with("-- begin: extension only") {
            skipping = true;
        } else if line.starts_with("-- end: extension only") {
            skipping = false;
        } else if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_only_blocks_are_left_out() {
        let sql = "A;\n-- begin: extension only (why)\nB;\nC;\n-- end: extension only\nD;\n";
        assert_eq!(without_extension_only(sql), "A;\nD;\n");
    }

    #[test]
    fn the_scripts_mark_what_only_an_extension_may_run() {
        for (name, sql) in SCRIPTS {
            let begins = sql.matches("-- begin: extension only").count();
            let ends = sql.matches("-- end: extension only").count();
            assert_eq!(begins, ends, "{name}: unbalanced extension-only markers");
            let plain = without_extension_only(sql);
            assert!(
                !plain.contains("pg_extension_config_dump"),
                "{name} registers a configuration table outside an extension-only block"
            );
            assert!(
                name == "sql/plain/finish.sql" || !plain.contains("CREATE EVENT TRIGGER"),
                "{name} creates an event trigger outside an extension-only block"
            );
        }
    }
}
