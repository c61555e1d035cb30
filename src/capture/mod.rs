//! Write capture's hot path: the statement-level trigger that logs one write-log entry
//! per changed row of a synced table, after refusing a row Salesforce would refuse (a
//! statement changing many rows, or a transaction that changed many, logs them in
//! batches: log.rs, batch.rs).
//! `sql/capture.sql` installs it and documents the log; `_refuse_write` there words the
//! refusals.
//!
//! It is C-level code because capture runs inside every application statement: the
//! plpgsql triggers it replaces paid, per row or per statement, a function call with a
//! privilege switch and a pinned search_path and a planned INSERT into the log, which
//! together cost more than the application's own change. Here rows come straight from
//! the statement's transition tables and go straight into the log's heap and indexes
//! (as logical replication applies rows), what can be worked out once per table is
//! cached for the session, and jsonb is built only where an entry holds it.
//!
//! It inserts into the log without privilege checks on purpose: application roles
//! cannot write the log themselves, and only the extension's owner may attach this
//! function to a table (EXECUTE is revoked from PUBLIC). It resolves no name through
//! search_path.

mod batch;
mod cache;
mod json;
mod kept;
mod log;
mod nested;
mod pg_versions;
mod rules;
mod table;
mod tuple_check;
mod values;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::guc;
use log::{Action, Entry, Log};
use rules::Rules;
use values::{Rows, Value};

/// The trigger, FOR EACH STATEMENT with its transition tables. Arguments: the table's
/// Salesforce object, `{column: why}` of the columns the operation may not set (insert)
/// or change (update), `{column: [allowed values]}` of restricted picklists, then the
/// columns sent (those that map to fields; any other is left out of an update's
/// `values`, and changing only others is no change).
#[pg_trigger]
fn _capture_writes<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgTriggerError> {
    if guc::APPLYING.get() {
        return Ok(None);
    }
    // SAFETY: Postgres called this as a trigger, so the trigger data, its relation and
    // transition tables are valid for the duration of the call.
    unsafe { capture_statement(trigger.trigger_data()) };
    Ok(None)
}

/// BEFORE STATEMENT (INSERT, UPDATE, DELETE) on a synced table: marks the statement as
/// started, so that what statements its triggers run is logged after its own entries
/// (nested.rs).
#[pg_trigger]
fn _capture_statement_starts<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgTriggerError> {
    if guc::APPLYING.get() {
        return Ok(None);
    }
    // SAFETY: Postgres called this as a trigger, so its trigger data is valid
    unsafe {
        let td = trigger.trigger_data();
        if td.tg_event & pg_sys::TRIGGER_EVENT_ROW != 0
            || td.tg_event & pg_sys::TRIGGER_EVENT_BEFORE == 0
        {
            error!("sequin_sf._capture_statement_starts() must be a BEFORE ... FOR EACH STATEMENT trigger");
        }
        nested::statement_starts(action_of(td));
    }
    Ok(None)
}

/// The operation a statement trigger fired for.
unsafe fn action_of(td: &pg_sys::TriggerData) -> Action {
    match td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_INSERT => Action::Insert,
        pg_sys::TRIGGER_EVENT_UPDATE => Action::Update,
        pg_sys::TRIGGER_EVENT_DELETE => Action::Delete,
        _ => error!("sequin_sf's capture triggers fire for INSERT, UPDATE and DELETE only"),
    }
}

unsafe fn capture_statement(td: &pg_sys::TriggerData) {
    if td.tg_event & pg_sys::TRIGGER_EVENT_ROW != 0 {
        error!("sequin_sf._capture_writes() must be a FOR EACH STATEMENT trigger");
    }
    let action = action_of(td);
    let ending = nested::statement_ends(action);
    capture_rows(td, action, &ending);
    nested::statement_captured(ending);
}

unsafe fn capture_rows(td: &pg_sys::TriggerData, action: Action, ending: &nested::Ending) {
    let rules = cache::rules(td);
    let changed = if td.tg_newtable.is_null() {
        td.tg_oldtable
    } else {
        td.tg_newtable
    };
    let rows = if changed.is_null() {
        0
    } else {
        pg_sys::tuplestore_tuple_count(changed)
    };
    if rows == 0 && !changed.is_null() {
        return; // a statement that changed no row: nothing to log, nothing to open
    }
    let mut log = Log::open(td.tg_relation, &rules.object, action, rows, ending);
    match action {
        Action::Insert => capture_inserts(td, &rules, &mut log),
        Action::Update => capture_updates(td, &rules, &mut log),
        Action::Delete => capture_deletes(td, &rules, &mut log),
    }
    log.close();
}

