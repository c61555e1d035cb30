//! Pages into tables: each `apply_*` function writes one page (REST, Bulk, poll, deleted
//! Ids, a batch of change events, calculated values) and the progress that goes with it
//! (`progress`) in the caller's transaction, then tells listeners (NOTIFY). Every one
//! marks the transaction as applying first, so capture ignores it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sync_core::naming::quote_ident as qi;
use sync_core::sql::{ApplyTarget, InsertMode};
use sync_core::ColumnSpec;

use super::progress::{self, Resume};
use crate::db::{DbError, Row, Session};

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The sync's own changes to synced tables are not captured as the application's.
pub(super) fn mark_applying(s: &mut dyn Session) -> Result<(), DbError> {
    s.execute("SELECT set_config('sequin_sf.applying', 'on', true)", &[])
}

/// Counts of one applied page.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub deleted: i64,
    pub events: i64,
}

/// Column `i` of a statement's single result row, as a count.
fn count(rows: &[Row], i: usize) -> i64 {
    rows.first().and_then(|r| r.i64(i)).unwrap_or(0)
}

/// Applies records given as the text of a JSON array (Salesforce's own text for REST
/// backfill pages, so no record is built or re-serialized in the engine).
fn apply_records(
    s: &mut dyn Session,
    target: &ApplyTarget,
    records: &str,
) -> Result<Applied, DbError> {
    let rows = s.query(&sync_core::sql::apply_page(target), &[records.into()])?;
    Ok(Applied {
        deleted: count(&rows, 1),
        events: count(&rows, 2),
    })
}

/// A page rewritten for `COPY` (`sync_core::copy_rows`), in a page file.
pub struct CopyFile<'a> {
    pub path: &'a std::path::Path,
    /// The table columns the file holds, in order.
    pub columns: &'a [String],
}

/// Puts a rewritten page into the table: straight in with `COPY` while its rows are new
/// to the table (`InsertMode::New`), else copied into a stage and upserted from there.
fn copy_into_table(
    s: &mut dyn Session,
    target: &ApplyTarget,
    file: &CopyFile,
    mode: InsertMode,
) -> Result<(), DbError> {
    const STAGE: &str = "_sequin_sf_stage";
    match mode {
        InsertMode::New => s.copy_from_file(&target.full_table(), file.columns, file.path),
        InsertMode::Upsert => {
            s.execute(
                &sync_core::sql::create_stage(target, STAGE, file.columns),
                &[],
            )?;
            s.copy_from_file(&qi(STAGE), file.columns, file.path)?;
            s.execute(
                &sync_core::sql::upsert_from_stage(target, STAGE, file.columns),
                &[],
            )?;
            s.execute(&format!("DROP TABLE {}", qi(STAGE)), &[])
        }
    }
}

/// Tells listeners of `sequin_sf_<sync>` that a collection has new events.
fn notify(s: &mut dyn Session, sync: &str, collection: &str, events: i64) -> Result<(), DbError> {
    if events > 0 {
        let payload = serde_json::json!({"collection": collection, "events": events}).to_string();
        s.execute(
            "SELECT pg_notify($1, $2)",
            &[(&format!("sequin_sf_{sync}")).into(), (&payload).into()],
        )?;
    }
    Ok(())
}

/// Applies a page of calculated values (`sync_core::sql::refresh_page`) and moves the
/// refresh on: to `next_after` (an Id), or, with None, ends the round.
pub fn apply_refresh_page(
    s: &mut dyn Session,
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    (fields, records): (&[ColumnSpec], &str),
    next_after: Option<&str>,
) -> Result<i64, DbError> {
    mark_applying(s)?;
    let rows = s.query(
        &sync_core::sql::refresh_page(target, fields),
        &[records.into()],
    )?;
    notify(s, sync, object, count(&rows, 1))?;
    progress::move_refresh_on(s, sync, object, next_after)?;
    Ok(count(&rows, 0))
}

/// Applies one Bulk results page, chunk by chunk (each chunk a statement of its own,
/// so a large page never sits whole in memory), and moves the persisted locator past it
/// (None: it was the last page). Returns the rows applied.
pub fn apply_bulk_page(
    s: &mut dyn Session,
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    chunks: &mut dyn FnMut() -> Result<Option<Value>, DbError>,
    next_locator: Option<&str>,
) -> Result<i64, DbError> {
    mark_applying(s)?;
    let (mut rows, mut events) = (0i64, 0i64);
    while let Some(chunk) = chunks()? {
        rows += chunk.as_array().map_or(0, |a| a.len() as i64);
        events += apply_records(s, target, &chunk.to_string())?.events;
    }
    let done = next_locator.is_none();
    progress::record_backfill(s, sync, object, Resume::Locator(next_locator), rows, done)?;
    notify(s, sync, object, events)?;
    Ok(rows)
}

/// Applies one Bulk results page (`rows`: the records Salesforce counted in it) and
/// moves the persisted locator past it (None: it was the last page), in one
/// transaction. No events: used when backfill events are off.
pub fn apply_bulk_csv(
    s: &mut dyn Session,
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    (file, rows, next_locator): (&CopyFile, i64, Option<&str>),
    mode: InsertMode,
) -> Result<(), DbError> {
    mark_applying(s)?;
    copy_into_table(s, target, file, mode)?;
    let resume = Resume::Locator(next_locator);
    progress::record_backfill(s, sync, object, resume, rows, next_locator.is_none())
}

