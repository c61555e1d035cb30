//! Bulk API 1.0 query jobs (`/services/async/NN.N/job`), which some ELT tools still
//! use: job info in XML or JSON (as the job was created), batch info in XML for CSV
//! jobs, one CSV result per batch. Load operations (insert, update, ...) are refused
//! with a message pointing at Bulk API 2.0 ingest, which the emulator implements.
//!
//! A batch's query is evaluated when the batch is added; the batch then reports
//! `Queued`, `InProgress` and `Completed` (or `Failed`) over `--bulk-job-ms`, like
//! Bulk 2.0 jobs (see `bulk2`); with 0 it ends at the first poll of its batch info.
//! Facts modelled, from Salesforce's documentation ("Interpret Batch State",
//! https://developer.salesforce.com/docs/atlas.en-us.264.0.api_asynch.meta/api_asynch/asynch_api_batches_interpret_status.htm):
//! a Queued batch of an aborted job "isn't processed and its state is set to
//! NotProcessed"; an InProgress one is still processed to completion. Results "are
//! returned and stored for 7 days" and a query that runs too long fails with
//! QUERY_TIMEOUT or, after repeated retrieval attempts, "Retried more than thirty
//! times" ("How Bulk Queries Are Processed",
//! https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/asynch_api_bulk_query_processing.htm).

use crate::app::App;
use crate::bulk2::End;
use crate::csvout::{self, Format};
use crate::error::ApiError;
use crate::http::{Req, Resp};
use crate::query::{Locked, Plan};
use hyper::Method;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const NS: &str = "http://www.force.com/2009/06/asyncapi/dataload";
const XML: &str = "application/xml";
const JSON: &str = "application/json";
/// Jobs kept with their results.
const MAX_JOBS: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BatchState {
    Queued,
    InProgress,
    Completed,
    Failed,
    NotProcessed,
}

impl BatchState {
    fn name(self) -> &'static str {
        match self {
            BatchState::Queued => "Queued",
            BatchState::InProgress => "InProgress",
            BatchState::Completed => "Completed",
            BatchState::Failed => "Failed",
            BatchState::NotProcessed => "NotProcessed",
        }
    }

    fn finished(self) -> bool {
        matches!(
            self,
            BatchState::Completed | BatchState::Failed | BatchState::NotProcessed
        )
    }
}

/// The stateMessage of a batch failed by a fault (see the module comment).
const FAILED_MESSAGE: &str = "Retried more than thirty times";

struct Batch {
    id: String,
    result_id: String,
    created_ms: i64,
    state: BatchState,
    /// The query's outcome: rows to write, or why it cannot run.
    outcome: Result<(Arc<Plan>, Arc<Vec<u32>>), String>,
    /// How long the batch runs; 0: it ends at the first poll of its info.
    run_ms: u64,
    /// How it ends when its query can run (a fault or control call may say otherwise).
    end: End,
    /// stateMessage once Failed.
    message: Option<String>,
    finished_ms: Option<i64>,
}

impl Batch {
    fn finish(&mut self, at: i64, job_aborted: &mut bool) {
        self.finished_ms = Some(at);
        match (&self.outcome, &self.end) {
            (Err(m), _) | (Ok(_), End::Failed(m)) => {
                self.message = Some(m.clone());
                self.state = BatchState::Failed;
            }
            (Ok(_), End::Complete) => self.state = BatchState::Completed,
            // The job is aborted while this batch still waits in the queue.
            (Ok(_), End::Aborted) => {
                *job_aborted = true;
                self.state = BatchState::NotProcessed;
            }
        }
    }
}

struct Job {
    id: String,
    operation: String,
    object: String,
    created_ms: i64,
    modified_ms: i64,
    open: bool,
    aborted: bool,
    /// Job info answered in JSON (the job was created with a JSON body).
    json: bool,
    api_version: String,
    batches: Vec<Batch>,
}

impl Job {
    /// When the last batch finished (the job's creation if it has none), once none is
    /// still to finish; an open job without batches is still to be used.
    fn finished_ms(&self) -> Option<i64> {
        if self.open && self.batches.is_empty() {
            return None;
        }
        let mut last = self.created_ms;
        for b in &self.batches {
            last = last.max(b.finished_ms?);
        }
        Some(last)
    }
}

#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
    next: AtomicU64,
}

