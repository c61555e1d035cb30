//! Bulk API 2.0 query jobs (CSV results paged with `Sforce-Locator`), and the job
//! bookkeeping shared with ingest jobs (`bulk2_ingest`).
//!
//! A query runs when its job is created; the job reports `UploadComplete` in the create
//! response and `JobComplete` from the first status poll on. Results asked for before
//! any poll get 412 `JOB_NOT_COMPLETE`, as a job still running would.

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
    JobComplete,
    Failed,
    Aborted,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Open => "Open",
            State::UploadComplete => "UploadComplete",
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

struct QueryJob {
    common: Common,
    plan: Arc<Plan>,
    rows: Arc<Vec<u32>>,
}

/// All Bulk 2.0 jobs of the org.
#[derive(Default)]
pub struct Jobs {
    query: Mutex<HashMap<String, QueryJob>>,
    pub(crate) ingest: Mutex<HashMap<String, IngestJob>>,
    next: AtomicU64,
    query_jobs_created: AtomicU64,
}

impl Jobs {
    /// Query jobs created so far (for `/limits` DailyBulkV2QueryJobs).
    pub fn query_job_count(&self) -> usize {
        self.query_jobs_created.load(Ordering::Relaxed) as usize
    }

    pub(crate) fn next_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        crate::ids::make_id(b"750", n)
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
            let jobs = app.bulk.query.lock();
            Ok(list_response(app, jobs.values().map(|j| &j.common)))
        }
        (&Method::GET, [id]) => {
            let mut jobs = app.bulk.query.lock();
            let job = jobs.get_mut(*id).ok_or_else(job_not_found)?;
            if !job.common.state.finished() {
                job.common.set_state(State::JobComplete);
            }
            Ok(Resp::json(200, &Value::Object(query_info(app, job))))
        }
        (&Method::PATCH, [id]) => {
            let b = req.json()?;
            let mut jobs = app.bulk.query.lock();
            let job = jobs.get_mut(*id).ok_or_else(job_not_found)?;
            match str_field(&b, "state") {
                Some("Aborted") if !job.common.state.finished() => {
                    job.common.set_state(State::Aborted);
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
            let mut jobs = app.bulk.query.lock();
            jobs.remove(*id).ok_or_else(job_not_found)?;
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
        json!(if done { 1 } else { 0 }),
    );
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
    let mut jobs = app.bulk.query.lock();
    crate::bounded::make_room(&mut jobs, MAX_QUERY_JOBS, |j| {
        (j.common.created_ms, j.common.id.clone())
    });
    jobs.insert(
        id,
        QueryJob {
            common,
            plan: Arc::new(plan),
            rows: Arc::new(rows),
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
        let jobs = app.bulk.query.lock();
        let job = jobs.get(id).ok_or_else(job_not_found)?;
        match job.common.state {
            State::JobComplete => {}
            State::Aborted | State::Failed => {
                return Err(state_error(format!(
                    "Job {id} is {}; it has no results",
                    job.common.state.name()
                )))
            }
            _ => {
                return Err(ApiError::new(
                    412,
                    "JOB_NOT_COMPLETE",
                    format!("Job {id} has not completed yet; poll GET /jobs/query/{id} until its state is JobComplete"),
                ))
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
