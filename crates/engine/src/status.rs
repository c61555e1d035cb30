//! What the operator sees of a sync's health: its last error (sync-wide or per
//! collection) and its API requests per minute, and the org's usage as
//! Salesforce reports it. Call inside a transaction.

use crate::db::{DbError, Session};

pub fn record_usage(s: &mut dyn Session, sync: &str, n: i64) -> Result<(), DbError> {
    s.execute(
        "SELECT sequin_sf._record_api_usage($1, $2::integer)",
        &[sync.into(), n.into()],
    )
}

/// Bytes of Bulk query results the sync downloaded: the org counts them against its
/// daily result storage.
pub fn record_bulk_results(s: &mut dyn Session, sync: &str, bytes: i64) -> Result<(), DbError> {
    s.execute(
        "SELECT sequin_sf._record_bulk_results($1, $2)",
        &[sync.into(), bytes.into()],
    )
}

/// The org's API usage (every client's requests in 24 h) and limit, as Salesforce last
/// reported them (`Sforce-Limit-Info`).
pub fn record_org_usage(
    s: &mut dyn Session,
    sync: &str,
    used: u64,
    limit: u64,
) -> Result<(), DbError> {
    s.execute(
        "SELECT sequin_sf._record_org_usage($1, $2, $3)",
        &[sync.into(), (used as i64).into(), (limit as i64).into()],
    )
}

/// The watched allocations of the org's `/limits` (allocations.rs).
pub fn record_org_limits(
    s: &mut dyn Session,

    sync: &str,
    limits: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), DbError> {
    s.execute(
        "SELECT sequin_sf._record_org_limits($1, $2)",
        &[
            sync.into(),
            (&serde_json::Value::Object(limits.clone())).into(),
        ],
    )
}

/// A Bulk query job the sync created, counted against the org's daily jobs.
pub fn record_bulk_job(s: &mut dyn Session, sync: &str) -> Result<(), DbError> {
    s.execute("SELECT sequin_sf._record_bulk_job($1)", &[sync.into()])
}

/// Change events the stream delivered (whether or not the sync keeps their object):
/// the org counts each against its daily event delivery allocation.
pub fn record_event_deliveries(s: &mut dyn Session, sync: &str, n: usize) -> Result<(), DbError> {
    if n == 0 {
        return Ok(());
    }
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    s.execute(
        "SELECT sequin_sf._record_event_deliveries($1, $2)",
        &[sync.into(), n.into()],
    )
}

/// Why a collection's backfill reads REST pages though its size called for Bulk.
pub fn set_backfill_note(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    note: Option<&str>,
) -> Result<(), DbError> {
    s.execute(
        "SELECT sequin_sf._set_backfill_note($1, $2, $3)",
        &[sync.into(), object.into(), note.into()],
    )
}

pub fn set_sync_error(
    s: &mut dyn Session,
    sync: &str,
    message: Option<&str>,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._syncs SET last_error = $2,
                last_error_at = CASE WHEN $2 IS NULL THEN NULL ELSE now() END
         WHERE name = $1",
        &[sync.into(), message.into()],
    )
}

pub fn set_collection_error(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    message: &str,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections SET last_error = $3, last_error_at = now()
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), message.into()],
    )
}

/// The read side's retry after an error (`retry_in` seconds from now), or None once a
/// step succeeded: `sync_status.behind` and `behind_since` show it. `read_retry_since`
/// keeps the first failure of a run of them.
pub fn set_read_retry(
    s: &mut dyn Session,
    sync: &str,
    retry_in: Option<f64>,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._syncs
            SET read_retry_since = CASE WHEN $2 IS NULL THEN NULL
                                        ELSE coalesce(read_retry_since, now()) END,
                read_retry_at = now() + make_interval(secs => $2)
          WHERE name = $1
            AND (read_retry_at IS NOT NULL OR $2 IS NOT NULL)",
        &[sync.into(), retry_in.into()],
    )
}
