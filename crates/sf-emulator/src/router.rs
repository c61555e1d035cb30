//! Maps a request to its endpoint, applies latency, faults, auth and the quota, and
//! dispatches it.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{read_request, Outcome, Req, Resp};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::json;
use std::sync::Arc;

/// Every Salesforce endpoint the emulator knows.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Versions,
    Token,
    Revoke,
    Identity(String, String),
    SoapLogin(String),
    Resources(String),
    Limits(String),
    DescribeGlobal(String),
    SObject(String, String),
    Describe(String, String),
    Record(String, String, String),
    ByExternalId(String, String, String, String),
    Updated(String, String),
    Deleted(String, String),
    Query(String, bool),
    QueryMore(String, String),
    Composite(String),
    CompositeBatch(String),
    Collections(String),
    CollectionsRetrieve(String, String),
    CollectionsUpsert(String, String, String),
    Bulk2Query(String, Vec<String>),
    Bulk2Ingest(String, Vec<String>),
    Bulk1(String, Vec<String>),
    ToolingQuery(String),
    ToolingQueryMore(String, String),
    ToolingSObject(String, String),
    ToolingRecord(String, String, String),
    BadVersion,
    NotFound,
}

impl Route {
    /// The stats key of the endpoint.
    pub fn endpoint(&self, method: &Method) -> &'static str {
        match self {
            Route::Versions => "versions",
            Route::Token => "token",
            Route::Revoke => "revoke",
            Route::Identity(..) => "identity",
            Route::SoapLogin(_) => "soap_login",
            Route::Resources(_) => "resources",
            Route::Limits(_) => "limits",
            Route::DescribeGlobal(_) => "describe_global",
            Route::SObject(..) if *method == Method::POST => "sobject_create",
            Route::SObject(..) => "sobject_basic",
            Route::Describe(..) => "describe",
            Route::Record(..) | Route::ByExternalId(..) => match *method {
                Method::PATCH if matches!(self, Route::ByExternalId(..)) => "sobject_upsert",
                Method::PATCH => "sobject_update",
                Method::DELETE => "sobject_delete",
                _ => "sobject_get",
            },
            Route::Updated(..) => "updated",
            Route::Deleted(..) => "deleted",
            Route::Query(_, false) => "query",
            Route::Query(_, true) => "queryAll",
            Route::QueryMore(..) => "query_more",
            Route::Composite(_) => "composite",
            Route::CompositeBatch(_) => "composite_batch",
            Route::Collections(_)
            | Route::CollectionsRetrieve(..)
            | Route::CollectionsUpsert(..) => "collections",
            Route::Bulk2Query(..) => "bulk2_query",
            Route::Bulk2Ingest(..) => "bulk2_ingest",
            Route::Bulk1(..) => "bulk1",
            Route::ToolingQuery(_) => "tooling_query",
            Route::ToolingQueryMore(..) => "tooling_query_more",
            Route::ToolingSObject(..) => "tooling_sobject_create",
            Route::ToolingRecord(..) if *method == Method::DELETE => "tooling_sobject_delete",
            Route::ToolingRecord(..) => "tooling_sobject_get",
            Route::BadVersion | Route::NotFound => "not_found",
        }
    }

    /// Data API calls: authenticated, counted against the quota, and answered with
    /// `Sforce-Limit-Info`.
    fn is_api(&self) -> bool {
        !matches!(
            self,
            Route::Versions
                | Route::Token
                | Route::Revoke
                | Route::Identity(..)
                | Route::SoapLogin(_)
                | Route::NotFound
        )
    }
}

