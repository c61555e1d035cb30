//! Everything the read path writes to Postgres, through SPI. Each function runs inside the
//! caller's transaction; those touching synced tables first mark the transaction as
//! `sequin_sf.applying` so the write path's capture triggers ignore it.

use chrono::{DateTime, Utc};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::Value;
use sync_core::naming::quote_ident as qi;
use sync_core::progress::BackfillMode;
use sync_core::sql::{ApplyTarget, InsertMode};
use sync_core::{ColumnSpec, PgType};

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn mark_applying(c: &mut SpiClient) -> SpiResult<()> {
    c.update(
        "SELECT set_config('sequin_sf.applying', 'on', true)",
        None,
        &[],
    )?;
    Ok(())
}

/// Counts of one applied page.
#[derive(Debug, Default, Clone, Copy)]
#[allow(dead_code)]
pub struct Applied {
    pub upserted: i64,
    pub deleted: i64,
    pub events: i64,
}

/// Applies records given as the text of a JSON array (Salesforce's own text for REST
/// backfill pages, so no record is built or re-serialized in the worker).
fn apply_records(c: &mut SpiClient, target: &ApplyTarget, records: &str) -> SpiResult<Applied> {
    let sql = sync_core::sql::apply_page(target);
    let t = c.update(&sql, None, &[records.into()])?;
    let r = t.first();
    Ok(Applied {
        upserted: r.get(1)?.unwrap_or(0),
        deleted: r.get(2)?.unwrap_or(0),
        events: r.get(3)?.unwrap_or(0),
    })
}

/// A page rewritten for `COPY` (`sync_core::copy_rows`), in a file of the data directory.
pub struct CopyFile<'a> {
    pub path: &'a std::path::Path,
    /// The table columns the file holds, in order.
    pub columns: &'a [String],
}

/// Puts a rewritten page into the table: straight in with `COPY` while its rows are new
/// to the table (`InsertMode::New`), else copied into a stage and upserted from there.
fn copy_into_table(
    c: &mut SpiClient,
    target: &ApplyTarget,
    file: &CopyFile,
    mode: InsertMode,
) -> SpiResult<()> {
    const STAGE: &str = "_sequin_sf_stage";
    let path = file.path.to_string_lossy();
    let copy_into = |table: &str| sync_core::sql::copy_page(table, file.columns, &path);
    match mode {
        InsertMode::New => {
            c.update(&copy_into(&target.full_table()), None, &[])?;
        }
        InsertMode::Upsert => {
            let stage = sync_core::sql::create_stage(target, STAGE, file.columns);
            c.update(&stage, None, &[])?;
            c.update(&copy_into(&qi(STAGE)), None, &[])?;
            let upsert = sync_core::sql::upsert_from_stage(target, STAGE, file.columns);
            c.update(&upsert, None, &[])?;
            c.update(&format!("DROP TABLE {}", qi(STAGE)), None, &[])?;
        }
    }
    Ok(())
}

fn notify(c: &mut SpiClient, sync: &str, collection: &str, applied: Applied) -> SpiResult<()> {
    if applied.events > 0 {
        let payload =
            serde_json::json!({"collection": collection, "events": applied.events}).to_string();
        c.update(
            "SELECT pg_notify($1, $2)",
            None,
            &[format!("sequin_sf_{sync}").into(), payload.into()],
        )?;
    }
    Ok(())
}

/// What Salesforce lets the API do with an object, from its describe.
pub struct ObjectAccess {
    pub createable: bool,
    pub updateable: bool,
    pub deletable: bool,
    pub replicateable: bool,
}

impl From<&salesforce::SObjectDescribe> for ObjectAccess {
    fn from(d: &salesforce::SObjectDescribe) -> Self {
        ObjectAccess {
            createable: d.createable,
            updateable: d.updateable,
            deletable: d.deletable,
            replicateable: d.replicateable,
        }
    }
}