impl Jobs {
    fn next(&self, prefix: &[u8; 3]) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        crate::ids::make_id(prefix, n)
    }

    /// The jobs, their batches moved along in time, without those whose results
    /// expired (every batch finished more than the results lifetime ago).
    fn live(&self, app: &App) -> parking_lot::MutexGuard<'_, HashMap<String, Job>> {
        let mut jobs = self.jobs.lock();
        let now = crate::timefmt::wall_ms();
        let ttl = app.bulk_timing.ttl_ms() as i64;
        jobs.retain(|_, j| {
            advance(j, now, false);
            j.finished_ms().is_none_or(|f| now - f < ttl)
        });
        jobs
    }

    /// A control call ends the job's unfinished batches now, as `end` says. Ok(false):
    /// no such job.
    pub(crate) fn end_job(&self, app: &App, id: &str, end: End) -> Result<bool, String> {
        let mut jobs = self.live(app);
        let Some(job) = jobs.get_mut(id) else {
            return Ok(false);
        };
        let now = crate::timefmt::wall_ms();
        if end == End::Aborted {
            abort(job, now);
            return Ok(true);
        }
        let mut running = job
            .batches
            .iter_mut()
            .filter(|b| !b.state.finished())
            .peekable();
        if running.peek().is_none() {
            return Err(format!("Bulk API 1.0 job {id} has no unfinished batch"));
        }
        let mut aborted = job.aborted;
        for b in running {
            b.end = end.clone();
            b.finish(now, &mut aborted);
        }
        job.aborted = aborted;
        Ok(true)
    }

    /// Every job whose batches all finished is deleted now.
    pub(crate) fn expire_finished(&self, app: &App) -> usize {
        let mut jobs = self.live(app);
        let before = jobs.len();
        jobs.retain(|_, j| j.finished_ms().is_none());
        before - jobs.len()
    }
}

/// Moves a job's batches along their states; `polled`: a client reads batch info.
fn advance(job: &mut Job, now: i64, polled: bool) {
    let mut aborted = job.aborted;
    for b in &mut job.batches {
        if b.state.finished() {
            continue;
        }
        let ends = b.created_ms + b.run_ms as i64;
        if b.run_ms == 0 {
            if polled {
                b.finish(now, &mut aborted);
            }
        } else if now >= ends {
            b.finish(ends, &mut aborted);
        } else if now >= b.created_ms + (b.run_ms / 4) as i64 {
            b.state = BatchState::InProgress;
        }
    }
    if aborted && !job.aborted {
        abort(job, now);
    }
}

/// The job is aborted: queued batches are not processed; running ones go on.
fn abort(job: &mut Job, now: i64) {
    job.aborted = true;
    job.open = false;
    job.modified_ms = now;
    for b in &mut job.batches {
        if b.state == BatchState::Queued {
            b.state = BatchState::NotProcessed;
            b.finished_ms = Some(now);
        }
    }
}

/// A Bulk 1.0 failure: `exceptionCode` / `exceptionMessage`.
struct Fault {
    status: u16,
    code: &'static str,
    message: String,
}

fn fault(status: u16, code: &'static str, message: impl Into<String>) -> Fault {
    Fault {
        status,
        code,
        message: message.into(),
    }
}

impl Fault {
    fn into_resp(self, json: bool) -> Resp {
        if json {
            return Resp::text(
                self.status,
                JSON,
                serde_json::to_vec(
                    &json!({"exceptionCode": self.code, "exceptionMessage": self.message}),
                )
                .unwrap_or_default(),
            );
        }
        Resp::text(
            self.status,
            XML,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><error xmlns=\"{NS}\"><exceptionCode>{}</exceptionCode><exceptionMessage>{}</exceptionMessage></error>",
                self.code,
                crate::auth::xml_escape(&self.message)
            ),
        )
    }
}

/// A REST-style error (authentication, quota) in Bulk 1.0's own shape.
pub fn error_resp(e: &ApiError, req: &Req) -> Resp {
    let code = match e.code.as_str() {
        "INVALID_SESSION_ID" => "InvalidSessionId",
        "REQUEST_LIMIT_EXCEEDED" => "ExceededQuota",
        "NOT_FOUND" => "InvalidUrl",
        _ => "InvalidJob",
    };
    let status = if e.status == 401 { 400 } else { e.status };
    fault(status, code, e.message.clone()).into_resp(wants_json(req))
}

fn wants_json(req: &Req) -> bool {
    req.header("content-type")
        .is_some_and(|c| c.contains("json"))
        || req
            .header("accept")
            .is_some_and(|a| a.contains("json") && !a.contains("xml"))
}

/// The text of `<tag>...</tag>` in a small XML document.
fn xml_tag<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..start + end].trim())
}

fn stamp(ms: i64) -> String {
    let s = crate::timefmt::datetime_string(ms);
    format!("{}Z", s.trim_end_matches("+0000"))
}