/// `v61.0` -> `61.0` when it is a version the emulator serves (42.0 and up).
pub fn parse_version(seg: &str) -> Option<String> {
    let v = seg.strip_prefix('v')?;
    let (major, minor) = v.split_once('.')?;
    let major: u32 = major.parse().ok()?;
    if minor != "0" || major < 42 {
        return None;
    }
    Some(format!("{major}.0"))
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

pub fn route(segs: &[String]) -> Route {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let own = |x: &str| x.to_string();
    match s.as_slice() {
        ["services", "data"] => Route::Versions,
        ["services", "oauth2", "token"] => Route::Token,
        ["services", "oauth2", "revoke"] => Route::Revoke,
        ["id", org, user] => Route::Identity(own(org), own(user)),
        ["services", "Soap", "u", v, ..] => match v.parse::<f32>() {
            Ok(_) => Route::SoapLogin(own(v)),
            Err(_) => Route::NotFound,
        },
        ["services", "async", v, rest @ ..] => match v.parse::<f32>() {
            Ok(_) => Route::Bulk1(own(v), rest.iter().map(|x| own(x)).collect()),
            Err(_) => Route::NotFound,
        },
        ["services", "data", v, rest @ ..] => {
            let Some(v) = parse_version(v) else {
                return Route::BadVersion;
            };
            match rest {
                [] => Route::Resources(v),
                ["limits"] => Route::Limits(v),
                ["sobjects"] => Route::DescribeGlobal(v),
                ["sobjects", o] => Route::SObject(v, own(o)),
                ["sobjects", o, "describe"] => Route::Describe(v, own(o)),
                ["sobjects", o, "updated"] => Route::Updated(v, own(o)),
                ["sobjects", o, "deleted"] => Route::Deleted(v, own(o)),
                ["sobjects", o, id] => Route::Record(v, own(o), own(id)),
                ["sobjects", o, f, val] => Route::ByExternalId(v, own(o), own(f), own(val)),
                ["query"] => Route::Query(v, false),
                ["queryAll"] => Route::Query(v, true),
                ["query" | "queryAll", loc] => Route::QueryMore(v, own(loc)),
                ["composite"] => Route::Composite(v),
                ["composite", "batch"] => Route::CompositeBatch(v),
                ["composite", "sobjects"] => Route::Collections(v),
                ["composite", "sobjects", o] => Route::CollectionsRetrieve(v, own(o)),
                ["composite", "sobjects", o, f] => Route::CollectionsUpsert(v, own(o), own(f)),
                ["tooling", "query"] => Route::ToolingQuery(v),
                ["tooling", "query", loc] => Route::ToolingQueryMore(v, own(loc)),
                ["tooling", "sobjects", o] => Route::ToolingSObject(v, own(o)),
                ["tooling", "sobjects", o, id] => Route::ToolingRecord(v, own(o), own(id)),
                ["jobs", "query", r @ ..] => {
                    Route::Bulk2Query(v, r.iter().map(|x| own(x)).collect())
                }
                ["jobs", "ingest", r @ ..] => {
                    Route::Bulk2Ingest(v, r.iter().map(|x| own(x)).collect())
                }
                _ => Route::NotFound,
            }
        }
        _ => Route::NotFound,
    }
}

pub async fn serve(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let req = match read_request(req).await {
        Ok(r) => r,
        Err(resp) => {
            let mut r = resp.into_hyper();
            *r.extensions_mut() = app.header_case.clone();
            return Ok(r);
        }
    };
    // A bug must cost one request, not the connection or the server: run the
    // request as its own task and answer a panic with Salesforce's 500. When the
    // client goes away hyper drops this future, and the guard stops the task too, so
    // an abandoned slow request does not keep holding a long-request slot.
    let header_case = app.header_case.clone();
    let task = tokio::spawn(async move { handle(&app, req).await });
    let _stop_if_abandoned = AbortOnDrop(task.abort_handle());
    let outcome = match task.await {
        Ok(o) => o,
        Err(_) => Outcome::Reply(Resp::error(&ApiError::new(
            500,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred in the emulator while handling this request",
        ))),
    };
    match outcome {
        Outcome::Reply(r) => {
            let mut r = r.into_hyper();
            *r.extensions_mut() = header_case.clone();
            Ok(r)
        }
        Outcome::Drop => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: connection dropped",
        )),
    }
}