/// Records a collection's object access; its capture follows when it changed.
pub fn set_object_access(sync: &str, object: &str, a: &ObjectAccess) -> SpiResult<()> {
    Spi::run_with_args(
        "SELECT sequin_sf._set_object_access($1, $2, $3, $4, $5, $6)",
        &[
            sync.into(),
            object.into(),
            a.createable.into(),
            a.updateable.into(),
            a.deletable.into(),
            a.replicateable.into(),
        ],
    )
}

/// Creates the data table of a collection and records its columns, the stamp field
/// and the starting points of the live cursors (the backfill's start, so changes made
/// during the backfill are re-read by the first polls).
pub fn create_collection_table(
    sync: &str,
    schema: &str,
    object: &str,
    table: &str,
    columns: &[ColumnSpec],
    stamp_field: Option<&str>,
    described_at: DateTime<Utc>,
) -> SpiResult<()> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        // create_sync refused a name in use; someone may have taken it since
        c.update(
            "SELECT sequin_sf._refuse_taken_name($1, $2)",
            None,
            &[schema.into(), table.into()],
        )?;
        for stmt in sync_core::sql::create_table(schema, table, columns) {
            c.update(&stmt, None, &[])?;
        }
        insert_columns(c, sync, object, columns, 0)?;
        c.update(
            "UPDATE sequin_sf._collections SET stamp_field = $3, backfill_started_at = now(),
                    poll_cursor = now(), deleted_cursor = now(), describe_modified = $4,
                    rows_done = 0, backfill_cursor = NULL, backfill_mode = 'rest',
                    last_error = NULL, last_error_at = NULL,
                    table_oid = to_regclass($5)::oid
             WHERE sync_name = $1 AND object_name = $2",
            None,
            &[
                sync.into(),
                object.into(),
                stamp_field.into(),
                rfc3339(described_at).into(),
                format!("{}.{}", qi(schema), qi(table)).into(),
            ],
        )?;
        install_capture(c, schema, table)
    })
}

fn insert_columns(
    c: &mut SpiClient,
    sync: &str,
    object: &str,
    columns: &[ColumnSpec],
    first_position: i32,
) -> SpiResult<()> {
    for (i, col) in columns.iter().enumerate() {
        c.update(
            "INSERT INTO sequin_sf._columns (sync_name, object_name, field_name, column_name, sf_type,
                 pg_type, compound_of, createable, updateable, calculated, nillable,
                 restricted_picklist, picklist_values, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (sync_name, object_name, field_name) DO UPDATE SET active = true, removed_at = NULL",
            None,
            &[
                sync.into(),
                object.into(),
                col.field.as_str().into(),
                col.column.as_str().into(),
                col.sf_type.as_str().into(),
                col.pg_type.as_sql().into(),
                col.compound_of.as_deref().into(),
                col.createable.into(),
                col.updateable.into(),
                col.calculated.into(),
                col.nillable.into(),
                col.restricted_picklist.into(),
                col.picklist_values.clone().into(),
                (first_position + i as i32).into(),
            ],
        )?;
    }
    Ok(())
}

/// Lets the write path attach its capture triggers (sql/write_capture.sql), when loaded.
fn install_capture(c: &mut SpiClient, schema: &str, table: &str) -> SpiResult<()> {
    let present = c
        .select(
            "SELECT to_regprocedure('sequin_sf._install_capture(text,text)') IS NOT NULL",
            None,
            &[],
        )?
        .first()
        .get::<bool>(1)?
        .unwrap_or(false);
    if present {
        c.update(
            "SELECT sequin_sf._install_capture($1, $2)",
            None,
            &[schema.into(), table.into()],
        )?;
    }
    Ok(())
}

/// Names one collection's table.
pub struct TableRef<'a> {
    pub sync: &'a str,
    pub schema: &'a str,
    pub object: &'a str,
    pub table: &'a str,
}

/// A known field as the new describe has it: its column's rules and type, whether the
/// column is filled, and what the operator should know (a type change not followed).
pub struct ColumnRefresh {
    pub spec: ColumnSpec,
    pub active: bool,
    pub note: Option<String>,
}

