//! `/healthz` and `/metrics` over HTTP, on the address `--listen` names (off unless
//! given). A thread of its own with a connection of its own, so a scrape never waits
//! for a sync's step, nor a step for a scrape.
//!
//! - `/healthz`: 200 while the sync loop finished a pass within the last 30 seconds and
//!   the database answers; 503 with the reason otherwise.
//! - `/metrics`: the database's `sequin_sf.metrics_text()` (per-collection lag and rows,
//!   API requests and the org's limit, write-log entries by state, errors: see
//!   docs/metrics.md), `sequin_sf_sidecar_last_pass_age_seconds` and
//!   `sequin_sf_sidecar_org_catalog_requests_total` (the API requests of `org_catalog`,
//!   which no sync's figures count), in Prometheus's text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::conninfo::Database;
use sync_engine::endpoint;

/// How long without a finished pass `/healthz` still calls healthy.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// When the sync loop last finished a pass (milliseconds since the epoch; 0: never).
#[derive(Clone, Default)]
pub struct Heartbeat(Arc<AtomicU64>);

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl Heartbeat {
    pub fn beat(&self) {
        self.0.store(now_millis(), Ordering::Relaxed);
    }

    /// Seconds since the last pass (None: none yet).
    fn age(&self) -> Option<f64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            t => Some(now_millis().saturating_sub(t) as f64 / 1000.0),
        }
    }
}

/// A count shared between the sync loop and the endpoints' thread.
#[derive(Clone, Default)]
pub struct Tally(Arc<AtomicU64>);

impl Tally {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves the endpoints on `listen` (host:port, or a port on loopback) from a thread
/// of its own; fails if the address cannot be bound.
pub fn serve(
    listen: &str,
    database: Database,
    heartbeat: Heartbeat,
    catalog_requests: Tally,
) -> std::io::Result<()> {
    let address = endpoint::listen_address(listen)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut db: Option<postgres::Client> = None;
    let bound = endpoint::serve(address, move |path| match path {
        "/healthz" => health(&database, &mut db, &heartbeat),
        "/metrics" => metrics(&database, &mut db, &heartbeat, &catalog_requests),
        _ => endpoint::not_found(),
    })?;
    log::info!("sequin-sf: /healthz and /metrics on http://{bound}");
    Ok(())
}

/// The endpoints' own connection, opened again when lost.
fn query_text(
    database: &Database,
    db: &mut Option<postgres::Client>,
    sql: &str,
) -> Result<String, String> {
    if db.as_ref().is_none_or(|c| c.is_closed()) {
        *db = Some(database.connect("sequin-sf endpoints")?);
    }
    let client = db.as_mut().ok_or("no connection")?;
    let row = client
        .query_one(sql, &[])
        .map_err(|e| crate::wire::describe(&e))?;
    Ok(row
        .try_get::<_, Option<String>>(0)
        .map_err(|e| e.to_string())?
        .unwrap_or_default())
}

fn health(
    url: &Database,
    db: &mut Option<postgres::Client>,
    heartbeat: &Heartbeat,
) -> endpoint::Answer {
    let unavailable = "503 Service Unavailable";
    match heartbeat.age() {
        None => return (unavailable, "starting: no pass of the syncs yet\n".into()),
        Some(age) if age > STALE_AFTER.as_secs_f64() => {
            return (
                unavailable,
                format!("stalled: the last pass ended {age:.0} s ago\n"),
            )
        }
        Some(_) => {}
    }
    match query_text(url, db, "SELECT 'ok'") {
        Ok(_) => ("200 OK", "ok\n".into()),
        Err(e) => (unavailable, format!("the database does not answer: {e}\n")),
    }
}

fn metrics(
    url: &Database,
    db: &mut Option<postgres::Client>,
    heartbeat: &Heartbeat,
    catalog_requests: &Tally,
) -> endpoint::Answer {
    let mut body = match query_text(url, db, "SELECT sequin_sf.metrics_text()") {
        Ok(text) => text,
        Err(e) => {
            return (
                "503 Service Unavailable",
                format!("# the database does not answer: {e}\n"),
            )
        }
    };
    if let Some(age) = heartbeat.age() {
        body.push_str(
            "# HELP sequin_sf_sidecar_last_pass_age_seconds Seconds since the sidecar last finished a pass over its syncs.\n\
             # TYPE sequin_sf_sidecar_last_pass_age_seconds gauge\n",
        );
        body.push_str(&format!("sequin_sf_sidecar_last_pass_age_seconds {age}\n"));
    }
    body.push_str(
        "# HELP sequin_sf_sidecar_org_catalog_requests_total API requests this process made to read the orgs' objects and fields for SQL (outside every sync's budget and figures).\n\
         # TYPE sequin_sf_sidecar_org_catalog_requests_total counter\n",
    );
    body.push_str(&format!(
        "sequin_sf_sidecar_org_catalog_requests_total {}\n",
        catalog_requests.get()
    ));
    ("200 OK", body)
}