/// Aborts a request's task when the connection waiting for it is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn handle(app: &Arc<App>, req: Req) -> Outcome {
    let segs = segments(&req.path);
    if segs.first().map(String::as_str) == Some("__emulator") {
        if segs.get(1).map(String::as_str) == Some("cdc") {
            let rest: Vec<&str> = segs[2..].iter().map(String::as_str).collect();
            return Outcome::Reply(crate::cdc::control::handle(app, &req, &rest));
        }
        // Changes made through the control API stand for a user's: no API origin.
        let reply = crate::cdc::within(&app.cdc, String::new(), async {
            crate::control::handle(app, &req, &segs[1..]).await
        });
        return Outcome::Reply(reply.await);
    }
    let route = route(&segs);
    let endpoint = route.endpoint(&req.method);
    app.limits.hit(endpoint);
    // API requests only: a login is not one (Salesforce limits API requests at once,
    // and a client's concurrency limit is about those)
    let api = route.is_api();
    let _in_flight = api.then(|| app.limits.begin_request(endpoint));
    // while the org's long-running requests are all taken, new ones are refused
    if api {
        if let Err(e) = app.limits.check_long_capacity() {
            return Outcome::Reply(with_usage(app, &route, Resp::error(&e)));
        }
    }
    let latency = *app.latency_ms.lock();
    let _long = if latency >= 20_000 {
        match app.limits.begin_long() {
            Ok(g) => Some(g),
            Err(e) => return Outcome::Reply(with_usage(app, &route, Resp::error(&e))),
        }
    } else {
        None
    };
    if latency > 0 {
        app.sleep(latency).await;
    }
    if api || route == Route::Token {
        if let Some(kind) = app.faults.pick(&req.path) {
            use crate::faults::FaultKind;
            match kind {
                FaultKind::Drop => return Outcome::Drop,
                FaultKind::DropAfter => {
                    let _ = run_captured(app, &route, &req).await;
                    return Outcome::Drop;
                }
                FaultKind::Timeout => {
                    let _g = app.limits.begin_long();
                    app.sleep(65_000).await;
                }
                _ => {}
            }
            return Outcome::Reply(with_usage(app, &route, Resp::error(&kind.error())));
        }
    }
    let resp = match run_captured(app, &route, &req).await {
        Ok(r) => r,
        Err(e) if matches!(route, Route::Bulk1(..)) => crate::bulk1::error_resp(&e, &req),
        Err(e) => Resp::error(&e),
    };
    Outcome::Reply(with_usage(app, &route, resp))
}

fn with_usage(app: &App, route: &Route, resp: Resp) -> Resp {
    if route.is_api() {
        resp.header("sforce-limit-info", app.limits.header_value())
    } else {
        resp
    }
}

/// [`run`], with the request's record changes captured for Change Data Capture when
/// any object is selected for it.
async fn run_captured(app: &Arc<App>, route: &Route, req: &Req) -> Result<Resp, ApiError> {
    if !app.cdc.capturing() {
        return run(app, route, req).await;
    }
    let origin = change_origin(route, req);
    crate::cdc::within(&app.cdc, origin, run(app, route, req)).await
}

/// The `changeOrigin` of a request's changes: the API, its version and the client id
/// of `Sforce-Call-Options`.
fn change_origin(route: &Route, req: &Req) -> String {
    let (api, v) = match route {
        Route::Bulk2Ingest(v, _) | Route::Bulk2Query(v, _) | Route::Bulk1(v, _) => ("bulkapi", v),
        Route::SoapLogin(v) => ("soap", v),
        Route::Resources(v)
        | Route::Limits(v)
        | Route::DescribeGlobal(v)
        | Route::SObject(v, _)
        | Route::Describe(v, _)
        | Route::Record(v, ..)
        | Route::ByExternalId(v, ..)
        | Route::Updated(v, _)
        | Route::Deleted(v, _)
        | Route::Query(v, _)
        | Route::QueryMore(v, _)
        | Route::Composite(v)
        | Route::CompositeBatch(v)
        | Route::Collections(v)
        | Route::CollectionsRetrieve(v, _)
        | Route::CollectionsUpsert(v, ..) => ("rest", v),
        _ => return String::new(),
    };
    crate::cdc::origin(api, v, req.header("sforce-call-options"))
}

async fn run(app: &Arc<App>, route: &Route, req: &Req) -> Result<Resp, ApiError> {
    if route.is_api() && *route != Route::BadVersion {
        crate::auth::check(app, req)?;
        app.limits.check_long_capacity()?;
        let cost = match route {
            Route::CompositeBatch(_) => crate::composite::batch_cost(req),
            _ => 1,
        };
        app.limits.consume(cost)?;
    }
    dispatch(app, route, req).await
}

