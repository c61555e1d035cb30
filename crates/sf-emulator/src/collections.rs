//! sObject Collections (`/composite/sobjects`): create, update, delete, upsert and
//! retrieve up to 200 records in one call, one result per record. `allOrNone` is
//! honoured through the undo journal in [`crate::txn`]. A request counts as one call.

use crate::app::App;
use crate::describe::lookup;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use hyper::Method;
use serde_json::{json, Map, Value};

/// Records per sObject Collections request.
const MAX_COLLECTION: usize = 200;

const ROLLED_BACK: &str =
    "Record rolled back because not all records were valid and the request was using AllOrNone header";

fn too_many_records() -> ApiError {
    ApiError::bad(
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
        ),
    )
}

/// `true`, or the string `"true"` in any case.
pub(crate) fn bool_of(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// One record's outcome in a collection response.
struct ItemResult {
    id: Option<String>,
    created: Option<bool>,
    error: Option<ApiError>,
}

impl ItemResult {
    fn ok(id: String) -> ItemResult {
        ItemResult {
            id: Some(id),
            created: None,
            error: None,
        }
    }

    fn err(id: Option<String>, e: ApiError) -> ItemResult {
        ItemResult {
            id,
            created: None,
            error: Some(e),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(id) = &self.id {
            m.insert("id".into(), json!(id));
        }
        m.insert("success".into(), json!(self.error.is_none()));
        let errors: Vec<Value> = self.error.iter().map(ApiError::status_item).collect();
        m.insert("errors".into(), Value::Array(errors));
        if let Some(c) = self.created {
            m.insert("created".into(), json!(c));
        }
        Value::Object(m)
    }
}

/// Runs `op` on every item; with `all_or_none`, a single failure rolls back every
/// write and turns the other results into ALL_OR_NONE_OPERATION_ROLLED_BACK.
/// `creates`: rolled-back results lose their ids (the records no longer exist).
fn run_items<T>(
    app: &App,
    req: &Req,
    items: &[T],
    all_or_none: bool,
    creates: bool,
    id_of: impl Fn(&T) -> Option<String>,
    op: impl Fn(&T) -> ItemResult,
) -> Vec<ItemResult> {
    crate::txn::sync_scope(|scope| {
        let mut results: Vec<ItemResult> = items
            .iter()
            .map(|item| match app.faults.pick_record(&req.path) {
                Some(kind) => ItemResult::err(id_of(item), kind.error()),
                None => op(item),
            })
            .collect();
        if all_or_none && results.iter().any(|r| r.error.is_some()) {
            scope.rollback();
            for r in results.iter_mut().filter(|r| r.error.is_none()) {
                r.error = Some(ApiError::bad(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    ROLLED_BACK,
                ));
                if creates || r.created == Some(true) {
                    r.id = None;
                }
                r.created = None;
            }
        }
        results
    })
}

fn collection_response(results: &[ItemResult]) -> Resp {
    Resp::json(
        200,
        &Value::Array(results.iter().map(ItemResult::to_json).collect()),
    )
}

/// `{"allOrNone":..,"records":[..]}` with at most 200 records.
fn collection_body(req: &Req) -> Result<(bool, Vec<Value>), ApiError> {
    let body = req.json()?;
    let records = match body.get("records") {
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(ApiError::json_parse(
                "Cannot deserialize instance of list from non-array value for \"records\"",
            ))
        }
        None => {
            return Err(ApiError::bad(
                "INVALID_FIELD",
                "The request body needs a \"records\" array of sObjects",
            ))
        }
    };
    if records.len() > MAX_COLLECTION {
        return Err(too_many_records());
    }
    Ok((bool_of(body.get("allOrNone")), records))
}

/// The `attributes.type` of a collection record.
fn record_type(rec: &Value) -> Result<&str, ApiError> {
    if !rec.is_object() {
        return Err(ApiError::json_parse(
            "Cannot deserialize instance of SObject from a value that is not an object",
        ));
    }
    rec.get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad(
                "INVALID_TYPE",
                "Must specify a type for the sObject in attributes.type",
            )
        })
}

