//! The event bus behind `/data/ChangeEvents`, the per-object channels and the custom
//! channels: which objects each channel selects for Change Data Capture
//! (`super::channels`), the retained events with their replay ids, the schemas they
//! were written with, and the signals subscribers wait on.
//!
//! | fact | source |
//! | --- | --- |
//! | Change events are kept 72 hours; an older replay id fails | "Event Message Durability", Pub/Sub API Developer Guide, https://developer.salesforce.com/docs/platform/pub-sub-api/guide/event-message-durability.html; "Retry Long-Lived RPC Calls After an Error Occurs" |
//! | Replay ids are opaque, not contiguous; subscribers must not compute them | "Event Message Durability" |
//! | One channel for all selected objects plus one per object | "Subscription Channels", Change Data Capture Developer Guide |
//! | A single-entity channel carries an entity selected "on the Change Data Capture page in Setup or in a custom channel" | same page, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_subscribe_channels.htm |
//! | A custom channel's subscriber gets the change events of its members only, not of "entities selected in another channel"; `/data/ChangeEvents` is the Setup page's selection | "Compose Streams of Change Data Capture Notifications with Custom Channels", same guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_custom_channel.htm |
//! | A transaction's first 100,000 changes give change events, the rest one GAP_OVERFLOW per entity with no record ids; an update counts one per changed field, other changes one | "Overflow Events", Change Data Capture Developer Guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_other_events_overflow.htm |
//! | Gap events carry the header (ids, change type) and no field values; their sequenceNumber is 1 | "Gap Events", same guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_other_events_gap.htm |
//! | commitNumber increases with each committed transaction; commitTimestamp is epoch ms; transactionKey identifies the transaction; sequenceNumber orders changes in it | "ChangeEventHeader Fields", same guide, https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_header.htm |
//!
//! Retention here is the documented 72 hours or the last `--cdc-retention-events`
//! events, whichever drops an event first, so memory stays bounded. Publishing takes
//! one short lock and never waits for subscribers. The emulator's replay ids are the
//! 8-byte big-endian position of the event; positions start at the start time in
//! microseconds, so an id kept from an earlier emulator run reads as expired.
//!
//! An event is stored when its object is selected on any channel. Chosen here
//! (unconfirmed): each event records whether its object was on the standard channel
//! when it was published, and `/data/ChangeEvents` delivers those (so replays of the
//! standard channel do not change when the selection does); a custom channel delivers
//! the events of the objects that are its members when the event is delivered, so a
//! member added or deleted counts for streams already open; an object's own channel
//! delivers every stored event of the object.

use super::channels::Selection;
use super::layout::{self, Layout, CHANGE_TYPES};
use crate::schema::ObjectDef;
use parking_lot::{Mutex, RwLock};
use pubsub::avro::Value as Avro;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Limits of the bus (flags `--cdc-retention-events`, `--cdc-retention-hours`,
/// `--cdc-overflow-threshold`, `--cdc-entity-limit`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub retention_events: usize,
    pub retention_ms: i64,
    pub overflow_threshold: usize,
    /// At start; `PUT /__emulator/cdc` changes it (0: no limit).
    pub entity_limit: usize,
}

/// An event as retained and delivered.
#[derive(Debug)]
pub struct Stored {
    pub seq: u64,
    pub entity: String,
    pub schema_id: String,
    pub event_id: String,
    pub payload: bytes::Bytes,
    pub at_ms: i64,
    /// The entity was selected on the standard channel when the event was published.
    pub standard: bool,
}

/// An event about to be appended.
struct Unstored {
    entity: String,
    schema_id: String,
    payload: Vec<u8>,
    standard: bool,
}

/// A change captured by a write, waiting for its transaction to commit.
pub struct Pending {
    pub bus: Arc<Bus>,
    pub layout: Arc<Layout>,
    pub change_type: &'static str,
    pub record_ids: Vec<String>,
    pub origin: Arc<str>,
    pub changed: Vec<String>,
    pub nulled: Vec<String>,
    /// Avro encoding of the record fields (after the header).
    pub body: Vec<u8>,
    /// What the change counts toward the overflow threshold.
    pub weight: usize,
}

