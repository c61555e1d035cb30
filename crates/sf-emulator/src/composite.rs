//! `/composite` (up to 25 dependent subrequests with `@{ref.field}` references,
//! counted as one API call) and `/composite/batch` (independent subrequests, each
//! counted). `allOrNone` is honoured through the undo journal in [`crate::txn`].

use crate::app::App;
use crate::collections::bool_of;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use crate::router::Route;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Subrequests per `/composite` request.
const MAX_COMPOSITE: usize = 25;
/// Query and collection subrequests per `/composite` request.
const MAX_COMPOSITE_HEAVY: usize = 5;
/// Subrequests per `/composite/batch` request.
const MAX_BATCH: usize = 25;

const HALTED: &str =
    "The transaction was rolled back since another operation in the same transaction failed.";

/// Quota units a `/composite/batch` request spends: one per subrequest (one for a
/// body that cannot be read, which is refused anyway).
pub fn batch_cost(req: &Req) -> u64 {
    serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("batchRequests")?.as_array().map(Vec::len))
        .filter(|n| (1..=MAX_BATCH).contains(n))
        .map_or(1, |n| n as u64)
}

// ---------------------------------------------------------------- composite

/// A `@{ref.path}` reference could not be resolved.
struct BadRef(String);

/// Follows `records[0].Id`-style paths into a subresponse body.
fn walk<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, mut rest) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !name.is_empty() {
            v = v.get(name)?;
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let i: usize = r[..end].trim().parse().ok()?;
            v = v.get(i)?;
            rest = &r[end + 1..];
        }
    }
    Some(v)
}

/// The value of one reference expression (`acct.id`, `q.records[0].Id`).
fn resolve_ref<'a>(expr: &str, refs: &'a HashMap<String, Value>) -> Result<&'a Value, BadRef> {
    let split = expr.find(['.', '[']).unwrap_or(expr.len());
    let (id, path) = (&expr[..split], expr[split..].trim_start_matches('.'));
    let body = refs.get(id).ok_or_else(|| {
        BadRef(format!(
            "Invalid reference specified. No value for {expr} found in {id}. Provided referenceId ('{id}') must refer to an earlier successful subrequest."
        ))
    })?;
    walk(body, path).filter(|v| !v.is_null()).ok_or_else(|| {
        BadRef(format!(
            "Invalid reference specified. No value for {expr} found in {id}."
        ))
    })
}

fn ref_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `@{...}` in `s`.
fn substitute_text(s: &str, refs: &HashMap<String, Value>) -> Result<String, BadRef> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| BadRef(format!("Unclosed reference in {s}")))?;
        out.push_str(&ref_text(resolve_ref(&after[..end], refs)?));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces references in a JSON body; a string that is exactly one reference takes
