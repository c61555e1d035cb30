//! A collection's table and its recorded columns: creating them, following a describe
//! that changed (new fields, fields gone, write rules, types), and the object's access.
//! Each function runs inside the caller's transaction and marks it as applying, so
//! capture ignores what it does to synced tables.

use chrono::{DateTime, Utc};
use sync_core::naming::quote_ident as qi;
use sync_core::{ColumnSpec, PgType};

use super::apply::{mark_applying, rfc3339};
use crate::db::{DbError, Session};

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
pub fn set_object_access(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    a: &ObjectAccess,
) -> Result<(), DbError> {
    s.execute(
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

/// Records the fields of a describe the sync read where SQL reads an org's fields
/// instead of asking Salesforce (beside the database: `_record_org_fields`,
/// sql/plain/library.sql, for the external id checks); so no extra call describes a
/// synced object there. The extension's SQL asks Salesforce itself and has no such
/// function.
pub fn record_org_fields(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    d: &salesforce::SObjectDescribe,
) -> Result<(), DbError> {
    if !has_function(s, "sequin_sf._record_org_fields(text,text,jsonb)")? {
        return Ok(());
    }
    let fields = serde_json::Value::Array(
        d.fields
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "external_id": f.external_id}))
            .collect(),
    );
    s.execute(
        "SELECT sequin_sf._record_org_fields(s.credential, $2, $3)
           FROM sequin_sf._syncs s WHERE s.name = $1",
        &[sync.into(), object.into(), (&fields).into()],
    )
}

/// Names one collection's table.
pub struct TableRef<'a> {
    pub sync: &'a str,
    pub schema: &'a str,
    pub object: &'a str,
    pub table: &'a str,
}

/// Creates the data table of a collection and records its columns, the stamp field
/// and the starting points of the live cursors (the backfill's start, so changes made
/// during the backfill are re-read by the first polls).
pub fn create_collection_table(
    s: &mut dyn Session,
    tref: &TableRef,
    columns: &[ColumnSpec],
    stamp_field: Option<&str>,
    described_at: DateTime<Utc>,
) -> Result<(), DbError> {
    let TableRef {
        sync,
        schema,
        object,
        table,
    } = *tref;
    mark_applying(s)?;
    // create_sync refused a name in use; someone may have taken it since
    s.execute(
        "SELECT sequin_sf._refuse_taken_name($1, $2)",
        &[schema.into(), table.into()],
    )?;
    for stmt in sync_core::sql::create_table(schema, table, columns) {
        s.execute(&stmt, &[])?;
    }
    for (i, col) in columns.iter().enumerate() {
        record_column(s, tref, &ColumnRefresh::active(col.clone()), i as i32)?;
    }
    s.execute(
        "UPDATE sequin_sf._collections SET stamp_field = $3, backfill_started_at = now(),
                poll_cursor = now(), deleted_cursor = now(), describe_modified = $4,
                rows_done = 0, backfill_cursor = NULL, backfill_mode = 'rest',
                last_error = NULL, last_error_at = NULL,
                table_oid = to_regclass($5)::oid
         WHERE sync_name = $1 AND object_name = $2",
        &[
            sync.into(),
            object.into(),
            stamp_field.into(),
            (&rfc3339(described_at)).into(),
            (&format!("{}.{}", qi(schema), qi(table))).into(),
        ],
    )?;
    install_capture(s, schema, table)
}

/// A field as a describe has it: its column's rules and type, whether the column is
/// filled, and what the operator should know (a type change not followed).
pub struct ColumnRefresh {
    pub spec: ColumnSpec,
    pub active: bool,
    pub note: Option<String>,
}

impl ColumnRefresh {
    /// A field the sync fills, with nothing to tell.
    pub fn active(spec: ColumnSpec) -> Self {
        ColumnRefresh {
            spec,
            active: true,
            note: None,
        }
    }
}

