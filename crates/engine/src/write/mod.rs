//! The write path's worker side: drains a sync's `_sync_write_log` into Salesforce.
//!
//! Each round reads unsettled entries (oldest first), plans them into `/composite` calls
//! of sObject Collections (sync-core decides), and for every call: claims its entries
//! (committed), sends it (no transaction open), settles the entries with Salesforce's
//! answers (committed). A crash between claim and settle leaves entries `pending`, which
//! the next round reads as "possibly applied": idempotent operations are sent again,
//! plain creates are surfaced as of unknown outcome instead of risking a duplicate.

mod host;
mod queue;
mod send;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sync_core::writes::outcome::unknown_create_message;
use sync_core::writes::{
    marker_prefix, plan, ready_to_send, resolve_unknown, Action, EntryState, OpKind, Outcome,
    PlanSettings, QueuedWrite, RowState, WriteOp, MAX_COLLECTION_RECORDS,
};

use queue::{QueuedRow, Settlement};

/// Entries read per round: ten full composite calls' worth of collections.
const QUEUE_LIMIT: i32 = 10_000;
/// Rounds per run_once, so one busy sync cannot starve the worker loop.
const MAX_ROUNDS: usize = 5;

/// What the writer needs from the worker's per-sync runtime.
pub trait WriterHost {
    fn db(&self) -> &dyn crate::db::Database;
    fn schema_name(&self) -> &str;
    fn client(&self) -> &salesforce::Client;
    /// Runs a future to completion (never inside a transaction); None when the worker
    /// was asked to stop first, so a slow Salesforce never holds up a shutdown.
    fn run_unless_stopping<F: std::future::Future>(&self, f: F) -> Option<F::Output>;
    /// Takes `cost` requests from the sync's budget; false = spent for now.
    fn try_spend(&mut self, cost: u64) -> bool;
    /// True when settled entries older than `retention` are due to be pruned.
    fn prune_due(&mut self, retention: Duration) -> bool;
}

/// Called by the worker once per loop iteration, before polling, outside any transaction.
/// An error is the worker's to show (`sync_status.last_error`); the entries stay queued.
pub fn run_once<H: WriterHost>(host: &mut H) -> Result<(), queue::StoreError> {
    let schema = host.schema_name().to_string();
    for _ in 0..MAX_ROUNDS {
        if !round(host, &schema)? {
            break;
        }
    }
    Ok(())
}

/// One round; true when there may be more to send right away.
fn round<H: WriterHost>(host: &mut H, schema: &str) -> Result<bool, queue::StoreError> {
    let Some(backlog) = queue::backlog(host.db(), schema)? else {
        return Ok(false);
    };
    let settings = &backlog.settings;
    if host.prune_due(settings.retention()) {
        prune(host.db(), schema, settings.retention());
    }
    let plan_settings = plan_settings(settings);
    // Send now, or wait for the batch to fill (sync-core's rule, the only one).
    let due = ready_to_send(
        backlog.ready,
        Duration::from_secs_f64(backlog.oldest_wait_secs.max(0.0)),
        plan_settings.batch_size,
        settings.max_batch_wait(),
    );
    if !due {
        return Ok(false);
    }
    let entries = queue::queue(host.db(), schema, QUEUE_LIMIT)?;
    if entries.is_empty() {
        return Ok(false);
    }
    let full = entries.len() as i32 >= QUEUE_LIMIT;
    let rows = RowKeys::new(&entries);
    let by_log: HashMap<i64, &QueuedRow> = entries.iter().map(|e| (e.log_id, e)).collect();

    // Entries an earlier round sent and did not settle: settled from the answer recorded,
    // or surfaced as unknown, never resent blindly.
    let (mut local, queued) = split_answered(&entries, &plan_settings, &rows);

    let planned = plan(&queued, &plan_settings);
    for l in &planned.local {
        if let Some(first) = l.log_ids.first().and_then(|id| by_log.get(id)) {
            local.push(Settlement::new(&l.log_ids, first, &l.outcome, None));
        }
    }
    queue::settle(host.db(), schema, local)?;

    for call in &planned.calls {
        if !host.try_spend(1) {
            return Ok(false);
        }
        queue::claim(host.db(), schema, call.log_ids())?;
        let Some(results) = host.run_unless_stopping(send::send_call(host.client(), call)) else {
            // The claimed entries stay pending: the next start reads them as possibly sent.
            return Ok(false);
        };
        // The Ids of created records first, in a transaction of their own: whatever
        // happens to the settlement, a create that succeeded is known to have.
        queue::record_created_ids(host.db(), schema, created_ids(&results))?;
        let settlements: Vec<Settlement> = results
            .iter()
            .filter_map(|(op, outcome)| {
                let first = by_log.get(op.log_ids.first()?)?;
                let (outcome, row_state) = resolve(op, outcome);
                Some(Settlement::new(&op.log_ids, first, &outcome, row_state))
            })
            .collect();
        queue::settle(host.db(), schema, settlements)?;
    }
    Ok(full && !planned.calls.is_empty())
}

