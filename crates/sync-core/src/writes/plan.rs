//! From queued entries to API calls: one operation per record per round (consecutive
//! changes merged where that cannot reorder anything), operations grouped into sObject
//! Collections, and collections packed into `/composite` calls.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::entry::{Action, QueuedWrite};
use super::outcome::Outcome;

/// Salesforce's cap on records per sObject Collections request.
pub const MAX_COLLECTION_RECORDS: usize = 200;
/// Salesforce's cap on subrequests per `/composite` call.
pub const MAX_SUBREQUESTS: usize = 25;
/// Salesforce's cap on query or collection subrequests per `/composite` call.
pub const MAX_COLLECTION_SUBREQUESTS: usize = 5;

/// What the external id values the writer generates for creates start with.
pub const MARKER_TAG: &str = "sqsf";

/// The prefix of generated external id values for a sync: the tag and a seed unique to
/// the sync (its cluster, database, schema and creation), so markers never collide
/// across syncs writing to one org, nor with those of a dropped sync of the same schema.
pub fn marker_prefix(seed: &str) -> String {
    format!("{MARKER_TAG}-{seed}-")
}

/// A sync's write settings, as far as planning is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Records per collection subrequest (1..=200).
    pub batch_size: usize,
    /// Send updates with `If-Unmodified-Since` the record's prior SystemModstamp.
    pub conflict_detection: bool,
    /// Object API name -> external id field used to make creates idempotent (upsert).
    pub external_id_fields: HashMap<String, String>,
    /// Prefix of generated external id values; must be unique to this sync's database
    /// and schema so markers never collide across syncs writing to one org.
    pub marker_prefix: String,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            batch_size: MAX_COLLECTION_RECORDS,
            conflict_detection: false,
            external_id_fields: HashMap::new(),
            marker_prefix: marker_prefix("local"),
        }
    }
}

/// How an operation is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// `POST /composite/sobjects`.
    Create,
    /// `PATCH /composite/sobjects/{object}/{field}`: a create made idempotent by an
    /// external id, so resending after an unknown outcome cannot duplicate it.
    Upsert { field: String },
    /// `PATCH /composite/sobjects`.
    Update,
    /// `PATCH /sobjects/{object}/{id}` with `If-Unmodified-Since` (collections take no
    /// per-record headers), one subrequest per record.
    ConditionalUpdate,
    /// `DELETE /composite/sobjects?ids=`.
    Delete,
}

impl OpKind {
    /// True when sending it again after an unknown outcome cannot apply it twice.
    pub fn is_idempotent(&self) -> bool {
        !matches!(self, OpKind::Create)
    }
}

/// One record's change, possibly several merged log entries.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOp {
    pub object: String,
    pub kind: OpKind,
    /// Entries this operation settles, oldest first.
    pub log_ids: Vec<i64>,
    pub row_id: i64,
    pub api_id: Option<String>,
    /// Field API name -> value to send.
    pub fields: Map<String, Value>,
    pub unmodified_since: Option<DateTime<Utc>>,
}

impl WriteOp {
    pub fn first_log_id(&self) -> i64 {
        self.log_ids.first().copied().unwrap_or(i64::MAX)
    }
}

/// One subrequest of a composite call.
#[derive(Debug, Clone, PartialEq)]
pub enum Subrequest {
    /// A collection of up to `batch_size` operations of one object and kind.
    Collection {
        object: String,
        kind: OpKind,
        ops: Vec<WriteOp>,
    },
    /// One conditional update.
    Single(WriteOp),
}

impl Subrequest {
    pub fn ops(&self) -> &[WriteOp] {
        match self {
            Subrequest::Collection { ops, .. } => ops,
            Subrequest::Single(op) => std::slice::from_ref(op),
        }
    }

    fn is_collection(&self) -> bool {
        matches!(self, Subrequest::Collection { .. })
    }

    fn first_log_id(&self) -> i64 {
        self.ops()
            .iter()
            .map(WriteOp::first_log_id)
            .min()
            .unwrap_or(i64::MAX)
    }
}

/// One `/composite` call: at most 25 subrequests, at most 5 of them collections.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompositeCall {
    pub subrequests: Vec<Subrequest>,
}

impl CompositeCall {
    pub fn log_ids(&self) -> Vec<i64> {
        self.subrequests
            .iter()
            .flat_map(|s| s.ops().iter().flat_map(|o| o.log_ids.iter().copied()))
            .collect()
    }