/// Converts a column to the type its field now maps to (`sync_core::mapping::follow_type`
/// said it loses nothing). Fails when something of the user's depends on the column
/// (a view), in which case the caller keeps the column as it is.
pub fn alter_column_type(tref: &TableRef, col: &ColumnSpec, to: PgType) -> SpiResult<()> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        c.update(
            &sync_core::sql::alter_column_type(tref.schema, tref.table, col, to),
            None,
            &[],
        )?;
        Ok(())
    })
}

/// Applies a describe that changed: new columns, fields gone, and the write rules of
/// the fields that remain (or came back). Capture follows any of them. Returns how many
/// known fields changed.
pub fn apply_drift(
    tref: &TableRef,
    added: &[ColumnSpec],
    removed_fields: &[String],
    refreshed: &[ColumnRefresh],
    first_position: i32,
    described_at: DateTime<Utc>,
) -> SpiResult<usize> {
    let TableRef {
        sync,
        schema,
        object,
        table,
    } = *tref;
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        for col in added {
            c.update(&sync_core::sql::add_column(schema, table, col), None, &[])?;
        }
        insert_columns(c, sync, object, added, first_position)?;
        if !removed_fields.is_empty() {
            c.update(
                "UPDATE sequin_sf._columns SET active = false, removed_at = now()
                 WHERE sync_name = $1 AND object_name = $2 AND field_name = ANY($3) AND active",
                None,
                &[sync.into(), object.into(), removed_fields.to_vec().into()],
            )?;
        }
        let mut changed = 0;
        for col in refreshed {
            changed += refresh_column(c, sync, object, col)?;
        }
        c.update(
            "UPDATE sequin_sf._collections SET describe_modified = $3 WHERE sync_name = $1 AND object_name = $2",
            None,
            &[sync.into(), object.into(), rfc3339(described_at).into()],
        )?;
        if !added.is_empty() || !removed_fields.is_empty() || changed > 0 {
            install_capture(c, schema, table)?;
        }
        Ok(changed)
    })
}

/// A known field's write rules (a picklist that gained a value, a field made read-only),
/// its type, and its return after it had gone (field-level security lifted); 1 when it
/// changed.
fn refresh_column(
    c: &mut SpiClient,
    sync: &str,
    object: &str,
    r: &ColumnRefresh,
) -> SpiResult<usize> {
    let col = &r.spec;
    let t = c.update(
        "UPDATE sequin_sf._columns SET createable = $4, updateable = $5, calculated = $6,
                nillable = $7, restricted_picklist = $8, picklist_values = $9,
                sf_type = $10, pg_type = $11, active = $12, note = $13,
                removed_at = CASE WHEN $12 THEN NULL ELSE coalesce(removed_at, now()) END
          WHERE sync_name = $1 AND object_name = $2 AND field_name = $3
            AND (createable, updateable, calculated, nillable, restricted_picklist,
                 picklist_values, sf_type, pg_type, active, note)
                IS DISTINCT FROM ($4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING 1",
        None,
        &[
            sync.into(),
            object.into(),
            col.field.as_str().into(),
            col.createable.into(),
            col.updateable.into(),
            col.calculated.into(),
            col.nillable.into(),
            col.restricted_picklist.into(),
            col.picklist_values.clone().into(),
            col.sf_type.as_str().into(),
            col.pg_type.as_sql().into(),
            r.active.into(),
            r.note.as_deref().into(),
        ],
    )?;
    Ok(t.len())
}

/// Applies a page of calculated values (`sync_core::sql::refresh_page`) and moves the
/// refresh on: to `next_after` (an Id), or, with None, ends the round.
pub fn apply_refresh_page(
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    fields: &[ColumnSpec],
    records: &str,
    next_after: Option<&str>,
) -> SpiResult<i64> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        let t = c.update(
            &sync_core::sql::refresh_page(target, fields),
            None,
            &[records.into()],
        )?;
        let r = t.first();
        let applied = Applied {
            upserted: r.get(1)?.unwrap_or(0),
            deleted: 0,
            events: r.get(2)?.unwrap_or(0),
        };
        notify(c, sync, object, applied)?;
        move_refresh_on(c, sync, object, next_after)?;
        Ok(applied.upserted)
    })
}

