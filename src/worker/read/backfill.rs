//! The REST backfill: keyset pages of 2000 records ordered by Id, the page's JSON text
//! handed to Postgres as Salesforce sent it, the cursor saved with each page.

use std::time::Instant;

use salesforce::{ErrorCode, RawQueryPage};
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
    if c.rows_total.is_none() && !rt.collection(&c.object_name)?.count_timed_out {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let total = match rt.call(rt.client.count(&queries::count_query(&c.object_name))) {
            Err(StepError::Salesforce(e)) if e.code() == Some(&ErrorCode::QueryTimeout) => {
                // too many records to count in time: a Bulk job (or, if one failed,
                // REST pages) without a total
                rt.collection_mut(&c.object_name)?.count_timed_out = true;
                return Err(after_query_timeout(rt, cfg, c, e)?);
            }
            other => other?,
        };
        let bulk_readable = queries::bulk_readable(&rt.collection(&c.object_name)?.columns);
        let mode = BackfillMode::for_count(total, cfg.bulk_threshold, bulk_readable);
        tx(|| apply::set_rows_total(&cfg.name, &c.object_name, total as i64, mode))?;
        return Ok(true);
    }
    if c.backfill_mode == Some(BackfillMode::Bulk) {
        return super::bulk::bulk_step(rt, cfg, c);
    }
    let Some(cr) = rt.collections.get_mut(&c.object_name) else {
        return Ok(false);
    };
    let next = cr.next_records_url.take();
    // the page asked for ahead, if it is the one wanted now
    let ahead = cr
        .next_page
        .take()
        .filter(|(url, _)| next.as_ref() == Some(url))
        .map(|(_, a)| a);
    let soql = queries::backfill_query(
        &c.object_name,
        &queries::rest_fields(&cr.columns),
        c.backfill_cursor.as_deref(),
        cr.rest_limit,
    );
    if ahead.is_none() && !rt.try_spend(1) {
        if let Some(cr) = rt.collections.get_mut(&c.object_name) {
            cr.next_records_url = next;
        }
        return Ok(false);
    }
    let fetch_started = Instant::now();
    // Raw pages: the records' JSON text goes to Postgres as Salesforce sent it.
    let fetched = match (ahead, next) {
        (Some(a), _) => rt.fetched(a),
        (None, Some(url)) => rt.call(rt.client.query_more_raw(&url)),
        (None, None) => rt.call(rt.client.query_raw(&soql, Some(PAGE_SIZE))),
    };
    let page: RawQueryPage = match fetched {
        Err(StepError::Salesforce(e)) if e.code() == Some(&ErrorCode::QueryTimeout) => {
            return Err(after_query_timeout(rt, cfg, c, e)?);
        }
        other => other?,
    };
    let fetched_in = fetch_started.elapsed();
    let (count, last_id) = page_ids(page.records_json())?;
    // a page cut by LIMIT ends its query; the backfill ends at a short one
    let done = match rt.collection(&c.object_name)?.rest_limit {
        Some(n) => count < i64::from(n),
        None => page.done || page.next_records_url.is_none(),
    };
    // the next page is fetched while this one is applied
    if let Some(url) = page.next_records_url.clone().filter(|_| !done) {
        let client = rt.client.clone();
        let target = url.clone();
        if let Some(a) = rt.fetch_ahead(async move { client.query_more_raw(&target).await }) {
            rt.collection_mut(&c.object_name)?.next_page = Some((url, a));
        }
    }
    let cr = rt.collection(&c.object_name)?;
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, cfg.backfill_events);
    let apply_started = Instant::now();
    let rest_page = apply::RestPage {
        records: page.records_json(),
        count,
        last_id: last_id.as_deref(),
        done,
    };
    // events come from the upsert statement only (`apply::insert_records`)
    let mut rows_new = cr.rows_new && !cfg.backfill_events;
    let applied = super::insert_new_or_upsert(&c.object_name, &mut rows_new, |mode| {
        tx(|| apply::apply_backfill_page(&cfg.name, &t, &c.object_name, &rest_page, mode))
            .map_err(StepError::from)
    });
    if !rows_new {
        rt.collection_mut(&c.object_name)?.rows_new = false;
    }
    applied?;
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

/// The smallest REST page cut tried after QUERY_TIMEOUTs.
const MIN_REST_LIMIT: u32 = 200;

/// A REST backfill query ran past Salesforce's time limit. Salesforce's advice for long
/// queries is the Bulk API (it retries a query that times out and splits it by primary
/// key): the backfill switches to a Bulk job, unless one already failed for this
/// collection or Bulk cannot read it (a base64 field); then pages are cut smaller (a
/// LIMIT on the keyset query), down to 200 records. Returns the error to report; the
/// step is retried with backoff.
fn after_query_timeout(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    e: salesforce::Error,
) -> Result<StepError, StepError> {
    let cr = rt.collection_mut(&c.object_name)?;
    let message = if !cr.bulk_failed && queries::bulk_readable(&cr.columns) {
        tx(|| apply::switch_backfill(&cfg.name, &c.object_name, BackfillMode::Bulk))?;
        format!("{e}; backfilling through a Bulk query job instead")
    } else {
        let limit = cr.rest_limit.unwrap_or(PAGE_SIZE);
        if limit <= MIN_REST_LIMIT {
            return Ok(e.into());
        }
        let cut = (limit / 2).max(MIN_REST_LIMIT);
        cr.rest_limit = Some(cut);
        format!("{e}; reading pages of {cut} records instead")
    };
    Ok(StepError::Collection {
        object: c.object_name.clone(),
        message,
    })
}