    pub fn record_count(&self) -> usize {
        self.subrequests.iter().map(|s| s.ops().len()).sum()
    }
}

/// Entries settled without calling Salesforce.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOutcome {
    pub log_ids: Vec<i64>,
    pub row_id: i64,
    pub outcome: Outcome,
}

/// An external id value the planner chose for a create; it must be stored (in the log
/// entry and the row) before the create is sent, so a resend reuses it.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedExternalId {
    pub log_id: i64,
    pub row_id: i64,
    pub object: String,
    pub field: String,
    pub value: String,
}

/// What to do this round.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub calls: Vec<CompositeCall>,
    pub local: Vec<LocalOutcome>,
    pub generated_external_ids: Vec<GeneratedExternalId>,
    /// Entries left for a later round (their row has an earlier entry not sendable now).
    pub deferred: Vec<i64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.local.is_empty()
    }
}

/// Whether to send now or wait for the batch to fill: send when a full collection's
/// worth is queued or the oldest entry has waited `max_wait`.
pub fn ready_to_send(
    ready_entries: usize,
    oldest_wait: Duration,
    batch_size: usize,
    max_wait: Duration,
) -> bool {
    ready_entries > 0 && (ready_entries >= batch_size.max(1) || oldest_wait >= max_wait)
}

enum RowSlot {
    /// Index into the open operations.
    Open(usize),
    /// Later entries of the row wait for a later round.
    Blocked,
}

/// Plans one round. `entries` must be in log order (ascending `log_id`).
pub fn plan(entries: &[QueuedWrite], settings: &PlanSettings) -> Plan {
    let mut out = Plan::default();
    let mut ops: Vec<Option<WriteOp>> = Vec::new();
    let mut rows: HashMap<i64, RowSlot> = HashMap::new();

    for e in entries {
        match rows.get(&e.row_id) {
            Some(RowSlot::Blocked) => {
                out.deferred.push(e.log_id);
                continue;
            }
            Some(RowSlot::Open(i)) => {
                let i = *i;
                if merge_into(&mut ops, i, e, &mut out) {
                    continue;
                }
                rows.insert(e.row_id, RowSlot::Blocked);
                out.deferred.push(e.log_id);
                continue;
            }
            None => {}
        }
        if !e.ready {
            rows.insert(e.row_id, RowSlot::Blocked);
            out.deferred.push(e.log_id);
            continue;
        }
        match start_op(e, settings) {
            Start::Op(op) => {
                rows.insert(e.row_id, RowSlot::Open(ops.len()));
                ops.push(Some(op));
            }
            Start::Local(outcome) => {
                // Settled now; a later entry of the row still has to wait for the
                // settlement, which is visible next round.
                rows.insert(e.row_id, RowSlot::Blocked);
                out.local.push(LocalOutcome {
                    log_ids: vec![e.log_id],
                    row_id: e.row_id,
                    outcome,
                });
            }
        }
    }

    let mut ops: Vec<WriteOp> = ops.into_iter().flatten().collect();
    generate_external_ids(&mut ops, settings, &mut out.generated_external_ids);
    out.calls = pack(group(ops, settings.batch_size));
    out
}

enum Start {
    Op(WriteOp),
    Local(Outcome),
}

fn start_op(e: &QueuedWrite, settings: &PlanSettings) -> Start {
    let kind = match e.action {
        Action::Insert => match settings.external_id_fields.get(&e.object) {
            Some(field) => OpKind::Upsert {
                field: field.clone(),
            },
            None => OpKind::Create,
        },
        Action::Update => {
            if e.api_id.is_none() {
                return Start::Local(Outcome::Failed {
                    status: 404,
                    message: "the row is not in Salesforce (its insert did not succeed), so \
                              there is nothing to update; fix the row and retry its insert \
                              with sequin_sf.retry_writes()"
                        .into(),
                });
            }
            if e.fields.is_empty() {
                return Start::Local(Outcome::Succeeded {
                    api_id: e.api_id.clone(),
                    status: 204,
                    message: Some("no field changed; nothing sent".into()),
                });
            }
            if settings.conflict_detection && e.unmodified_since.is_some() {
                OpKind::ConditionalUpdate
            } else {
                OpKind::Update
            }
        }
        Action::Delete => {
            if e.api_id.is_none() {
                return Start::Local(Outcome::Succeeded {
                    api_id: None,
                    status: 204,
                    message: Some("the row was never in Salesforce; nothing to delete".into()),
                });
            }
            OpKind::Delete
        }
    };
    Start::Op(WriteOp {
        object: e.object.clone(),
        kind,
        log_ids: vec![e.log_id],
        row_id: e.row_id,
        api_id: e.api_id.clone(),
        fields: e.fields.clone(),
        unmodified_since: e.unmodified_since,
    })
}