/// Ends the calculated-field refresh in progress with nothing to read (the collection
/// has no calculated field).
pub fn end_refresh_round(sync: &str, object: &str) -> SpiResult<()> {
    Spi::connect_mut(|c| move_refresh_on(c, sync, object, None))
}

/// The refresh goes on after `next_after` (an Id), or, with None, its round ends now.
fn move_refresh_on(
    c: &mut SpiClient,
    sync: &str,
    object: &str,
    next_after: Option<&str>,
) -> SpiResult<()> {
    c.update(
        "UPDATE sequin_sf._collections
            SET calculated_cursor = $3,
                calculated_refreshed_at = CASE WHEN $3 IS NULL THEN now()
                                               ELSE calculated_refreshed_at END
          WHERE sync_name = $1 AND object_name = $2",
        None,
        &[sync.into(), object.into(), next_after.into()],
    )?;
    Ok(())
}

/// Records the COUNT() of a collection and the backfill mode chosen from it.
pub fn set_rows_total(sync: &str, object: &str, total: i64, mode: BackfillMode) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._collections SET rows_total = $3, backfill_mode = $4,
                backfill_note = NULL
         WHERE sync_name = $1 AND object_name = $2",
        &[
            sync.into(),
            object.into(),
            total.into(),
            mode.as_str().into(),
        ],
    )
}

/// Stores a REST backfill's cursor before its first page (the Id ranges it reads).
pub fn set_backfill_cursor(sync: &str, object: &str, cursor: &str) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._collections SET backfill_cursor = $3
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), cursor.into()],
    )
}

/// Remembers the Bulk query job of a backfill (NULL forgets a failed one).
pub fn set_bulk_job(sync: &str, object: &str, job_id: Option<&str>) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._collections SET bulk_job_id = $3, bulk_locator = NULL, rows_done = 0
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), job_id.into()],
    )
}

/// Switches a backfill to the other path, from the start: REST pages after a Bulk job
/// failed, a Bulk job after REST queries timed out (rows already stored are applied
/// again, which changes nothing).
pub fn switch_backfill(sync: &str, object: &str, mode: BackfillMode) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._collections SET backfill_mode = $3, bulk_job_id = NULL,
                bulk_locator = NULL, backfill_cursor = NULL
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), mode.as_str().into()],
    )
}