/// the referenced value with its JSON type.
fn substitute_json(v: &Value, refs: &HashMap<String, Value>) -> Result<Value, BadRef> {
    Ok(match v {
        Value::String(s) => {
            let whole = s
                .strip_prefix("@{")
                .and_then(|x| x.strip_suffix('}'))
                .filter(|x| !x.contains('}'));
            match whole {
                Some(expr) => resolve_ref(expr, refs)?.clone(),
                None if s.contains("@{") => Value::String(substitute_text(s, refs)?),
                None => v.clone(),
            }
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute_json(x, refs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                out.insert(k.clone(), substitute_json(x, refs)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A subrequest as sent, before references are resolved.
struct Sub {
    method: Method,
    url: String,
    reference_id: String,
    body: Option<Value>,
    headers: Map<String, Value>,
}

fn sub_error(msg: impl Into<String>) -> ApiError {
    ApiError::bad("INVALID_INPUT", msg)
}

/// The path after `/services/data/`; `v61.0/...` and `/services/data/v61.0/...` both work.
fn full_path(url: &str) -> String {
    if url.starts_with('/') {
        url.to_string()
    } else {
        format!("/services/data/{url}")
    }
}

fn route_of(url: &str) -> Route {
    let path = url.split('?').next().unwrap_or("");
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    crate::router::route(&segs)
}

/// Routes a subrequest may use: the record, query and describe resources.
fn allowed_in_composite(r: &Route) -> bool {
    matches!(
        r,
        Route::Resources(_)
            | Route::Limits(_)
            | Route::DescribeGlobal(_)
            | Route::SObject(..)
            | Route::Describe(..)
            | Route::Record(..)
            | Route::ByExternalId(..)
            | Route::Updated(..)
            | Route::Deleted(..)
            | Route::Query(..)
            | Route::QueryMore(..)
            | Route::Collections(_)
            | Route::CollectionsRetrieve(..)
            | Route::CollectionsUpsert(..)
    )
}

fn is_heavy(r: &Route) -> bool {
    matches!(
        r,
        Route::Query(..)
            | Route::QueryMore(..)
            | Route::Collections(_)
            | Route::CollectionsRetrieve(..)
            | Route::CollectionsUpsert(..)
    )
}

fn parse_method(m: &str) -> Option<Method> {
    match m.to_ascii_uppercase().as_str() {
        "GET" => Some(Method::GET),
        "POST" => Some(Method::POST),
        "PATCH" => Some(Method::PATCH),
        "PUT" => Some(Method::PUT),
        "DELETE" => Some(Method::DELETE),
        "HEAD" => Some(Method::HEAD),
        _ => None,
    }
}

fn parse_subs(body: &Value) -> Result<Vec<Sub>, ApiError> {
    let list = body
        .get("compositeRequest")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::json_parse("The request body needs a \"compositeRequest\" array")
        })?;
    if list.is_empty() {
        return Err(sub_error(
            "compositeRequest must hold at least one subrequest",
        ));
    }
    if list.len() > MAX_COMPOSITE {
        return Err(ApiError::bad(
            "LIMIT_EXCEEDED",
            format!(
                "Composite request can have at most {MAX_COMPOSITE} subrequests; this one has {}",
                list.len()
            ),
        ));
    }
    let mut subs = Vec::with_capacity(list.len());
    let mut heavy = 0;
    for (i, s) in list.iter().enumerate() {
        let text = |k: &str| s.get(k).and_then(Value::as_str);
        let method = text("method").and_then(parse_method).ok_or_else(|| {
            sub_error(format!(
                "subrequest {i}: \"method\" must be GET, POST, PATCH, PUT or DELETE"
            ))
        })?;
        let url =
            text("url").ok_or_else(|| sub_error(format!("subrequest {i}: \"url\" is required")))?;
        let reference_id = text("referenceId")
            .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .filter(|r| r.starts_with(|c: char| c.is_ascii_alphabetic()))
            .ok_or_else(|| {
                sub_error(format!(
                    "subrequest {i}: \"referenceId\" is required and must start with a letter and hold only letters, digits and underscores"
                ))
            })?;
        if subs.iter().any(|x: &Sub| x.reference_id == reference_id) {
            return Err(sub_error(format!(
                "Duplicate referenceId provided in the request: {reference_id}"
            )));
        }
        let route = route_of(&full_path(url));
        if !allowed_in_composite(&route) {
            return Err(sub_error(format!(
                "subrequest {reference_id}: {url} is not supported in a composite request"
            )));
        }
        if is_heavy(&route) {
            heavy += 1;
            if heavy > MAX_COMPOSITE_HEAVY {
                return Err(ApiError::bad(
                    "LIMIT_EXCEEDED",
                    format!("A composite request can hold at most {MAX_COMPOSITE_HEAVY} query or sObject Collections subrequests"),
                ));
            }
        }
        subs.push(Sub {
            method,
            url: url.to_string(),
            reference_id: reference_id.to_string(),
            body: s.get("body").cloned(),
            headers: s
                .get("httpHeaders")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        });
    }
    Ok(subs)
}

/// A subrequest's answer: status, headers and JSON body.
struct SubResult {
    status: u16,
    headers: Map<String, Value>,
    body: Value,
}

fn halted(message: &str) -> SubResult {
    SubResult {
        status: 400,
        headers: Map::new(),
        body: json!([{"errorCode": "PROCESSING_HALTED", "message": message}]),
    }
}

fn header_map(headers: &Map<String, Value>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let value = ref_text(v);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// Runs one (already resolved) subrequest through the normal handlers: no second
/// authentication, quota charge or fault.
async fn run_sub(
    app: &Arc<App>,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: Option<&Value>,
) -> SubResult {
    let path = full_path(url);
    let bytes = body
        .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
        .unwrap_or_default();
    let req = Req::new(method, &path, headers, bytes);
    let route = route_of(&path);
    let resp = match crate::router::dispatch(app, &route, &req).await {
        Ok(r) => r,
        Err(e) => Resp::error(&e),
    };
    let body: Value = if resp.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&resp.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.body).into_owned()))
    };
    let mut headers = Map::new();
    for (k, v) in &resp.headers {
        match *k {
            "last-modified" => {
                headers.insert("Last-Modified".into(), json!(v));
            }
            "location" => {
                headers.insert("Location".into(), json!(v));
            }
            _ => {}
        }
    }
    if resp.status == 201 {
        if let (Some(id), Route::SObject(v, o)) = (body.get("id").and_then(Value::as_str), &route) {
            headers.insert(
                "Location".into(),
                json!(format!("/services/data/v{v}/sobjects/{o}/{id}")),
            );
        }
    }
    SubResult {
        status: resp.status,
        headers,
        body,
    }
}

/// `POST /composite`.
pub async fn composite(app: &Arc<App>, req: &Req, _v: &str) -> Result<Resp, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let body = req.json()?;
    let all_or_none = bool_of(body.get("allOrNone"));
    let subs = parse_subs(&body)?;
    let subs = &subs;
    let results = crate::txn::scope(|scope| async move {
        let mut refs: HashMap<String, Value> = HashMap::new();
        let mut results: Vec<SubResult> = Vec::with_capacity(subs.len());
        let mut failed = false;
        for sub in subs {
            if failed && all_or_none {
                results.push(halted(HALTED));
                continue;
            }
            let resolved = substitute_text(&sub.url, &refs).and_then(|url| {
                let body = sub
                    .body
                    .as_ref()
                    .map(|b| substitute_json(b, &refs))
                    .transpose()?;
                let headers = substitute_json(&Value::Object(sub.headers.clone()), &refs)?;
                Ok((url, body, headers))
            });
            let r = match resolved {
                Err(BadRef(msg)) => halted(&msg),
                Ok((url, body, headers)) => {
                    let headers = match &headers {
                        Value::Object(m) => header_map(m),
                        _ => HeaderMap::new(),
                    };
                    run_sub(app, sub.method.clone(), &url, headers, body.as_ref()).await
                }
            };
            if r.status >= 400 {
                failed = true;
            } else {
                refs.insert(sub.reference_id.clone(), r.body.clone());
            }
            results.push(r);
        }
        if failed && all_or_none {
            scope.rollback();
            for r in results.iter_mut().filter(|r| r.status < 400) {
                *r = halted(HALTED);
            }
        }
        results
    })
    .await;
    let out: Vec<Value> = results
        .into_iter()
        .zip(subs)
        .map(|(r, s)| {
            json!({"body": r.body, "httpHeaders": r.headers, "httpStatusCode": r.status, "referenceId": s.reference_id})
        })
        .collect();
    Ok(Resp::json(200, &json!({"compositeResponse": out})))
}

