//! The write path's worker side: drains a sync's `_sync_write_log` into Salesforce.
//!
//! Each round reads unsettled entries (oldest first), plans them into `/composite` calls
//! of sObject Collections (sync-core decides), and for every call: claims its entries
//! (committed), sends it (no transaction open), settles the entries with Salesforce's
//! answers (committed). A crash between claim and settle leaves entries `pending`, which
//! the next round reads as "possibly applied": idempotent operations are sent again,
//! plain creates are surfaced as of unknown outcome instead of risking a duplicate.

mod host;
mod send;
mod store;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pgrx::prelude::*;
use serde_json::{json, Value};
use sync_core::writes::outcome::unknown_create_message;
use sync_core::writes::{
    plan, ready_to_send, resolve_unknown, Action, OpKind, Outcome, PlanSettings, QueuedWrite,
    WriteOp,
};

use store::{Queue, QueuedRow};

/// Entries read per round: ten full composite calls' worth of collections.
const QUEUE_LIMIT: i32 = 10_000;
/// Rounds per run_once, so one busy sync cannot starve the worker loop.
const MAX_ROUNDS: usize = 5;
const PRUNE_EVERY: Duration = Duration::from_secs(600);

static LAST_PRUNE: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

/// What the writer needs from the worker's per-sync runtime.
pub trait WriterHost {
    fn schema_name(&self) -> &str;
    fn client(&self) -> &salesforce::Client;
    /// Runs a future to completion (never inside a transaction); None when the worker
    /// was asked to stop first, so a slow Salesforce never holds up a shutdown.
    fn run_unless_stopping<F: std::future::Future>(&self, f: F) -> Option<F::Output>;
    /// Takes `cost` requests from the sync's budget; false = spent for now.
    fn try_spend(&mut self, cost: u64) -> bool;
}

/// Called by the worker once per loop iteration, before polling, outside any transaction.
/// An error is the worker's to show (`sync_status.last_error`); the entries stay queued.
pub fn run_once<H: WriterHost>(host: &mut H) -> Result<(), store::StoreError> {
    let schema = host.schema_name().to_string();
    for _ in 0..MAX_ROUNDS {
        if !round(host, &schema)? {
            break;
        }
    }
    Ok(())
}

/// One round; true when there may be more to send right away.
fn round<H: WriterHost>(rt: &mut H, schema: &str) -> Result<bool, store::StoreError> {
    let queue = store::queue(schema, QUEUE_LIMIT)?;
    let Some(settings) = queue.settings.clone() else {
        return Ok(false);
    };
    maybe_prune(schema, settings.retention);
    if queue.entries.is_empty() {
        return Ok(false);
    }
    let plan_settings = plan_settings(&queue, &settings);
    let rows = RowKeys::new(&queue.entries);
    let by_log: HashMap<i64, &QueuedRow> = queue.entries.iter().map(|e| (e.log_id, e)).collect();

    // Creates an interrupted round sent: settled from the answer recorded before the
    // interruption, or surfaced as unknown, never resent blindly.
    let (claimed, entries) = split_claimed_creates(&queue.entries, &plan_settings, &rows);
    let mut local: Vec<Value> = claimed.iter().map(|c| c.settle_doc()).collect();

    let ready: Vec<&QueuedWrite> = entries.iter().filter(|e| e.ready).collect();
    let oldest = queue
        .entries
        .iter()
        .filter(|e| e.ready)
        .map(|e| e.age)
        .fold(0.0_f64, f64::max);
    let full = queue.entries.len() as i32 >= QUEUE_LIMIT;
    let send_now = full
        || ready_to_send(
            ready.len(),
            Duration::from_secs_f64(oldest.max(0.0)),
            plan_settings.batch_size,
            Duration::from_secs_f64(settings.max_batch_wait.max(0.0)),
        );
    if !send_now {
        store::settle(schema, local)?;
        return Ok(false);
    }

    let planned = plan(&entries, &plan_settings);
    for l in &planned.local {
        if let Some(first) = l.log_ids.first().and_then(|id| by_log.get(id)) {
            local.push(settle_doc(&l.log_ids, first, &l.outcome, None));
        }
    }
    store::settle(schema, local)?;

    for call in &planned.calls {
        if !rt.try_spend(1) {
            return Ok(false);
        }
        store::claim(schema, call.log_ids())?;
        let Some(results) = rt.run_unless_stopping(send::send_call(rt.client(), call)) else {
            // The claimed entries stay pending: the next start reads them as possibly sent.
            return Ok(false);
        };
        // The Ids of created records first, in a transaction of their own: whatever
        // happens to the settlement, a create that succeeded is known to have.
        store::record_created_ids(schema, created_ids(&results))?;
        let docs: Vec<Value> = results
            .iter()
            .filter_map(|(op, outcome)| {
                let first = by_log.get(op.log_ids.first()?)?;
                let (outcome, row_state) = resolve(op, outcome);
                Some(settle_doc(&op.log_ids, first, &outcome, row_state))
            })
            .collect();
        store::settle(schema, docs)?;
    }
    Ok(full && !planned.calls.is_empty())
}

