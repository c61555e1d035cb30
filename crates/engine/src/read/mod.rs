//! The read path: one step of one sync at a time. In order: set up a new collection
//! (`setup`), read one backfill page (`backfill` for REST pages, `bulk` for Bulk 2.0
//! jobs), run a poll round when due (`poll`), read calculated fields again when due
//! (`refresh`), re-check describes for schema drift (`drift`), prune old events; the
//! org's `/limits` when due (`org_limits`). HTTP calls happen between transactions,
//! never inside one; what a step writes goes through `apply` (pages), `tables` (tables
//! and columns) and `progress` (cursors and states), inside the caller's transaction.

mod apply;
mod backfill;
mod bulk;
mod drift;
mod event_channel;
mod events;
mod field_groups;
mod org_limits;
mod page_file;
mod poll;
mod progress;
mod refresh;
mod setup;
mod tables;

pub use event_channel::remove_left as remove_left_event_channels;
pub use page_file::{remove_leftover_pages, use_page_dir};
pub use tables::record_org_fields;

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sync_core::progress::CollectionState;
use sync_core::schedule;
use sync_core::sql::{ApplyTarget, InsertMode};

use crate::allocations;
use crate::catalog::{self, CollectionRow, SyncConfig};
use crate::db::{guarded, tx, DbError};
use crate::error::StepError;
use crate::runtime::{CollectionRuntime, SyncRuntime};

/// Records per REST page (the most Salesforce returns), for backfills and polls.
const PAGE_SIZE: u32 = 2000;

/// Runs one step, turning a Postgres ERROR raised inside it into a [`StepError`]: the
/// open transaction is aborted (nothing of it is kept) and the worker carries on,
/// reporting the error in `sync_status.last_error` and retrying with backoff, instead
/// of dying and restarting in a loop.
pub fn guarded_step(rt: &mut SyncRuntime, cfg: &SyncConfig) -> Result<bool, StepError> {
    let db = rt.db.clone();
    guarded(&*db, || step(rt, cfg)).unwrap_or_else(|message| Err(StepError::Database(message)))
}

pub(super) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.05, 10.0 * 365.0 * 86_400.0))
}

pub(super) fn records_json(records: Vec<Map<String, Value>>) -> Value {
    Value::Array(records.into_iter().map(Value::Object).collect())
}

/// Does one unit of work for the sync. Returns true when more work is ready at once
/// (a backfill in progress), so the worker does not sleep.
pub fn step(rt: &mut SyncRuntime, cfg: &SyncConfig) -> Result<bool, StepError> {
    let colls = tx(&*rt.db, |s| catalog::load_collections(s, &cfg.name))?;
    rt.collections
        .retain(|k, _| colls.iter().any(|c| &c.object_name == k && c.has_columns));
    for c in colls.iter().filter(|c| c.has_columns) {
        if !rt.collections.contains_key(&c.object_name) {
            load_collection(rt, cfg, c)?;
        }
        follow_table_shape(rt, cfg, c)?;
    }

    // the org's allocations, for sequin_sf.org_limits: a reading that fails is only
    // logged, as nothing waits on it
    match org_limits::refresh(rt, cfg, allocations::READ_EVERY) {
        Err(StepError::Stopping) => return Err(StepError::Stopping),
        Err(e) => log::warn!(
            "sequin_sf: sync {}: could not read the org's limits: {e}",
            cfg.name
        ),
        Ok(()) => {}
    }

    // Settings may change at any time (alter_sync): schedules follow them.
    for cr in rt.collections.values_mut() {
        cr.describe.set_every(secs(cfg.describe_interval_secs));
        cr.deleted.set_every(secs(cfg.deleted_interval_secs));
    }

    let mut busy = false;
    if let Some(c) = colls
        .iter()
        .find(|c| c.state == Some(CollectionState::Backfilling))
    {
        busy = if c.has_columns {
            backfill::backfill_page(rt, cfg, c)?
        } else {
            setup::set_up(rt, cfg, c)?
        };
    }

    let live: Vec<&CollectionRow> = colls
        .iter()
        .filter(|c| {
            c.state == Some(CollectionState::Live) && c.has_columns && c.stamp_field.is_some()
        })
        .collect();
    busy |= events::follow(rt, cfg, &colls, &live)?;
    poll_due(rt, cfg, &live)?;
    // one page of one due refresh per step, so polls keep their pace
    if let Some(c) = live.iter().find(|c| c.calculated_due) {
        busy |= refresh::refresh_page(rt, cfg, c)?;
    }
    for c in &live {
        drift::check_describe(rt, cfg, c)?;
    }
    if rt
        .prune
        .take_due(secs(cfg.event_retention_secs), Instant::now())
    {
        tx(&*rt.db, |s| {
            apply::prune_events(s, &cfg.schema_name, cfg.event_retention_secs)
        })?;
    }
    Ok(busy)
}

