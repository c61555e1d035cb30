//! Bulk API 2.0 query jobs (CSV results paged with `Sforce-Locator`), and the job
//! bookkeeping shared with ingest jobs (`bulk2_ingest`).
//!
//! A query is evaluated when its job is created, but the job reports its real states
//! over time. Facts modelled here, from Salesforce's documentation:
//! - A query job starts `UploadComplete` ("the job is ready to be processed"), moves to
//!   `InProgress` while Salesforce processes it, and ends `JobComplete`, `Failed` or
//!   `Aborted`. ("Job States", Bulk API 2.0 and Bulk API Developer Guide,
//!   https://developer.salesforce.com/docs/atlas.en-us.254.0.api_asynch.meta/api_asynch/bulk_api_2_job_states.htm;
//!   "How Requests Are Processed",
//!   https://developer.salesforce.com/docs/atlas.en-us.226.0.api_bulk_v2.meta/api_bulk_v2/how_requests_are_processed.htm)
//! - Results can be read only once the job is `JobComplete`; earlier, 412
//!   `JOB_NOT_COMPLETE` "can only download query results of successfully completed
//!   bulk job with status: JOB_COMPLETE. Current status: IN_PROGRESS". ("Get Results
//!   for a Query Job", https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm;
//!   the error example is in the v222 edition,
//!   https://developer.salesforce.com/docs/atlas.ja-jp.222.0.api_bulk_v2.meta/api_bulk_v2/query_get_job_results.htm.)
//!   The other status words (`UPLOAD_COMPLETE`) follow that spelling; not confirmed.
//! - "Jobs that are older than 7 days are deleted if they are in a terminal state
//!   (completed or failed)" ("Limits and Allocations", Bulk API 2.0,
//!   https://developer.salesforce.com/docs/atlas.en-us.228.0.api_bulk_v2.meta/api_bulk_v2/bulk_api_2_limits.htm).
//!   A deleted job is unknown: 404 `NOT_FOUND` like any unknown job id (the answer
//!   for a job deleted by age is not shown in the documentation).
//! - "You can only delete a job if its state is JobComplete, Aborted, or Failed",
//!   else 400 `API_ERROR` "Error encountered when deleting the job because the job is
//!   not terminated" ("Delete a Query Job",
//!   https://developer.salesforce.com/docs/platform/api-asynch/guide/query-delete-job.md).
//!
//! How long a job takes is `--bulk-job-ms` (or `bulk_job_ms` in `PUT /__emulator/limits`),
//! fixed for each job when it is created: it is `UploadComplete` for the first quarter
//! of that time, `InProgress` until it ends. With 0 (the default) a job ends at the first
//! status poll, so results asked for before any poll still get 412.

use crate::app::App;
use crate::bulk2_ingest::IngestJob;
use crate::csvout::{self, Format};
use crate::error::ApiError;
use crate::http::{Req, Resp};
use crate::query::{Locked, Plan};
use base64::Engine;
use hyper::Method;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub(crate) const CSV: &str = "text/csv";
/// Rows per results page when the client gives no `maxRecords`.
const DEFAULT_MAX_RECORDS: usize = 100_000;
const LOCATOR: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Open => "Open",
            State::UploadComplete => "UploadComplete",
            State::InProgress => "InProgress",
            State::JobComplete => "JobComplete",
            State::Failed => "Failed",
            State::Aborted => "Aborted",
        }
    }

    pub(crate) fn finished(self) -> bool {
        matches!(self, State::JobComplete | State::Failed | State::Aborted)
    }
}

/// What every job's info holds.
pub(crate) struct Common {
    pub(crate) id: String,
    pub(crate) operation: String,
    pub(crate) object: String,
    pub(crate) created_ms: i64,
    pub(crate) modified_ms: i64,
    pub(crate) state: State,
    pub(crate) format: Format,
    pub(crate) api_version: String,
}

