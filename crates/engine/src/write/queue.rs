//! The writer's database side: thin calls to the write functions of sql/worker.sql,
//! each in its own short transaction (never one held across an HTTP call). The
//! documents they exchange are typed here, once: `Backlog` and `QueuedRow` are what
//! `_write_backlog` and `_write_queue` return, `Settlement` what `_write_settle` takes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sync_core::writes::{Action, EntryState, Outcome, RowState};

use crate::db::{tx, tx_repeatable_read, Database, DbError};

/// A sync's write settings and how much of its log is due (`_write_backlog`).
#[derive(Debug, Deserialize, Clone)]
pub struct Backlog {
    pub settings: Settings,
    /// Due entries among the first `batch_size` unsettled ones.
    pub ready: usize,
    /// How long the oldest of those has waited.
    pub oldest_wait_secs: f64,
}

#[derive(Debug, Deserialize, Clone)]
pub struct Settings {
    pub batch_size: usize,
    pub max_batch_wait_secs: f64,
    pub conflict_detection: bool,
    #[serde(default)]
    pub external_id_fields: Map<String, Value>,
    pub retention_secs: f64,
    /// Unique to the sync: see `sync_core::writes::marker_prefix`.
    pub marker_seed: String,
}

impl Settings {
    pub fn max_batch_wait(&self) -> Duration {
        Duration::from_secs_f64(self.max_batch_wait_secs.max(0.0))
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs_f64(self.retention_secs.max(0.0))
    }
}

/// One unsettled log entry (`_write_queue`), values keyed by Salesforce field names.
#[derive(Debug, Deserialize, Clone)]
pub struct QueuedRow {
    pub log_id: i64,
    pub row_id: i64,
    pub table_name: String,
    pub object: String,
    pub action: Action,
    pub api_id: Option<String>,
    /// `Pending` = claimed by an earlier round that never settled it: possibly sent.
    pub state: EntryState,
    #[serde(default)]
    pub fields: Map<String, Value>,
    pub unmodified_since: Option<String>,
    pub ready: bool,
    /// Salesforce's answer to a pending entry, when it was recorded (for an insert, 201
    /// created or 200 an upsert matched an existing record; 0 no answer came).
    #[serde(default)]
    pub api_result: Option<u16>,
    #[serde(default)]
    pub api_message: Option<String>,
}

/// A create or upsert Salesforce answered with success: recorded before it is settled
/// (`_write_record_created` reads these fields).
#[derive(Debug, Serialize)]
pub struct Created {
    pub log_ids: Vec<i64>,
    pub api_id: String,
    pub status: u16,
}

/// How `_write_settle` leaves an entry.
#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Settled {
    Succeeded,
    Failed,
    /// Back to `new`, sent again after `retry_after` (or a backoff by attempts).
    Retry,
}

/// One operation's answer, for `_write_settle`: its entries, the row they change, and
/// what Salesforce said.
#[derive(Debug, Serialize, Clone)]
pub struct Settlement {
    pub log_ids: Vec<i64>,
    pub row_id: i64,
    pub table_name: String,
    pub action: Action,
    pub outcome: Settled,
    pub api_id: Option<String>,
    /// HTTP status; none when no answer arrived.
    pub status: Option<u16>,
    pub message: Option<String>,
    pub retry_after: Option<f64>,
    /// What the row's `_write_state` says after a failed insert (default `failed`).
    pub row_state: Option<RowState>,
}

impl Settlement {
    /// `row_state` Some(Unknown) marks a create whose answer never arrived.
    pub fn new(
        log_ids: &[i64],
        first: &QueuedRow,
        outcome: &Outcome,
        row_state: Option<RowState>,
    ) -> Settlement {
        let mut s = Settlement {
            log_ids: log_ids.to_vec(),
            row_id: first.row_id,
            table_name: first.table_name.clone(),
            action: first.action,
            outcome: Settled::Retry,
            api_id: None,
            status: None,
            message: None,
            retry_after: None,
            row_state,
        };
        match outcome {
            Outcome::Succeeded {
                api_id,
                status,
                message,
            } => {
                s.outcome = Settled::Succeeded;
                s.api_id = api_id.clone();
                s.status = Some(*status);
                s.message = message.clone();
            }
            Outcome::Failed { status, message } => {
                s.outcome = Settled::Failed;
                // no HTTP status when Salesforce's answer never arrived
                s.status = (row_state != Some(RowState::Unknown)).then_some(*status);
                s.message = Some(message.clone());
            }
            Outcome::Retry { message, after } => {
                s.message = Some(message.clone());
                s.retry_after = after.map(|d| d.as_secs_f64());
            }
            // resolve_unknown maps these before settling; keep the entry queued if one slips by
            Outcome::Unknown { message } => s.message = Some(message.clone()),
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("the write log of schema {schema} could not be read: {message}")]
    Decode { schema: String, message: String },
}

fn decode<T: serde::de::DeserializeOwned>(schema: &str, v: Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Decode {
        schema: schema.to_string(),
        message: e.to_string(),
    })
}

