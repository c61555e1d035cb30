//! Calculated fields read again on the collection's schedule (`alter_collection`).
//! Salesforce computes formula fields when a record is read and does not move the
//! record's SystemModstamp when a record a cross-object formula reads changes, so polls
//! never see those values change. A round reads `Id` and the calculated fields of every
//! record in Id-ordered keyset pages, one API call per page, and updates the rows whose
//! values differ.

use sync_core::{naming, queries, ColumnSpec};

use super::field_groups::SplitRead;
use super::{apply, backfill, progress, target, PAGE_SIZE};
use crate::catalog::{CollectionRow, SyncConfig};
use crate::db::tx;
use crate::error::StepError;
use crate::runtime::SyncRuntime;

/// Reads and applies one page of a due refresh. Returns true while the round goes on.
pub(super) fn refresh_page(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<bool, StepError> {
    let fields: Vec<ColumnSpec> = rt
        .collection(&c.object_name)?
        .columns
        .iter()
        .filter(|col| col.calculated && !col.is_compound())
        .cloned()
        .collect();
    if fields.is_empty() {
        // nothing to read: the round is over at no cost
        tx(&*rt.db, |s| {
            progress::move_refresh_on(s, &cfg.name, &c.object_name, None)
        })?;
        return Ok(false);
    }
    let mut select = vec!["Id"];
    select.extend(queries::rest_fields(&fields));
    let split = SplitRead::plan(&c.object_name, &select, None);
    if let Some(s) = &split {
        select = s.first_fields();
    }
    let after = c.calculated_cursor.as_deref().filter(|id| !id.is_empty());
    let soql = queries::backfill_query(&c.object_name, &select, after, Some(PAGE_SIZE));
    if !rt.try_spend(backfill::calls_per_page(split.as_ref())) {
        return Ok(false);
    }
    let at = backfill::PageAt::First(soql);
    let page = rt.call(backfill::request_page(
        rt.client.clone(),
        &c.object_name,
        at,
        split.clone(),
    ))?;
    let (count, last_id) = backfill::page_ids(page.records_json())?;
    // a page that Salesforce sent full (records a split read left out count) has more
    let sent = count + page.left_out as i64;
    let next = last_id.filter(|_| sent >= i64::from(PAGE_SIZE));
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, rt.collection(&c.object_name)?, &cid, true);
    let updated = tx(&*rt.db, |s| {
        apply::apply_refresh_page(
            s,
            &cfg.name,
            &t,
            &c.object_name,
            (&fields, page.records_json()),
            next.as_deref(),
        )
    })?;
    if updated > 0 {
        log::info!(
            "sequin_sf: {}.{}: {updated} row(s) with new calculated values",
            cfg.schema_name,
            c.table_name
        );
    }
    Ok(next.is_some())
}
