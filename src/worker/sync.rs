//! One step of one sync: set up new collections (describe + table), read one backfill
//! page, run a poll round when due (queryAll of up to 5 collections per `/composite`
//! call, `/deleted` checks riding along in the same call), re-check describes for
//! schema drift, prune old events. HTTP calls happen between transactions, never
//! inside one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use pgrx::bgworkers::BackgroundWorker;
use salesforce::{CompositeSubresponse, FieldDescribe, RawQueryPage};
use serde_json::{Map, Value};
use sync_core::mapping::{map_fields, map_new_fields, modstamp_field, FieldInfo};
use sync_core::sql::ApplyTarget;
use sync_core::{cursor, naming, queries, schedule};

use super::catalog::{self, CollectionRow, SyncConfig};
use super::runtime::{CollectionRuntime, SyncRuntime};
use super::store;

/// Records per REST page (the most Salesforce returns).
const PAGE_SIZE: u32 = 2000;
/// Records per Bulk results request: few API calls (20 per million), bounded memory.
const BULK_PAGE: u64 = 50_000;
/// Records per set-based statement when applying a Bulk results page.
const BULK_CHUNK: usize = 5_000;
const BULK_FIRST_WAIT: Duration = Duration::from_millis(500);
const BULK_MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Salesforce(#[from] salesforce::Error),
    #[error("database error: {0}")]
    Spi(#[from] pgrx::spi::Error),
    #[error("{object}: {message}")]
    Collection { object: String, message: String },
    /// The worker is stopping; the call in flight was abandoned.
    #[error("stopping")]
    Stopping,
    /// An ERROR raised by Postgres while applying (its transaction was rolled back).
    #[error("applying changes failed: {0}")]
    Database(String),
}

/// Runs one step, turning a Postgres ERROR raised inside it into a [`StepError`]: the
/// open transaction is aborted (nothing of it is kept) and the worker carries on,
/// reporting the error in `sync_status.last_error` and retrying with backoff, instead
/// of dying and restarting in a loop.
pub fn guarded_step(rt: &mut SyncRuntime, cfg: &SyncConfig) -> Result<bool, StepError> {
    catch_errors(|| step(rt, cfg)).unwrap_or_else(|message| Err(StepError::Database(message)))
}

/// Runs `f`, turning a Postgres ERROR (or a Rust panic) raised inside it into its
/// message after aborting the open transaction, so one failing sync cannot take the
/// whole worker (and every other sync) down with it.
pub fn catch_errors<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    use pgrx::pg_sys::panic::CaughtError;
    pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| Ok(f())))
        .catch_others(|caught| {
            // SAFETY: main thread; aborting with no transaction open is a no-op.
            unsafe { pgrx::pg_sys::AbortCurrentTransaction() };
            Err(match &caught {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                    r.message().to_string()
                }
                CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
            })
        })
        .execute()
}

/// Runs `f` in its own transaction.
pub fn tx<R>(f: impl FnOnce() -> R) -> R {
    BackgroundWorker::transaction(std::panic::AssertUnwindSafe(f))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.05, 10.0 * 365.0 * 86_400.0))
}

fn field_info(f: &FieldDescribe) -> FieldInfo {
    FieldInfo {
        name: f.name.clone(),
        sf_type: f.field_type.as_str().to_string(),
        compound_field_name: f.compound_field_name.clone(),
        createable: f.createable,
        updateable: f.updateable,
        calculated: f.calculated,
        nillable: f.nillable,
        restricted_picklist: f.restricted_picklist,
        external_id: f.external_id,
        picklist_values: f.picklist_values.iter().map(|p| p.value.clone()).collect(),
    }
}

fn records_json(records: Vec<Map<String, Value>>) -> Value {
    Value::Array(records.into_iter().map(Value::Object).collect())
}

