//! Where each collection's reading stands, in `sequin_sf._collections` and `_syncs`:
//! backfill totals, cursors and modes, poll and refresh cursors, the change event
//! stream's replay id and status. Each function runs inside the caller's transaction;
//! those that go with a page (`record_backfill`, `record_poll`, ...) are called by
//! `apply` in the page's own transaction, so a restart resumes exactly after it.

use chrono::{DateTime, Utc};
use sync_core::progress::BackfillMode;

use super::apply::rfc3339;
use crate::db::{DbError, Session};

/// Records the COUNT() of a collection and the backfill mode chosen from it.
pub fn set_rows_total(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    total: i64,
    mode: BackfillMode,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections SET rows_total = $3, backfill_mode = $4,
                backfill_note = NULL
         WHERE sync_name = $1 AND object_name = $2",
        &[
            sync.into(),
            object.into(),
            total.into(),
            mode.as_str().into(),
        ],
    )
}

/// Stores a REST backfill's cursor before its first page (the Id ranges it reads).
pub fn set_backfill_cursor(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    cursor: &str,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections SET backfill_cursor = $3
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), cursor.into()],
    )
}

/// Remembers the Bulk query job of a backfill (NULL forgets a failed one).
pub fn set_bulk_job(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    job_id: Option<&str>,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections SET bulk_job_id = $3, bulk_locator = NULL, rows_done = 0
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), job_id.into()],
    )
}

/// Switches a backfill to the other path, from the start: REST pages after a Bulk job
/// failed, a Bulk job after REST queries timed out (rows already stored are applied
/// again, which changes nothing).
pub fn switch_backfill(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    mode: BackfillMode,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections SET backfill_mode = $3, bulk_job_id = NULL,
                bulk_locator = NULL, backfill_cursor = NULL
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), mode.as_str().into()],
    )
}

/// Where an interrupted backfill resumes: after the last stored Id (REST pages) or at
/// the next results locator of its Bulk job (None: no page left).
pub enum Resume<'a> {
    AfterId(Option<&'a str>),
    Locator(Option<&'a str>),
}

/// Counts `rows` more stored and moves the resume point, in the page's transaction;
/// `done` turns the collection live.
pub fn record_backfill(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    resume: Resume,
    rows: i64,
    done: bool,
) -> Result<(), DbError> {
    let (set_resume, at) = match resume {
        // a REST page with no records leaves the cursor where it was
        Resume::AfterId(id) => ("backfill_cursor = coalesce($3, backfill_cursor)", id),
        Resume::Locator(locator) => ("bulk_locator = $3", locator),
    };
    s.execute(
        &format!(
            "UPDATE sequin_sf._collections SET
                 {set_resume},
                 rows_done = rows_done + $4,
                 rows_total = CASE WHEN $5 THEN greatest(rows_total, rows_done + $4) ELSE rows_total END,
                 state = CASE WHEN $5 THEN 'live' ELSE state END,
                 backfill_finished_at = CASE WHEN $5 THEN now() ELSE NULL END,
                 caught_up_at = CASE WHEN $5 THEN backfill_started_at ELSE caught_up_at END,
                 last_error = NULL, last_error_at = NULL
             WHERE sync_name = $1 AND object_name = $2"
        ),
        &[sync.into(), object.into(), at.into(), rows.into(), done.into()],
    )
}

/// Records a poll of a collection: `cursor` is where the next poll starts (before the
/// overlap); `caught_up` the moment up to which every committed change is now stored.
pub fn record_poll(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    cursor: DateTime<Utc>,
    caught_up: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections SET poll_cursor = greatest(poll_cursor, $3::timestamptz),
             last_poll_at = now(),
             caught_up_at = greatest(caught_up_at, $4::timestamptz),
             last_error = NULL, last_error_at = NULL
         WHERE sync_name = $1 AND object_name = $2",
        &[
            sync.into(),
            object.into(),
            (&rfc3339(cursor)).into(),
            caught_up.map(rfc3339).as_deref().into(),
        ],
    )
}

/// The deleted-records check has covered Salesforce's changes up to `window_end`.
pub fn record_deleted_check(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    window_end: DateTime<Utc>,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections SET deleted_cursor = $3::timestamptz
         WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), (&rfc3339(window_end)).into()],
    )
}

/// The calculated-field refresh goes on after `next_after` (an Id), or, with None, its
/// round ends now (also when the collection has no calculated field to read).
pub fn move_refresh_on(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    next_after: Option<&str>,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections
            SET calculated_cursor = $3,
                calculated_refreshed_at = CASE WHEN $3 IS NULL THEN now()
                                               ELSE calculated_refreshed_at END
          WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), next_after.into()],
    )
}

/// Where the change event stream resumes (stored with the batch it follows), and
/// the collections on events caught up to `caught_up` (every change committed until
/// then is stored).
pub fn record_events(
    s: &mut dyn Session,
    sync: &str,
    replay_id: Option<&[u8]>,
    on_events: &[String],
    caught_up: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    if let Some(id) = replay_id {
        s.execute(
            "UPDATE sequin_sf._syncs SET replay_id = $2 WHERE name = $1",
            &[sync.into(), id.into()],
        )?;
    }
    if let Some(t) = caught_up {
        s.execute(
            "UPDATE sequin_sf._collections
                SET caught_up_at = greatest(caught_up_at, $3::timestamptz)
              WHERE sync_name = $1 AND object_name = ANY($2)",
            &[sync.into(), on_events.into(), (&rfc3339(t)).into()],
        )?;
    }
    Ok(())
}

/// Forgets the stored replay id (the server no longer knows it).
pub fn forget_replay_id(s: &mut dyn Session, sync: &str) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._syncs SET replay_id = NULL WHERE name = $1",
        &[sync.into()],
    )
}

/// What the change event stream is doing, for `sequin_sf.syncs.events_status`.
pub fn set_events_status(s: &mut dyn Session, sync: &str, status: &str) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._syncs SET events_status = $2
         WHERE name = $1 AND events_status IS DISTINCT FROM $2",
        &[sync.into(), status.into()],
    )
}

/// How a collection's live changes arrive, and why (`sync_status.change_source`).
pub fn set_change_source(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
    on_events: bool,
    note: &str,
) -> Result<(), DbError> {
    s.execute(
        "UPDATE sequin_sf._collections
            SET change_source = CASE WHEN $3 THEN 'events' ELSE 'polling' END,
                change_source_note = $4
          WHERE sync_name = $1 AND object_name = $2",
        &[sync.into(), object.into(), on_events.into(), note.into()],
    )
}