/// Where an interrupted backfill resumes: after the last stored Id (REST pages) or at
/// the next results locator of its Bulk job (None: no page left).
enum Resume<'a> {
    AfterId(Option<&'a str>),
    Locator(Option<&'a str>),
}

/// Counts `rows` more stored and moves the resume point, in the page's transaction;
/// `done` turns the collection live.
fn record_progress(
    c: &mut SpiClient,
    sync: &str,
    object: &str,
    resume: Resume,
    rows: i64,
    done: bool,
) -> SpiResult<()> {
    let (set_resume, at) = match resume {
        // a REST page with no records leaves the cursor where it was
        Resume::AfterId(id) => ("backfill_cursor = coalesce($3, backfill_cursor)", id),
        Resume::Locator(locator) => ("bulk_locator = $3", locator),
    };
    c.update(
        &format!(
            "UPDATE sequin_sf._collections SET
                 {set_resume},
                 rows_done = rows_done + $4,
                 rows_total = CASE WHEN $5 THEN greatest(rows_total, rows_done + $4) ELSE rows_total END,
                 state = CASE WHEN $5 THEN 'live' ELSE state END,
                 backfill_finished_at = CASE WHEN $5 THEN now() ELSE NULL END,
                 caught_up_at = CASE WHEN $5 THEN backfill_started_at ELSE caught_up_at END,
                 last_error = NULL, last_error_at = NULL
             WHERE sync_name = $1 AND object_name = $2"
        ),
        None,
        &[sync.into(), object.into(), at.into(), rows.into(), done.into()],
    )?;
    Ok(())
}

/// Applies one Bulk results page (in chunks, one transaction) and moves the persisted
/// locator past it; `done` when it was the last page.
pub fn apply_bulk_page(
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    chunks: &mut dyn FnMut() -> Option<Value>,
    next_locator: Option<&str>,
) -> SpiResult<i64> {
    let mut rows = 0i64;
    let mut total = Applied::default();
    Spi::connect_mut(mark_applying)?;
    // One SPI connection per chunk: its memory (the jsonb argument, the result) is
    // freed when it closes, so a large page never accumulates in the transaction.
    while let Some(chunk) = chunks() {
        rows += chunk.as_array().map_or(0, |a| a.len() as i64);
        let applied = Spi::connect_mut(|c| apply_records(c, target, &chunk.to_string()))?;
        total.events += applied.events;
    }
    Spi::connect_mut(|c| {
        let done = next_locator.is_none();
        record_progress(c, sync, object, Resume::Locator(next_locator), rows, done)?;
        notify(c, sync, object, total)?;
        Ok(rows)
    })
}

/// Applies one Bulk results page (`rows`: the records Salesforce counted in it) and
/// moves the persisted locator past it (None: it was the last page), in one
/// transaction. No events: used when backfill events are off.
pub fn apply_bulk_csv(
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    (file, rows, next_locator): (&CopyFile, i64, Option<&str>),
    mode: InsertMode,
) -> SpiResult<()> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        copy_into_table(c, target, file, mode)?;
        let resume = Resume::Locator(next_locator);
        record_progress(c, sync, object, resume, rows, next_locator.is_none())?;
        Ok(())
    })
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
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    page: &RestPage,
    mode: InsertMode,
) -> SpiResult<Applied> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        let applied = match (mode, &page.copy) {
            (InsertMode::New, Some(file)) => {
                copy_into_table(c, target, file, mode)?;
                Applied {
                    upserted: page.count,
                    ..Applied::default()
                }
            }
            _ => apply_records(c, target, page.records)?,
        };
        let resume = Resume::AfterId(page.last_id);
        record_progress(c, sync, object, resume, page.count, page.done)?;
        notify(c, sync, object, applied)?;
        Ok(applied)
    })
}

/// Applies a page of a live poll. `cursor` is where the next poll starts (before the
/// overlap); `caught_up` the moment up to which every committed change is now stored.
pub fn apply_poll_page(
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    records: Value,
    cursor: DateTime<Utc>,
    caught_up: Option<DateTime<Utc>>,
) -> SpiResult<Applied> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        let applied = apply_records(c, target, &records.to_string())?;
        c.update(
            "UPDATE sequin_sf._collections SET poll_cursor = greatest(poll_cursor, $3::timestamptz),
                 last_poll_at = now(),
                 caught_up_at = greatest(caught_up_at, $4::timestamptz),
                 last_error = NULL, last_error_at = NULL
             WHERE sync_name = $1 AND object_name = $2",
            None,
            &[
                sync.into(),
                object.into(),
                rfc3339(cursor).into(),
                caught_up.map(rfc3339).into(),
            ],
        )?;
        notify(c, sync, object, applied)?;
        Ok(applied)
    })
}

/// Records a poll that brought nothing new.
pub fn mark_polled(
    sync: &str,
    object: &str,
    cursor: DateTime<Utc>,
    caught_up: Option<DateTime<Utc>>,
) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._collections SET poll_cursor = greatest(poll_cursor, $3::timestamptz),
             last_poll_at = now(),
             caught_up_at = greatest(caught_up_at, $4::timestamptz),
             last_error = NULL, last_error_at = NULL
         WHERE sync_name = $1 AND object_name = $2",
        &[
            sync.into(),
            object.into(),
            rfc3339(cursor).into(),
            caught_up.map(rfc3339).into(),
        ],
    )
}