/// Folds `e` into the row's open operation when the result is what Salesforce would
/// hold after applying both in order. Returns false when `e` must wait.
fn merge_into(ops: &mut [Option<WriteOp>], i: usize, e: &QueuedWrite, out: &mut Plan) -> bool {
    let Some(op) = ops[i].as_mut() else {
        return false;
    };
    if !e.ready {
        return false;
    }
    match (&op.kind, e.action) {
        // Nobody else can see a record before it is created, so later updates simply
        // become part of the create.
        (OpKind::Create | OpKind::Upsert { .. }, Action::Update) => {
            extend(&mut op.fields, &e.fields);
            op.log_ids.push(e.log_id);
            true
        }
        (OpKind::Update | OpKind::ConditionalUpdate, Action::Update)
            if e.api_id.is_none() || e.api_id == op.api_id =>
        {
            // The condition stays the first entry's: the record must be unchanged
            // since before any of these local changes.
            extend(&mut op.fields, &e.fields);
            op.log_ids.push(e.log_id);
            true
        }
        // A row inserted and deleted before anything was sent never reaches Salesforce.
        (OpKind::Create | OpKind::Upsert { .. }, Action::Delete) => {
            let Some(op) = ops[i].take() else {
                return false;
            };
            let mut log_ids = op.log_ids;
            log_ids.push(e.log_id);
            out.local.push(LocalOutcome {
                log_ids,
                row_id: op.row_id,
                outcome: Outcome::Succeeded {
                    api_id: None,
                    status: 204,
                    message: Some(
                        "cancelled: the row was deleted before its insert was sent".into(),
                    ),
                },
            });
            // The emptied slot makes any later entry of the row wait (there should be
            // none: nothing follows a delete).
            true
        }
        _ => false,
    }
}