const UNKNOWN_CREATE: &str = "unknown";

/// Unknown outcomes resolved: resent when that is safe, surfaced otherwise.
fn resolve(op: &WriteOp, outcome: &Outcome) -> (Outcome, Option<&'static str>) {
    let (outcome, surfaced) = resolve_unknown(&op.kind, outcome.clone());
    (outcome, surfaced.then_some(UNKNOWN_CREATE))
}

/// The document `_write_settle` takes for one operation.
fn settle_doc(
    log_ids: &[i64],
    first: &QueuedRow,
    outcome: &Outcome,
    row_state: Option<&str>,
) -> Value {
    let mut doc = json!({
        "log_ids": log_ids,
        "row_id": first.row_id,
        "table_name": first.table_name,
        "action": first.action,
    });
    let fields = match outcome {
        Outcome::Succeeded {
            api_id,
            status,
            message,
        } => json!({
            "outcome": "succeeded", "api_id": api_id, "status": status, "message": message,
        }),
        // no HTTP status: Salesforce's answer never arrived
        Outcome::Failed { message, .. } if row_state == Some(UNKNOWN_CREATE) => json!({
            "outcome": "failed", "status": Value::Null, "message": message,
            "row_state": UNKNOWN_CREATE,
        }),
        Outcome::Failed { status, message } => json!({
            "outcome": "failed", "status": status, "message": message,
        }),
        Outcome::Retry { message, after } => json!({
            "outcome": "retry", "message": message,
            "retry_after": after.map(|d| d.as_secs_f64()),
        }),
        // resolve_unknown maps these before settling; keep the entry queued if one slips by
        Outcome::Unknown { message } => json!({ "outcome": "retry", "message": message }),
    };
    if let (Some(d), Some(f)) = (doc.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            d.insert(k.clone(), v.clone());
        }
    }
    doc
}

fn plan_settings(queue: &Queue, s: &store::Settings) -> PlanSettings {
    PlanSettings {
        batch_size: (s.batch_size as usize).clamp(1, 200),
        conflict_detection: s.conflict_detection,
        external_id_fields: s
            .external_id_fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        marker_prefix: queue
            .marker_prefix
            .clone()
            .unwrap_or_else(|| "sqsf-".into()),
    }
}

/// `_row_id` is unique per table only; the planner needs one key per record.
struct RowKeys {
    keys: HashMap<(String, i64), i64>,
}

impl RowKeys {
    fn new(entries: &[QueuedRow]) -> RowKeys {
        let mut keys = HashMap::new();
        for e in entries {
            let n = keys.len() as i64;
            keys.entry((e.table_name.clone(), e.row_id)).or_insert(n);
        }
        RowKeys { keys }
    }