/// Runs an authenticated, already counted request (also used for composite
/// subrequests).
pub async fn dispatch(app: &Arc<App>, route: &Route, req: &Req) -> Result<Resp, ApiError> {
    let m = &req.method;
    let only = |allowed: &[Method]| -> Result<(), ApiError> {
        if allowed.contains(m) {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(m.as_str()))
        }
    };
    match route {
        Route::Versions => Ok(versions()),
        Route::Token => {
            only(&[Method::POST])?;
            Ok(crate::auth::token(app, req))
        }
        Route::Revoke => {
            only(&[Method::POST, Method::GET])?;
            Ok(crate::auth::revoke(app, req))
        }
        Route::Identity(o, u) => Ok(crate::auth::identity(app, req, o, u)),
        Route::SoapLogin(v) => {
            only(&[Method::POST])?;
            Ok(crate::auth::soap_login(app, req, v))
        }
        Route::Resources(v) => Ok(resources(app, req, v)),
        Route::Limits(_) => Ok(limits(app)),
        Route::DescribeGlobal(v) => crate::describe::global(app, req, v),
        Route::SObject(v, o) => match *m {
            Method::POST => crate::records::create(app, req, v, o),
            Method::GET => crate::describe::basic(app, v, o),
            _ => Err(ApiError::method_not_allowed(m.as_str())),
        },
        Route::Describe(v, o) => crate::describe::object(app, req, v, o),
        Route::Record(v, o, id) => match *m {
            Method::GET => crate::records::get(app, req, v, o, id),
            Method::PATCH => crate::records::update(app, req, v, o, id),
            Method::DELETE => crate::records::delete(app, v, o, id),
            _ => Err(ApiError::method_not_allowed(m.as_str())),
        },
        Route::ByExternalId(_, o, id, field)
            if *m == Method::GET && crate::records::blob(app, o, id, field).is_some() =>
        {
            crate::records::blob(app, o, id, field).unwrap_or_else(|| Err(ApiError::not_found()))
        }
        Route::ByExternalId(v, o, f, val) => match *m {
            Method::PATCH | Method::POST => crate::records::upsert(app, req, v, o, f, val),
            Method::GET => crate::records::get_by_external(app, req, v, o, f, val),
            Method::DELETE => crate::records::delete_by_external(app, v, o, f, val),
            _ => Err(ApiError::method_not_allowed(m.as_str())),
        },
        Route::Updated(_, o) => crate::records::updated(app, req, o),
        Route::Deleted(_, o) => crate::records::deleted(app, req, o),
        Route::Query(v, all) => crate::query::query(app, req, v, *all),
        Route::QueryMore(v, loc) => crate::query::query_more(app, v, loc),
        Route::Composite(v) => Box::pin(crate::composite::composite(app, req, v)).await,
        Route::CompositeBatch(v) => Box::pin(crate::composite::batch(app, req, v)).await,
        Route::Collections(v) => crate::collections::collections(app, req, v),
        Route::CollectionsRetrieve(v, o) => {
            crate::collections::collections_retrieve(app, req, v, o)
        }
        Route::CollectionsUpsert(v, o, f) => {
            crate::collections::collections_upsert(app, req, v, o, f)
        }
        Route::Bulk2Query(v, rest) => crate::bulk2::query_route(app, req, v, rest),
        Route::Bulk2Ingest(v, rest) => crate::bulk2_ingest::ingest_route(app, req, v, rest),
        Route::Bulk1(v, rest) => Ok(crate::bulk1::route(app, req, v, rest)),
        Route::ToolingQuery(v) => {
            only(&[Method::GET])?;
            crate::tooling::query(app, req, v)
        }
        Route::ToolingQueryMore(v, loc) => {
            only(&[Method::GET])?;
            crate::tooling::query_more(app, v, loc)
        }
        Route::ToolingSObject(_, o) => {
            only(&[Method::POST])?;
            crate::tooling::create(app, req, o)
        }
        Route::ToolingRecord(v, o, id) => crate::tooling::record(app, req, v, o, id),
        Route::BadVersion | Route::NotFound => Err(ApiError::not_found()),
    }
}