/// Records a field's column in `sequin_sf._columns`, the one place that row is
/// written: a new field at `position`; a known one (or one that came back) gets the
/// describe's rules, type and activity, and keeps its column and position. True when
/// anything changed.
fn record_column(
    s: &mut dyn Session,
    tref: &TableRef,
    r: &ColumnRefresh,
    position: i32,
) -> Result<bool, DbError> {
    let col = &r.spec;
    let rows = s.query(
        "INSERT INTO sequin_sf._columns AS m (sync_name, object_name, field_name, column_name,
             sf_type, pg_type, compound_of, createable, updateable, calculated, nillable,
             restricted_picklist, picklist_values, position, active, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (sync_name, object_name, field_name) DO UPDATE
            SET createable = EXCLUDED.createable, updateable = EXCLUDED.updateable,
                calculated = EXCLUDED.calculated, nillable = EXCLUDED.nillable,
                restricted_picklist = EXCLUDED.restricted_picklist,
                picklist_values = EXCLUDED.picklist_values, sf_type = EXCLUDED.sf_type,
                pg_type = EXCLUDED.pg_type, active = EXCLUDED.active, note = EXCLUDED.note,
                removed_at = CASE WHEN EXCLUDED.active THEN NULL
                                  ELSE coalesce(m.removed_at, now()) END
          WHERE (m.createable, m.updateable, m.calculated, m.nillable, m.restricted_picklist,
                 m.picklist_values, m.sf_type, m.pg_type, m.active, m.note)
                IS DISTINCT FROM
                (EXCLUDED.createable, EXCLUDED.updateable, EXCLUDED.calculated,
                 EXCLUDED.nillable, EXCLUDED.restricted_picklist, EXCLUDED.picklist_values,
                 EXCLUDED.sf_type, EXCLUDED.pg_type, EXCLUDED.active, EXCLUDED.note)
         RETURNING 1",
        &[
            tref.sync.into(),
            tref.object.into(),
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
            (&col.picklist_values).into(),
            position.into(),
            r.active.into(),
            r.note.as_deref().into(),
        ],
    )?;
    Ok(!rows.is_empty())
}

/// Lets the write path attach its capture triggers (sql/capture.sql), when installed,
/// and publishes the tables (the write log among them) where the sync's publication
/// lists tables one by one (`_publish_tables`).
fn install_capture(s: &mut dyn Session, schema: &str, table: &str) -> Result<(), DbError> {
    if has_function(s, "sequin_sf._install_capture(text,text)")? {
        s.execute(
            "SELECT sequin_sf._install_capture($1, $2)",
            &[schema.into(), table.into()],
        )?;
    }
    s.execute("SELECT sequin_sf._publish_tables($1)", &[schema.into()])?;
    Ok(())
}

/// Whether the database has the function `signature` (its SQL differs by host and
/// release).
fn has_function(s: &mut dyn Session, signature: &str) -> Result<bool, DbError> {
    Ok(s.query_one(
        "SELECT to_regprocedure($1) IS NOT NULL",
        &[signature.into()],
    )?
    .and_then(|r| r.bool(0))
    .unwrap_or(false))
}

/// Records columns the operator dropped (`drift::dropped_column`) as no longer filled,
/// and installs capture again without them.
pub fn stop_filling(
    s: &mut dyn Session,
    tref: &TableRef,
    dropped: &[ColumnRefresh],
) -> Result<(), DbError> {
    for col in dropped {
        // a known field keeps its position: the one given here is never used
        record_column(s, tref, col, 0)?;
    }
    install_capture(s, tref.schema, tref.table)
}

/// Converts a column to the type its field now maps to (`sync_core::mapping::follow_type`
/// said it loses nothing). Fails when something of the user's depends on the column
/// (a view), in which case the caller keeps the column as it is.
pub fn alter_column_type(
    s: &mut dyn Session,
    tref: &TableRef,
    col: &ColumnSpec,
    to: PgType,
) -> Result<(), DbError> {
    mark_applying(s)?;
    s.execute(
        &sync_core::sql::alter_column_type(tref.schema, tref.table, col, to),
        &[],
    )
}

/// Applies a describe that changed: new columns, fields gone, and the write rules of
/// the fields that remain (or came back). Capture follows any of them. Returns how many
/// known fields changed.
pub fn apply_drift(
    s: &mut dyn Session,
    tref: &TableRef,
    added: &[ColumnSpec],
    removed_fields: &[String],
    refreshed: &[ColumnRefresh],
    first_position: i32,
    described_at: DateTime<Utc>,
) -> Result<usize, DbError> {
    let TableRef {
        sync,
        schema,
        object,
        table,
    } = *tref;
    mark_applying(s)?;
    for col in added {
        s.execute(&sync_core::sql::add_column(schema, table, col), &[])?;
    }
    for (i, col) in added.iter().enumerate() {
        let position = first_position + i as i32;
        record_column(s, tref, &ColumnRefresh::active(col.clone()), position)?;
    }
    if !removed_fields.is_empty() {
        s.execute(
            "UPDATE sequin_sf._columns SET active = false, removed_at = now()
             WHERE sync_name = $1 AND object_name = $2 AND field_name = ANY($3) AND active",
            &[sync.into(), object.into(), removed_fields.into()],
        )?;
    }
    let mut changed = 0;
    for col in refreshed {
        // a known field keeps its position: the one given here is never used
        changed += usize::from(record_column(s, tref, col, first_position)?);
    }
    s.execute(
        "UPDATE sequin_sf._collections SET describe_modified = $3 WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), (&rfc3339(described_at)).into()],
    )?;
    if !added.is_empty() || !removed_fields.is_empty() || changed > 0 {
        install_capture(s, schema, table)?;
    }
    Ok(changed)
}
