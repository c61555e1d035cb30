//! Bulk API 2.0 ingest jobs: CSV uploads applied through the same validation as REST
//! writes when the client sets the job to `UploadComplete`, with per-row successful,
//! failed and unprocessed results.

use crate::app::App;
use crate::bulk2::{
    format_of, invalid_job, job_not_found, list_response, state_error, str_field, Common, State,
    CSV,
};
use crate::csvout;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use crate::org::ObjRef;
use crate::validate::{self, Input, Mode};
use hyper::Method;
use serde_json::{json, Map, Value};

/// Per-record outcomes of an ingest job, kept as CSV rows.
#[derive(Default)]
pub(crate) struct IngestResults {
    header: Vec<String>,
    successful: Vec<(String, bool, Vec<String>)>,
    failed: Vec<(String, String, Vec<String>)>,
    unprocessed: Vec<Vec<String>>,
}

pub(crate) struct IngestJob {
    common: Common,
    external_id: Option<String>,
    uploads: Vec<String>,
    results: IngestResults,
    error: Option<String>,
}

/// `/jobs/ingest[/{id}[/batches|successfulResults|failedResults|unprocessedrecords]]`.
pub fn ingest_route(app: &App, req: &Req, v: &str, rest: &[String]) -> Result<Resp, ApiError> {
    let r: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (&req.method, r.as_slice()) {
        (&Method::POST, []) => create_ingest(app, req, v),
        (&Method::GET, []) => {
            let jobs = app.bulk.ingest.lock();
            Ok(list_response(app, jobs.values().map(|j| &j.common)))
        }
        (&Method::GET, [id]) => {
            let jobs = app.bulk.ingest.lock();
            let job = jobs.get(*id).ok_or_else(job_not_found)?;
            Ok(Resp::json(200, &Value::Object(ingest_info(app, job))))
        }
        (&Method::PUT, [id, "batches"]) => upload(app, req, id),
        (&Method::PATCH, [id]) => set_ingest_state(app, req, id),
        (&Method::DELETE, [id]) => {
            app.bulk
                .ingest
                .lock()
                .remove(*id)
                .ok_or_else(job_not_found)?;
            Ok(Resp::empty(204))
        }
        (
            &Method::GET,
            [id, kind @ ("successfulResults" | "failedResults" | "unprocessedrecords")],
        ) => ingest_results(app, id, kind),
        _ => Err(ApiError::not_found()),
    }
}

fn ingest_info(app: &App, job: &IngestJob) -> Map<String, Value> {
    let mut m = job.common.info(app);
    if let Some(f) = &job.external_id {
        m.insert("externalIdFieldName".into(), json!(f));
    }
    m.insert("jobType".into(), json!("V2Ingest"));
    let processed = job.results.successful.len() + job.results.failed.len();
    m.insert("numberRecordsProcessed".into(), json!(processed));
    m.insert(
        "numberRecordsFailed".into(),
        json!(job.results.failed.len()),
    );
    m.insert("retries".into(), json!(0));
    m.insert("totalProcessingTime".into(), json!(0));
    if let Some(e) = &job.error {
        m.insert("errorMessage".into(), json!(e));
    }
    m
}

fn create_ingest(app: &App, req: &Req, v: &str) -> Result<Resp, ApiError> {
    let b = req.json()?;
    let object = str_field(&b, "object").ok_or_else(|| invalid_job("object is required"))?;
    let obj = app.org.object(object).ok_or_else(|| {
        invalid_job(format!(
            "Object {object} is not supported by the Bulk API or does not exist"
        ))
    })?;
    let object = obj.read().def.name.clone();
    let operation = str_field(&b, "operation").unwrap_or("");
    if !matches!(
        operation,
        "insert" | "update" | "upsert" | "delete" | "hardDelete"
    ) {
        return Err(invalid_job(format!(
            "operation {operation:?} is not one of insert, update, upsert, delete, hardDelete"
        )));
    }
    let external_id = str_field(&b, "externalIdFieldName").map(str::to_string);
    if operation == "upsert" {
        let f = external_id
            .as_deref()
            .ok_or_else(|| invalid_job("externalIdFieldName is required for upsert"))?;
        crate::records::match_external(&obj, f, "")
            .map_err(|_| invalid_job(format!("{f} is not an external id field of {object}")))?;
    }
    let format = format_of(&b)?;
    let now = crate::timefmt::wall_ms();
    let job = IngestJob {
        common: Common {
            id: app.bulk.next_id(),
            operation: operation.to_string(),
            object,
            created_ms: now,
            modified_ms: now,
            state: State::Open,
            format,
            api_version: v.to_string(),
        },
        external_id,
        uploads: Vec::new(),
        results: IngestResults::default(),
        error: None,
    };
    let info = ingest_info(app, &job);
    let mut jobs = app.bulk.ingest.lock();
    crate::bounded::make_room(&mut jobs, MAX_INGEST_JOBS, |j| {
        (j.common.created_ms, j.common.id.clone())
    });
    jobs.insert(job.common.id.clone(), job);
    drop(jobs);
    Ok(Resp::json(200, &Value::Object(info)))
}