fn extend(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

fn generate_external_ids(
    ops: &mut [WriteOp],
    settings: &PlanSettings,
    generated: &mut Vec<GeneratedExternalId>,
) {
    for op in ops {
        let OpKind::Upsert { field } = &op.kind else {
            continue;
        };
        let has_value = op
            .fields
            .get(field)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
        if has_value {
            continue;
        }
        let log_id = op.first_log_id();
        let value = format!("{}{}", settings.marker_prefix, log_id);
        op.fields
            .insert(field.clone(), Value::String(value.clone()));
        generated.push(GeneratedExternalId {
            log_id,
            row_id: op.row_id,
            object: op.object.clone(),
            field: field.clone(),
            value,
        });
    }
}

/// Groups operations by object and kind into subrequests of at most `batch_size`,
/// ordered by their oldest entry so older changes go out first.
fn group(ops: Vec<WriteOp>, batch_size: usize) -> Vec<Subrequest> {
    let batch_size = batch_size.clamp(1, MAX_COLLECTION_RECORDS);
    let mut subs: Vec<Subrequest> = Vec::new();
    let mut open: BTreeMap<(String, OpKind), usize> = BTreeMap::new();
    for op in ops {
        if op.kind == OpKind::ConditionalUpdate {
            subs.push(Subrequest::Single(op));
            continue;
        }
        let key = (op.object.clone(), op.kind.clone());
        if let Some(&i) = open.get(&key) {
            if let Subrequest::Collection { ops, .. } = &mut subs[i] {
                if ops.len() < batch_size {
                    ops.push(op);
                    continue;
                }
            }
        }
        open.insert(key, subs.len());
        subs.push(Subrequest::Collection {
            object: op.object.clone(),
            kind: op.kind.clone(),
            ops: vec![op],
        });
    }
    subs.sort_by_key(Subrequest::first_log_id);
    subs
}

/// Packs subrequests, in order, into as few composite calls as the limits allow.
fn pack(subs: Vec<Subrequest>) -> Vec<CompositeCall> {
    let mut calls: Vec<CompositeCall> = Vec::new();
    for sub in subs {
        let fits = calls.last().is_some_and(|c| {
            let collections = c.subrequests.iter().filter(|s| s.is_collection()).count();
            c.subrequests.len() < MAX_SUBREQUESTS
                && (!sub.is_collection() || collections < MAX_COLLECTION_SUBREQUESTS)
        });
        if !fits {
            calls.push(CompositeCall::default());
        }
        if let Some(last) = calls.last_mut() {
            last.subrequests.push(sub);
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(log_id: i64, row_id: i64, object: &str, action: Action) -> QueuedWrite {
        QueuedWrite {
            log_id,
            row_id,
            object: object.into(),
            action,
            api_id: match action {
                Action::Insert => None,
                _ => Some(format!("003{row_id:015}")),
            },
            fields: Map::new(),
            unmodified_since: None,
            ready: true,
        }
    }

    fn with(mut e: QueuedWrite, k: &str, v: Value) -> QueuedWrite {
        e.fields.insert(k.into(), v);
        e
    }

    #[test]
    fn consecutive_updates_of_a_record_merge_later_values_winning() {
        let entries = vec![
            with(entry(1, 10, "Contact", Action::Update), "Title", json!("A")),
            with(entry(2, 11, "Contact", Action::Update), "Title", json!("X")),
            with(entry(3, 10, "Contact", Action::Update), "Title", json!("B")),
            with(entry(4, 10, "Contact", Action::Update), "Phone", json!("1")),
        ];
        let p = plan(&entries, &PlanSettings::default());
        assert_eq!(p.calls.len(), 1);
        let ops = p.calls[0].subrequests[0].ops();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].log_ids, vec![1, 3, 4]);
        assert_eq!(ops[0].fields["Title"], json!("B"));
        assert_eq!(ops[0].fields["Phone"], json!("1"));
        assert_eq!(ops[1].log_ids, vec![2]);
        assert!(p.deferred.is_empty());
    }

    #[test]
    fn a_delete_after_an_update_waits_for_the_next_round() {
        let entries = vec![
            with(entry(1, 10, "Contact", Action::Update), "Title", json!("A")),
            entry(2, 10, "Contact", Action::Delete),
            with(entry(3, 10, "Contact", Action::Update), "Title", json!("C")),
        ];
        let p = plan(&entries, &PlanSettings::default());
        assert_eq!(p.calls[0].log_ids(), vec![1]);
        // Entry 3 must not jump ahead of the delete by merging into entry 1.
        assert_eq!(p.deferred, vec![2, 3]);
    }

    #[test]
    fn an_entry_in_backoff_holds_back_its_row_only() {
        let mut waiting = with(entry(1, 10, "Contact", Action::Update), "Title", json!("A"));
        waiting.ready = false;
        let entries = vec![
            waiting,
            with(entry(2, 10, "Contact", Action::Update), "Title", json!("B")),
            with(entry(3, 11, "Contact", Action::Update), "Title", json!("C")),
        ];
        let p = plan(&entries, &PlanSettings::default());
        assert_eq!(p.deferred, vec![1, 2]);
        assert_eq!(p.calls[0].log_ids(), vec![3]);
    }

    #[test]
    fn updates_fold_into_a_pending_insert_and_insert_then_delete_cancels() {
        let entries = vec![
            with(
                entry(1, 10, "Contact", Action::Insert),
                "LastName",
                json!("A"),
            ),
            with(entry(2, 10, "Contact", Action::Update), "Title", json!("T")),
            with(
                entry(3, 11, "Contact", Action::Insert),
                "LastName",
                json!("B"),
            ),
            entry(4, 11, "Contact", Action::Delete),
        ];
        let p = plan(&entries, &PlanSettings::default());
        let ops = p.calls[0].subrequests[0].ops();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].kind, OpKind::Create);
        assert_eq!(ops[0].log_ids, vec![1, 2]);
        assert_eq!(ops[0].fields["Title"], json!("T"));
        assert_eq!(p.local.len(), 1);
        assert_eq!(p.local[0].log_ids, vec![3, 4]);
        assert!(matches!(p.local[0].outcome, Outcome::Succeeded { .. }));
    }

    #[test]
    fn changes_to_rows_without_a_salesforce_id_settle_locally() {
        let mut upd = with(entry(1, 10, "Contact", Action::Update), "Title", json!("A"));
        upd.api_id = None;
        let mut del = entry(2, 11, "Contact", Action::Delete);
        del.api_id = None;
        let p = plan(&[upd, del], &PlanSettings::default());
        assert!(p.calls.is_empty());
        assert!(matches!(p.local[0].outcome, Outcome::Failed { .. }));
        assert!(matches!(p.local[1].outcome, Outcome::Succeeded { .. }));
    }

    #[test]
    fn creates_use_upsert_with_generated_markers_when_configured() {
        let mut settings = PlanSettings {
            marker_prefix: marker_prefix("x"),
            ..PlanSettings::default()
        };
        settings
            .external_id_fields
            .insert("Contact".into(), "External_Id__c".into());
        let entries = vec![
            with(
                entry(7, 10, "Contact", Action::Insert),
                "LastName",
                json!("A"),
            ),
            with(
                with(
                    entry(8, 11, "Contact", Action::Insert),
                    "LastName",
                    json!("B"),
                ),
                "External_Id__c",
                json!("mine"),
            ),
            with(entry(9, 12, "Account", Action::Insert), "Name", json!("C")),
        ];
        let p = plan(&entries, &settings);
        let subs = &p.calls[0].subrequests;
        assert_eq!(subs.len(), 2);
        let ops = subs[0].ops();
        assert_eq!(
            ops[0].kind,
            OpKind::Upsert {
                field: "External_Id__c".into()
            }
        );
        assert_eq!(ops[0].fields["External_Id__c"], json!("sqsf-x-7"));
        assert_eq!(ops[1].fields["External_Id__c"], json!("mine"));
        assert_eq!(subs[1].ops()[0].kind, OpKind::Create);
        assert_eq!(p.generated_external_ids.len(), 1);
        assert_eq!(p.generated_external_ids[0].value, "sqsf-x-7");
        assert!(!OpKind::Create.is_idempotent());
        assert!(ops[0].kind.is_idempotent());
    }

    #[test]
    fn ten_thousand_rows_over_five_objects_take_ten_calls() {
        let objects = ["Account", "Contact", "Lead", "Opportunity", "Case"];
        let entries: Vec<QueuedWrite> = (0..10_000)
            .map(|i| {
                with(
                    entry(i, i, objects[(i % 5) as usize], Action::Update),
                    "Description",
                    json!(i),
                )
            })
            .collect();
        let p = plan(&entries, &PlanSettings::default());
        assert_eq!(p.calls.len(), 10);
        for c in &p.calls {
            assert!(c.subrequests.len() <= MAX_COLLECTION_SUBREQUESTS);
            for s in &c.subrequests {
                assert!(s.ops().len() <= MAX_COLLECTION_RECORDS);
            }
        }
        let total: usize = p.calls.iter().map(CompositeCall::record_count).sum();
        assert_eq!(total, 10_000);
    }

    #[test]
    fn batch_size_and_conditional_updates_shape_the_calls() {
        let settings = PlanSettings {
            batch_size: 2,
            conflict_detection: true,
            ..PlanSettings::default()
        };
        let stamp = Some(DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap());
        let mut entries = Vec::new();
        for i in 0..30 {
            let mut e = with(entry(i, i, "Contact", Action::Update), "Title", json!(i));
            e.unmodified_since = stamp;
            entries.push(e);
        }
        for i in 30..35 {
            entries.push(entry(i, i, "Contact", Action::Delete));
        }
        let p = plan(&entries, &settings);
        // 30 single subrequests + 3 delete collections of <= 2: 33 subrequests, 25 per call.
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[0].subrequests.len(), 25);
        assert!(p.calls[0]
            .subrequests
            .iter()
            .all(|s| matches!(s, Subrequest::Single(_))));
        let deletes: Vec<usize> = p.calls[1]
            .subrequests
            .iter()
            .filter(|s| s.is_collection())
            .map(|s| s.ops().len())
            .collect();
        assert_eq!(deletes, vec![2, 2, 1]);
    }

    #[test]
    fn six_collections_need_two_calls() {
        let objects = ["A", "B", "C", "D", "E", "F"];
        let entries: Vec<QueuedWrite> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| with(entry(i as i64, i as i64, o, Action::Update), "X", json!(1)))
            .collect();
        let p = plan(&entries, &PlanSettings::default());
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[0].subrequests.len(), 5);
    }

    #[test]
    fn waiting_for_a_batch_to_fill() {
        let s = Duration::from_secs;
        assert!(!ready_to_send(0, s(100), 200, s(0)));
        assert!(ready_to_send(1, s(0), 200, s(0)));
        assert!(!ready_to_send(10, s(1), 200, s(5)));
        assert!(ready_to_send(10, s(5), 200, s(5)));
        assert!(ready_to_send(200, s(0), 200, s(5)));
    }
}