/// Does one unit of work for the sync. Returns true when more work is ready at once
/// (a backfill in progress), so the worker does not sleep.
pub fn step(rt: &mut SyncRuntime, cfg: &SyncConfig) -> Result<bool, StepError> {
    let colls = tx(|| catalog::load_collections(&cfg.name))?;
    rt.collections
        .retain(|k, _| colls.iter().any(|c| &c.object_name == k && c.has_columns));
    for c in colls.iter().filter(|c| c.has_columns) {
        if !rt.collections.contains_key(&c.object_name) {
            load_collection(rt, cfg, c)?;
        }
    }

    // Settings may change at any time (alter_sync): schedules follow them.
    for cr in rt.collections.values_mut() {
        cr.describe.set_every(secs(cfg.describe_interval_secs));
        cr.deleted.set_every(secs(cfg.deleted_interval_secs));
    }

    let mut busy = false;
    if let Some(c) = colls.iter().find(|c| c.state == "backfilling") {
        busy = if c.has_columns {
            backfill_page(rt, cfg, c)?
        } else {
            set_up(rt, cfg, c)?
        };
    }

    let live: Vec<&CollectionRow> = colls
        .iter()
        .filter(|c| c.state == "live" && c.has_columns && c.stamp_field.is_some())
        .collect();
    let pace = salesforce::pacing::poll_interval(
        cfg.rate_limit_requests.max(1) as u64,
        secs(cfg.rate_limit_interval_secs),
        live.len(),
        schedule::QUERIES_PER_COMPOSITE,
        cfg.write_reserve,
    );
    rt.poll
        .set_every(schedule::round_interval(pace, Duration::from_secs(60)));
    let now = Instant::now();
    if !live.is_empty() && rt.poll.due(now) && poll_round(rt, cfg, &live)? {
        rt.poll.mark(now);
    }
    for c in &live {
        check_describe(rt, cfg, c)?;
    }
    // Prune at least every 10 minutes, more often for short retentions.
    rt.prune
        .set_every(secs((cfg.event_retention_secs / 2.0).clamp(1.0, 600.0)));
    if rt.prune.due(Instant::now()) {
        rt.prune.mark(Instant::now());
        tx(|| store::prune_events(&cfg.schema_name, cfg.event_retention_secs))?;
    }
    Ok(busy)
}

fn load_collection(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<(), StepError> {
    let all = tx(|| catalog::load_columns(&cfg.name, &c.object_name))?;
    let columns = all
        .into_iter()
        .filter(|(_, active)| *active)
        .map(|(c, _)| c)
        .collect();
    rt.collections.insert(
        c.object_name.clone(),
        CollectionRuntime {
            columns,
            next_records_url: None,
            describe: schedule::Periodic::new(secs(cfg.describe_interval_secs)),
            deleted: schedule::Periodic::new(secs(cfg.deleted_interval_secs)),
            bulk_complete: false,
            bulk_check_at: None,
            bulk_wait: BULK_FIRST_WAIT,
            applied: Default::default(),
        },
    );
    Ok(())
}

/// Describes the object and creates its table.
fn set_up(rt: &mut SyncRuntime, cfg: &SyncConfig, c: &CollectionRow) -> Result<bool, StepError> {
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
    let fields: Vec<FieldInfo> = d.fields.iter().map(field_info).collect();
    let columns = map_fields(&fields);
    let stamp = modstamp_field(&columns).map(str::to_string);
    let at = Utc::now();
    tx(|| {
        store::create_collection_table(
            &cfg.name,
            &cfg.schema_name,
            &c.object_name,
            &c.table_name,
            &columns,
            stamp.as_deref(),
            at,
        )
    })?;
    let mut describe = schedule::Periodic::new(secs(cfg.describe_interval_secs));
    describe.mark(Instant::now());
    rt.collections.insert(
        c.object_name.clone(),
        CollectionRuntime {
            columns,
            next_records_url: None,
            describe,
            deleted: schedule::Periodic::new(secs(cfg.deleted_interval_secs)),
            bulk_complete: false,
            bulk_check_at: None,
            bulk_wait: BULK_FIRST_WAIT,
            applied: Default::default(),
        },
    );
    Ok(true)
}

fn target<'a>(
    cfg: &'a SyncConfig,
    c: &'a CollectionRow,
    cr: &'a CollectionRuntime,
    cid: &'a str,
    events: bool,
) -> ApplyTarget<'a> {
    ApplyTarget {
        schema: &cfg.schema_name,
        table: &c.table_name,
        collection_id: cid,
        columns: &cr.columns,
        stamp_field: c.stamp_field.as_deref(),
        emit_events: events,
    }
}