fn version_label(major: u32) -> String {
    let n = major - 42;
    let year = 18 + n / 3;
    match n % 3 {
        0 => format!("Spring '{year:02}"),
        1 => format!("Summer '{year:02}"),
        _ => format!("Winter '{:02}", year + 1),
    }
}

fn versions() -> Resp {
    let list: Vec<_> = (42..=62)
        .map(|m| {
            json!({"label": version_label(m), "url": format!("/services/data/v{m}.0"), "version": format!("{m}.0")})
        })
        .collect();
    Resp::json(200, &serde_json::Value::Array(list))
}

fn resources(app: &App, req: &Req, v: &str) -> Resp {
    let p = format!("/services/data/v{v}");
    let mut map = serde_json::Map::new();
    for r in [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "chatter",
        "tabs",
        "appMenu",
        "quickActions",
        "queryAll",
        "commerce",
        "wave",
        "iot",
        "analytics",
        "search",
        "composite",
        "parameterizedSearch",
        "fingerprint",
        "theme",
        "nouns",
        "event",
        "serviceTemplates",
        "recent",
        "connect",
        "licensing",
        "limits",
        "process",
        "async-queries",
        "query",
        "jobs",
        "match",
        "emailConnect",
        "compactLayouts",
        "knowledgeManagement",
        "sobjects",
        "actions",
        "support",
    ] {
        map.insert(r.to_string(), json!(format!("{p}/{r}")));
    }
    map.insert(
        "identity".into(),
        json!(format!(
            "{}/id/{}/{}",
            app.instance_url(req),
            app.org.org_id,
            app.org.user_id
        )),
    );
    Resp::json(200, &serde_json::Value::Object(map))
}

fn limits(app: &App) -> Resp {
    let (used, max) = app.limits.usage();
    let jobs = app.bulk.query_job_count() as u64;
    let storage = app.bulk.storage_mb_used();
    let mx = |m: u64, r: u64| json!({"Max": m, "Remaining": r});
    let (delivery_max, delivery_left) = app.deliveries.allocation();
    Resp::json(
        200,
        &json!({
            "ConcurrentAsyncGetReportInstances": mx(200, 200),
            "ConcurrentSyncReportRuns": mx(20, 20),
            "DailyApiRequests": mx(max, max.saturating_sub(used)),
            "DailyAsyncApexExecutions": mx(250000, 250000),
            "DailyBulkApiBatches": mx(15000, 15000),
            "DailyDeliveredPlatformEvents": mx(delivery_max, delivery_left),
            "DailyBulkV2QueryFileStorageMB": mx(976562, 976562u64.saturating_sub(storage)),
            "DailyBulkV2QueryJobs": mx(10000, 10000u64.saturating_sub(jobs)),
            "DailyDurableStreamingApiEvents": mx(10000, 10000),
            "DailyGenericStreamingApiEvents": mx(10000, 10000),
            "DailyStreamingApiEvents": mx(10000, 10000),
            "DataStorageMB": mx(5, 5),
            "FileStorageMB": mx(20, 20),
            "HourlyPublishedPlatformEvents": mx(50000, 50000),
            "MassEmail": mx(10, 10),
            "SingleEmail": mx(15, 15),
            "ConcurrentPerOrgLongTxn": mx(app.limits.long_limit(), app.limits.long_remaining()),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |p: &str| route(&segments(p));
        assert_eq!(
            r("/services/data/v61.0/query"),
            Route::Query("61.0".into(), false)
        );
        assert_eq!(r("/services/data/v41.0/query"), Route::BadVersion);
        assert_eq!(
            r("/services/data/v61.0/sobjects/Contact/003x"),
            Route::Record("61.0".into(), "Contact".into(), "003x".into())
        );
        assert_eq!(
            r("/services/data/v61.0/tooling/query"),
            Route::ToolingQuery("61.0".into())
        );
        assert_eq!(
            r("/services/data/v61.0/tooling/sobjects/PlatformEventChannelMember/0v8x"),
            Route::ToolingRecord(
                "61.0".into(),
                "PlatformEventChannelMember".into(),
                "0v8x".into()
            )
        );
        assert_eq!(version_label(61), "Summer '24");
        assert_eq!(version_label(62), "Winter '25");
        assert_eq!(version_label(42), "Spring '18");
    }
}