struct Log {
    events: VecDeque<Arc<Stored>>,
    next_seq: u64,
    /// Positions below this were expired by the control API.
    expired_below: u64,
}

impl Log {
    /// Seq of the oldest retained event, or `next_seq` when none is.
    fn oldest(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.seq)
    }

    fn latest(&self) -> u64 {
        self.next_seq - 1
    }
}

/// Why a replay id cannot start a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Not an id this emulator could have issued.
    Malformed,
    /// Older than what is retained (or expired through the control API).
    Expired,
    /// Newer than the newest event.
    Unknown,
}

pub struct Bus {
    pub user_id: String,
    limits: Limits,
    /// Whether any channel selects anything: the one load a write costs when none
    /// does.
    any_selected: AtomicBool,
    selection: RwLock<Selection>,
    layouts: Mutex<HashMap<u64, Arc<Layout>>>,
    schemas: Mutex<HashMap<String, String>>,
    log: Mutex<Log>,
    head: tokio::sync::watch::Sender<u64>,
    drops: tokio::sync::watch::Sender<u64>,
    commit_number: AtomicI64,
    pub open_streams: AtomicUsize,
}

pub fn replay_id(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A transaction key shaped like Salesforce's (`00006bec-ce66-0611-9018-30a98446c9f2`
/// in the Change Data Capture guide's examples).
fn transaction_key() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Bus {
    pub fn new(user_id: &str, limits: Limits) -> Bus {
        let base = (crate::timefmt::wall_ms().max(1) as u64) * 1000;
        Bus {
            user_id: user_id.to_string(),
            limits,
            any_selected: AtomicBool::new(false),
            selection: RwLock::new(Selection::new(limits.entity_limit)),
            layouts: Mutex::new(HashMap::new()),
            schemas: Mutex::new(HashMap::new()),
            log: Mutex::new(Log {
                events: VecDeque::new(),
                next_seq: base + 1,
                expired_below: base,
            }),
            head: tokio::sync::watch::channel(base).0,
            drops: tokio::sync::watch::channel(0).0,
            // Salesforce's commit numbers are large system change numbers.
            commit_number: AtomicI64::new(1_100_000_000_000),
            open_streams: AtomicUsize::new(0),
        }
    }

    /// Replaces the standard channel's selection (exact API names, as Setup lists
    /// them); custom channels keep theirs.
    pub fn select(&self, objects: Vec<String>) {
        self.change_selection(|s| s.standard = objects);
    }

    /// The standard channel's selection.
    pub fn selected(&self) -> Vec<String> {
        self.selection.read().standard.clone()
    }

    /// Reads every channel's selection.
    pub fn read_selection<R>(&self, f: impl FnOnce(&Selection) -> R) -> R {
        f(&self.selection.read())
    }

    /// Changes the selection (creating or deleting channels and members) in one
    /// step, so the entity limit is checked against what is there.
    pub fn change_selection<R>(&self, f: impl FnOnce(&mut Selection) -> R) -> R {
        let mut s = self.selection.write();
        let r = f(&mut s);
        self.any_selected.store(s.any(), Ordering::SeqCst);
        r
    }

    pub fn set_entity_limit(&self, n: usize) {
        self.change_selection(|s| s.entity_limit = n);
    }

    pub fn entity_limit(&self) -> usize {
        self.selection.read().entity_limit
    }

    /// Whether any object is selected (requests then run in a capture context).
    pub fn capturing(&self) -> bool {
        self.any_selected.load(Ordering::Relaxed)
    }

    /// Whether writes to `object` produce change events: it is selected on some
    /// channel. One atomic load when nothing is selected.
    pub fn is_selected(&self, object: &str) -> bool {
        if !self.any_selected.load(Ordering::Relaxed) {
            return false;
        }
        self.selection.read().anywhere(object)
    }

    /// The objects of the custom channel `full_name` as they are now; None when there
    /// is no such channel.
    pub fn channel_members(&self, full_name: &str) -> Option<Vec<String>> {
        self.selection.read().members_of(full_name)
    }

    /// The change-event layout of `def` as it is now, built once per schema version
    /// (found again by a hash of what shapes it, so a write allocates nothing here).
    pub fn layout(&self, def: &ObjectDef) -> Arc<Layout> {
        let key = layout::shape_hash(def);
        if let Some(l) = self.layouts.lock().get(&key) {
            return l.clone();
        }
        let l = Arc::new(layout::build(&def.name, layout::slots(def)));
        self.schemas
            .lock()
            .insert(l.schema_id.clone(), l.schema_json.clone());
        self.layouts.lock().insert(key, l.clone());
        l
    }

    /// Schema JSON by id; every schema ever used stays available.
    pub fn schema(&self, id: &str) -> Option<String> {
        self.schemas.lock().get(id).cloned()
    }

    /// Commits one transaction's changes: assigns its key, commit number and time,
    /// turns changes past the overflow threshold into one GAP_OVERFLOW per entity,
    /// and appends the events.
    pub fn commit(&self, changes: Vec<Pending>) {
        if changes.is_empty() {
            return;
        }
        let key = transaction_key();
        let commit_number = self.commit_number.fetch_add(1, Ordering::SeqCst) + 1;
        let at = crate::timefmt::wall_ms();
        let mut budget = self.limits.overflow_threshold;
        let mut kept = Vec::with_capacity(changes.len());
        let mut overflow: Vec<Pending> = Vec::new();
        for c in changes {
            if c.weight <= budget && overflow.is_empty() {
                budget -= c.weight;
                kept.push(c);
            } else if !overflow.iter().any(|o| o.layout.entity == c.layout.entity) {
                overflow.push(Pending {
                    change_type: "GAP_OVERFLOW",
                    record_ids: Vec::new(),
                    changed: Vec::new(),
                    nulled: Vec::new(),
                    body: layout::encode_body(&c.layout, None, &layout::Fill::Nothing),
                    ..c
                });
            }
        }
        kept.extend(overflow);
        let selection = self.selection.read();
        let stored: Vec<Unstored> = kept
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let header = Header {
                    entity: &c.layout.entity,
                    record_ids: &c.record_ids,
                    change_type: c.change_type,
                    origin: &c.origin,
                    transaction_key: &key,
                    sequence_number: i as i32 + 1,
                    commit_timestamp: at,
                    commit_number,
                    commit_user: &self.user_id,
                    nulled: &c.nulled,
                    changed: &c.changed,
                };
                let mut payload = header.encode();
                payload.extend_from_slice(&c.body);
                Unstored {
                    entity: c.layout.entity.clone(),
                    schema_id: c.layout.schema_id.clone(),
                    payload,
                    standard: selection.on_standard(&c.layout.entity),
                }
            })
            .collect();
        drop(selection);
        self.append(stored, at);
    }

    fn append(&self, events: Vec<Unstored>, at: i64) {
        let latest = {
            let mut log = self.log.lock();
            for e in events {
                let seq = log.next_seq;
                log.next_seq += 1;
                log.events.push_back(Arc::new(Stored {
                    seq,
                    entity: e.entity,
                    schema_id: e.schema_id,
                    event_id: transaction_key(),
                    payload: e.payload.into(),
                    at_ms: at,
                    standard: e.standard,
                }));
            }
            self.prune(&mut log);
            log.latest()
        };
        self.head.send_replace(latest);
    }

    /// Drops events past the retention (count or age).
    fn prune(&self, log: &mut Log) {
        while log.events.len() > self.limits.retention_events {
            log.events.pop_front();
        }
        let horizon = crate::timefmt::wall_ms() - self.limits.retention_ms;
        while log.events.front().is_some_and(|e| e.at_ms < horizon) {
            log.events.pop_front();
        }
    }

    /// Where a subscription starts: events with a position above the returned one are
    /// delivered.
    pub fn start(&self, preset: i32, replay: &[u8]) -> Result<u64, ReplayError> {
        let mut log = self.log.lock();
        self.prune(&mut log);
        match preset {
            // EARLIEST
            1 => Ok(log.oldest() - 1),
            // CUSTOM
            2 => {
                let bytes: [u8; 8] = replay.try_into().map_err(|_| ReplayError::Malformed)?;
                let seq = u64::from_be_bytes(bytes);
                if seq > log.latest() {
                    Err(ReplayError::Unknown)
                } else if seq < log.expired_below || seq + 1 < log.oldest() {
                    Err(ReplayError::Expired)
                } else {
                    Ok(seq)
                }
            }
            // LATEST, and values this version does not know.
            _ => Ok(log.latest()),
        }
    }

    /// Up to `max` events after `cursor` for which `wanted` holds, and the position
    /// reached (the last event looked at, or the head when all were looked at).
    pub fn read_after(
        &self,
        cursor: u64,
        wanted: impl Fn(&Stored) -> bool,
        max: usize,
    ) -> (Vec<Arc<Stored>>, u64) {
        let log = self.log.lock();
        let oldest = log.oldest();
        let skip = (cursor + 1).saturating_sub(oldest) as usize;
        let mut out = Vec::new();
        let mut reached = cursor;
        for e in log.events.iter().skip(skip) {
            if out.len() == max {
                break;
            }
            reached = e.seq;
            if wanted(e) {
                out.push(e.clone());
            }
        }
        if out.len() < max {
            // Everything retained was looked at.
            reached = log.latest().max(cursor);
        }
        (out, reached)
    }

    pub fn latest(&self) -> u64 {
        self.log.lock().latest()
    }

    pub fn retained(&self) -> usize {
        self.log.lock().events.len()
    }

    /// Forgets every retained event: replay ids issued so far (even the newest) fail as
    /// expired, as they would after 72 hours.
    pub fn expire_all(&self) -> usize {
        let mut log = self.log.lock();
        let n = log.events.len();
        log.events.clear();
        log.expired_below = log.next_seq;
        n
    }

    pub fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub fn watch_drops(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// Ends every open Subscribe stream; returns how many were open.
    pub fn drop_streams(&self) -> usize {
        self.drops.send_modify(|g| *g += 1);
        self.open_streams.load(Ordering::SeqCst)
    }
}