/// The number of records in a page's JSON array and the Id of the last one (the
/// keyset cursor), read without building the records.
fn page_ids(records_json: &str) -> Result<(i64, Option<String>), StepError> {
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
fn backfill_page(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<bool, StepError> {
    if c.rows_total.is_none() {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let total = rt.call(rt.client.count(&queries::count_query(&c.object_name)))?;
        let mode = if total as i64 >= cfg.bulk_threshold {
            "bulk"
        } else {
            "rest"
        };
        tx(|| store::set_rows_total(&cfg.name, &c.object_name, total as i64, mode))?;
        return Ok(true);
    }
    if c.backfill_mode.as_deref() == Some("bulk") {
        return bulk_step(rt, cfg, c);
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
    let cr = &rt.collections[&c.object_name];
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, cfg.backfill_events);
    let apply_started = Instant::now();
    tx(|| {
        store::apply_backfill_page(
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

/// One poll round over the live collections. Returns false when the budget did not
/// allow it (try again at the next iteration).
fn poll_round(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    live: &[&CollectionRow],
) -> Result<bool, StepError> {
    let overlap = chrono::Duration::milliseconds((cfg.poll_overlap_secs * 1000.0) as i64);
    for group in live.chunks(schedule::QUERIES_PER_COMPOSITE) {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let started = Utc::now();
        let mut subs = Vec::new();
        let mut deleted_windows = Vec::new();
        for (i, c) in group.iter().enumerate() {
            let cr = &rt.collections[&c.object_name];
            let stamp = c.stamp_field.as_deref().unwrap_or("SystemModstamp");
            let since = cursor::poll_since(c.poll_cursor.unwrap_or(started), overlap);
            let soql = queries::poll_query(
                &c.object_name,
                &queries::rest_fields(&cr.columns),
                stamp,
                since,
            );
            subs.push(
                rt.client
                    .query_subrequest(&format!("q{i}"), &soql, true, Some(PAGE_SIZE)),
            );
            if cr.deleted.due(Instant::now()) {
                let (start, end) =
                    cursor::deleted_window(c.deleted_cursor.unwrap_or(started), started, overlap);
                let path = format!(
                    "sobjects/{}/deleted/?start={}&end={}",
                    c.object_name,
                    cursor::soql_datetime(start),
                    cursor::soql_datetime(end)
                );
                subs.push(rt.client.get_subrequest(&format!("d{i}"), &path));
                deleted_windows.push((i, end));
            }
        }
        let responses = rt.call(rt.client.composite(false, subs))?;
        for resp in responses {
            let (kind, idx) = resp.reference_id.split_at(1);
            let Some(c) = idx.parse::<usize>().ok().and_then(|i| group.get(i)) else {
                continue;
            };
            if kind == "q" {
                apply_poll_response(rt, cfg, c, resp, started, overlap)?;
            } else if let Some((_, end)) = deleted_windows
                .iter()
                .find(|(i, _)| group[*i].object_name == c.object_name)
            {
                apply_deleted_response(rt, cfg, c, resp, *end)?;
            }
        }
    }
    Ok(true)
}

fn apply_poll_response(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    resp: CompositeSubresponse,
    started: chrono::DateTime<Utc>,
    overlap: chrono::Duration,
) -> Result<(), StepError> {
    let stamp = c
        .stamp_field
        .clone()
        .unwrap_or_else(|| "SystemModstamp".into());
    let mut page = match resp.into_query_page() {
        Ok(p) => p,
        Err(e) => {
            // A field deleted in Salesforce fails the query until the describe says so:
            // re-check the describe now instead of at its next period.
            if e.has_code(&salesforce::ErrorCode::InvalidField) {
                if let Some(cr) = rt.collections.get_mut(&c.object_name) {
                    cr.describe.force();
                }
            }
            let msg = format!("polling {}: {e}", c.object_name);
            tx(|| store::set_collection_error(&cfg.name, &c.object_name, &msg))?;
            return Ok(());
        }
    };
    let mut cur = c.poll_cursor.unwrap_or(started - overlap);
    let window_start = cursor::poll_since(cur, overlap);
    loop {
        let stamp_of =
            |r: &Map<String, Value>| r.get(&stamp).and_then(Value::as_str).map(str::to_string);
        let id_of =
            |r: &Map<String, Value>| r.get("Id").and_then(Value::as_str).map(str::to_string);
        if let Some(cr) = rt.collections.get(&c.object_name) {
            page.records.retain(|r| match (id_of(r), stamp_of(r)) {
                (Some(id), Some(st)) => cr.applied.get(&id) != Some(&st),
                _ => true,
            });
        }
        let fresh: Vec<(String, String)> = page
            .records
            .iter()
            .filter_map(|r| Some((id_of(r)?, stamp_of(r)?)))
            .collect();
        let newest = page
            .records
            .iter()
            .filter_map(|r| {
                r.get(&stamp)
                    .and_then(Value::as_str)
                    .and_then(cursor::parse_sf_datetime)
            })
            .max();
        cur = cursor::advance(cur, newest);
        let next = page.next_records_url.clone().filter(|_| !page.done);
        let cr = &rt.collections[&c.object_name];
        let cid = naming::collection_id(&c.object_name);
        let t = target(cfg, c, cr, &cid, true);
        let caught_up = if next.is_none() { Some(started) } else { None };
        if page.records.is_empty() {
            tx(|| store::mark_polled(&cfg.name, &c.object_name, cur, caught_up))?;
        } else {
            let records = records_json(std::mem::take(&mut page.records));
            tx(|| store::apply_poll_page(&cfg.name, &t, &c.object_name, records, cur, caught_up))?;
        }
        if let Some(cr) = rt.collections.get_mut(&c.object_name) {
            cr.applied.extend(fresh);
            cr.applied
                .retain(|_, st| cursor::parse_sf_datetime(st).is_some_and(|t| t >= window_start));
        }
        let Some(url) = next else { break };
        if !rt.try_spend(1) {
            break;
        }
        page = rt.call(rt.client.query_more(&url))?;
    }
    Ok(())
}

fn apply_deleted_response(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    resp: CompositeSubresponse,
    end: chrono::DateTime<Utc>,
) -> Result<(), StepError> {
    let deleted: salesforce::DeletedRecords = match resp.into_body() {
        Ok(d) => d,
        Err(e) => {
            let msg = format!("checking deletions of {}: {e}", c.object_name);
            tx(|| store::set_collection_error(&cfg.name, &c.object_name, &msg))?;
            return Ok(());
        }
    };
    let ids: Vec<String> = deleted.deleted_records.into_iter().map(|d| d.id).collect();
    let cr = &rt.collections[&c.object_name];
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, true);
    tx(|| store::apply_deleted(&cfg.name, &t, &c.object_name, ids, end))?;
    if let Some(cr) = rt.collections.get_mut(&c.object_name) {
        cr.deleted.mark(Instant::now());
    }
    Ok(())
}

/// Re-reads the describe when due (If-Modified-Since the last one) and adds columns for
/// new fields; vanished fields stop being selected.
fn check_describe(
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
    let existing = tx(|| catalog::load_columns(&cfg.name, &c.object_name))?;
    let known: HashSet<&str> = existing.iter().map(|(col, _)| col.field.as_str()).collect();
    let new_fields: Vec<FieldInfo> = d
        .fields
        .iter()
        .filter(|f| !known.contains(f.name.as_str()))
        .map(field_info)
        .collect();
    let present: HashSet<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
    let removed: Vec<String> = existing
        .iter()
        .filter(|(col, active)| *active && !present.contains(col.field.as_str()))
        .map(|(col, _)| col.field.clone())
        .collect();
    let names: Vec<String> = existing.iter().map(|(col, _)| col.column.clone()).collect();
    let added = map_new_fields(&names, &new_fields);
    tx(|| {
        let tref = store::TableRef {
            sync: &cfg.name,
            schema: &cfg.schema_name,
            object: &c.object_name,
            table: &c.table_name,
        };
        store::apply_drift(&tref, &added, &removed, existing.len() as i32, at)
    })?;
    if !added.is_empty() || !removed.is_empty() {
        pgrx::log!(
            "sequin_sf: {}.{}: {} column(s) added, {} field(s) gone",
            cfg.schema_name,
            c.table_name,
            added.len(),
            removed.len()
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

/// One step of a Bulk 2.0 backfill: start the query job, wait for it (status checks
/// at growing intervals), then read one results page and apply it. The job id and the
/// results locator are persisted, so a restart resumes at the next unread page.
fn bulk_step(rt: &mut SyncRuntime, cfg: &SyncConfig, c: &CollectionRow) -> Result<bool, StepError> {
    let Some(job_id) = c.bulk_job_id.clone() else {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        let cr = &rt.collections[&c.object_name];
        let soql = queries::bulk_query(&c.object_name, &queries::bulk_fields(&cr.columns));
        let job = rt.call(rt.client.bulk_query_create(&soql, false))?;
        tx(|| store::set_bulk_job(&cfg.name, &c.object_name, Some(&job.id)))?;
        if let Some(cr) = rt.collections.get_mut(&c.object_name) {
            cr.bulk_complete = false;
            cr.bulk_wait = BULK_FIRST_WAIT;
            cr.bulk_check_at = Some(Instant::now() + BULK_FIRST_WAIT);
        }
        return Ok(false);
    };
    let now = Instant::now();
    let cr = &rt.collections[&c.object_name];
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
                tx(|| store::set_bulk_job(&cfg.name, &c.object_name, None))?;
                return Err(e.into());
            }
            Err(e) => return Err(e),
        };
        let cr = rt
            .collections
            .get_mut(&c.object_name)
            .expect("loaded above");
        match info.state {
            salesforce::JobState::JobComplete => cr.bulk_complete = true,
            // A job Salesforce failed or aborted would most likely fail again (a field
            // or object the Bulk API does not serve, an admin aborting it): the backfill
            // goes on through the REST API, which reads everything /query reads.
            salesforce::JobState::Failed | salesforce::JobState::Aborted => {
                tx(|| store::fall_back_to_rest(&cfg.name, &c.object_name))?;
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
    let cr = &rt.collections[&c.object_name];
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
        store::apply_bulk_page(
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
        store::apply_bulk_csv(
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