impl Common {
    pub(crate) fn info(&self, app: &App) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("operation".into(), json!(self.operation));
        m.insert("object".into(), json!(self.object));
        m.insert("createdById".into(), json!(app.org.user_id));
        m.insert(
            "createdDate".into(),
            json!(crate::timefmt::datetime_string(self.created_ms)),
        );
        m.insert(
            "systemModstamp".into(),
            json!(crate::timefmt::datetime_string(self.modified_ms)),
        );
        m.insert("state".into(), json!(self.state.name()));
        m.insert("concurrencyMode".into(), json!("Parallel"));
        m.insert("contentType".into(), json!("CSV"));
        m.insert(
            "apiVersion".into(),
            json!(self.api_version.parse::<f64>().unwrap_or(61.0)),
        );
        m.insert("lineEnding".into(), json!(self.format.line_ending_name()));
        m.insert(
            "columnDelimiter".into(),
            json!(self.format.delimiter_name()),
        );
        m
    }

    pub(crate) fn set_state(&mut self, s: State) {
        self.state = s;
        self.modified_ms = crate::timefmt::wall_ms();
    }
}

/// How a query job ends once its time is up.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum End {
    Complete,
    Failed(String),
    Aborted,
}

impl End {
    /// From a control call's `state` (and `errorMessage` for Failed).
    pub(crate) fn parse(state: &str, message: Option<&str>, default: &str) -> Option<End> {
        Some(match state {
            "JobComplete" | "Completed" => End::Complete,
            "Failed" => End::Failed(message.unwrap_or(default).to_string()),
            "Aborted" => End::Aborted,
            _ => return None,
        })
    }

    /// From a `bulk_job_failed` / `bulk_job_aborted` fault.
    pub(crate) fn from_fault(
        kind: crate::faults::FaultKind,
        message: Option<String>,
        default: &str,
    ) -> End {
        match kind {
            crate::faults::FaultKind::BulkJobAborted => End::Aborted,
            _ => End::Failed(message.unwrap_or_else(|| default.to_string())),
        }
    }
}

/// The errorMessage of a job failed by a fault. Salesforce documents that a query job
/// is retried at most 15 times before it fails ("If you receive a message that the API
/// retried more than 15 times, apply a filter criteria and try again": "Limits and
/// Allocations", https://developer.salesforce.com/docs/atlas.en-us.228.0.api_bulk_v2.meta/api_bulk_v2/bulk_api_2_limits.htm);
/// the exact wording of the message is not shown there.
pub(crate) const FAILED_MESSAGE: &str = "Retried more than 15 times";

struct QueryJob {
    common: Common,
    plan: Arc<Plan>,
    rows: Arc<Vec<u32>>,
    /// How long this job runs; 0: it ends at its first status poll.
    run_ms: u64,
    end: End,
    error_message: Option<String>,
    /// When it reached a terminal state (results expire counted from here).
    finished_ms: Option<i64>,
}

impl QueryJob {
    /// Moves the job along its states as time passes; `polled` says a client is
    /// reading its status (which ends a job with no run time).
    fn advance(&mut self, now: i64, polled: bool) {
        if self.common.state.finished() {
            return;
        }
        let ends = self.common.created_ms + self.run_ms as i64;
        if self.run_ms == 0 {
            if polled {
                self.finish(now);
            }
        } else if now >= ends {
            self.finish(ends);
        } else if now >= self.common.created_ms + (self.run_ms / 4) as i64
            && self.common.state != State::InProgress
        {
            self.common.set_state(State::InProgress);
        }
    }

    fn finish(&mut self, at: i64) {
        let state = match &self.end {
            End::Complete => State::JobComplete,
            End::Failed(m) => {
                self.error_message = Some(m.clone());
                State::Failed
            }
            End::Aborted => State::Aborted,
        };
        self.common.state = state;
        self.common.modified_ms = at;
        self.finished_ms = Some(at);
    }
}

/// Query job run time and results lifetime, changeable at run time.
pub struct Timing {
    job_ms: AtomicU64,
    ttl_ms: AtomicU64,
}

impl Timing {
    pub fn new(job_ms: u64, ttl_ms: u64) -> Timing {
        Timing {
            job_ms: AtomicU64::new(job_ms),
            ttl_ms: AtomicU64::new(ttl_ms),
        }
    }

