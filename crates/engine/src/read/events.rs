//! Live changes from Change Data Capture. With `change_events = 'auto'` a sync reads
//! which objects the org selected for CDC (Setup's Change Data Capture page; one
//! Tooling API query per describe interval) and follows `/data/ChangeEvents`; with
//! `'channel'` it keeps a channel of its own holding its collections
//! (`event_channel`) and follows that. Either way the live collections that are on
//! the source (and among `event_collections`, when the user chose) take change events
//! through one stream per sync (`stream`); the other collections are polled as
//! before. Collections on events are still polled every
//! `reconcile_interval` (the safety net), at once after they switch to events (what
//! happened before their events were applied), and after anything that may have cost
//! events: a gap or overflow event, an update to a row the table lacks, a replay id
//! the server no longer knows. While the stream is down they are polled at the
//! normal pace.
//!
//! | fact | source |
//! | --- | --- |
//! | CREATE and UNDELETE carry every field, UPDATE the changed ones, DELETE none; formula fields are never carried | "Change Event Body Fields", Change Data Capture Developer Guide |
//! | GAP_ events carry no values: "retrieve the record" ; GAP_OVERFLOW: the rest of the transaction's changes to the entity are not sent | "Gap Events", "Overflow Events", same guide |
//! | Events of one record come in the order of its changes | "Change Event Ordering" (replay ids increase), Pub/Sub API Developer Guide |
//! | changeOrigin names the `client` of the call's `Sforce-Call-Options` | EventBus.ChangeEventHeader class, Apex Reference Guide |

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use salesforce::cdc::{
    Batch, ChangeEvent, ChangeType, PubSubConfig, Replay, SelectionError, ALL_CHANGE_EVENTS,
};
use sync_core::naming;

use super::{apply, event_channel, progress, secs, target};
use crate::catalog::{CollectionRow, EventSource, SyncConfig};
use crate::db::{guarded, tx};
use crate::error::{passes_by_itself, StepError};
use crate::runtime::SyncRuntime;
use crate::stream::{ChangeStream, ObjectFields, Report};

/// Reports taken from the stream per step, so polls and writes keep their turn.
const REPORTS_PER_STEP: usize = 16;

/// Whether live changes of `c` arrive as events now (on events, and the stream flows).
pub fn streamed(rt: &SyncRuntime, c: &CollectionRow) -> bool {
    c.on_events && rt.events.flowing
}

/// Whether a collection on events is due for a poll: never polled since it switched,
/// its reconcile interval has passed, or it must catch up.
pub fn reconcile_due(rt: &SyncRuntime, cfg: &SyncConfig, c: &CollectionRow, now: Instant) -> bool {
    rt.events.catch_up.contains(&c.object_name)
        || rt
            .events
            .reconciled
            .get(&c.object_name)
            .is_none_or(|t| now.duration_since(*t) >= secs(cfg.reconcile_interval_secs))
}

/// The collections on events were polled at `now`.
pub fn reconciled(rt: &mut SyncRuntime, polled: &[&CollectionRow], now: Instant) {
    for c in polled.iter().filter(|c| c.on_events) {
        rt.events.reconciled.insert(c.object_name.clone(), now);
        rt.events.catch_up.remove(&c.object_name);
    }
}

/// Keeps the sync's change sources and stream as the settings and the org's selection
/// want them, and applies what the stream delivered. True when a batch was applied.
/// `live` are the collections of `colls` that take live changes.
pub fn follow(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    colls: &[CollectionRow],
    live: &[&CollectionRow],
) -> Result<bool, StepError> {
    rt.events.deliveries_low = rt
        .allocations
        .as_ref()
        .and_then(|a| a.events_refusal(cfg.org_usage_ceiling));
    if !live.is_empty() {
        match cfg.change_events {
            EventSource::OrgSelection => read_selection_if_due(rt, cfg)?,
            EventSource::OwnChannel => event_channel::keep_if_due(rt, cfg, live)?,
            EventSource::Off => {}
        }
    }
    let wanted: Vec<&CollectionRow> = live
        .iter()
        .copied()
        .filter(|c| on_events(rt, cfg, c))
        .collect();
    record_sources(rt, cfg, live)?;
    keep_stream(rt, cfg, &wanted, live.is_empty())?;
    let applied = apply_reports(rt, cfg, colls)?;
    mark_idle_caught_up(rt, cfg, colls)?;
    Ok(applied)
}