/// Job and batch fields in order, as (name, value) pairs for XML or JSON.
type Fields = Vec<(&'static str, Value)>;

fn job_fields(app: &App, job: &Job) -> Fields {
    let state = if job.aborted {
        "Aborted"
    } else if job.open {
        "Open"
    } else {
        "Closed"
    };
    let count = |s: BatchState| job.batches.iter().filter(|b| b.state == s).count();
    let processed: usize = job
        .batches
        .iter()
        .filter(|b| b.state == BatchState::Completed)
        .filter_map(|b| b.outcome.as_ref().ok().map(|(_, r)| r.len()))
        .sum();
    vec![
        ("id", json!(job.id)),
        ("operation", json!(job.operation)),
        ("object", json!(job.object)),
        ("createdById", json!(app.org.user_id)),
        ("createdDate", json!(stamp(job.created_ms))),
        ("systemModstamp", json!(stamp(job.modified_ms))),
        ("state", json!(state)),
        ("concurrencyMode", json!("Parallel")),
        ("contentType", json!("CSV")),
        ("numberBatchesQueued", json!(count(BatchState::Queued))),
        (
            "numberBatchesInProgress",
            json!(count(BatchState::InProgress)),
        ),
        (
            "numberBatchesCompleted",
            json!(count(BatchState::Completed)),
        ),
        ("numberBatchesFailed", json!(count(BatchState::Failed))),
        ("numberBatchesTotal", json!(job.batches.len())),
        ("numberRecordsProcessed", json!(processed)),
        ("numberRetries", json!(0)),
        (
            "apiVersion",
            json!(job.api_version.parse::<f64>().unwrap_or(61.0)),
        ),
        ("numberRecordsFailed", json!(0)),
        ("totalProcessingTime", json!(0)),
        ("apiActiveProcessingTime", json!(0)),
        ("apexProcessingTime", json!(0)),
    ]
}

fn batch_fields(job: &Job, b: &Batch) -> Fields {
    let mut f = vec![
        ("id", json!(b.id)),
        ("jobId", json!(job.id)),
        ("state", json!(b.state.name())),
    ];
    if let (BatchState::Failed, Some(msg)) = (b.state, &b.message) {
        f.push(("stateMessage", json!(msg)));
    }
    let processed = match (&b.state, &b.outcome) {
        (BatchState::Completed, Ok((_, rows))) => rows.len(),
        _ => 0,
    };
    f.extend([
        ("createdDate", json!(stamp(b.created_ms))),
        ("systemModstamp", json!(stamp(b.created_ms))),
        ("numberRecordsProcessed", json!(processed)),
        ("numberRecordsFailed", json!(0)),
        ("totalProcessingTime", json!(0)),
        ("apiActiveProcessingTime", json!(0)),
        ("apexProcessingTime", json!(0)),
    ]);
    f
}

fn xml_fields(out: &mut String, fields: &Fields) {
    for (k, v) in fields {
        let text = match v {
            Value::String(s) => crate::auth::xml_escape(s),
            other => other.to_string(),
        };
        out.push_str(&format!("<{k}>{text}</{k}>"));
    }
}

fn render(root: &str, fields: &Fields, json: bool, status: u16) -> Resp {
    if json {
        let map: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        return Resp::text(
            status,
            JSON,
            serde_json::to_vec(&Value::Object(map)).unwrap_or_default(),
        );
    }
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><{root} xmlns=\"{NS}\">");
    xml_fields(&mut out, fields);
    out.push_str(&format!("</{root}>"));
    Resp::text(status, XML, out)
}

