//! The Bulk 2.0 backfill of large collections: one query job, its CSV results read in
//! pages of 50,000 rows and loaded through `COPY`; job id and locator saved with each
//! page, so a restart resumes at the next unread page.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sync_core::copy_rows::CopyPage;
use sync_core::progress::BackfillMode;
use sync_core::{naming, queries, ColumnSpec};

use super::page_file::{create_page_file, page_file, rewritten_page};
use super::{apply, progress, target};
use crate::catalog::{CollectionRow, SyncConfig};
use crate::db::{tx, Database, DbError};
use crate::error::StepError;
use crate::inflight::{BulkDownload, FetchedPage, OwnedPage};
use crate::runtime::{CollectionRuntime, SyncRuntime, BULK_FIRST_WAIT};
use crate::status;

/// Records per Bulk results request: few API calls (20 per million), bounded memory.
const BULK_PAGE: u64 = crate::allocations::BULK_RESULTS_PAGE;

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
        if let Some(why) = super::org_limits::bulk_job_refused(rt, cfg)? {
            // as after a job that failed: this backfill stays on REST pages
            rt.collection_mut(&c.object_name)?.bulk_failed = true;
            tx(&*rt.db, |s| {
                progress::switch_backfill(s, &cfg.name, &c.object_name, BackfillMode::Rest)?;
                status::set_backfill_note(s, &cfg.name, &c.object_name, Some(&why))
            })?;
            return Ok(true);
        }
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let cr = rt.collection(&c.object_name)?;
        let soql = queries::bulk_query(&c.object_name, &queries::bulk_fields(&cr.columns));
        // operation queryAll for objects whose archived records "query" leaves out
        let all = queries::backfill_reads_all(&c.object_name);
        let job = match rt.call(rt.client.bulk_query_create(&soql, all)) {
            // Salesforce refused the job itself (an object or field the Bulk API does
            // not serve): as for a job that fails, REST pages read it instead
            Err(StepError::Salesforce(e)) if !e.is_transient() && e.status() == Some(400) => {
                rt.collection_mut(&c.object_name)?.bulk_failed = true;
                back_to_rest(&*rt.db, cfg, c)?;
                return Err(StepError::Collection {
                    object: c.object_name.clone(),
                    message: format!("{e}; backfilling through the REST API instead"),
                });
            }
            other => other?,
        };
        tx(&*rt.db, |s| {
            progress::set_bulk_job(s, &cfg.name, &c.object_name, Some(&job.id))?;
            status::record_bulk_job(s, &cfg.name)
        })?;
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
                tx(&*rt.db, |s| {
                    progress::set_bulk_job(s, &cfg.name, &c.object_name, None)
                })?;
                return Err(e.into());
            }
            Err(e) => return Err(e),
        };
        let db = rt.db.clone();
        let cr = rt.collection_mut(&c.object_name)?;
        match info.state {
            salesforce::JobState::JobComplete => cr.bulk_complete = true,
            // A job Salesforce failed or aborted would most likely fail again (a field
            // or object the Bulk API does not serve, an admin aborting it): the backfill
            // goes on through the REST API, which reads everything /query reads.
            salesforce::JobState::Failed | salesforce::JobState::Aborted => {
                cr.bulk_failed = true;
                back_to_rest(&*db, cfg, c)?;
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
    if !cfg.backfill_events {
        return bulk_page_via_copy(rt, cfg, c, &job_id);
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
        let Some(r) = reader.as_mut() else {
            return Ok(None);
        };
        match r.next_chunk(BULK_CHUNK) {
            Ok(rows) if rows.is_empty() => Ok(None),
            Ok(rows) => Ok(Some(Value::Array(rows))),
            // Rolls the transaction back: nothing of the page is kept, the locator
            // stays, and the page is read again.
            Err(e) => Err(DbError::new(format!(
                "sequin_sf: Bulk results of {object} are unreadable: {e}"
            ))),
        }
    };
    let locator = page.locator.clone();
    let apply_started = Instant::now();
    let rows = tx(&*rt.db, |s| {
        apply::apply_bulk_page(
            s,
            &cfg.name,
            &t,
            &c.object_name,
            &mut next_chunk,
            locator.as_deref(),
        )
    })?;
    log::info!(
        "sequin_sf: {}: Bulk page of {rows} rows fetched in {:.2} s, applied in {:.2} s",
        c.object_name,
        fetched_in.as_secs_f64(),
        apply_started.elapsed().as_secs_f64()
    );
    Ok(page.locator.is_some())
}

/// Fetches the results page at `locator` into a file, then rewrites it into another
/// for `COPY` on a blocking thread, away from the worker's Postgres work. Each file is
/// removed when dropped: Salesforce's once rewritten, the rewritten one once applied
/// (or abandoned).
async fn fetch_page(
    client: salesforce::Client,
    job_id: String,
    locator: Option<String>,
    columns: Vec<ColumnSpec>,
) -> salesforce::Result<FetchedPage> {
    let raw = OwnedPage(page_file());
    let mut file = create_page_file(&raw.0)?;
    let info = client
        .bulk_query_results_into(&job_id, locator.as_deref(), Some(BULK_PAGE), &mut file)
        .await?;
    drop(file);
    let rewritten = tokio::task::spawn_blocking(move || {
        let input = std::fs::File::open(&raw.0)
            .map_err(|e| salesforce::Error::Transport(format!("{}: {e}", raw.0.display())))?;
        let input = std::io::BufReader::new(input);
        rewritten_page(|out| sync_core::copy_rows::rewrite_bulk_page(input, out, &columns))
    })
    .await
    .map_err(|e| salesforce::Error::Decode(format!("rewriting a Bulk page: {e}")))??;
    Ok((info, rewritten))
}

/// Fetches and rewrites the results page at `locator`, now.
fn download_now(
    rt: &SyncRuntime,
    job_id: &str,
    locator: Option<&str>,
    columns: &[ColumnSpec],
) -> Result<FetchedPage, StepError> {
    rt.call(fetch_page(
        rt.client.clone(),
        job_id.to_string(),
        locator.map(str::to_string),
        columns.to_vec(),
    ))
}

/// Starts fetching and rewriting the results page at `locator` in the background.
fn download_ahead(
    rt: &mut SyncRuntime,
    job_id: &str,
    locator: &str,
    columns: &[ColumnSpec],
) -> Option<BulkDownload> {
    let page = fetch_page(
        rt.client.clone(),
        job_id.to_string(),
        Some(locator.to_string()),
        columns.to_vec(),
    );
    Some(BulkDownload {
        job_id: job_id.to_string(),
        locator: Some(locator.to_string()),
        ahead: rt.fetch_ahead(page)?,
    })
}

/// The fast path for a Bulk page (no backfill events): the CSV is streamed to a file
/// in the data directory, never held in memory, and rewritten for the table while the
/// previous page is applied; it goes into the table through one `COPY` while the job's
/// rows are new to the table (`InsertMode::New`), else through a staged upsert.
fn bulk_page_via_copy(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    job_id: &str,
) -> Result<bool, StepError> {
    let started = Instant::now();
    let columns = rt.collection(&c.object_name)?.columns.clone();
    let ready = rt
        .collection_mut(&c.object_name)?
        .bulk_next
        .take()
        .filter(|d| d.job_id == job_id && d.locator == c.bulk_locator);
    let (info, (page, copy)) = match ready {
        Some(d) => rt.fetched(d.ahead)?,
        None => {
            if !rt.try_spend(1) {
                return Ok(false);
            }
            download_now(rt, job_id, c.bulk_locator.as_deref(), &columns)?
        }
    };
    let fetched_in = started.elapsed();
    if let Some(next) = info.locator.as_deref() {
        let d = download_ahead(rt, job_id, next, &columns);
        rt.collection_mut(&c.object_name)?.bulk_next = d;
    }
    let db = rt.db.clone();
    let cr = rt.collection_mut(&c.object_name)?;
    let rows = apply_page_file(&*db, (cfg, c, cr), &page.0, &info, &copy)?;
    log::info!(
        "sequin_sf: {}: Bulk page of {rows} rows fetched in {:.2} s, applied in {:.2} s",
        c.object_name,
        fetched_in.as_secs_f64(),
        (started.elapsed() - fetched_in).as_secs_f64()
    );
    Ok(info.locator.is_some())
}

/// Applies the page in file `path` (rewritten as `copy` says) and moves the persisted
/// locator past it.
fn apply_page_file(
    db: &dyn Database,
    (cfg, c, cr): (&SyncConfig, &CollectionRow, &mut CollectionRuntime),
    path: &Path,
    info: &salesforce::BulkPageInfo,
    copy: &CopyPage,
) -> Result<i64, StepError> {
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, false);
    if copy.rows == 0 {
        tx(db, |s| {
            apply::apply_bulk_page(
                s,
                &cfg.name,
                &t,
                &c.object_name,
                &mut || Ok(None),
                info.locator.as_deref(),
            )
        })?;
        return Ok(0);
    }
    let rows = info.number_of_records as i64;
    let file = apply::CopyFile {
        path,
        columns: &copy.columns,
    };
    let page = (&file, rows, info.locator.as_deref());
    let mut rows_new = cr.rows_new;
    let applied = super::insert_new_or_upsert(db, &c.object_name, &mut rows_new, |mode| {
        tx(db, |s| {
            apply::apply_bulk_csv(s, &cfg.name, &t, &c.object_name, page, mode)
        })
    });
    cr.rows_new = rows_new;
    applied.map(|()| rows)
}

/// Switches the backfill to REST pages, from the start (a Bulk job refused or failed).
fn back_to_rest(db: &dyn Database, cfg: &SyncConfig, c: &CollectionRow) -> Result<(), StepError> {
    Ok(tx(db, |s| {
        progress::switch_backfill(s, &cfg.name, &c.object_name, BackfillMode::Rest)
    })?)
}