    pub fn job_ms(&self) -> u64 {
        self.job_ms.load(Ordering::Relaxed)
    }

    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms.load(Ordering::Relaxed)
    }

    pub fn set(&self, job_ms: Option<u64>, ttl_ms: Option<u64>) {
        if let Some(v) = job_ms {
            self.job_ms.store(v, Ordering::Relaxed);
        }
        if let Some(v) = ttl_ms {
            self.ttl_ms.store(v, Ordering::Relaxed);
        }
    }
}

/// All Bulk 2.0 jobs of the org.
#[derive(Default)]
pub struct Jobs {
    query: Mutex<HashMap<String, QueryJob>>,
    pub(crate) ingest: Mutex<HashMap<String, IngestJob>>,
    next: AtomicU64,
    query_jobs_created: AtomicU64,
    /// Query jobs and result storage (MB) other clients used today (control API), so a
    /// test can bring the org near its Bulk allocations.
    query_jobs_elsewhere: AtomicU64,
    storage_mb_elsewhere: AtomicU64,
}

impl Jobs {
    /// Query jobs created so far, here and elsewhere (for `/limits`
    /// DailyBulkV2QueryJobs).
    pub fn query_job_count(&self) -> usize {
        (self.query_jobs_created.load(Ordering::Relaxed)
            + self.query_jobs_elsewhere.load(Ordering::Relaxed)) as usize
    }

    /// Result storage used today, in MB (for `/limits` DailyBulkV2QueryFileStorageMB):
    /// only what the control API says other clients used.
    pub fn storage_mb_used(&self) -> u64 {
        self.storage_mb_elsewhere.load(Ordering::Relaxed)
    }

    /// Sets what other clients used today (None: unchanged).
    pub fn set_used_elsewhere(&self, query_jobs: Option<u64>, storage_mb: Option<u64>) {
        if let Some(n) = query_jobs {
            self.query_jobs_elsewhere.store(n, Ordering::Relaxed);
        }
        if let Some(n) = storage_mb {
            self.storage_mb_elsewhere.store(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn next_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        crate::ids::make_id(b"750", n)
    }

    /// The query jobs, moved along in time and without those whose results expired.
    fn query_jobs(&self, app: &App) -> parking_lot::MutexGuard<'_, HashMap<String, QueryJob>> {
        let mut jobs = self.query.lock();
        let now = crate::timefmt::wall_ms();
        let ttl = app.bulk_timing.ttl_ms() as i64;
        jobs.retain(|_, j| {
            j.advance(now, false);
            j.finished_ms.is_none_or(|f| now - f < ttl)
        });
        jobs
    }

    /// A control call ends a running query job now, as `end` says. Ok(false): no such
    /// query job.
    pub(crate) fn end_job(&self, app: &App, id: &str, end: End) -> Result<bool, String> {
        let mut jobs = self.query_jobs(app);
        let Some(job) = jobs.get_mut(id) else {
            return Ok(false);
        };
        if job.common.state.finished() {
            return Err(format!(
                "query job {id} is already {}",
                job.common.state.name()
            ));
        }
        job.end = end;
        job.finish(crate::timefmt::wall_ms());
        Ok(true)
    }

    /// Salesforce's clean-up of old jobs, now: every finished query job is deleted.
    pub(crate) fn expire_finished(&self, app: &App) -> usize {
        let mut jobs = self.query_jobs(app);
        let before = jobs.len();
        jobs.retain(|_, j| j.finished_ms.is_none());
        before - jobs.len()
    }
}

pub(crate) fn job_not_found() -> ApiError {
    ApiError::new(404, "NOT_FOUND", "The requested resource does not exist")
}

pub(crate) fn invalid_job(msg: impl Into<String>) -> ApiError {
    ApiError::bad("INVALIDJOB", msg)
}

pub(crate) fn state_error(msg: impl Into<String>) -> ApiError {
    ApiError::bad("INVALIDJOBSTATE", msg)
}

pub(crate) fn str_field<'a>(b: &'a Value, k: &str) -> Option<&'a str> {
    b.get(k).and_then(Value::as_str)
}

pub(crate) fn format_of(b: &Value) -> Result<Format, ApiError> {
    if let Some(ct) = str_field(b, "contentType") {
        if ct != "CSV" {
            return Err(invalid_job(format!(
                "contentType {ct} is not supported; use CSV"
            )));
        }
    }
    Format::parse(str_field(b, "columnDelimiter"), str_field(b, "lineEnding")).map_err(invalid_job)
}

