//! Schema drift: describe re-checked with If-Modified-Since; new fields become columns,
//! vanished ones stop being selected.

use std::collections::HashSet;
use std::time::Instant;

use chrono::Utc;
use sync_core::mapping::{map_new_fields, FieldInfo};
use sync_core::ColumnSpec;

use super::apply;
use crate::worker::catalog::{self, CollectionRow, SyncConfig};
use crate::worker::error::StepError;
use crate::worker::pg::tx;
use crate::worker::runtime::SyncRuntime;

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
    let since = c
        .describe_modified
        .map(|t| t - chrono::Duration::seconds(1));
    let Some(d) = rt.call(rt.client.describe(&c.object_name, since))? else {
        return Ok(());
    };
    let access = apply::ObjectAccess::from(&d);
    tx(|| apply::set_object_access(&cfg.name, &c.object_name, &access))?;
    let existing = tx(|| catalog::load_columns(&cfg.name, &c.object_name))?;
    let known: HashSet<&str> = existing.iter().map(|(col, _)| col.field.as_str()).collect();
    let new_fields: Vec<FieldInfo> = d
        .fields
        .iter()
        .filter(|f| !known.contains(f.name.as_str()))
        .map(super::setup::field_info)
        .collect();
    let present: HashSet<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
    let removed: Vec<String> = existing
        .iter()
        .filter(|(col, active)| *active && !present.contains(col.field.as_str()))
        .map(|(col, _)| col.field.clone())
        .collect();
    let names: Vec<String> = existing.iter().map(|(col, _)| col.column.clone()).collect();
    let added = map_new_fields(&names, &new_fields);
    // known fields keep their column and type; their write rules follow the describe
    let refreshed: Vec<ColumnSpec> = existing
        .iter()
        .filter_map(|(col, _)| {
            let f = super::setup::field_info(d.fields.iter().find(|f| f.name == col.field)?);
            Some(ColumnSpec {
                createable: f.createable,
                updateable: f.updateable,
                calculated: f.calculated,
                nillable: f.nillable,
                restricted_picklist: f.restricted_picklist,
                picklist_values: f.picklist_values,
                ..col.clone()
            })
        })
        .collect();
    let changed = tx(|| {
        let tref = apply::TableRef {
            sync: &cfg.name,
            schema: &cfg.schema_name,
            object: &c.object_name,
            table: &c.table_name,
        };
        apply::apply_drift(
            &tref,
            &added,
            &removed,
            &refreshed,
            existing.len() as i32,
            at,
        )
    })?;
    if !added.is_empty() || !removed.is_empty() || changed > 0 {
        pgrx::log!(
            "sequin_sf: {}.{}: {} column(s) added, {} field(s) gone, {} field(s) changed",
            cfg.schema_name,
            c.table_name,
            added.len(),
            removed.len(),
            changed
        );
        let all = tx(|| catalog::load_columns(&cfg.name, &c.object_name))?;
        if let Some(cr) = rt.collections.get_mut(&c.object_name) {
            cr.columns = all
                .into_iter()
                .filter(|(_, a)| *a)
                .map(|(c, _)| c)
                .collect();
        }
    }
    Ok(())
}
