//! The control API under `/__emulator/`: never authenticated, never counted.

use crate::app::App;
use crate::error::ApiError;
use crate::faults::{FaultKind, FaultRule};
use crate::http::{Req, Resp};
use crate::validate::{self, Mode};
use hyper::Method;
use serde_json::{json, Value};
use std::sync::Arc;

fn bad(msg: impl Into<String>) -> Resp {
    Resp::json(400, &json!({"error": msg.into()}))
}

fn not_found(msg: impl Into<String>) -> Resp {
    Resp::json(404, &json!({"error": msg.into()}))
}

fn api_err(e: ApiError) -> Resp {
    let status = if e.status == 404 { 404 } else { 400 };
    Resp::json(status, &e.body())
}

fn body(req: &Req) -> Result<Value, Resp> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|e| bad(format!("body is not JSON: {e}")))
}

pub async fn handle(app: &Arc<App>, req: &Req, segs: &[String]) -> Resp {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = &req.method;
    let r = match (m, s.as_slice()) {
        (&Method::GET, ["health"]) => Ok(Resp::json(200, &json!({"ok": true}))),
        (&Method::GET, ["blob", n]) => blob(n),
        (&Method::GET, ["stats"]) => Ok(stats(app)),
        (&Method::POST, ["stats", "reset"]) => {
            app.limits.reset_stats();
            Ok(stats(app))
        }
        (&Method::POST, ["generate"]) => generate(app, req).await,
        (&Method::POST, ["records", obj]) => create_records(app, req, obj),
        (&Method::GET, ["records", obj, id]) => get_record(app, obj, id),
        (&Method::PATCH, ["records", obj, id]) => update_record(app, req, obj, id),
        (&Method::DELETE, ["records", obj, id]) => delete_record(app, req, obj, id),
        (&Method::POST, ["records", obj, id, "undelete"]) => with_obj(app, obj).and_then(|o| {
            validate::undelete(&o, id)
                .map_err(api_err)
                .map(|_| Resp::empty(204))
        }),
        (&Method::POST, ["records", obj, id, "archive"]) => archive_record(app, req, obj, id),
        (&Method::POST, ["schema", "objects"]) => add_object(app, req),
        (&Method::POST, ["schema", obj, "fields"]) => add_field(app, req, obj),
        (&Method::DELETE, ["schema", obj, "fields", field]) => remove_field(app, obj, field),
        (&Method::PATCH, ["schema", obj, "fields", field]) => change_field(app, req, obj, field),
        (&Method::POST, ["faults"]) => add_fault(app, req),
        (&Method::GET, ["faults"]) => Ok(faults(app)),
        (&Method::DELETE, ["faults"]) => {
            app.faults.clear();
            Ok(Resp::empty(204))
        }
        (&Method::POST, ["expire_tokens"]) => {
            app.tokens.expire_all();
            Ok(Resp::empty(204))
        }
        (&Method::POST, ["expire_locators"]) => {
            app.locators.expire_all();
            app.tooling.expire_locators();
            Ok(Resp::empty(204))
        }
        (&Method::PATCH, ["bulk_jobs", id]) => end_bulk_job(app, req, id),
        (&Method::POST, ["expire_bulk_jobs"]) => {
            let n = app.bulk.expire_finished(app) + app.bulk1.expire_finished(app);
            Ok(Resp::json(200, &json!({"expired": n})))
        }
        (&Method::PUT, ["limits"]) => put_limits(app, req),
        (&Method::GET, ["limits"]) => {
            let (used, max) = app.limits.usage();
            Ok(Resp::json(
                200,
                &json!({"api_used": used, "api_limit": max, "long_request_limit": app.limits.long_limit(), "long_requests_running": app.limits.long_in_flight(), "latency_ms": *app.latency_ms.lock(), "bulk_job_ms": app.bulk_timing.job_ms(), "bulk_results_ttl_ms": app.bulk_timing.ttl_ms()}),
            ))
        }
        _ => Err(not_found(format!(
            "no control endpoint {} /__emulator/{}",
            m,
            s.join("/")
        ))),
    };
    r.unwrap_or_else(|e| e)
}