/// Ingest jobs kept with their results; beyond this the oldest are forgotten, so a
/// long run's memory stays bounded.
const MAX_INGEST_JOBS: usize = 100;

fn upload(app: &App, req: &Req, id: &str) -> Result<Resp, ApiError> {
    let mut jobs = app.bulk.ingest.lock();
    let job = jobs.get_mut(id).ok_or_else(job_not_found)?;
    if job.common.state != State::Open {
        return Err(state_error(format!(
            "Job {id} is {}; data can only be uploaded while it is Open",
            job.common.state.name()
        )));
    }
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| ApiError::bad("INVALIDBATCH", "The uploaded data is not UTF-8 CSV"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad("INVALIDBATCH", "The uploaded CSV is empty"));
    }
    // Spreadsheet tools often start UTF-8 CSV with a byte-order mark.
    job.uploads
        .push(text.trim_start_matches('\u{feff}').to_string());
    Ok(Resp::empty(201))
}

fn set_ingest_state(app: &App, req: &Req, id: &str) -> Result<Resp, ApiError> {
    let b = req.json()?;
    let want = str_field(&b, "state").unwrap_or("");
    let mut jobs = app.bulk.ingest.lock();
    let job = jobs.get_mut(id).ok_or_else(job_not_found)?;
    match want {
        "UploadComplete" if job.common.state == State::Open => {
            job.common.set_state(State::UploadComplete);
            let info = ingest_info(app, job);
            process(app, job);
            Ok(Resp::json(200, &Value::Object(info)))
        }
        "Aborted" if !job.common.state.finished() => {
            job.common.set_state(State::Aborted);
            Ok(Resp::json(200, &Value::Object(ingest_info(app, job))))
        }
        "UploadComplete" | "Aborted" => Err(state_error(format!(
            "Job {id} is {} and cannot change to {want}",
            job.common.state.name()
        ))),
        _ => Err(state_error(
            "An ingest job's state can be set to UploadComplete or Aborted",
        )),
    }
}

/// Applies the uploaded rows, recording each one's outcome.
fn process(app: &App, job: &mut IngestJob) {
    let Some(obj) = app.org.object(&job.common.object) else {
        job.error = Some(format!("Object {} no longer exists", job.common.object));
        job.common.set_state(State::Failed);
        return;
    };
    let mut results = IngestResults::default();
    for text in &job.uploads {
        let rows = match csvout::parse(text, job.common.format.delimiter) {
            Ok(r) => r,
            Err(e) => {
                job.error = Some(format!("InvalidBatch : Failed to parse CSV: {e}"));
                job.common.set_state(State::Failed);
                return;
            }
        };
        let mut it = rows.into_iter();
        let Some(header) = it.next() else { continue };
        if results.header.is_empty() {
            results.header = header.clone();
        } else if results.header != header {
            job.error =
                Some("InvalidBatch : every upload of a job must have the same header row".into());
            job.common.set_state(State::Failed);
            return;
        }
        for row in it {
            if row.len() != header.len() {
                let e = format!(
                    "INVALID_FIELD:row has {} values but the header has {} columns:--",
                    row.len(),
                    header.len()
                );
                results.failed.push((String::new(), e, row));
                continue;
            }
            match apply_row(
                app,
                &obj,
                &job.common.operation,
                job.external_id.as_deref(),
                &header,
                &row,
            ) {
                Ok((id, created)) => results.successful.push((id, created, row)),
                Err((id, e)) => {
                    let fields = e.fields.join(", ");
                    let text = format!("{}:{}:{} --", e.code, e.message, fields);
                    results.failed.push((id, text, row));
                }
            }
        }
    }
    job.results = results;
    job.uploads.clear();
    job.common.set_state(State::JobComplete);
}

type RowOutcome = Result<(String, bool), (String, ApiError)>;