/// `/services/async/NN.N/job[/{id}[/batch[/{bid}[/result[/{rid}]]]]]`.
pub fn route(app: &App, req: &Req, v: &str, rest: &[String]) -> Resp {
    let r: Vec<&str> = rest.iter().map(String::as_str).collect();
    let json = wants_json(req);
    let out = match (&req.method, r.as_slice()) {
        (&Method::POST, ["job"]) => create_job(app, req, v),
        (&Method::GET, ["job", id]) => with_job(app, id, |job| {
            Ok(render("jobInfo", &job_fields(app, job), job.json, 200))
        }),
        (&Method::POST, ["job", id]) => close_job(app, req, id),
        (&Method::POST, ["job", id, "batch"]) => add_batch(app, req, id),
        (&Method::GET, ["job", id, "batch"]) => with_job(app, id, |job| {
            report_batches(job);
            Ok(batch_list(job))
        }),
        (&Method::GET, ["job", id, "batch", bid]) => with_job(app, id, |job| {
            report_batches(job);
            let b = find_batch(job, bid)?;
            Ok(render("batchInfo", &batch_fields(job, b), false, 200))
        }),
        (&Method::GET, ["job", id, "batch", bid, "result"]) => with_job(app, id, |job| {
            let b = find_batch(job, bid)?;
            completed(b)?;
            Ok(Resp::text(
                200,
                XML,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><result-list xmlns=\"{NS}\"><result>{}</result></result-list>",
                    b.result_id
                ),
            ))
        }),
        (&Method::GET, ["job", id, "batch", bid, "result", rid]) => with_job(app, id, |job| {
            let b = find_batch(job, bid)?;
            if b.result_id != *rid {
                return Err(fault(
                    400,
                    "InvalidBatch",
                    format!("Unknown result {rid} for batch {bid}"),
                ));
            }
            let (plan, rows) = completed(b)?;
            Ok(Resp::text(200, "text/csv", result_csv(&plan, &rows)))
        }),
        _ => Err(fault(
            404,
            "InvalidUrl",
            format!(
                "{} /services/async/{v}/{} is not a Bulk API 1.0 resource",
                req.method,
                r.join("/")
            ),
        )),
    };
    out.unwrap_or_else(|f| f.into_resp(json))
}

fn with_job(
    app: &App,
    id: &str,
    f: impl FnOnce(&mut Job) -> Result<Resp, Fault>,
) -> Result<Resp, Fault> {
    let mut jobs = app.bulk1.live(app);
    let job = jobs.get_mut(id).ok_or_else(|| {
        fault(
            400,
            "InvalidJob",
            format!("Unable to find job with id {id}"),
        )
    })?;
    f(job)
}

fn find_batch<'a>(job: &'a Job, bid: &str) -> Result<&'a Batch, Fault> {
    job.batches.iter().find(|b| b.id == bid).ok_or_else(|| {
        fault(
            400,
            "InvalidBatch",
            format!("Unable to find batch {bid} in job {}", job.id),
        )
    })
}

/// A batch's rows once it has reported Completed.
fn completed(b: &Batch) -> Result<(Arc<Plan>, Arc<Vec<u32>>), Fault> {
    match (&b.state, &b.outcome) {
        (BatchState::Completed, Ok((p, r))) => Ok((p.clone(), r.clone())),
        (BatchState::Failed, _) => Err(fault(
            400,
            "InvalidBatch",
            b.message.clone().unwrap_or_default(),
        )),
        (BatchState::NotProcessed, _) => Err(fault(
            400,
            "InvalidBatch",
            format!("Batch {} was not processed: its job was aborted", b.id),
        )),
        _ => Err(fault(
            400,
            "InvalidBatch",
            format!(
                "Batch {} is not completed yet; poll its batchInfo until state is Completed",
                b.id
            ),
        )),
    }
}

/// A client reads batch info: batches with no run time end now.
fn report_batches(job: &mut Job) {
    advance(job, crate::timefmt::wall_ms(), true);
}

fn batch_list(job: &Job) -> Resp {
    let mut out =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><batchInfoList xmlns=\"{NS}\">");
    for b in &job.batches {
        out.push_str("<batchInfo>");
        xml_fields(&mut out, &batch_fields(job, b));
        out.push_str("</batchInfo>");
    }
    out.push_str("</batchInfoList>");
    Resp::text(200, XML, out)
}

fn create_job(app: &App, req: &Req, v: &str) -> Result<Resp, Fault> {
    let text = String::from_utf8_lossy(&req.body).into_owned();
    let json = wants_json(req);
    let (operation, object, content_type) = if json {
        let b: Value = serde_json::from_str(&text)
            .map_err(|e| fault(400, "InvalidJob", format!("The job body is not JSON: {e}")))?;
        let s = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
        (s("operation"), s("object"), s("contentType"))
    } else {
        let s = |k: &str| xml_tag(&text, k).map(str::to_string);
        (s("operation"), s("object"), s("contentType"))
    };
    let operation = operation.ok_or_else(|| fault(400, "InvalidJob", "operation is required"))?;
    if operation != "query" && operation != "queryAll" {
        return Err(fault(
            400,
            "InvalidJob",
            format!("operation {operation}: the emulator serves Bulk API 1.0 query jobs only; load data with Bulk API 2.0 ingest jobs"),
        ));
    }
    let object = object.ok_or_else(|| fault(400, "InvalidJob", "object is required"))?;
    let obj = app.org.object(&object).ok_or_else(|| {
        fault(
            400,
            "InvalidJob",
            format!("Unable to find object: {object}"),
        )
    })?;
    let object = obj.read().def.name.clone();
    if let Some(ct) = content_type.filter(|c| c != "CSV") {
        return Err(fault(
            400,
            "InvalidJob",
            format!("contentType {ct} is not supported by the emulator; use CSV"),
        ));
    }
    let now = crate::timefmt::wall_ms();
    let job = Job {
        id: app.bulk1.next(b"750"),
        operation,
        object,
        created_ms: now,
        modified_ms: now,
        open: true,
        aborted: false,
        json,
        api_version: v.to_string(),
        batches: Vec::new(),
    };
    let resp = render("jobInfo", &job_fields(app, &job), json, 201);
    let mut jobs = app.bulk1.jobs.lock();
    // Keep memory bounded on long runs: the oldest jobs (and their results) go first.
    crate::bounded::make_room(&mut jobs, MAX_JOBS, |j| (j.created_ms, j.id.clone()));
    jobs.insert(job.id.clone(), job);
    drop(jobs);
    Ok(resp)
}