/// The ChangeEventHeader of one event.
struct Header<'a> {
    entity: &'a str,
    record_ids: &'a [String],
    change_type: &'static str,
    origin: &'a str,
    transaction_key: &'a str,
    sequence_number: i32,
    commit_timestamp: i64,
    commit_number: i64,
    commit_user: &'a str,
    nulled: &'a [String],
    changed: &'a [String],
}

fn strings(v: &[String]) -> Avro {
    Avro::Array(v.iter().map(|s| Avro::String(s.clone())).collect())
}

impl Header<'_> {
    fn encode(&self) -> Vec<u8> {
        let kind = CHANGE_TYPES
            .iter()
            .position(|t| *t == self.change_type)
            .unwrap_or(0);
        let v = Avro::Record(vec![
            ("entityName".into(), Avro::String(self.entity.to_string())),
            ("recordIds".into(), strings(self.record_ids)),
            (
                "changeType".into(),
                Avro::Enum(kind as u32, self.change_type.to_string()),
            ),
            ("changeOrigin".into(), Avro::String(self.origin.to_string())),
            (
                "transactionKey".into(),
                Avro::String(self.transaction_key.to_string()),
            ),
            ("sequenceNumber".into(), Avro::Int(self.sequence_number)),
            ("commitTimestamp".into(), Avro::Long(self.commit_timestamp)),
            ("commitNumber".into(), Avro::Long(self.commit_number)),
            (
                "commitUser".into(),
                Avro::String(self.commit_user.to_string()),
            ),
            ("nulledFields".into(), strings(self.nulled)),
            // The emulator never sends a field as a diff.
            ("diffFields".into(), strings(&[])),
            ("changedFields".into(), strings(self.changed)),
        ]);
        let mut out = Vec::with_capacity(256);
        pubsub::avro::encode(&mut out, &v);
        out
    }
}