/// Polls the collections whose turn it is: those not fed by change events at the
/// budget's pace (one round over all of them), those fed by events when they are due
/// for a reconciliation (`events::reconcile_due`).
fn poll_due(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    live: &[&CollectionRow],
) -> Result<(), StepError> {
    let (streamed, polled): (Vec<&CollectionRow>, Vec<&CollectionRow>) =
        live.iter().partition(|c| events::streamed(rt, c));
    let pace = salesforce::pacing::poll_interval(
        cfg.rate_limit_requests.max(1) as u64,
        secs(cfg.rate_limit_interval_secs),
        polled.len(),
        schedule::QUERIES_PER_COMPOSITE,
        cfg.write_reserve,
    );
    rt.poll
        .set_every(schedule::round_interval(pace, Duration::from_secs(60)));
    let now = Instant::now();
    let polled_due = !polled.is_empty() && rt.poll.due(now);
    let mut due: Vec<&CollectionRow> = if polled_due { polled } else { Vec::new() };
    due.extend(
        streamed
            .into_iter()
            .filter(|c| events::reconcile_due(rt, cfg, c, now)),
    );
    if !due.is_empty() && poll::poll_round(rt, cfg, &due)? {
        if polled_due {
            rt.poll.mark(now);
        }
        events::reconciled(rt, &due, now);
    }
    Ok(())
}

fn load_collection(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<(), StepError> {
    // the columns are read by follow_table_shape, which runs next (its first sight of
    // the table)
    rt.collections.insert(
        c.object_name.clone(),
        CollectionRuntime::new(
            Vec::new(),
            secs(cfg.describe_interval_secs),
            secs(cfg.deleted_interval_secs),
        ),
    );
    Ok(())
}

/// An operator who altered the table is followed. A column converted (as a type change
/// in Salesforce may ask): the columns are read again with their new types, and the
/// next describe is read whole so a column left unfilled for its type can be filled
/// again. A column dropped: its field is no longer filled and capture is installed
/// again without it, at once (capture that names a column gone fails the application's
/// writes; this needs no call to Salesforce). The first sight of the table (the sync
/// started, our own change of it) is where the columns are read, dropped ones found
/// too: one may have gone while nothing watched.
fn follow_table_shape(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
    c: &CollectionRow,
) -> Result<(), StepError> {
    let db = rt.db.clone();
    let Some(cr) = rt.collections.get_mut(&c.object_name) else {
        return Ok(());
    };
    if cr.table_shape.is_some() && cr.table_shape == c.table_shape {
        return Ok(());
    }
    let altered = cr.table_shape.is_some();
    cr.table_shape = c.table_shape.clone();
    let known = tx(&*db, |s| {
        catalog::load_columns(s, &cfg.name, &c.object_name)
    })?;
    let tref = tables::TableRef {
        sync: &cfg.name,
        schema: &cfg.schema_name,
        object: &c.object_name,
        table: &c.table_name,
    };
    // (a table gone as a whole is not columns dropped: the sync's writes to it fail
    // and say so)
    let dropped: Vec<tables::ColumnRefresh> = known
        .iter()
        .filter(|k| k.active && !k.present && c.table_shape.is_some())
        .map(|k| drift::dropped_column(&tref, &k.spec))
        .collect();
    if !dropped.is_empty() {
        tx(&*db, |s| tables::stop_filling(s, &tref, &dropped))?;
        for note in dropped.iter().filter_map(|r| r.note.as_deref()) {
            log::warn!("sequin_sf: {note}");
        }
    }
    if altered {
        cr.describe_in_full = true;
        cr.describe.force();
    }
    cr.columns = filled_columns(known);
    Ok(())
}

/// The columns the sync fills, from `catalog::load_columns`.
fn filled_columns(all: Vec<catalog::KnownColumn>) -> Vec<sync_core::ColumnSpec> {
    all.into_iter()
        .filter(catalog::KnownColumn::filled)
        .map(|k| k.spec)
        .collect()
}

/// Applies a backfill page as rows new to the table while `rows_new` holds (a plain
/// insert, `InsertMode::New`); a row already stored (a backfill started again, a record
/// created through the write path meanwhile) fails that, and the page is applied again
/// as an upsert, as is the rest of the backfill (`rows_new` turns false).
pub(super) fn insert_new_or_upsert<R>(
    db: &dyn crate::db::Database,
    object: &str,
    rows_new: &mut bool,
    apply: impl Fn(InsertMode) -> Result<R, DbError>,
) -> Result<R, StepError> {
    if !*rows_new {
        return Ok(apply(InsertMode::Upsert)?);
    }
    // a host that returns the failure, and one that raises it
    let failed = match guarded(db, || apply(InsertMode::New)) {
        Ok(Ok(r)) => return Ok(r),
        Ok(Err(e)) => e.message,
        Err(message) => message,
    };
    log::info!("sequin_sf: {object}: upserting backfill pages ({failed})");
    *rows_new = false;
    Ok(apply(InsertMode::Upsert)?)
}

pub(super) fn target<'a>(
    cfg: &'a SyncConfig,
    c: &'a CollectionRow,
    cr: &'a CollectionRuntime,
    cid: &'a str,
    events: bool,
) -> ApplyTarget<'a> {
    ApplyTarget {
        schema: &cfg.schema_name,
        table: &c.table_name,
        collection_id: cid,
        columns: &cr.columns,
        stamp_field: c.stamp_field.as_deref(),
        emit_events: events,
    }
}
