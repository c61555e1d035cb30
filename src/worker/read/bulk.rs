//! The Bulk 2.0 backfill of large collections: one query job, its CSV results read in
//! pages of 50,000 rows and loaded through `COPY`; job id and locator saved with each
//! page, so a restart resumes at the next unread page.

use std::time::{Duration, Instant};

use serde_json::Value;
use sync_core::progress::BackfillMode;
use sync_core::{naming, queries};

use super::{apply, target};
use crate::worker::catalog::{CollectionRow, SyncConfig};
use crate::worker::error::StepError;
use crate::worker::pg::tx;
use crate::worker::runtime::{CollectionRuntime, SyncRuntime, BULK_FIRST_WAIT};

/// Records per Bulk results request: few API calls (20 per million), bounded memory.
const BULK_PAGE: u64 = 50_000;

/// Records per set-based statement when applying a Bulk results page.
const BULK_CHUNK: usize = 5_000;

const BULK_MAX_WAIT: Duration = Duration::from_secs(10);

/// One step of a Bulk 2.0 backfill: start the query job, wait for it (status checks
/// at growing intervals), then read one results page and apply it. The job id and the
/// results locator are persisted, so a restart resumes at the next unread page.
pub(super) fn bulk_step(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<bool, StepError> {
    let Some(job_id) = c.bulk_job_id.clone() else {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let cr = rt.collection(&c.object_name)?;
        let soql = queries::bulk_query(&c.object_name, &queries::bulk_fields(&cr.columns));
        let job = rt.call(rt.client.bulk_query_create(&soql, false))?;
        tx(|| apply::set_bulk_job(&cfg.name, &c.object_name, Some(&job.id)))?;
        if let Some(cr) = rt.collections.get_mut(&c.object_name) {
            cr.bulk_complete = false;
            cr.bulk_wait = BULK_FIRST_WAIT;
            cr.bulk_check_at = Some(Instant::now() + BULK_FIRST_WAIT);
        }
        return Ok(false);
    };
    let now = Instant::now();
    let cr = rt.collection(&c.object_name)?;
    if !cr.bulk_complete {
        if cr.bulk_check_at.is_some_and(|t| now < t) {
            return Ok(false);
        }
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let info = match rt.call(rt.client.bulk_query_status(&job_id)) {
            Ok(info) => info,
            // Jobs and their results expire: start over with a new job (re-applying
            // rows already stored changes nothing).
            Err(StepError::Salesforce(e)) if e.status() == Some(404) => {
                tx(|| apply::set_bulk_job(&cfg.name, &c.object_name, None))?;
                return Err(e.into());
            }
            Err(e) => return Err(e),
        };
        let cr = rt.collection_mut(&c.object_name)?;
        match info.state {
            salesforce::JobState::JobComplete => cr.bulk_complete = true,
            // A job Salesforce failed or aborted would most likely fail again (a field
            // or object the Bulk API does not serve, an admin aborting it): the backfill
            // goes on through the REST API, which reads everything /query reads.
            salesforce::JobState::Failed | salesforce::JobState::Aborted => {
                cr.bulk_failed = true;
                tx(|| apply::switch_backfill(&cfg.name, &c.object_name, BackfillMode::Rest))?;
                return Err(StepError::Collection {
                    object: c.object_name.clone(),
                    message: format!(
                        "Bulk query job {job_id} ended {}: {}; backfilling through the REST API instead",
                        info.state.as_str(),
                        info.error_message.unwrap_or_default()
                    ),
                });
            }
            _ => {
                cr.bulk_check_at = Some(now + cr.bulk_wait);
                cr.bulk_wait = (cr.bulk_wait * 2).min(BULK_MAX_WAIT);
                return Ok(false);
            }
        }
    }
    if !rt.try_spend(1) {
        return Ok(false);
    }
    let fetch_started = Instant::now();
    let page = rt.call(rt.client.bulk_query_results(
        &job_id,
        c.bulk_locator.as_deref(),
        Some(BULK_PAGE),
    ))?;
    let fetched_in = fetch_started.elapsed();
    let cr = rt.collection(&c.object_name)?;
    if !cfg.backfill_events && !page.csv.is_empty() {
        return bulk_page_via_copy(cfg, c, cr, page, fetched_in);
    }
    let mut reader = match sync_core::records::CsvRecords::new(&page.csv, &cr.columns) {
        Ok(r) => Some(r),
        Err(_) if page.csv.is_empty() => None,
        Err(e) => {
            return Err(StepError::Collection {
                object: c.object_name.clone(),
                message: e.to_string(),
            })
        }
    };
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, cfg.backfill_events);
    let object = c.object_name.clone();
    let mut next_chunk = || {
        let r = reader.as_mut()?;
        match r.next_chunk(BULK_CHUNK) {
            Ok(rows) if rows.is_empty() => None,
            Ok(rows) => Some(Value::Array(rows)),
            // Aborts the transaction: nothing of the page is kept, the locator stays,
            // and the restarted worker reads the page again.
            Err(e) => pgrx::error!("sequin_sf: Bulk results of {object} are unreadable: {e}"),
        }
    };
    let locator = page.locator.clone();
    let apply_started = Instant::now();
    let rows = tx(|| {
        apply::apply_bulk_page(
            &cfg.name,
            &t,
            &c.object_name,
            &mut next_chunk,
            locator.as_deref(),
        )
    })?;
    pgrx::log!(
        "sequin_sf: {}: Bulk page of {rows} rows fetched in {:.2} s, applied in {:.2} s",
        c.object_name,
        fetched_in.as_secs_f64(),
        apply_started.elapsed().as_secs_f64()
    );
    Ok(page.locator.is_some())
}

/// The fast path for a Bulk page: the CSV goes to a file in the data directory and
/// into the table through `COPY` and one `INSERT ... SELECT ... ON CONFLICT`.
fn bulk_page_via_copy(
    cfg: &SyncConfig,
    c: &CollectionRow,
    cr: &CollectionRuntime,
    page: salesforce::BulkResultsPage,
    fetched_in: Duration,
) -> Result<bool, StepError> {
    let header = sync_core::records::csv_header(&page.csv).map_err(|e| StepError::Collection {
        object: c.object_name.clone(),
        message: e.to_string(),
    })?;
    let path =
        crate::secrets::data_dir().join(format!("sequin_sf_bulk_{}.csv", std::process::id()));
    let shown = path.display().to_string();
    std::fs::write(&path, &page.csv).map_err(|e| StepError::Collection {
        object: c.object_name.clone(),
        message: format!("could not write the Bulk page to {shown}: {e}"),
    })?;
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, false);
    let started = Instant::now();
    let rows = page.number_of_records as i64;
    let result = tx(|| {
        apply::apply_bulk_csv(
            &cfg.name,
            &t,
            &c.object_name,
            &shown,
            &header,
            rows,
            page.locator.as_deref(),
        )
    });
    let _ = std::fs::remove_file(&path);
    result?;
    pgrx::log!(
        "sequin_sf: {}: Bulk page of {rows} rows fetched in {:.2} s, applied in {:.2} s",
        c.object_name,
        fetched_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(page.locator.is_some())
}