/// One CSV row through the write path. The `Id` column names the record for
/// update and delete.
fn apply_row(
    app: &App,
    obj: &ObjRef,
    op: &str,
    ext: Option<&str>,
    header: &[String],
    row: &[String],
) -> RowOutcome {
    let id_pos = header.iter().position(|h| h.eq_ignore_ascii_case("id"));
    let id = id_pos.map(|i| row[i].clone()).unwrap_or_default();
    let fail = |e: ApiError| (id.clone(), e);
    let inputs = || -> Vec<(&str, Input<'_>)> {
        header
            .iter()
            .zip(row)
            .filter(|(h, _)| !h.eq_ignore_ascii_case("id"))
            .map(|(h, v)| (h.as_str(), Input::Text(v.as_str())))
            .collect()
    };
    let missing_id = || {
        ApiError::bad("MISSING_ARGUMENT", "Id not specified in the row")
            .with_fields(vec!["Id".into()])
    };
    match op {
        "insert" => {
            let changes =
                validate::prepare(&obj.read().def, inputs(), Mode::Create).map_err(fail)?;
            let new_id = validate::create(&app.org, obj, &changes).map_err(fail)?;
            Ok((new_id, true))
        }
        "update" => {
            if id.is_empty() {
                return Err(fail(missing_id()));
            }
            let changes =
                validate::prepare(&obj.read().def, inputs(), Mode::Update).map_err(fail)?;
            validate::update(&app.org, obj, &id, &changes).map_err(fail)?;
            Ok((full_id(&id), false))
        }
        "delete" | "hardDelete" => {
            if id.is_empty() {
                return Err(fail(missing_id()));
            }
            if op == "delete" {
                validate::delete_cascading(&app.org, obj, &id).map_err(fail)?;
            } else {
                validate::live_row(&obj.read(), &id).map_err(fail)?;
                validate::purge(obj, &id).map_err(fail)?;
            }
            Ok((full_id(&id), false))
        }
        _ => {
            let field = ext.unwrap_or("Id");
            let pos = header.iter().position(|h| h.eq_ignore_ascii_case(field));
            let value = pos.map(|i| row[i].as_str()).unwrap_or("");
            if value.is_empty() {
                return Err(fail(
                    ApiError::bad("MISSING_ARGUMENT", format!("{field} not specified"))
                        .with_fields(vec![field.to_string()]),
                ));
            }
            let (_, matches) = crate::records::match_external(obj, field, value).map_err(fail)?;
            match matches.as_slice() {
                [] => {
                    let changes =
                        validate::prepare(&obj.read().def, inputs(), Mode::Create).map_err(fail)?;
                    Ok((
                        validate::create(&app.org, obj, &changes).map_err(fail)?,
                        true,
                    ))
                }
                [r] => {
                    let rid = obj.read().id_of(*r).to_string();
                    let fields: Vec<(&str, Input<'_>)> = inputs()
                        .into_iter()
                        .filter(|(h, _)| !h.eq_ignore_ascii_case(field))
                        .collect();
                    let changes = validate::prepare(&obj.read().def, fields, Mode::Update)
                        .map_err(|e| (rid.clone(), e))?;
                    validate::update(&app.org, obj, &rid, &changes)
                        .map_err(|e| (rid.clone(), e))?;
                    Ok((rid, false))
                }
                _ => Err(fail(ApiError::bad(
                    "DUPLICATE_EXTERNAL_ID",
                    format!("{field}: more than one record found for external id field {value}"),
                ))),
            }
        }
    }
}

fn full_id(id: &str) -> String {
    crate::ids::normalize(id).map_or(id.to_string(), crate::ids::to18)
}

fn ingest_results(app: &App, id: &str, kind: &str) -> Result<Resp, ApiError> {
    let jobs = app.bulk.ingest.lock();
    let job = jobs.get(id).ok_or_else(job_not_found)?;
    let fmt = job.common.format;
    let r = &job.results;
    let mut out = Vec::new();
    let cells = |out: &mut Vec<u8>, lead: &[&str], row: &[String]| {
        let all = lead.iter().copied().chain(row.iter().map(String::as_str));
        for (i, c) in all.enumerate() {
            if i > 0 {
                out.push(fmt.delimiter);
            }
            csvout::quoted(out, c);
        }
        fmt.newline(out);
    };
    match kind {
        "successfulResults" => {
            cells(&mut out, &["sf__Id", "sf__Created"], &r.header);
            for (id, created, row) in &r.successful {
                cells(
                    &mut out,
                    &[id, if *created { "true" } else { "false" }],
                    row,
                );
            }
        }
        "failedResults" => {
            cells(&mut out, &["sf__Id", "sf__Error"], &r.header);
            for (id, err, row) in &r.failed {
                cells(&mut out, &[id, err], row);
            }
        }
        _ => {
            cells(&mut out, &[], &r.header);
            for row in &r.unprocessed {
                cells(&mut out, &[], row);
            }
        }
    }
    Ok(Resp::text(200, CSV, out))
}