/// While the stream is subscribed at the newest events with nothing waiting, the
/// collections on events are as current as the stream: an event published now would
/// already be here (events are requested ahead). Salesforce's keepalives can be minutes
/// apart, so without this `sync_status.lag` would grow on a quiet org. Not while the
/// stream is started again or replays a backlog (after a restart, from the stored
/// replay id): the lag then tells how far behind the applied events are. Written once
/// a second at most.
fn mark_idle_caught_up(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    colls: &[CollectionRow],
) -> Result<(), StepError> {
    let ev = &rt.events;
    if !(ev.flowing && ev.subscribed && ev.at_head && ev.drained)
        || ev
            .idle_mark
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
    {
        return Ok(());
    }
    let names = current_on_events(rt, colls.iter());
    tx(&*rt.db, |s| {
        progress::record_events(s, &cfg.name, None, &names, Some(Utc::now()))
    })?;
    rt.events.idle_mark = Some(Instant::now());
    Ok(())
}

/// Whether `c` takes change events: the sync wants them for it and its source (the
/// org's selection, the sync's channel) has it.
fn on_events(rt: &SyncRuntime, cfg: &SyncConfig, c: &CollectionRow) -> bool {
    cfg.events_wanted_for(&c.object_name)
        && rt.events.deliveries_low.is_none()
        && rt
            .events
            .selected
            .as_ref()
            .is_some_and(|s| s.contains(&c.object_name))
}

/// The topic the stream follows.
fn stream_topic(cfg: &SyncConfig) -> String {
    match cfg.change_events {
        EventSource::OwnChannel => event_channel::topic(&event_channel::channel_name(cfg)),
        _ => ALL_CHANGE_EVENTS.to_string(),
    }
}

/// Whether the event source (the org's selection, the sync's channel) is due to be read
/// again: never read, or the describe interval passed (a change made in Setup is picked
/// up then).
pub(super) fn selection_due(rt: &SyncRuntime, cfg: &SyncConfig) -> bool {
    rt.events
        .selection_read_at
        .is_none_or(|t| t.elapsed() >= secs(cfg.describe_interval_secs))
}

/// Reads the org's CDC selection when due (`selection_due`).
fn read_selection_if_due(rt: &mut SyncRuntime, cfg: &SyncConfig) -> Result<(), StepError> {
    if !selection_due(rt, cfg) || !rt.try_spend(1) {
        return Ok(());
    }
    rt.events.selection_read_at = Some(Instant::now());
    match rt.run_unless_stopping(rt.client.cdc_selection()) {
        None => return Err(StepError::Stopping),
        Some(Ok(selection)) => {
            rt.events.selected = Some(selection.objects);
            rt.events.selection_problem = None;
        }
        Some(Err(SelectionError::Other(e))) if passes_by_itself(&e) => return Err(e.into()),
        Some(Err(e)) => {
            let why = match &e {
                SelectionError::MissingPermission { .. } => e.to_string(),
                SelectionError::Other(_) => {
                    format!("the Change Data Capture selection could not be read: {e}")
                }
            };
            rt.events.selected = Some(Default::default());
            rt.events.selection_problem = Some(why);
        }
    }
    Ok(())
}