/// A REST backfill page: the records' JSON text as Salesforce sent it, how many there
/// are, the last one's Id (the keyset cursor) and whether it ends the backfill; and,
/// while the backfill's rows are new to the table, the page rewritten for `COPY`.
pub struct RestPage<'a> {
    pub records: &'a str,
    pub count: i64,
    pub last_id: Option<&'a str>,
    pub done: bool,
    pub copy: Option<CopyFile<'a>>,
}

/// Applies one backfill page and moves the persisted cursor past it, atomically: a
/// restart resumes after the last stored Id, never re-reading or skipping a page.
pub fn apply_backfill_page(
    s: &mut dyn Session,
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    page: &RestPage,
    mode: InsertMode,
) -> Result<Applied, DbError> {
    mark_applying(s)?;
    let applied = match (mode, &page.copy) {
        (InsertMode::New, Some(file)) => {
            copy_into_table(s, target, file, mode)?;
            Applied::default()
        }
        _ => apply_records(s, target, page.records)?,
    };
    let resume = Resume::AfterId(page.last_id);
    progress::record_backfill(s, sync, object, resume, page.count, page.done)?;
    notify(s, sync, object, applied.events)?;
    Ok(applied)
}

/// Applies a page of a live poll. `cursor` is where the next poll starts (before the
/// overlap); `caught_up` the moment up to which every committed change is now stored.
pub fn apply_poll_page(
    s: &mut dyn Session,
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    records: Value,
    (cursor, caught_up): (DateTime<Utc>, Option<DateTime<Utc>>),
) -> Result<Applied, DbError> {
    mark_applying(s)?;
    let applied = apply_records(s, target, &records.to_string())?;
    progress::record_poll(s, sync, object, cursor, caught_up)?;
    notify(s, sync, object, applied.events)?;
    Ok(applied)
}

/// Removes records Salesforce reports deleted (hard deletes and purges included).
pub fn apply_deleted(
    s: &mut dyn Session,
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    ids: Vec<String>,
    window_end: DateTime<Utc>,
) -> Result<Applied, DbError> {
    mark_applying(s)?;
    let mut applied = Applied::default();
    if !ids.is_empty() {
        let rows = s.query(&sync_core::sql::delete_ids(target), &[(&ids).into()])?;
        applied.deleted = count(&rows, 0);
        applied.events = count(&rows, 1);
    }
    progress::record_deleted_check(s, sync, object, window_end)?;
    notify(s, sync, object, applied.events)?;
    Ok(applied)
}

/// One change of a change event batch, ready to apply.
pub enum Change {
    /// `sync_core::sql::merge_change` with its parameters.
    Merge {
        object: String,
        sql: String,
        record: String,
        time: DateTime<Utc>,
        create: bool,
        own: bool,
    },
    /// `sync_core::sql::delete_ids`.
    Delete {
        object: String,
        sql: String,
        ids: Vec<String>,
    },
}

/// Applies a batch of change events in stream order, stores the replay id to resume
/// after (in this same transaction: a crash resumes exactly after what was applied),
/// and marks the collections on events caught up to `caught_up` (every change committed
/// until then is stored; None moves nothing). Returns the objects that got an update
/// for a row the table does not have (to be read again by a poll).
pub fn apply_changes(
    s: &mut dyn Session,
    sync: &str,
    changes: &[Change],
    replay_id: Option<&[u8]>,
    (on_events, caught_up): (&[String], Option<DateTime<Utc>>),
) -> Result<Vec<String>, DbError> {
    mark_applying(s)?;
    let mut events: std::collections::BTreeMap<&str, i64> = Default::default();
    let mut missing = Vec::new();
    for change in changes {
        match change {
            Change::Merge {
                object,
                sql,
                record,
                time,
                create,
                own,
            } => {
                let rows = s.query(
                    sql,
                    &[
                        record.as_str().into(),
                        (&rfc3339(*time)).into(),
                        (*create).into(),
                        (*own).into(),
                    ],
                )?;
                *events.entry(object).or_default() += count(&rows, 2);
                if count(&rows, 0) == 0 && !*create {
                    missing.push(object.clone());
                }
            }
            Change::Delete { object, sql, ids } => {
                let rows = s.query(sql, &[ids.into()])?;
                *events.entry(object).or_default() += count(&rows, 1);
            }
        }
    }
    progress::record_events(s, sync, replay_id, on_events, caught_up)?;
    for (object, n) in events {
        notify(s, sync, object, n)?;
    }
    Ok(missing)
}

/// Deletes events older than the retention from a sync's `_sync_events`.
pub fn prune_events(s: &mut dyn Session, schema: &str, retention_secs: f64) -> Result<(), DbError> {
    s.execute(
        &format!(
            "DELETE FROM {}._sync_events WHERE inserted_at < now() - make_interval(secs => $1)",
            qi(schema)
        ),
        &[retention_secs.into()],
    )
}