fn record_id(rec: &Value) -> Option<&str> {
    rec.get("id")
        .or_else(|| rec.get("Id"))
        .and_then(Value::as_str)
}

fn lookup_type(app: &App, name: &str) -> Result<crate::org::ObjRef, ApiError> {
    lookup(app, name).map_err(|_| {
        ApiError::bad(
            "INVALID_TYPE",
            format!("sObject type '{name}' is not supported."),
        )
    })
}

fn create_item(app: &App, rec: &Value) -> ItemResult {
    let run = || -> Result<String, ApiError> {
        let obj = lookup_type(app, record_type(rec)?)?;
        crate::records::create_from_json(app, &obj, rec)
    };
    match run() {
        Ok(id) => ItemResult::ok(id),
        Err(e) => ItemResult::err(None, e),
    }
}

fn update_item(app: &App, rec: &Value) -> ItemResult {
    let id = record_id(rec).map(str::to_string);
    let run = || -> Result<String, ApiError> {
        let ty = record_type(rec)?;
        let id = id.clone().ok_or_else(|| {
            ApiError::bad("MISSING_ARGUMENT", "Id not specified in an update call")
        })?;
        let obj = lookup_type(app, ty)?;
        crate::validate::writable(&obj.read().def, crate::validate::WriteOp::Update)?;
        crate::records::update_from_json(app, &obj, &id, rec)?;
        Ok(crate::ids::normalize(&id).map_or(id.clone(), crate::ids::to18))
    };
    match run() {
        Ok(id) => ItemResult::ok(id),
        Err(e) => ItemResult::err(id, e),
    }
}

fn delete_item(app: &App, id: &str) -> ItemResult {
    let run = || -> Result<String, ApiError> {
        let bad_id = || {
            ApiError::bad("MALFORMED_ID", format!("malformed id {id}"))
                .with_fields(vec!["Id".into()])
        };
        let prefix = crate::ids::prefix_of(id).ok_or_else(bad_id)?;
        let obj = app.org.by_prefix(&prefix).ok_or_else(bad_id)?;
        crate::validate::writable(&obj.read().def, crate::validate::WriteOp::Delete)?;
        crate::validate::delete_cascading(&app.org, &obj, id)?;
        Ok(crate::ids::normalize(id).map_or(id.to_string(), crate::ids::to18))
    };
    match run() {
        Ok(id) => ItemResult::ok(id),
        Err(e) => ItemResult::err(Some(id.to_string()), e),
    }
}

/// `POST|PATCH|DELETE /composite/sobjects` and `GET /composite/sobjects/{Object}`.
pub fn collections(app: &App, req: &Req, _v: &str) -> Result<Resp, ApiError> {
    match req.method {
        Method::POST => {
            let (all_or_none, records) = collection_body(req)?;
            Ok(collection_response(&run_items(
                app,
                req,
                &records,
                all_or_none,
                true,
                |_| None,
                |r| create_item(app, r),
            )))
        }
        Method::PATCH => {
            let (all_or_none, records) = collection_body(req)?;
            Ok(collection_response(&run_items(
                app,
                req,
                &records,
                all_or_none,
                false,
                |r| record_id(r).map(str::to_string),
                |r| update_item(app, r),
            )))
        }
        Method::DELETE => {
            let ids: Vec<String> = req
                .param("ids")
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if ids.is_empty() {
                return Err(ApiError::bad(
                    "MISSING_ARGUMENT",
                    "ids: the ids parameter is required (a comma-separated list of record ids)",
                ));
            }
            if ids.len() > MAX_COLLECTION {
                return Err(too_many_records());
            }
            let all_or_none = req
                .param("allOrNone")
                .is_some_and(|s| s.eq_ignore_ascii_case("true"));
            Ok(collection_response(&run_items(
                app,
                req,
                &ids,
                all_or_none,
                false,
                |id| Some(id.clone()),
                |id| delete_item(app, id),
            )))
        }
        _ => Err(ApiError::method_not_allowed(req.method.as_str())),
    }
}