/// `GET /jobs/query` or `/jobs/ingest`: every job's info, oldest first.
pub(crate) fn list_response<'a>(app: &App, jobs: impl Iterator<Item = &'a Common>) -> Resp {
    let mut list: Vec<&Common> = jobs.collect();
    list.sort_by_key(|c| (c.created_ms, c.id.clone()));
    let records: Vec<Value> = list.iter().map(|c| Value::Object(c.info(app))).collect();
    Resp::json(
        200,
        &json!({"done": true, "records": records, "nextRecordsUrl": null}),
    )
}

/// `/jobs/query[/{id}[/results]]`.
pub fn query_route(app: &App, req: &Req, v: &str, rest: &[String]) -> Result<Resp, ApiError> {
    let r: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (&req.method, r.as_slice()) {
        (&Method::POST, []) => create_query(app, req, v),
        (&Method::GET, []) => {
            let jobs = app.bulk.query_jobs(app);
            Ok(list_response(app, jobs.values().map(|j| &j.common)))
        }
        (&Method::GET, [id]) => {
            let mut jobs = app.bulk.query_jobs(app);
            let job = jobs.get_mut(*id).ok_or_else(job_not_found)?;
            job.advance(crate::timefmt::wall_ms(), true);
            Ok(Resp::json(200, &Value::Object(query_info(app, job))))
        }
        (&Method::PATCH, [id]) => {
            let b = req.json()?;
            let mut jobs = app.bulk.query_jobs(app);
            let job = jobs.get_mut(*id).ok_or_else(job_not_found)?;
            match str_field(&b, "state") {
                Some("Aborted") if !job.common.state.finished() => {
                    job.end = End::Aborted;
                    job.finish(crate::timefmt::wall_ms());
                    Ok(Resp::json(200, &Value::Object(query_info(app, job))))
                }
                Some("Aborted") => Err(state_error(format!(
                    "Job {} is {} and can no longer be aborted",
                    job.common.id,
                    job.common.state.name()
                ))),
                _ => Err(state_error(
                    "A query job's state can only be set to Aborted",
                )),
            }
        }
        (&Method::DELETE, [id]) => {
            let mut jobs = app.bulk.query_jobs(app);
            let job = jobs.get(*id).ok_or_else(job_not_found)?;
            if !job.common.state.finished() {
                return Err(ApiError::bad(
                    "API_ERROR",
                    "Error encountered when deleting the job because the job is not terminated",
                ));
            }
            jobs.remove(*id);
            Ok(Resp::empty(204))
        }
        (&Method::GET, [id, "results"]) => query_results(app, req, id),
        (_, [] | [_] | [_, "results"]) => Err(ApiError::method_not_allowed(req.method.as_str())),
        _ => Err(ApiError::not_found()),
    }
}

fn query_info(app: &App, job: &QueryJob) -> Map<String, Value> {
    let mut m = job.common.info(app);
    m.insert("jobType".into(), json!("V2Query"));
    let done = job.common.state == State::JobComplete;
    m.insert(
        "numberRecordsProcessed".into(),
        json!(if done { job.rows.len() } else { 0 }),
    );
    m.insert("retries".into(), json!(0));
    m.insert(
        "totalProcessingTime".into(),
        json!(if done { job.run_ms.max(1) } else { 0 }),
    );
    if let Some(msg) = &job.error_message {
        m.insert("errorMessage".into(), json!(msg));
    }
    m
}