/// Calls one of the write functions with the schema and one more argument, in a
/// transaction of its own, and returns its jsonb result.
fn call(
    db: &dyn Database,
    isolation_rr: bool,
    sql: &str,
    schema: &str,
    arg: crate::db::Param<'_>,
) -> Result<Option<Value>, StoreError> {
    let run = |s: &mut dyn crate::db::Session| -> Result<Option<Value>, StoreError> {
        Ok(s.query_one(sql, &[schema.into(), arg])?
            .and_then(|r| r.json(0)))
    };
    if isolation_rr {
        tx_repeatable_read(db, run)
    } else {
        tx(db, run)
    }
}

/// The sync's write settings and backlog; None when the schema has no write log.
pub fn backlog(db: &dyn Database, schema: &str) -> Result<Option<Backlog>, StoreError> {
    let doc = tx(db, |s| -> Result<_, StoreError> {
        Ok(
            s.query_one("SELECT sequin_sf._write_backlog($1)", &[schema.into()])?
                .and_then(|r| r.json(0)),
        )
    })?;
    doc.map(|v| decode(schema, v)).transpose()
}

/// Up to `limit` unsettled entries in log order, inserts filled from their rows.
pub fn queue(db: &dyn Database, schema: &str, limit: i32) -> Result<Vec<QueuedRow>, StoreError> {
    // one snapshot for unpacking batches, filling inserts and reading (_write_queue)
    let doc = call(
        db,
        true,
        "SELECT sequin_sf._write_queue($1, $2)",
        schema,
        limit.into(),
    )?;
    match doc {
        None => Ok(Vec::new()),
        Some(v) => decode(schema, v),
    }
}

/// Marks entries as (about to be) sent, committed before the request goes out.
pub fn claim(db: &dyn Database, schema: &str, ids: Vec<i64>) -> Result<(), StoreError> {
    let sql = "SELECT sequin_sf._write_claim($1, $2)";
    call(db, false, sql, schema, ids.as_slice().into()).map(drop)
}

/// What the worker hands one of its SQL functions, as JSON.
fn to_document<T: Serialize>(schema: &str, value: &T) -> Result<Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Decode {
        schema: schema.to_string(),
        message: e.to_string(),
    })
}

/// Records the Ids Salesforce gave to created records on their (still pending) entries.
pub fn record_created_ids(
    db: &dyn Database,
    schema: &str,
    created: Vec<Created>,
) -> Result<(), StoreError> {
    if created.is_empty() {
        return Ok(());
    }
    let doc = to_document(schema, &created)?;
    let sql = "SELECT sequin_sf._write_record_created($1, $2)";
    call(db, false, sql, schema, (&doc).into()).map(drop)
}

/// Settles entries and brings their rows in line with Salesforce.
pub fn settle(
    db: &dyn Database,
    schema: &str,
    settlements: Vec<Settlement>,
) -> Result<(), StoreError> {
    if settlements.is_empty() {
        return Ok(());
    }
    let doc = to_document(schema, &settlements)?;
    let sql = "SELECT sequin_sf._write_settle($1, $2)";
    call(db, false, sql, schema, (&doc).into()).map(drop)
}

/// Deletes settled entries older than the retention; returns how many.
pub fn prune(db: &dyn Database, schema: &str, retention: Duration) -> Result<i64, StoreError> {
    let secs = retention.as_secs_f64();
    let n = tx(db, |s| -> Result<_, StoreError> {
        Ok(s.query_one(
            "SELECT sequin_sf._prune_writes($1, make_interval(secs => $2))",
            &[schema.into(), secs.into()],
        )?
        .and_then(|r| r.i64(0)))
    })?;
    Ok(n.unwrap_or(0))
}
