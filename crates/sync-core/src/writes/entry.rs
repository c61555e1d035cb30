//! What the planner knows about one captured change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The kind of row change a log entry records (the log's `action` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Insert,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "insert" => Some(Action::Insert),
            "update" => Some(Action::Update),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// Where a write-log entry stands (the log's `state` column): `new` until the writer
/// claims it, `pending` while it is (or may have been) sent, then settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    New,
    Pending,
    Succeeded,
    Failed,
}

/// What a row's `_write_state` column says when its last write did not succeed
/// (NULL: the row matches Salesforce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowState {
    /// Salesforce refused the insert; the row waits for a fix and `retry_writes`.
    Failed,
    /// The create was sent but no answer came: the record may exist in Salesforce.
    Unknown,
}

/// One unsettled entry of a sync's write log.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedWrite {
    /// The log entry's id; log order is commit-independent capture order, which per
    /// row is the order the changes happened in.
    pub log_id: i64,
    /// The local row (`_row_id`) the change belongs to.
    pub row_id: i64,
    /// Salesforce object API name (`Contact`).
    pub object: String,
    pub action: Action,
    /// The record's Salesforce Id when known (always for updates and deletes of synced
    /// rows; filled in for changes to locally inserted rows once their insert succeeded).
    pub api_id: Option<String>,
    /// Field API name to value: all set fields for inserts, changed ones for updates.
    pub fields: Map<String, Value>,
    /// The record's SystemModstamp before the change, for conditional updates.
    pub unmodified_since: Option<DateTime<Utc>>,
    /// False while the entry waits out a retry backoff. A waiting entry holds back
    /// every later entry of its row, so per-record order is never broken.
    pub ready: bool,
}