/// An insert's values are read from its row when the writer picks the entry up: turning
/// every inserted row into jsonb here would double the cost of a bulk INSERT.
unsafe fn capture_inserts(td: &pg_sys::TriggerData, rules: &Rules, log: &mut Log) {
    let rows = Rows::new(td.tg_newtable, rules.desc(td.tg_relation));
    while rows.next() {
        // the checks' own allocations (values read as text) go with the row
        if log.in_row_memory(|| rules.insert_refused(&rows)) {
            let set = rules.set_columns(&rows);
            let values = log.in_row_memory(|| {
                rules
                    .json
                    .object(|i| rows.attr(i), |i| set.binary_search(&i).is_ok())
            });
            rules.refuse(td.tg_relation, "INSERT", values);
        }
        log.append(&Entry {
            row_id: rows.attr(rules.row_id),
            api_id: None,
            previous: None,
            values: None,
        });
    }
}

/// An update's OLD and NEW rows sit at the same position of the two transition tables
/// (Postgres adds both as it updates each row); the row id is checked all the same.
unsafe fn capture_updates(td: &pg_sys::TriggerData, rules: &Rules, log: &mut Log) {
    let desc = rules.desc(td.tg_relation);
    let old = Rows::new(td.tg_oldtable, desc);
    let new = Rows::new(td.tg_newtable, desc);
    while old.next() {
        if !new.next() {
            error!("sequin_sf: the OLD and NEW transition tables of an UPDATE do not pair up");
        }
        if old.attr(rules.row_id) != new.attr(rules.row_id) {
            row_id_changed(
                td.tg_relation,
                old.attr(rules.row_id),
                new.attr(rules.row_id),
            );
        }
        // fetched and decompressed values compared go with the row
        let changed = log.in_row_memory(|| rules.changed_columns(&old, &new));
        if changed.is_empty() {
            log.forget_row();
            continue;
        }
        let values = log.in_row_memory(|| {
            rules
                .json
                .object(|i| new.attr(i), |i| changed.binary_search(&i).is_ok())
        });
        if log.in_row_memory(|| rules.update_refused(&new, &changed)) {
            rules.refuse(td.tg_relation, "UPDATE", values);
        }
        let previous = log.previous(&old, &rules.json);
        log.append(&Entry {
            row_id: new.attr(rules.row_id),
            api_id: rules.id.map(|i| old.attr(i)),
            previous: Some(previous),
            values: Some(values),
        });
    }
}

/// An UPDATE (or a BEFORE trigger) gave a row another `_row_id`: the key that ties the
/// row to its write-log entries and, through them, to its Salesforce record.
unsafe fn row_id_changed(rel: pg_sys::Relation, old: Value, new: Value) -> ! {
    let table = std::ffi::CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr());
    let shown = |v: Value| match v.1 {
        true => "NULL".to_string(),
        false => i64::from_datum(v.0, false).map_or("?".into(), |n| n.to_string()),
    };
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!(
            "an UPDATE of {} may not change _row_id (from {} to {})",
            table.to_string_lossy(),
            shown(old),
            shown(new)
        ),
        "_row_id is the row's local key: sequin_sf ties the row's write-log entries and its Salesforce record to it. Leave it out of the UPDATE (SET _row_id = DEFAULT gives a new one), and out of BEFORE triggers."
    );
}

unsafe fn capture_deletes(td: &pg_sys::TriggerData, rules: &Rules, log: &mut Log) {
    let rows = Rows::new(td.tg_oldtable, rules.desc(td.tg_relation));
    while rows.next() {
        let previous = log.previous(&rows, &rules.json);
        log.append(&Entry {
            row_id: rows.attr(rules.row_id),
            api_id: rules.id.map(|i| rows.attr(i)),
            previous: Some(previous),
            values: None,
        });
    }
}