/// `GET /composite/sobjects/{Object}?ids=..&fields=..` (or POST with a JSON body):
/// one record or `null` per id, in order.
pub fn collections_retrieve(app: &App, req: &Req, v: &str, name: &str) -> Result<Resp, ApiError> {
    let obj = lookup(app, name)?;
    let (ids, fields): (Vec<String>, Vec<String>) = match req.method {
        Method::GET => {
            let split = |s: Option<&str>| -> Vec<String> {
                s.unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            (split(req.param("ids")), split(req.param("fields")))
        }
        Method::POST => {
            let b = req.json()?;
            let list = |k: &str| -> Vec<String> {
                b.get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            (list("ids"), list("fields"))
        }
        _ => return Err(ApiError::method_not_allowed(req.method.as_str())),
    };
    if ids.is_empty() || fields.is_empty() {
        return Err(ApiError::bad(
            "MISSING_ARGUMENT",
            "Both ids and fields are required (comma-separated lists)",
        ));
    }
    if ids.len() > 2000 {
        return Err(ApiError::bad(
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot retrieve more than 2000 records",
        ));
    }
    let reader = crate::query::RecordReader::new(app, &obj);
    let locked = reader.lock();
    let o = locked.obj(0);
    let idx: Vec<usize> = fields
        .iter()
        .map(|f| {
            o.def.field_index(f).ok_or_else(|| {
                ApiError::bad(
                    "INVALID_FIELD",
                    format!("No such column '{f}' on entity '{}'.", o.def.name),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len() * 200);
    out.push(b'[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match crate::validate::live_row(o, id) {
            Ok(row) => reader.record(&mut out, &locked, row, &idx, v),
            Err(_) => out.extend_from_slice(b"null"),
        }
    }
    out.push(b']');
    Ok(Resp::raw_json(200, out))
}

fn upsert_item(
    app: &App,
    obj: &crate::org::ObjRef,
    name: &str,
    field: &str,
    rec: &Value,
    v: &str,
) -> ItemResult {
    let run = || -> Result<(String, bool), ApiError> {
        let ty = record_type(rec)?;
        if !ty.eq_ignore_ascii_case(name) {
            return Err(ApiError::bad(
                "INVALID_TYPE",
                format!("Record type {ty} does not match the URL's sObject type {name}"),
            ));
        }
        let value = rec
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)))
            .map(|(_, v)| v);
        let value = match value {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(
                    ApiError::bad("MISSING_ARGUMENT", format!("{field} not specified"))
                        .with_fields(vec![field.to_string()]),
                )
            }
        };
        crate::records::upsert_json(app, obj, field, &value, rec, v).map_err(|e| {
            if e.status == 300 {
                ApiError::bad(
                    "DUPLICATE_EXTERNAL_ID",
                    format!(
                        "{field}: more than one record found for external id field: {}",
                        e.message
                    ),
                )
                .with_fields(vec![field.to_string()])
            } else {
                e
            }
        })
    };
    match run() {
        Ok((id, created)) => ItemResult {
            id: Some(id),
            created: Some(created),
            error: None,
        },
        Err(e) => ItemResult::err(None, e),
    }
}

/// `PATCH /composite/sobjects/{Object}/{ExternalIdField}`.
pub fn collections_upsert(
    app: &App,
    req: &Req,
    v: &str,
    name: &str,
    field: &str,
) -> Result<Resp, ApiError> {
    if req.method != Method::PATCH {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let obj = lookup(app, name)?;
    let (all_or_none, records) = collection_body(req)?;
    // An unknown external id field fails the whole request, as in Salesforce.
    crate::records::match_external(&obj, field, "")?;
    let results = run_items(
        app,
        req,
        &records,
        all_or_none,
        false,
        |_| None,
        |r| upsert_item(app, &obj, name, field, r, v),
    );
    Ok(collection_response(&results))
}