/// Removes records Salesforce reports deleted (hard deletes and purges included).
pub fn apply_deleted(
    sync: &str,
    target: &ApplyTarget,
    object: &str,
    ids: Vec<String>,
    window_end: DateTime<Utc>,
) -> SpiResult<Applied> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
        let mut applied = Applied::default();
        if !ids.is_empty() {
            let t = c.update(&sync_core::sql::delete_ids(target), None, &[ids.into()])?;
            let r = t.first();
            applied.deleted = r.get(1)?.unwrap_or(0);
            applied.events = r.get(2)?.unwrap_or(0);
        }
        c.update(
            "UPDATE sequin_sf._collections SET deleted_cursor = $3::timestamptz
             WHERE sync_name = $1 AND object_name = $2",
            None,
            &[sync.into(), object.into(), rfc3339(window_end).into()],
        )?;
        notify(c, sync, object, applied)?;
        Ok(applied)
    })
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
    sync: &str,
    changes: &[Change],
    replay_id: Option<&[u8]>,
    on_events: &[String],
    caught_up: Option<DateTime<Utc>>,
) -> SpiResult<Vec<String>> {
    Spi::connect_mut(|c| {
        mark_applying(c)?;
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
                    let t = c.update(
                        sql,
                        None,
                        &[
                            record.as_str().into(),
                            rfc3339(*time).into(),
                            (*create).into(),
                            (*own).into(),
                        ],
                    )?;
                    let r = t.first();
                    let found: i64 = r.get(1)?.unwrap_or(0);
                    *events.entry(object).or_default() += r.get::<i64>(3)?.unwrap_or(0);
                    if found == 0 && !*create {
                        missing.push(object.clone());
                    }
                }
                Change::Delete { object, sql, ids } => {
                    let t = c.update(sql, None, &[ids.clone().into()])?;
                    *events.entry(object).or_default() += t.first().get::<i64>(2)?.unwrap_or(0);
                }
            }
        }
        if let Some(id) = replay_id {
            c.update(
                "UPDATE sequin_sf._syncs SET replay_id = $2 WHERE name = $1",
                None,
                &[sync.into(), id.to_vec().into()],
            )?;
        }
        if let Some(t) = caught_up {
            c.update(
                "UPDATE sequin_sf._collections
                    SET caught_up_at = greatest(caught_up_at, $3::timestamptz)
                  WHERE sync_name = $1 AND object_name = ANY($2)",
                None,
                &[sync.into(), on_events.to_vec().into(), rfc3339(t).into()],
            )?;
        }
        for (object, n) in events {
            notify(
                c,
                sync,
                object,
                Applied {
                    events: n,
                    ..Applied::default()
                },
            )?;
        }
        Ok(missing)
    })
}

/// Forgets the stored replay id (the server no longer knows it).
pub fn forget_replay_id(sync: &str) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._syncs SET replay_id = NULL WHERE name = $1",
        &[sync.into()],
    )
}

/// What the change event stream is doing, for `sequin_sf.syncs.events_status`.
pub fn set_events_status(sync: &str, status: &str) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._syncs SET events_status = $2
         WHERE name = $1 AND events_status IS DISTINCT FROM $2",
        &[sync.into(), status.into()],
    )
}

/// How a collection's live changes arrive, and why (`sync_status.change_source`).
pub fn set_change_source(sync: &str, object: &str, on_events: bool, note: &str) -> SpiResult<()> {
    Spi::run_with_args(
        "UPDATE sequin_sf._collections
            SET change_source = CASE WHEN $3 THEN 'events' ELSE 'polling' END,
                change_source_note = $4
          WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), on_events.into(), note.into()],
    )
}

pub fn prune_events(schema: &str, retention_secs: f64) -> SpiResult<()> {
    Spi::run_with_args(
        &format!(
            "DELETE FROM {}._sync_events WHERE inserted_at < now() - make_interval(secs => $1)",
            qi(schema)
        ),
        &[retention_secs.into()],
    )
}