/// `n` bytes of filler: benchmarks measure the loopback HTTP ceiling with it, as a
/// same-run baseline for the API's own throughput.
fn blob(n: &str) -> Result<Resp, Resp> {
    const MAX: usize = 64 << 20;
    let n: usize = n.parse().ok().filter(|n| *n <= MAX).ok_or_else(|| {
        bad(format!(
            "blob size must be a whole number of bytes up to {MAX}"
        ))
    })?;
    Ok(Resp::text(200, "application/octet-stream", vec![b'x'; n]))
}

fn stats(app: &App) -> Resp {
    let (total, endpoints) = app.limits.stats();
    let (used, max) = app.limits.usage();
    let records: serde_json::Map<String, Value> = app
        .org
        .record_counts()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    Resp::json(
        200,
        &json!({
            "api_requests_total": total,
            "api_usage": {"used": used, "max": max},
            "peak_requests_in_flight": app.limits.peak_in_flight(),
            "peak_endpoints": app.limits.peak_endpoints(),
            "endpoints": endpoints,
            "records": records,
        }),
    )
}

fn with_obj(app: &App, name: &str) -> Result<crate::org::ObjRef, Resp> {
    app.org
        .object(name)
        .ok_or_else(|| not_found(format!("no object {name}")))
}

async fn generate(app: &Arc<App>, req: &Req) -> Result<Resp, Resp> {
    let b = body(req)?;
    let object = b
        .get("object")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("need \"object\""))?
        .to_string();
    let count = b
        .get("count")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("need \"count\""))? as usize;
    let seed = b
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or(app.config.seed);
    with_obj(app, &object)?;
    let a = app.clone();
    let o2 = object.clone();
    let res =
        tokio::task::spawn_blocking(move || crate::generate::generate(&a.org, &o2, count, seed))
            .await
            .map_err(|e| bad(e.to_string()))?;
    let n = res.map_err(bad)?;
    let total = app
        .org
        .object(&object)
        .map(|o| o.read().table.live_count())
        .unwrap_or(0);
    Ok(Resp::json(
        200,
        &json!({"object": object, "generated": n, "total": total}),
    ))
}

fn create_records(app: &App, req: &Req, obj: &str) -> Result<Resp, Resp> {
    let o = with_obj(app, obj)?;
    let b = body(req)?;
    let list: Vec<Value> = match b {
        Value::Array(a) => a,
        v @ Value::Object(_) => vec![v],
        _ => return Err(bad("body must be an array of records")),
    };
    let mut prepared = Vec::with_capacity(list.len());
    for (i, rec) in list.iter().enumerate() {
        let res = crate::records::body_object(rec).and_then(|fields| {
            let changes = {
                let g = o.read();
                validate::prepare(&g.def, fields, Mode::Create)?
            };
            {
                let g = o.read();
                validate::check_references(&app.org, &g.def, &changes)?;
            }
            Ok(changes)
        });
        match res {
            Ok(c) => prepared.push(c),
            Err(e) => return Err(record_error(e, i, &[])),
        }
    }
    let mut ids = Vec::with_capacity(prepared.len());
    for (i, changes) in prepared.iter().enumerate() {
        match validate::create(&app.org, &o, changes) {
            Ok(id) => ids.push(id),
            Err(e) => return Err(record_error(e, i, &ids)),
        }
    }
    Ok(Resp::json(201, &json!({"ids": ids})))
}

fn record_error(e: ApiError, index: usize, created: &[String]) -> Resp {
    Resp::json(
        400,
        &json!({"index": index, "created_ids": created, "errors": [e.item()]}),
    )
}

fn get_record(app: &App, obj: &str, id: &str) -> Result<Resp, Resp> {
    let o = with_obj(app, obj)?;
    let reader = crate::query::RecordReader::new(app, &o);
    let locked = reader.lock();
    let g = locked.obj(0);
    let row = g
        .row_of(id)
        .ok_or_else(|| not_found(format!("no {obj} {id}")))?;
    if g.table.row_state(row) == Some(crate::store::RowState::Purged) {
        return Err(not_found(format!("{obj} {id} was purged")));
    }
    let fields: Vec<usize> = g.def.live_fields().map(|(i, _)| i).collect();
    let mut out = Vec::new();
    reader.record(&mut out, &locked, row, &fields, "61.0");
    Ok(Resp::raw_json(200, out))
}

fn update_record(app: &App, req: &Req, obj: &str, id: &str) -> Result<Resp, Resp> {
    let o = with_obj(app, obj)?;
    let b = body(req)?;
    crate::records::update_from_json(app, &o, id, &b).map_err(api_err)?;
    Ok(Resp::empty(204))
}

