//! Schema drift: describe re-checked with If-Modified-Since; new fields become columns,
//! vanished ones stop being selected.

use std::collections::HashSet;
use std::time::Instant;

use chrono::Utc;
use sync_core::mapping::{follow_type, holds, map_new_fields, FieldInfo, TypeFollow};
use sync_core::{ColumnSpec, PgType};

use super::tables::{self, ColumnRefresh, ObjectAccess, TableRef};
use crate::catalog::{self, CollectionRow, SyncConfig};
use crate::db::{guarded, tx, Database};
use crate::error::StepError;
use crate::runtime::SyncRuntime;

/// Re-reads the describe when due (If-Modified-Since the last one) and adds columns for
/// new fields; vanished fields stop being selected.
pub(super) fn check_describe(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<(), StepError> {
    let now = Instant::now();
    match rt.collections.get(&c.object_name) {
        Some(cr) if cr.describe.due(now) => {}
        _ => return Ok(()),
    }
    if !rt.try_spend(1) {
        return Ok(());
    }
    if let Some(cr) = rt.collections.get_mut(&c.object_name) {
        cr.describe.mark(now);
    }
    // Salesforce's clock (Date of the last response), so a host clock running ahead
    // cannot make If-Modified-Since skip a change.
    let at = rt
        .client
        .last_server_date()
        .unwrap_or_else(Utc::now)
        .min(Utc::now());
    // HTTP dates have whole seconds: a change in the same second as our last describe
    // would look older than it, so ask from a second earlier (a spare 200 is harmless).
    let in_full = rt
        .collections
        .get(&c.object_name)
        .is_some_and(|cr| cr.describe_in_full);
    let since = c
        .describe_modified
        .filter(|_| !in_full)
        .map(|t| t - chrono::Duration::seconds(1));
    let Some(d) = rt.call(rt.client.describe(&c.object_name, since))? else {
        return Ok(());
    };
    let access = ObjectAccess::from(&d);
    let db = rt.db.clone();
    tx(&*db, |s| {
        tables::set_object_access(s, &cfg.name, &c.object_name, &access)?;
        tables::record_org_fields(s, &cfg.name, &c.object_name, &d)
    })?;
    let existing = tx(&*db, |s| {
        catalog::load_columns(s, &cfg.name, &c.object_name)
    })?;
    let known: HashSet<&str> = existing.iter().map(|k| k.spec.field.as_str()).collect();
    let new_fields: Vec<FieldInfo> = super::setup::synced_fields(cfg, &d)
        .into_iter()
        .filter(|f| !known.contains(f.name.as_str()))
        .collect();
    let present: HashSet<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
    let removed: Vec<String> = existing
        .iter()
        .filter(|k| k.active && !present.contains(k.spec.field.as_str()))
        .map(|k| k.spec.field.clone())
        .collect();
    let names: Vec<String> = existing.iter().map(|k| k.spec.column.clone()).collect();
    let added = map_new_fields(&names, &new_fields);
    let tref = TableRef {
        sync: &cfg.name,
        schema: &cfg.schema_name,
        object: &c.object_name,
        table: &c.table_name,
    };
    // known fields keep their column; its write rules and type follow the describe (a
    // column the operator dropped stays unfilled until it is added back)
    let refreshed: Vec<ColumnRefresh> = existing
        .iter()
        .filter_map(|k| {
            let f = super::setup::field_info(d.fields.iter().find(|f| f.name == k.spec.field)?);
            Some(if k.present {
                follow_field(&*db, &tref, &k.spec, &f)
            } else {
                dropped_column(&tref, &k.spec)
            })
        })
        .collect();
    let changed = tx(&*db, |s| {
        tables::apply_drift(
            s,
            &tref,
            &added,
            &removed,
            &refreshed,
            existing.len() as i32,
            at,
        )
    })?;
    if !added.is_empty() || !removed.is_empty() || changed > 0 {
        log::info!(
            "sequin_sf: {}.{}: {} column(s) added, {} field(s) gone, {} field(s) changed",
            cfg.schema_name,
            c.table_name,
            added.len(),
            removed.len(),
            changed
        );
        for note in refreshed.iter().filter_map(|r| r.note.as_deref()) {
            log::warn!("sequin_sf: {note}");
        }
        if let Some(cr) = rt.collections.get_mut(&c.object_name) {
            // the columns are read again by the next step's follow_table_shape, before
            // any read uses them (our own change of the table is not an operator's)
            cr.table_shape = None;
        }
    }
    if let Some(cr) = rt.collections.get_mut(&c.object_name) {
        cr.describe_in_full = false;
    }
    Ok(())
}

/// A known field's column as the describe now has the field. A type change is followed
/// by converting the column when no value can be lost; otherwise the column keeps its
/// type and values, and the note says what the operator may do.
fn follow_field(
    db: &dyn Database,
    tref: &TableRef,
    col: &ColumnSpec,
    f: &FieldInfo,
) -> ColumnRefresh {
    let wanted = PgType::for_sf_type(&f.sf_type);
    let mut follow = follow_type(col.pg_type, wanted);
    let mut refused = None;
    if let (TypeFollow::Alter, Some(to)) = (follow, wanted) {
        match guarded(db, || {
            tx(db, |s| tables::alter_column_type(s, tref, col, to))
        }) {
            Ok(Ok(())) => return refresh(col, f, to, true, None),
            Ok(Err(e)) => refused = Some(e.to_string()),
            Err(message) => refused = Some(message),
        }
        follow = if holds(col.pg_type, to) {
            TypeFollow::Keep
        } else {
            TypeFollow::Stop
        };
    }
    let note = type_note(tref, col, f, wanted, follow, refused.as_deref());
    refresh(col, f, col.pg_type, follow != TypeFollow::Stop, note)
}

/// A column the operator dropped from the table: its field is no longer filled, and
/// the note says how to have it synced again.
pub(super) fn dropped_column(tref: &TableRef, col: &ColumnSpec) -> ColumnRefresh {
    let table = format!("{}.{}", tref.schema, tref.table);
    ColumnRefresh {
        spec: col.clone(),
        active: false,
        note: Some(format!(
            "column {table}.{} was dropped from the table, so field {}.{} is no longer \
             synced; to sync it again, add the column back (ALTER TABLE {table} ADD COLUMN \
             {} {}): the sync fills it as records change",
            col.column,
            tref.object,
            col.field,
            col.column,
            col.pg_type.as_sql()
        )),
    }
}

fn refresh(
    col: &ColumnSpec,
    f: &FieldInfo,
    pg_type: PgType,
    active: bool,
    note: Option<String>,
) -> ColumnRefresh {
    ColumnRefresh {
        spec: ColumnSpec {
            sf_type: f.sf_type.clone(),
            pg_type,
            createable: f.createable,
            updateable: f.updateable,
            calculated: f.calculated,
            nillable: f.nillable,
            restricted_picklist: f.restricted_picklist,
            picklist_values: f.picklist_values.clone(),
            ..col.clone()
        },
        active,
        note,
    }
}

/// What the operator is told about a type change the column did not follow.
fn type_note(
    tref: &TableRef,
    col: &ColumnSpec,
    f: &FieldInfo,
    wanted: Option<PgType>,
    follow: TypeFollow,
    refused: Option<&str>,
) -> Option<String> {
    let field = format!("{}.{}", tref.object, f.name);
    let column = format!("{}.{}.{}", tref.schema, tref.table, col.column);
    let why = refused.map_or(String::new(), |e| {
        format!(
            " (converting it to {} failed: {e})",
            wanted.map_or("?", PgType::as_sql)
        )
    });
    let Some(to) = wanted else {
        return Some(format!(
            "{field} is now of type {}, which the sync does not store: column {column} keeps \
             its values and is no longer filled",
            f.sf_type
        ));
    };
    let convert = format!(
        "ALTER TABLE {}.{} ALTER COLUMN {} TYPE {} USING ...",
        tref.schema,
        tref.table,
        col.column,
        to.as_sql()
    );
    match follow {
        TypeFollow::Same | TypeFollow::Alter => None,
        TypeFollow::Keep => Some(format!(
            "{field} is now of type {}: column {column} stays {}{why}, which holds the new \
             values; to convert it when its values allow, run {convert}",
            f.sf_type,
            col.pg_type.as_sql()
        )),
        TypeFollow::Stop => Some(format!(
            "{field} is now of type {}: column {column} ({}) cannot hold the new values{why}, \
             so it keeps the values it has and is no longer filled; to follow the field, \
             convert the column ({convert}) and the sync fills it again",
            f.sf_type,
            col.pg_type.as_sql()
        )),
    }
}
