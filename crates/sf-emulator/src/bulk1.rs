//! Bulk API 1.0 query jobs (`/services/async/NN.N/job`), which some ELT tools still
//! use: job info in XML or JSON (as the job was created), batch info in XML for CSV
//! jobs, one CSV result per batch. Load operations (insert, update, ...) are refused
//! with a message pointing at Bulk API 2.0 ingest, which the emulator implements.
//!
//! A batch's query runs when the batch is added; it reports `Queued` then, and
//! `Completed` (or `Failed`) from the first status poll on, like a real batch that
//! finished in the meantime.

use crate::app::App;
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
    Completed,
    Failed,
}

impl BatchState {
    fn name(self) -> &'static str {
        match self {
            BatchState::Queued => "Queued",
            BatchState::Completed => "Completed",
            BatchState::Failed => "Failed",
        }
    }
}

struct Batch {
    id: String,
    result_id: String,
    created_ms: i64,
    state: BatchState,
    /// The outcome once reported: rows to write, or the failure message.
    outcome: Result<(Arc<Plan>, Arc<Vec<u32>>), String>,
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
        ("numberBatchesInProgress", json!(0)),
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
    if let (BatchState::Failed, Err(msg)) = (b.state, &b.outcome) {
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
    let mut jobs = app.bulk1.jobs.lock();
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
        (BatchState::Failed, Err(m)) => Err(fault(400, "InvalidBatch", m.clone())),
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

/// Queued batches report their (already computed) outcome from now on.
fn report_batches(job: &mut Job) {
    for b in &mut job.batches {
        if b.state == BatchState::Queued {
            b.state = if b.outcome.is_ok() {
                BatchState::Completed
            } else {
                BatchState::Failed
            };
        }
    }
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
            Some("Aborted") => {
                job.open = false;
                job.aborted = true;
            }
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
        let jobs = app.bulk1.jobs.lock();
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
    let batch = Batch {
        id: app.bulk1.next(b"751"),
        result_id: app.bulk1.next(b"752"),
        created_ms: now,
        state: BatchState::Queued,
        outcome,
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