    fn key(&self, e: &QueuedRow) -> i64 {
        self.keys
            .get(&(e.table_name.clone(), e.row_id))
            .copied()
            .unwrap_or(-1)
    }
}

fn to_queued(e: &QueuedRow, rows: &RowKeys) -> Option<QueuedWrite> {
    Some(QueuedWrite {
        log_id: e.log_id,
        row_id: rows.key(e),
        object: e.object.clone(),
        action: Action::parse(&e.action)?,
        api_id: e.api_id.clone(),
        fields: e.fields.clone(),
        unmodified_since: e
            .unmodified_since
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc)),
        ready: e.ready,
    })
}

/// Log ids and the new record's Id of every create or upsert that succeeded.
fn created_ids(results: &[(WriteOp, Outcome)]) -> Vec<(Vec<i64>, String)> {
    results
        .iter()
        .filter(|(op, _)| matches!(op.kind, OpKind::Create | OpKind::Upsert { .. }))
        .filter_map(|(op, outcome)| match outcome {
            Outcome::Succeeded {
                api_id: Some(id), ..
            } => Some((op.log_ids.clone(), id.clone())),
            _ => None,
        })
        .collect()
}

/// An insert claimed by an earlier round that never settled it (the worker or the
/// server stopped): possibly sent.
struct ClaimedCreate<'a> {
    entry: &'a QueuedRow,
}

impl ClaimedCreate<'_> {
    fn settle_doc(&self) -> Value {
        let e = self.entry;
        match &e.api_id {
            // the answer arrived and its Id was recorded before the interruption
            Some(id) => settle_doc(
                &[e.log_id],
                e,
                &Outcome::Succeeded {
                    api_id: Some(id.clone()),
                    status: 201,
                    message: Some(
                        "created; the answer was recorded before the worker stopped".into(),
                    ),
                },
                None,
            ),
            None => settle_doc(
                &[e.log_id],
                e,
                &Outcome::Failed {
                    status: 0,
                    message: unknown_create_message(
                        "the worker stopped while the request was in flight",
                    ),
                },
                Some(UNKNOWN_CREATE),
            ),
        }
    }
}

/// Pending inserts whose Id was recorded, and pending inserts that would be sent as
/// plain creates (no external id configured), whose earlier send may have succeeded:
/// both are settled here instead of being planned again.
fn split_claimed_creates<'a>(
    entries: &'a [QueuedRow],
    settings: &PlanSettings,
    rows: &RowKeys,
) -> (Vec<ClaimedCreate<'a>>, Vec<QueuedWrite>) {
    let mut claimed = Vec::new();
    let mut rest = Vec::new();
    for e in entries {
        let pending_insert = e.state == "pending" && e.action == "insert";
        let plain_create = !settings.external_id_fields.contains_key(&e.object);
        if pending_insert && (e.api_id.is_some() || plain_create) {
            claimed.push(ClaimedCreate { entry: e });
        } else if let Some(q) = to_queued(e, rows) {
            rest.push(q);
        }
    }
    (claimed, rest)
}

fn maybe_prune(schema: &str, retention: f64) {
    let due = match LAST_PRUNE.lock() {
        Ok(mut g) => {
            let map = g.get_or_insert_with(HashMap::new);
            // a short retention is pruned at least as often as it elapses
            let every = PRUNE_EVERY.min(Duration::from_secs_f64(retention.max(1.0)));
            let due = map.get(schema).is_none_or(|t| t.elapsed() >= every);
            if due {
                map.insert(schema.to_string(), Instant::now());
            }
            due
        }
        Err(_) => false,
    };
    if due {
        match store::prune(schema, retention) {
            Ok(n) if n > 0 => {
                log!("sequin_sf writer: pruned {n} settled write-log entries of {schema}")
            }
            Ok(_) => {}
            Err(e) => log!("sequin_sf writer: pruning the write log of {schema} failed: {e}"),
        }
    }
}
