//! The writer's Postgres side: thin SPI calls to the functions in sql/write_capture.sql,
//! each in its own short transaction (never one held across an HTTP call).

use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::Deserialize;
use serde_json::{Map, Value};

/// What `sequin_sf._write_queue` returns.
#[derive(Debug, Deserialize, Default)]
pub struct Queue {
    #[serde(default)]
    pub settings: Option<Settings>,
    #[serde(default)]
    pub marker_prefix: Option<String>,
    #[serde(default)]
    pub entries: Vec<QueuedRow>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct Settings {
    pub batch_size: f64,
    pub max_batch_wait: f64,
    pub conflict_detection: bool,
    #[serde(default)]
    pub external_id_fields: Map<String, Value>,
    pub retention: f64,
}

/// One unsettled log entry, values keyed by Salesforce field names.
#[derive(Debug, Deserialize, Clone)]
pub struct QueuedRow {
    pub log_id: i64,
    pub row_id: i64,
    pub table_name: String,
    pub object: String,
    pub action: String,
    pub api_id: Option<String>,
    /// `pending` = claimed by an earlier round that never settled it: possibly sent.
    pub state: String,
    #[serde(default)]
    pub fields: Map<String, Value>,
    pub unmodified_since: Option<String>,
    pub ready: bool,
    pub age: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SPI: {0}")]
    Spi(#[from] pgrx::spi::SpiError),
    #[error("the write queue of schema {schema} could not be read: {message}")]
    Decode { schema: String, message: String },
}

pub fn queue(schema: &str, limit: i32) -> Result<Queue, StoreError> {
    let schema_owned = schema.to_string();
    let value: Option<JsonB> = BackgroundWorker::transaction(move || {
        Spi::get_one_with_args::<JsonB>(
            "SELECT sequin_sf._write_queue($1, $2)",
            &[schema_owned.into(), limit.into()],
        )
    })?;
    match value {
        None => Ok(Queue::default()),
        Some(JsonB(v)) => serde_json::from_value(v).map_err(|e| StoreError::Decode {
            schema: schema.to_string(),
            message: e.to_string(),
        }),
    }
}

/// Marks entries as (about to be) sent, committed before the request goes out.
pub fn claim(schema: &str, ids: Vec<i64>) -> Result<(), StoreError> {
    let schema = schema.to_string();
    BackgroundWorker::transaction(move || {
        Spi::run_with_args(
            "SELECT sequin_sf._write_claim($1, $2)",
            &[schema.into(), ids.into()],
        )
    })?;
    Ok(())
}

/// Records the Ids Salesforce gave to created records on their (still pending) entries.
pub fn record_created_ids(
    schema: &str,
    created: Vec<(Vec<i64>, String)>,
) -> Result<(), StoreError> {
    if created.is_empty() {
        return Ok(());
    }
    let doc = JsonB(Value::Array(
        created
            .into_iter()
            .map(|(log_ids, api_id)| serde_json::json!({"log_ids": log_ids, "api_id": api_id}))
            .collect(),
    ));
    let schema = schema.to_string();
    BackgroundWorker::transaction(move || {
        Spi::run_with_args(
            "SELECT sequin_sf._write_record_created($1, $2)",
            &[schema.into(), doc.into()],
        )
    })?;
    Ok(())
}

/// Settles entries (see `_write_settle` for the shape of each outcome).
pub fn settle(schema: &str, outcomes: Vec<Value>) -> Result<(), StoreError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let schema = schema.to_string();
    let doc = JsonB(Value::Array(outcomes));
    BackgroundWorker::transaction(move || {
        Spi::run_with_args(
            "SELECT sequin_sf._write_settle($1, $2)",
            &[schema.into(), doc.into()],
        )
    })?;
    Ok(())
}

/// Deletes settled entries older than the retention; returns how many.
pub fn prune(schema: &str, retention_secs: f64) -> Result<i64, StoreError> {
    let schema = schema.to_string();
    let n = BackgroundWorker::transaction(move || {
        Spi::get_one_with_args::<i64>(
            "SELECT sequin_sf._prune_writes($1, make_interval(secs => $2))",
            &[schema.into(), retention_secs.into()],
        )
    })?;
    Ok(n.unwrap_or(0))
}