// ---------------------------------------------------------------- batch

/// `POST /composite/batch`: independent subrequests, each counted as one call.
pub async fn batch(app: &Arc<App>, req: &Req, _v: &str) -> Result<Resp, ApiError> {
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let body = req.json()?;
    let list = body
        .get("batchRequests")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::json_parse("The request body needs a \"batchRequests\" array"))?;
    if list.is_empty() || list.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "LIMIT_EXCEEDED",
            format!(
                "A batch request holds 1 to {MAX_BATCH} subrequests; this one has {}",
                list.len()
            ),
        ));
    }
    let halt_on_error = bool_of(body.get("haltOnError"));
    let mut subs = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let method = s
            .get("method")
            .and_then(Value::as_str)
            .and_then(parse_method)
            .ok_or_else(|| {
                sub_error(format!(
                    "batchRequests[{i}]: \"method\" must be GET, POST, PATCH, PUT or DELETE"
                ))
            })?;
        let url = s
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| sub_error(format!("batchRequests[{i}]: \"url\" is required")))?;
        let route = route_of(&full_path(url));
        if !allowed_in_composite(&route) {
            return Err(sub_error(format!(
                "batchRequests[{i}]: {url} is not supported in a batch request"
            )));
        }
        subs.push((method, url.to_string(), s.get("richInput").cloned()));
    }
    let mut results = Vec::with_capacity(subs.len());
    let mut has_errors = false;
    for (method, url, input) in subs {
        if has_errors && halt_on_error {
            results.push(json!({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}]}));
            continue;
        }
        let r = run_sub(app, method, &url, HeaderMap::new(), input.as_ref()).await;
        if r.status >= 400 {
            has_errors = true;
        }
        results.push(json!({"statusCode": r.status, "result": r.body}));
    }
    Ok(Resp::json(
        200,
        &json!({"hasErrors": has_errors, "results": results}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_reference_paths() {
        let mut refs = HashMap::new();
        refs.insert("acct".to_string(), json!({"id": "001x"}));
        refs.insert(
            "q".to_string(),
            json!({"records": [{"Id": "003a", "Account": {"Name": "N"}}]}),
        );
        assert_eq!(
            substitute_text("/x/@{acct.id}/y", &refs).ok().as_deref(),
            Some("/x/001x/y")
        );
        assert_eq!(
            substitute_text("@{q.records[0].Account.Name}", &refs)
                .ok()
                .as_deref(),
            Some("N")
        );
        assert!(substitute_text("@{nope.id}", &refs).is_err());
        assert!(substitute_text("@{acct.missing}", &refs).is_err());
        let body = substitute_json(
            &json!({"AccountId": "@{acct.id}", "n": ["a @{q.records[0].Id}"]}),
            &refs,
        )
        .ok()
        .unwrap_or_default();
        assert_eq!(body, json!({"AccountId": "001x", "n": ["a 003a"]}));
    }

    #[test]
    fn batch_cost_counts_subrequests() {
        let req = |b: &str| {
            Req::new(
                Method::POST,
                "/x",
                HeaderMap::new(),
                Bytes::from(b.to_string()),
            )
        };
        assert_eq!(batch_cost(&req(r#"{"batchRequests":[{},{},{}]}"#)), 3);
        assert_eq!(batch_cost(&req("not json")), 1);
    }
}