/// Writes each live collection's change source and the reason, when they changed.
fn record_sources(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    live: &[&CollectionRow],
) -> Result<(), StepError> {
    for c in live {
        let on = on_events(rt, cfg, c);
        let note = source_note(rt, cfg, c, on);
        if rt.events.sources_written.get(&c.object_name) == Some(&(on, note.clone())) {
            continue;
        }
        tx(&*rt.db, |s| {
            progress::set_change_source(s, &cfg.name, &c.object_name, on, &note)
        })?;
        rt.events
            .sources_written
            .insert(c.object_name.clone(), (on, note));
    }
    Ok(())
}

fn source_note(rt: &SyncRuntime, cfg: &SyncConfig, c: &CollectionRow, on: bool) -> String {
    let reconcile = humanize(secs(cfg.reconcile_interval_secs));
    let own = cfg.change_events == EventSource::OwnChannel;
    if on {
        let source = match own {
            true => format!("on the sync's channel {}", event_channel::channel_name(cfg)),
            false => "selected for Change Data Capture".to_string(),
        };
        return format!(
            "{source}: changes arrive as events; polled every {reconcile} to reconcile"
        );
    }
    if cfg.change_events == EventSource::Off {
        return "change_events is off for this sync".into();
    }
    if !cfg.events_wanted_for(&c.object_name) {
        return "not among the sync's event_collections (alter_sync): polling".into();
    }
    if let Some(why) = &rt.events.deliveries_low {
        return why.clone();
    }
    if let Some(why) = rt.events.not_on_channel.get(&c.object_name).filter(|_| own) {
        return format!("{why}; polling");
    }
    match (&rt.events.selection_problem, &rt.events.selected) {
        (Some(why), _) => format!("{why}; polling"),
        (None, None) if own => "the sync's channel is not made yet; polling".into(),
        (None, None) => "the Change Data Capture selection is not read yet; polling".into(),
        (None, Some(_)) if own => "not on the sync's channel yet; polling".into(),
        (None, Some(_)) => {
            "not selected for Change Data Capture in Salesforce Setup; polling".into()
        }
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Writes what the stream is doing to `syncs.events_status`, only when it changed
/// (this runs every step).
fn show_status(rt: &mut SyncRuntime, cfg: &SyncConfig, status: &str) -> Result<(), StepError> {
    if rt.events.status_shown.as_deref() == Some(status) {
        return Ok(());
    }
    tx(&*rt.db, |s| {
        progress::set_events_status(s, &cfg.name, status)
    })?;
    rt.events.status_shown = Some(status.to_string());
    Ok(())
}

/// Starts the stream when collections want it, restarts it for a new set of objects
/// (their field types decode the events), stops it when none does.
fn keep_stream(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    wanted: &[&CollectionRow],
    none_live: bool,
) -> Result<(), StepError> {
    let objects: Vec<String> = wanted.iter().map(|c| c.object_name.clone()).collect();
    if objects.is_empty() {
        if rt.events.stream.take().is_some() || rt.events.flowing {
            rt.events.flowing = false;
            rt.events.stream_objects.clear();
        }
        rt.events.subscribed = false;
        let status = if cfg.change_events == EventSource::Off {
            "off: polling"
        } else if rt.events.deliveries_low.is_some() {
            "the org's daily event deliveries are nearly used: polling"
        } else if none_live {
            "waiting for a collection to finish its backfill"
        } else if cfg.change_events == EventSource::OwnChannel {
            "no collection is on the sync's channel: polling"
        } else {
            "no collection is selected for Change Data Capture: polling"
        };
        show_status(rt, cfg, status)?;
        return Ok(());
    }
    let topic = stream_topic(cfg);
    if rt.events.stream.is_some()
        && rt.events.stream_objects == objects
        && rt.events.stream_topic == topic
    {
        return Ok(());
    }
    let fields: Vec<ObjectFields> = objects
        .iter()
        .filter_map(|o| {
            let cr = rt.collections.get(o)?;
            let f = cr
                .columns
                .iter()
                .map(|c| (c.field.clone(), c.sf_type.clone(), c.compound_of.clone()))
                .collect();
            Some((o.clone(), f))
        })
        .collect();
    // Resume after the last event applied (what a restarted stream handed out but the
    // worker did not apply comes again).
    let from = match &cfg.replay_id {
        Some(id) => Replay::After(id.clone()),
        None => Replay::Latest,
    };
    // `flowing` stays as it was: a stream started again (new objects, a batch that
    // failed) is not a stream lost; if it cannot subscribe, `Report::Lost` says so.
    rt.events.subscribed = false;
    rt.events.at_head = false;
    rt.events.stream = Some(ChangeStream::start(
        &rt.tokio_handle(),
        rt.client.clone(),
        PubSubConfig::new(cfg.pubsub_endpoint.clone()),
        (topic.clone(), fields),
        from,
    ));
    rt.events.stream_objects = objects;
    rt.events.stream_topic = topic;
    let status = format!("connecting to {}", cfg.pubsub_endpoint);
    show_status(rt, cfg, &status)?;
    Ok(())
}

/// Applies what the stream reported since the last step.
fn apply_reports(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    colls: &[CollectionRow],
) -> Result<bool, StepError> {
    let mut applied = false;
    rt.events.drained = false;
    for _ in 0..REPORTS_PER_STEP {
        let Some(report) = rt
            .events
            .stream
            .as_mut()
            .and_then(ChangeStream::next_report)
        else {
            rt.events.drained = true;
            break;
        };
        match report {
            Report::Subscribed { from } => {
                rt.events.flowing = true;
                rt.events.subscribed = true;
                rt.events.at_head = from == Replay::Latest;
                if from == Replay::Latest {
                    // nothing before this moment will come as an event
                    catch_up_all(rt, colls);
                }
                let status = format!(
                    "streaming {} from {} since {}",
                    rt.events.stream_topic,
                    cfg.pubsub_endpoint,
                    Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
                );
                show_status(rt, cfg, &status)?;
            }
            Report::Batch(batch) => {
                // A Postgres ERROR (a lock timeout behind an application's
                // transaction) is caught here, not only by the step's guard.
                let db = rt.db.clone();
                let result = guarded(&*db, || apply_batch(rt, cfg, colls, batch))
                    .unwrap_or_else(|message| Err(StepError::Database(message)));
                if let Err(e) = result {
                    // The stream has moved past this batch: start it again from the
                    // last replay id stored, so the batch comes again.
                    rt.events.stream = None;
                    rt.events.stream_objects.clear();
                    rt.events.subscribed = false;
                    return Err(e);
                }
                applied = true;
            }
            Report::Lost {
                message,
                replay_lost,
                retry_in,
            } => {
                rt.events.flowing = false;
                rt.events.subscribed = false;
                if replay_lost {
                    tx(&*rt.db, |s| progress::forget_replay_id(s, &cfg.name))?;
                    catch_up_all(rt, colls);
                }
                let status = format!(
                    "stream lost ({message}); subscribing again in {} s, polling meanwhile{}",
                    retry_in.as_secs(),
                    if replay_lost {
                        "; the stored replay id has expired: what it may have missed is read again by polling"
                    } else {
                        ""
                    }
                );
                log::warn!("sequin_sf: sync {}: change events: {status}", cfg.name);
                show_status(rt, cfg, &status)?;
            }
        }
    }
    Ok(applied)
}

/// The collections on events that the stream keeps current: not those waiting for a
/// poll to catch up what the stream cannot bring (`catch_up`).
fn current_on_events<'a>(
    rt: &SyncRuntime,
    colls: impl Iterator<Item = &'a CollectionRow>,
) -> Vec<String> {
    colls
        .filter(|c| c.on_events && !rt.events.catch_up.contains(&c.object_name))
        .map(|c| c.object_name.clone())
        .collect()
}

fn catch_up_all(rt: &mut SyncRuntime, colls: &[CollectionRow]) {
    for c in colls.iter().filter(|c| c.on_events) {
        rt.events.catch_up.insert(c.object_name.clone());
    }
}

/// Applies one batch in one transaction with its resume point.
fn apply_batch(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    colls: &[CollectionRow],
    batch: Batch,
) -> Result<(), StepError> {
    let on_events: Vec<&CollectionRow> = colls.iter().filter(|c| c.on_events).collect();
    let mut changes = Vec::new();
    for ev in &batch.events {
        let Some(c) = on_events.iter().find(|c| c.object_name == ev.entity) else {
            // an object this sync does not keep on events (or not at all)
            continue;
        };
        if ev.change_type.is_gap() || matches!(ev.change_type, ChangeType::Other(_)) {
            rt.events.catch_up.insert(c.object_name.clone());
            continue;
        }
        changes.extend(changes_of(rt, cfg, c, ev)?);
    }
    let names = current_on_events(rt, on_events.iter().copied());
    let resume = batch.resume_replay_id.as_deref();
    // A keepalive, or fewer events than the stream asked for, says the server had
    // nothing newer: the collections are current now. Otherwise (a backlog replayed)
    // they are current up to the newest change the batch brought.
    let at_head = batch.is_keepalive() || batch.pending > 0;
    let caught_up = if at_head {
        Some(Utc::now())
    } else {
        batch
            .events
            .iter()
            .filter_map(ChangeEvent::commit_time)
            .max()
    };
    let delivered = batch.events.len();
    let missing = tx(&*rt.db, |s| {
        let missing = apply::apply_changes(s, &cfg.name, &changes, resume, (&names, caught_up))?;
        crate::status::record_event_deliveries(s, &cfg.name, delivered)?;
        Ok::<_, crate::db::DbError>(missing)
    })?;
    rt.events.catch_up.extend(missing);
    rt.events.at_head = at_head;
    Ok(())
}

/// The changes one event makes to collection `c`'s table (one per record it names).
fn changes_of(
    rt: &SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
    ev: &ChangeEvent,
) -> Result<Vec<apply::Change>, StepError> {
    let cr = rt.collection(&c.object_name)?;
    let cid = naming::collection_id(&c.object_name);
    let t = target(cfg, c, cr, &cid, true);
    if ev.change_type == ChangeType::Delete {
        return Ok(vec![apply::Change::Delete {
            object: c.object_name.clone(),
            sql: sync_core::sql::delete_ids(&t),
            ids: ev.record_ids.clone(),
        }]);
    }
    let present: Vec<sync_core::ColumnSpec> = cr
        .columns
        .iter()
        .filter(|col| col.column == "id" || ev.fields.contains_key(&col.field))
        .cloned()
        .collect();
    if present.len() < 2 {
        // nothing this table keeps changed
        return Ok(Vec::new());
    }
    let sql = sync_core::sql::merge_change(&t, &present);
    let create = matches!(ev.change_type, ChangeType::Create | ChangeType::Undelete);
    let own = ev.origin_client() == Some(cfg.call_options_client.as_str());
    let time = change_time(ev);
    Ok(ev
        .record_ids
        .iter()
        .map(|id| {
            let mut record = ev.fields.clone();
            record.insert("Id".into(), id.clone().into());
            apply::Change::Merge {
                object: c.object_name.clone(),
                sql: sql.clone(),
                record: serde_json::Value::Object(record).to_string(),
                time,
                create,
                own,
            }
        })
        .collect())
}

/// The change's LastModifiedDate when the event carries it (it is the record's
/// SystemModstamp for a change a user made), else its commit time.
fn change_time(ev: &ChangeEvent) -> DateTime<Utc> {
    ev.fields
        .get("LastModifiedDate")
        .and_then(serde_json::Value::as_str)
        .and_then(sync_core::cursor::parse_sf_datetime)
        .or_else(|| ev.commit_time())
        .unwrap_or_else(Utc::now)
}