fn delete_record(app: &App, req: &Req, obj: &str, id: &str) -> Result<Resp, Resp> {
    let o = with_obj(app, obj)?;
    let purge = req.param("purge").is_some_and(|p| p == "true" || p == "1");
    if purge {
        validate::purge(&o, id).map_err(api_err)?;
    } else {
        validate::delete_cascading(&app.org, &o, id).map_err(api_err)?;
    }
    Ok(Resp::empty(204))
}

/// Archives an activity as Salesforce's background process does for old ones (body
/// `{"archived": false}` undoes it).
fn archive_record(app: &App, req: &Req, obj: &str, id: &str) -> Result<Resp, Resp> {
    let o = with_obj(app, obj)?;
    let b = body(req)?;
    let archived = match b.get("archived") {
        None => true,
        Some(Value::Bool(v)) => *v,
        Some(_) => return Err(bad("\"archived\" must be true or false")),
    };
    validate::set_archived(&o, id, archived).map_err(api_err)?;
    Ok(Resp::empty(204))
}

fn add_field(app: &App, req: &Req, obj: &str) -> Result<Resp, Resp> {
    let o = with_obj(app, obj)?;
    let b = body(req)?;
    let field = crate::catalog::field_from_json(&b).map_err(bad)?;
    if let Some(target) = field.reference_to.first() {
        with_obj(app, target)?;
    }
    if field.calculated {
        let def = o.read().def.clone();
        crate::catalog::check_formula(&app.org, &def, &field).map_err(bad)?;
    }
    let name = field.name.clone();
    {
        let mut g = o.write();
        if g.def
            .fields
            .iter()
            .any(|f| !f.removed && f.name.eq_ignore_ascii_case(&name))
        {
            return Err(bad(format!("{obj}.{name} already exists")));
        }
        g.def.push_field(field);
        let def = g.def.clone();
        g.table.sync_columns(&def);
    }
    app.org.schema_changed();
    Ok(Resp::json(201, &json!({"object": obj, "field": name})))
}

/// An administrator changes a field's type or field-level security (`fieldchange`).
fn change_field(app: &App, req: &Req, obj: &str, field: &str) -> Result<Resp, Resp> {
    with_obj(app, obj)?;
    let b = body(req)?;
    let name = crate::fieldchange::change(app, obj, field, &b).map_err(|e| {
        if e.starts_with("no field") {
            not_found(e)
        } else {
            bad(e)
        }
    })?;
    Ok(Resp::json(
        200,
        &crate::fieldchange::summary(app, obj, &name),
    ))
}

fn remove_field(app: &App, obj: &str, field: &str) -> Result<Resp, Resp> {
    let o = with_obj(app, obj)?;
    {
        let mut g = o.write();
        // Hidden fields too: field-level security does not stop an admin.
        let idx = g
            .def
            .fields
            .iter()
            .position(|f| !f.removed && f.name.eq_ignore_ascii_case(field))
            .ok_or_else(|| not_found(format!("no field {obj}.{field}")))?;
        let f = &g.def.fields[idx];
        if !f.custom {
            return Err(bad(format!(
                "{obj}.{field} is a standard field and cannot be removed"
            )));
        }
        g.def.fields[idx].removed = true;
        g.def.reindex();
    }
    app.org.schema_changed();
    Ok(Resp::empty(204))
}

fn add_object(app: &App, req: &Req) -> Result<Resp, Resp> {
    let b = body(req)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("need \"name\""))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(format!("invalid object name {name:?}")));
    }
    if app.org.object(name).is_some() {
        return Err(bad(format!("object {name} already exists")));
    }
    let label = b
        .get("label")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| crate::schema::label_from_name(name));
    let plural = b
        .get("labelPlural")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{label}s"));
    let prefix = app.org.next_custom_prefix();
    let prefix = String::from_utf8_lossy(&prefix).into_owned();
    let mut def = crate::catalog::new_object(name, &prefix, &label, &plural).map_err(bad)?;
    let mut name_field = crate::schema::Field::new("Name", crate::schema::FieldType::String);
    name_field.label = format!("{label} Name");
    name_field.length = 80;
    name_field.name_field = true;
    name_field.id_lookup = true;
    name_field.nillable = false;
    def.push_field(name_field);
    if let Some(fields) = b.get("fields").and_then(Value::as_array) {
        for f in fields {
            let field = crate::catalog::field_from_json(f).map_err(bad)?;
            if def.field(&field.name).is_some() {
                return Err(bad(format!("duplicate field {}", field.name)));
            }
            def.push_field(field);
        }
    }
    let def = crate::catalog::finish_object(def, true);
    for f in def.fields.iter().filter(|f| f.calculated) {
        crate::catalog::check_formula(&app.org, &def, f).map_err(bad)?;
    }
    app.org.add_object(def);
    app.org.schema_changed();
    Ok(Resp::json(
        201,
        &json!({"object": name, "keyPrefix": prefix}),
    ))
}

