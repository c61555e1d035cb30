//! The REST backfill: keyset pages of 2000 records ordered by Id, the page's JSON text
//! handed to Postgres as Salesforce sent it, the cursor saved with each page.

use std::time::Instant;

use salesforce::RawQueryPage;
use sync_core::progress::BackfillMode;
use sync_core::{naming, queries};

use super::{apply, target, PAGE_SIZE};
use crate::worker::catalog::{CollectionRow, SyncConfig};
use crate::worker::error::StepError;
use crate::worker::pg::tx;
use crate::worker::runtime::SyncRuntime;

/// The number of records in a page's JSON array and the Id of the last one (the
/// keyset cursor), read without building the records.
pub(super) fn page_ids(records_json: &str) -> Result<(i64, Option<String>), StepError> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        #[serde(rename = "Id")]
        id: Option<String>,
    }
    let ids: Vec<IdOnly> = serde_json::from_str(records_json).map_err(|e| {
        StepError::Salesforce(salesforce::Error::Decode(format!(
            "backfill page records: {e}"
        )))
    })?;
    let last = ids.last().and_then(|r| r.id.clone());
    Ok((ids.len() as i64, last))
}

/// Reads and applies one REST page of a backfill (counting the rows first).
pub(super) fn backfill_page(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<bool, StepError> {
    if c.rows_total.is_none() {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let total = rt.call(rt.client.count(&queries::count_query(&c.object_name)))?;
        let mode = BackfillMode::for_count(total, cfg.bulk_threshold);
        tx(|| apply::set_rows_total(&cfg.name, &c.object_name, total as i64, mode))?;
        return Ok(true);
    }
    if c.backfill_mode == Some(BackfillMode::Bulk) {
        return super::bulk::bulk_step(rt, cfg, c);
    }
    if !rt.try_spend(1) {
        return Ok(false);
    }
    let Some(cr) = rt.collections.get_mut(&c.object_name) else {
        return Ok(false);
    };
    let next = cr.next_records_url.take();
    let soql = queries::backfill_query(
        &c.object_name,
        &queries::rest_fields(&cr.columns),
        c.backfill_cursor.as_deref(),
    );
    let fetch_started = Instant::now();
    // Raw pages: the records' JSON text goes to Postgres as Salesforce sent it.
    let page: RawQueryPage = match next {
        Some(url) => rt.call(rt.client.query_more_raw(&url))?,
        None => rt.call(rt.client.query_raw(&soql, Some(PAGE_SIZE)))?,
    };
    let fetched_in = fetch_started.elapsed();
    let done = page.done || page.next_records_url.is_none();
    let (count, last_id) = page_ids(page.records_json())?;
    let cr = rt.collection(&c.object_name)?;
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, cfg.backfill_events);
    let apply_started = Instant::now();
    tx(|| {
        apply::apply_backfill_page(
            &cfg.name,
            &t,
            &c.object_name,
            page.records_json(),
            last_id.as_deref(),
            count,
            done,
        )
    })?;
    pgrx::log!(
        "sequin_sf: {}: REST page of {count} rows fetched in {:.3} s, applied in {:.3} s",
        c.object_name,
        fetched_in.as_secs_f64(),
        apply_started.elapsed().as_secs_f64()
    );
    if let Some(cr) = rt.collections.get_mut(&c.object_name) {
        cr.next_records_url = if done { None } else { page.next_records_url };
    }
    Ok(!done)
}
