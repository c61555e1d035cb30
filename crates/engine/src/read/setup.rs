//! A new collection: its describe becomes a table, its columns and its capture.

use std::time::Instant;

use chrono::Utc;
use salesforce::FieldDescribe;
use sync_core::mapping::{map_fields, modstamp_field, FieldInfo};

use super::secs;
use super::tables::{self, ObjectAccess, TableRef};
use crate::catalog::{CollectionRow, SyncConfig};
use crate::db::tx;
use crate::error::StepError;
use crate::runtime::{CollectionRuntime, SyncRuntime};

pub(super) fn field_info(f: &FieldDescribe) -> FieldInfo {
    // a base64 field's column holds the path of its bytes, never the bytes: the sync
    // sends nothing back for it
    let base64 = f.field_type.as_str() == "base64";
    FieldInfo {
        name: f.name.clone(),
        sf_type: f.field_type.as_str().to_string(),
        compound_field_name: f.compound_field_name.clone(),
        createable: f.createable && !base64,
        updateable: f.updateable && !base64,
        calculated: f.calculated,
        nillable: f.nillable,
        restricted_picklist: f.restricted_picklist,
        external_id: f.external_id,
        picklist_values: f.picklist_values.iter().map(|p| p.value.clone()).collect(),
    }
}

/// The describe's fields the sync maps to columns: all, but base64 ones only when the
/// sync stores their paths (`base64_fields => 'url'`).
pub(super) fn synced_fields(cfg: &SyncConfig, d: &salesforce::SObjectDescribe) -> Vec<FieldInfo> {
    d.fields
        .iter()
        .filter(|f| cfg.base64_urls || f.field_type.as_str() != "base64")
        .map(field_info)
        .collect()
}

/// Describes the object and creates its table.
pub(super) fn set_up(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<bool, StepError> {
    if !rt.try_spend(1) {
        return Ok(false);
    }
    let described = rt.call(rt.client.describe(&c.object_name, None))?;
    let Some(d) = described else {
        return Err(StepError::Collection {
            object: c.object_name.clone(),
            message: "describe returned no body".into(),
        });
    };
    let fields = synced_fields(cfg, &d);
    let columns = map_fields(&fields);
    let stamp = modstamp_field(&columns).map(str::to_string);
    let at = Utc::now();
    let access = ObjectAccess::from(&d);
    let tref = TableRef {
        sync: &cfg.name,
        schema: &cfg.schema_name,
        object: &c.object_name,
        table: &c.table_name,
    };
    tx(&*rt.db, |s| {
        // before the table, whose capture refuses what the object does not allow
        tables::set_object_access(s, &cfg.name, &c.object_name, &access)?;
        tables::record_org_fields(s, &cfg.name, &c.object_name, &d)?;
        tables::create_collection_table(s, &tref, &columns, stamp.as_deref(), at)
    })?;
    let mut cr = CollectionRuntime::new(
        columns,
        secs(cfg.describe_interval_secs),
        secs(cfg.deleted_interval_secs),
    );
    // the describe just read counts as the first check
    cr.describe.mark(Instant::now());
    rt.collections.insert(c.object_name.clone(), cr);
    Ok(true)
}