fn add_fault(app: &App, req: &Req) -> Result<Resp, Resp> {
    let b = body(req)?;
    let kind_text = match b.get("kind") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("need \"kind\"")),
    };
    let kind = FaultKind::parse(&kind_text)
        .ok_or_else(|| bad(format!("unknown fault kind {kind_text}")))?;
    let rate = b.get("rate").and_then(Value::as_f64);
    let count = b.get("count").and_then(Value::as_u64);
    if rate.is_none() && count.is_none() {
        return Err(bad("need \"rate\" or \"count\""));
    }
    app.faults.add(FaultRule {
        kind,
        rate,
        remaining: count,
        path_contains: b
            .get("path_contains")
            .and_then(Value::as_str)
            .map(str::to_string),
        per_record: b
            .get("per_record")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        message: b.get("message").and_then(Value::as_str).map(str::to_string),
    });
    Ok(faults(app))
}

fn faults(app: &App) -> Resp {
    let list: Vec<Value> = app
        .faults
        .rules()
        .iter()
        .map(|r| json!({"kind": format!("{:?}", r.kind), "rate": r.rate, "remaining": r.remaining, "path_contains": r.path_contains, "per_record": r.per_record, "message": r.message}))
        .collect();
    Resp::json(200, &json!({"faults": list}))
}

fn put_limits(app: &App, req: &Req) -> Result<Resp, Resp> {
    let b = body(req)?;
    let n = |k: &str| b.get(k).and_then(Value::as_u64);
    app.limits
        .set(n("api_limit"), n("api_used"), n("long_request_limit"));
    if let Some(l) = n("long_requests_elsewhere") {
        app.limits.set_long_elsewhere(l);
    }
    if let Some(l) = n("latency_ms") {
        *app.latency_ms.lock() = l;
    }
    app.bulk_timing
        .set(n("bulk_job_ms"), n("bulk_results_ttl_ms"));
    app.bulk.set_used_elsewhere(
        n("bulk_query_jobs_elsewhere"),
        n("bulk_storage_mb_elsewhere"),
    );
    app.deliveries
        .set(n("event_delivery_limit"), n("events_delivered_elsewhere"));
    let (used, max) = app.limits.usage();
    Ok(Resp::json(
        200,
        &json!({"api_used": used, "api_limit": max, "long_request_limit": app.limits.long_limit(), "bulk_job_ms": app.bulk_timing.job_ms(), "bulk_results_ttl_ms": app.bulk_timing.ttl_ms()}),
    ))
}

/// Ends a running Bulk query job (Bulk 2.0 job or Bulk 1.0 job's unfinished batches)
/// now: `{"state":"Failed","errorMessage":"..."}`, `{"state":"Aborted"}` or
/// `{"state":"JobComplete"}`.
fn end_bulk_job(app: &App, req: &Req, id: &str) -> Result<Resp, Resp> {
    let b = body(req)?;
    let state = b
        .get("state")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("need \"state\": JobComplete, Failed or Aborted"))?;
    let message = b.get("errorMessage").and_then(Value::as_str);
    let end = crate::bulk2::End::parse(state, message, crate::bulk2::FAILED_MESSAGE)
        .ok_or_else(|| bad(format!("state {state}: use JobComplete, Failed or Aborted")))?;
    let found = match app.bulk.end_job(app, id, end.clone()).map_err(bad)? {
        true => true,
        false => app.bulk1.end_job(app, id, end).map_err(bad)?,
    };
    if !found {
        return Err(not_found(format!("no Bulk query job {id}")));
    }
    Ok(Resp::json(200, &json!({"id": id, "state": state})))
}