/// Unknown outcomes resolved: resent when that is safe, surfaced otherwise.
fn resolve(op: &WriteOp, outcome: &Outcome) -> (Outcome, Option<RowState>) {
    let (outcome, surfaced) = resolve_unknown(&op.kind, outcome.clone());
    (outcome, surfaced.then_some(RowState::Unknown))
}

fn plan_settings(s: &queue::Settings) -> PlanSettings {
    PlanSettings {
        batch_size: s.batch_size.clamp(1, MAX_COLLECTION_RECORDS),
        conflict_detection: s.conflict_detection,
        external_id_fields: s
            .external_id_fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        marker_prefix: marker_prefix(&s.marker_seed),
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

fn to_queued(e: &QueuedRow, rows: &RowKeys) -> QueuedWrite {
    QueuedWrite {
        log_id: e.log_id,
        row_id: rows.key(e),
        object: e.object.clone(),
        action: e.action,
        api_id: e.api_id.clone(),
        fields: e.fields.clone(),
        unmodified_since: e
            .unmodified_since
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc)),
        ready: e.ready,
    }
}

/// Every create or upsert that succeeded: its log ids, the record's Id and the status.
fn created_ids(results: &[(WriteOp, Outcome)]) -> Vec<queue::Created> {
    results
        .iter()
        .filter(|(op, _)| matches!(op.kind, OpKind::Create | OpKind::Upsert { .. }))
        .filter_map(|(op, outcome)| match outcome {
            Outcome::Succeeded {
                api_id: Some(id),
                status,
                ..
            } => Some(queue::Created {
                log_ids: op.log_ids.clone(),
                api_id: id.clone(),
                status: *status,
            }),
            _ => None,
        })
        .collect()
}

/// How an entry an earlier round claimed but did not settle is settled now, without
/// being sent again; None when it is planned like any other entry (an update or delete
/// whose answer never came is safe to send again, as is an upsert by external id).
/// - Salesforce's answer was recorded (`api_result`): a settlement that could not bring
///   the row in line (an application held it, see `_write_settle`) is settled again
///   from it.
/// - An insert with a recorded Id succeeded (the worker stopped before settling it).
/// - A plain create without either may have been sent: its outcome is unknown, and it
///   is surfaced instead of being resent blindly.
fn settle_answered(e: &QueuedRow, settings: &PlanSettings) -> Option<Settlement> {
    if e.state != EntryState::Pending {
        return None;
    }
    let insert = e.action == Action::Insert;
    let (outcome, row_state) = match (e.api_result, &e.api_id) {
        (Some(status), _) if (200..300).contains(&status) => (
            Outcome::Succeeded {
                api_id: e.api_id.clone(),
                status,
                message: e.api_message.clone(),
            },
            None,
        ),
        (Some(status), _) => (
            Outcome::Failed {
                status,
                message: e.api_message.clone().unwrap_or_default(),
            },
            // status 0: no answer came (resolve_unknown)
            (insert && status == 0).then_some(RowState::Unknown),
        ),
        (None, Some(id)) if insert => (
            Outcome::Succeeded {
                api_id: Some(id.clone()),
                status: 201,
                message: Some(
                    "created; settled from the Id recorded when Salesforce answered".into(),
                ),
            },
            None,
        ),
        (None, None) if insert && !settings.external_id_fields.contains_key(&e.object) => (
            Outcome::Failed {
                status: 0,
                message: unknown_create_message(
                    "the worker stopped while the request was in flight",
                ),
            },
            Some(RowState::Unknown),
        ),
        _ => return None,
    };
    Some(Settlement::new(&[e.log_id], e, &outcome, row_state))
}

/// Entries an earlier round claimed and answered are settled here (first list) instead
/// of being planned again (second list, see `settle_answered`). The later entries of
/// their rows wait for a later round: a created Id reaches them when the row takes it,
/// and a row being settled again waits for an application's transaction. Such an
/// entry that is not due yet (`_write_settle` spaces the attempts) holds its row back.
fn split_answered(
    entries: &[QueuedRow],
    settings: &PlanSettings,
    rows: &RowKeys,
) -> (Vec<Settlement>, Vec<QueuedWrite>) {
    let mut answered = Vec::new();
    let mut held = HashSet::new();
    let mut rest = Vec::new();
    for e in entries {
        if held.contains(&rows.key(e)) {
            continue;
        }
        match settle_answered(e, settings) {
            Some(s) => {
                if e.ready {
                    answered.push(s);
                }
                held.insert(rows.key(e));
            }
            None => rest.push(to_queued(e, rows)),
        }
    }
    (answered, rest)
}

fn prune(db: &dyn crate::db::Database, schema: &str, retention: Duration) {
    match queue::prune(db, schema, retention) {
        Ok(n) if n > 0 => {
            log::info!("sequin_sf writer: pruned {n} settled write-log entries of {schema}")
        }
        Ok(_) => {}
        Err(e) => log::info!("sequin_sf writer: pruning the write log of {schema} failed: {e}"),
    }
}