fn close_job(app: &App, req: &Req, id: &str) -> Result<Resp, Fault> {
    let text = String::from_utf8_lossy(&req.body).into_owned();
    let state = if wants_json(req) {
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|b| b.get("state").and_then(Value::as_str).map(str::to_string))
    } else {
        xml_tag(&text, "state").map(str::to_string)
    };
    with_job(app, id, |job| {
        match state.as_deref() {
            Some("Closed") => job.open = false,
            Some("Aborted") => abort(job, crate::timefmt::wall_ms()),
            other => {
                return Err(fault(
                    400,
                    "InvalidJob",
                    format!(
                        "state {} cannot be set; use Closed or Aborted",
                        other.unwrap_or("(missing)")
                    ),
                ))
            }
        }
        job.modified_ms = crate::timefmt::wall_ms();
        Ok(render("jobInfo", &job_fields(app, job), job.json, 200))
    })
}

fn add_batch(app: &App, req: &Req, id: &str) -> Result<Resp, Fault> {
    let soql = String::from_utf8_lossy(&req.body).trim().to_string();
    let all = {
        let jobs = app.bulk1.live(app);
        let job = jobs.get(id).ok_or_else(|| {
            fault(
                400,
                "InvalidJob",
                format!("Unable to find job with id {id}"),
            )
        })?;
        if !job.open {
            return Err(fault(
                400,
                "InvalidJobState",
                format!("Job {id} is not open; batches can only be added to an open job"),
            ));
        }
        job.operation == "queryAll"
    };
    // The query runs outside the jobs lock: it takes object locks and may be long.
    let outcome = crate::query::plan(app, &soql, all, true)
        .map(|(plan, rows, _)| (Arc::new(plan), Arc::new(rows)))
        .map_err(|e| {
            format!(
                "InvalidBatch : Failed to process query: {}: {}",
                e.code, e.message
            )
        });
    let now = crate::timefmt::wall_ms();
    let end = match app.faults.pick_job(&req.path) {
        Some((kind, message)) => End::from_fault(kind, message, FAILED_MESSAGE),
        None => End::Complete,
    };
    let batch = Batch {
        id: app.bulk1.next(b"751"),
        result_id: app.bulk1.next(b"752"),
        created_ms: now,
        state: BatchState::Queued,
        outcome,
        run_ms: app.bulk_timing.job_ms(),
        end,
        message: None,
        finished_ms: None,
    };
    with_job(app, id, |job| {
        let resp = render("batchInfo", &batch_fields(job, &batch), false, 201);
        job.batches.push(batch);
        Ok(resp)
    })
}

fn result_csv(plan: &Plan, rows: &[u32]) -> Vec<u8> {
    let fmt = Format::default();
    let mut out = Vec::with_capacity(rows.len() * 64 * plan.columns.len().max(1) + 128);
    csvout::header(&mut out, &plan.columns, fmt);
    let locked = Locked::new(&plan.objs);
    for &r in rows {
        csvout::row(&mut out, &locked, &plan.columns, r as usize, fmt);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_xml_tags() {
        let body = "<?xml version=\"1.0\"?><jobInfo xmlns=\"x\"><operation>query</operation>\n<object> Contact </object></jobInfo>";
        assert_eq!(xml_tag(body, "operation"), Some("query"));
        assert_eq!(xml_tag(body, "object"), Some("Contact"));
        assert_eq!(xml_tag(body, "state"), None);
        assert_eq!(stamp(0), "1970-01-01T00:00:00.000Z");
    }
}