fn create_query(app: &App, req: &Req, v: &str) -> Result<Resp, ApiError> {
    let b = req.json()?;
    let all = match str_field(&b, "operation") {
        Some("query") => false,
        Some("queryAll") => true,
        Some(other) => {
            return Err(invalid_job(format!(
                "operation {other} is not valid for a query job; use query or queryAll"
            )))
        }
        None => return Err(invalid_job("operation is required: query or queryAll")),
    };
    let text = str_field(&b, "query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| invalid_job("query is required: the SOQL to run"))?;
    let format = format_of(&b)?;
    let (plan, rows, bq) = crate::query::plan(app, text, all, true)?;
    let now = crate::timefmt::wall_ms();
    let common = Common {
        id: app.bulk.next_id(),
        operation: if all { "queryAll" } else { "query" }.into(),
        object: bq.from.clone(),
        created_ms: now,
        modified_ms: now,
        state: State::UploadComplete,
        format,
        api_version: v.to_string(),
    };
    let info = common.info(app);
    let id = common.id.clone();
    let end = match app.faults.pick_job(&req.path) {
        Some((kind, message)) => End::from_fault(kind, message, FAILED_MESSAGE),
        None => End::Complete,
    };
    let run_ms = app.bulk_timing.job_ms();
    let mut jobs = app.bulk.query_jobs(app);
    crate::bounded::make_room(&mut jobs, MAX_QUERY_JOBS, |j| {
        (j.common.created_ms, j.common.id.clone())
    });
    jobs.insert(
        id,
        QueryJob {
            common,
            plan: Arc::new(plan),
            rows: Arc::new(rows),
            run_ms,
            end,
            error_message: None,
            finished_ms: None,
        },
    );
    drop(jobs);
    app.bulk.query_jobs_created.fetch_add(1, Ordering::Relaxed);
    Ok(Resp::json(200, &Value::Object(info)))
}

/// Query jobs kept with their results; beyond this the oldest are forgotten (as
/// Salesforce deletes results after a while), so a long run's memory stays bounded.
const MAX_QUERY_JOBS: usize = 100;

fn decode_locator(loc: &str) -> Option<usize> {
    let bytes = LOCATOR.decode(loc.trim_end_matches('=')).ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

fn encode_locator(pos: usize) -> String {
    LOCATOR.encode(pos.to_string())
}

fn query_results(app: &App, req: &Req, id: &str) -> Result<Resp, ApiError> {
    let (plan, rows, format) = {
        let jobs = app.bulk.query_jobs(app);
        let job = jobs.get(id).ok_or_else(job_not_found)?;
        match job.common.state {
            State::JobComplete => {}
            // What Salesforce answers for the results of a Failed or Aborted job is
            // not in its documentation; INVALIDJOBSTATE is the emulator's choice.
            State::Aborted | State::Failed => {
                return Err(state_error(format!(
                    "Job {id} is {}; it has no results",
                    job.common.state.name()
                )))
            }
            other => {
                let status = match other {
                    State::InProgress => "IN_PROGRESS",
                    State::Open => "OPEN",
                    _ => "UPLOAD_COMPLETE",
                };
                return Err(ApiError::new(
                    412,
                    "JOB_NOT_COMPLETE",
                    format!("can only download query results of successfully completed bulk job with status: JOB_COMPLETE. Current status: {status}"),
                ));
            }
        }
        (job.plan.clone(), job.rows.clone(), job.common.format)
    };
    let max = match req.param("maxRecords") {
        None | Some("") => DEFAULT_MAX_RECORDS,
        Some(s) => s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad(
                "INVALIDPARAMETER",
                format!("maxRecords must be a positive whole number, got {s}"),
            )
        })?,
    };
    let start = match req.param("locator") {
        None | Some("") | Some("null") => 0,
        Some(l) => decode_locator(l)
            .filter(|p| *p <= rows.len())
            .ok_or_else(|| ApiError::bad("INVALIDLOCATOR", format!("Invalid locator {l}")))?,
    };
    let end = start.saturating_add(max).min(rows.len());
    let mut out = Vec::with_capacity((end - start) * 64 * plan.columns.len().max(1) + 256);
    csvout::header(&mut out, &plan.columns, format);
    {
        let locked = Locked::new(&plan.objs);
        for &r in &rows[start..end] {
            csvout::row(&mut out, &locked, &plan.columns, r as usize, format);
        }
    }
    let next = if end < rows.len() {
        encode_locator(end)
    } else {
        "null".to_string()
    };
    Ok(Resp::text(200, CSV, out)
        .header("sforce-locator", next)
        .header("sforce-numberofrecords", (end - start).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip() {
        assert_eq!(encode_locator(20000), "MjAwMDA");
        assert_eq!(decode_locator("MjAwMDA"), Some(20000));
        assert_eq!(decode_locator("not a locator!"), None);
    }
}
