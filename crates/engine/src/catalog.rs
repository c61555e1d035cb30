//! Reading the sync configuration and per-collection progress from the catalog
//! (`sequin_sf._syncs`, `_collections`, `_columns`). Call inside a transaction.

use chrono::{DateTime, Utc};
use sync_core::progress::{BackfillMode, CollectionState};
use sync_core::{ColumnSpec, PgType};

use crate::db::{DbError, Session, TS};

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub name: String,
    pub credential: String,
    pub credential_updated: String,
    pub schema_name: String,
    pub rate_limit_requests: i32,
    pub rate_limit_interval_secs: f64,
    pub max_concurrent_requests: i32,
    pub org_usage_ceiling: f64,
    pub write_reserve: f64,
    pub poll_overlap_secs: f64,
    pub event_retention_secs: f64,
    pub backfill_events: bool,
    pub bulk_threshold: i64,
    pub describe_interval_secs: f64,
    pub deleted_interval_secs: f64,
    pub paused: bool,
    pub has_error: bool,
    /// base64 fields get a column holding the path of their bytes (else none).
    pub base64_urls: bool,
    /// Where Change Data Capture events come from, if anywhere.
    pub change_events: EventSource,
    /// The collections that may take change events (None: every one).
    pub event_collections: Option<Vec<String>>,
    /// The sync's own channel (full name, `..__chn`) once the engine named it.
    pub event_channel: Option<String>,
    /// The Pub/Sub API endpoint.
    pub pubsub_endpoint: String,
    /// How often collections on change events are polled, as a safety net.
    pub reconcile_interval_secs: f64,
    /// Where the change event stream resumes (None: never applied an event).
    pub replay_id: Option<Vec<u8>>,
    /// The `Sforce-Call-Options` client this sync's requests name: its changes come
    /// back as change events with it in their `changeOrigin`. One per database and
    /// sync, so a sync of the same org elsewhere does not take them for its own.
    pub call_options_client: String,
}

impl SyncConfig {
    /// What the client, budget and change event source are built from: a change
    /// rebuilds them (a new event source reads its selection afresh).
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{:?}",
            self.credential,
            self.credential_updated,
            self.rate_limit_requests,
            self.rate_limit_interval_secs,
            self.max_concurrent_requests,
            self.org_usage_ceiling,
            self.pubsub_endpoint,
            self.change_events
        )
    }
}

/// Where a sync's change events come from (`_syncs.change_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// `off`: every collection is polled.
    Off,
    /// `auto`: the org's selection on Setup's Change Data Capture page, through the
    /// standard channel `/data/ChangeEvents`.
    OrgSelection,
    /// `channel`: a channel of the sync's own, holding its collections.
    OwnChannel,
}

impl EventSource {
    fn parse(s: &str) -> EventSource {
        match s {
            "auto" => EventSource::OrgSelection,
            "channel" => EventSource::OwnChannel,
            _ => EventSource::Off,
        }
    }
}

impl SyncConfig {
    /// Whether `object` may take change events (events are on, and it was chosen).
    pub fn events_wanted_for(&self, object: &str) -> bool {
        self.change_events != EventSource::Off
            && self
                .event_collections
                .as_ref()
                .is_none_or(|chosen| chosen.iter().any(|c| c == object))
    }
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // read by status/debug code paths and kept for the bulk path
pub struct CollectionRow {
    pub object_name: String,
    pub table_name: String,
    /// None for a state this release does not know (the collection is left alone).
    pub state: Option<CollectionState>,
    pub stamp_field: Option<String>,
    pub rows_total: Option<i64>,
    pub backfill_cursor: Option<String>,
    pub backfill_mode: Option<BackfillMode>,
    pub bulk_job_id: Option<String>,
    pub bulk_locator: Option<String>,
    pub backfill_started_at: Option<DateTime<Utc>>,
    pub poll_cursor: Option<DateTime<Utc>>,
    pub deleted_cursor: Option<DateTime<Utc>>,
    pub describe_modified: Option<DateTime<Utc>>,
    pub has_columns: bool,
    pub has_error: bool,
    /// From the object's describe; None until described.
    pub replicateable: Option<bool>,
    /// The table's column names and types: when it changes (an operator altered a
    /// column), the worker reloads the columns and re-reads the describe.
    pub table_shape: Option<String>,
    /// The calculated-field refresh in progress resumes after this Id ('' = from the
    /// start); `calculated_due` when a round is in progress or its period has passed.
    pub calculated_cursor: Option<String>,
    pub calculated_due: bool,
    /// Live changes arrive as change events (else by polling).
    pub on_events: bool,
}

fn ts(s: Option<String>) -> Option<DateTime<Utc>> {
    s.as_deref().and_then(sync_core::cursor::parse_sf_datetime)
}

/// How sequin_sf's SQL objects came into a database, with their release.
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    /// `CREATE EXTENSION` (pg_extension.extversion)
    Extension(String),
    /// installed by sequin-sf with plain SQL (`sequin_sf._release`,
    /// sql/plain/library.sql)
    Plain(String),
}

impl Release {
    pub fn version(&self) -> &str {
        match self {
            Release::Extension(v) | Release::Plain(v) => v,
        }
    }
}

/// What this database holds of sequin_sf (None: nothing).
pub fn installed_release(s: &mut dyn Session) -> Result<Option<Release>, DbError> {
    let found = s.query_one(
        "SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'sequin_sf')::text,
                to_regclass('sequin_sf._release') IS NOT NULL",
        &[],
    )?;
    let Some(found) = found else { return Ok(None) };
    if let Some(v) = found.text(0) {
        return Ok(Some(Release::Extension(v)));
    }
    if found.bool(1) != Some(true) {
        return Ok(None);
    }
    Ok(s.query_one(
        "SELECT version FROM sequin_sf._release ORDER BY installed_at DESC LIMIT 1",
        &[],
    )?
    .and_then(|r| r.text(0))
    .map(Release::Plain))
}

/// The release of sequin_sf's SQL objects in this database, however installed.
pub fn installed_version(s: &mut dyn Session) -> Result<Option<String>, DbError> {
    Ok(installed_release(s)?.map(|r| r.version().to_string()))
}

pub fn load_syncs(s: &mut dyn Session) -> Result<Vec<SyncConfig>, DbError> {
    {
        let rows = s.query(
            "SELECT s.name, s.credential, coalesce(cr.updated_at::text, ''), s.schema_name,
                    s.rate_limit_requests, extract(epoch FROM s.rate_limit_interval)::float8,
                    s.max_concurrent_requests, s.org_usage_ceiling::float8, s.write_reserve::float8,
                    extract(epoch FROM s.poll_overlap)::float8, extract(epoch FROM s.event_retention)::float8,
                    s.backfill_events, extract(epoch FROM s.describe_interval)::float8,
                    extract(epoch FROM s.deleted_interval)::float8, s.paused, s.last_error IS NOT NULL, s.bulk_threshold,
                    s.base64_fields = 'url', s.change_events,
                    coalesce(s.pubsub_endpoint, 'https://api.pubsub.salesforce.com:7443'),
                    extract(epoch FROM s.reconcile_interval)::float8, s.replay_id,
                    'sequin_sf_' || left(md5(current_database() || '/' || s.name || '/' || s.marker_key), 12),
                    s.event_collections, s.event_channel
             FROM sequin_sf._syncs s LEFT JOIN sequin_sf._credentials cr ON cr.name = s.credential
             ORDER BY s.name",
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(SyncConfig {
                name: r.text(0).unwrap_or_default(),
                credential: r.text(1).unwrap_or_default(),
                credential_updated: r.text(2).unwrap_or_default(),
                schema_name: r.text(3).unwrap_or_default(),
                rate_limit_requests: r.i32(4).unwrap_or(1),
                rate_limit_interval_secs: r.f64(5).unwrap_or(86_400.0),
                max_concurrent_requests: r.i32(6).unwrap_or(1),
                org_usage_ceiling: r.f64(7).unwrap_or(0.8),
                write_reserve: r.f64(8).unwrap_or(0.2),
                poll_overlap_secs: r.f64(9).unwrap_or(30.0),
                event_retention_secs: r.f64(10).unwrap_or(7.0 * 86_400.0),
                backfill_events: r.bool(11).unwrap_or(true),
                describe_interval_secs: r.f64(12).unwrap_or(600.0),
                deleted_interval_secs: r.f64(13).unwrap_or(60.0),
                paused: r.bool(14).unwrap_or(false),
                has_error: r.bool(15).unwrap_or(false),
                bulk_threshold: r.i64(16).unwrap_or(50_000),
                base64_urls: r.bool(17).unwrap_or(false),
                change_events: EventSource::parse(&r.text(18).unwrap_or_default()),
                pubsub_endpoint: r.text(19).unwrap_or_default(),
                reconcile_interval_secs: r.f64(20).unwrap_or(3600.0),
                replay_id: r.bytes(21),
                call_options_client: r.text(22).unwrap_or_default(),
                event_collections: r.text_array(23),
                event_channel: r.text(24),
            });
        }
        Ok(out)
    }
}

pub fn load_collections(s: &mut dyn Session, sync: &str) -> Result<Vec<CollectionRow>, DbError> {
    let q = format!(
        "SELECT c.object_name, c.table_name, c.state, c.stamp_field, c.rows_total, c.backfill_cursor,
                to_char(c.backfill_started_at AT TIME ZONE 'UTC', '{TS}'),
                to_char(c.poll_cursor AT TIME ZONE 'UTC', '{TS}'),
                to_char(c.deleted_cursor AT TIME ZONE 'UTC', '{TS}'),
                c.describe_modified,
                EXISTS (SELECT 1 FROM sequin_sf._columns m WHERE m.sync_name = c.sync_name AND m.object_name = c.object_name),
                c.last_error IS NOT NULL, c.backfill_mode, c.bulk_job_id, c.bulk_locator,
                c.replicateable,
                (SELECT string_agg(a.attname::text || ':' || a.atttypid::text, ',' ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = c.table_oid AND a.attnum > 0 AND NOT a.attisdropped),
                c.calculated_cursor,
                c.calculated_cursor IS NOT NULL
                    OR coalesce(c.calculated_refreshed_at, c.backfill_finished_at, '-infinity')
                       + c.calculated_refresh <= now(),
                c.change_source = 'events'
         FROM sequin_sf._collections c WHERE c.sync_name = $1 ORDER BY c.added_at, c.object_name"
    );
    {
        let rows = s.query(&q, &[sync.into()])?;
        let mut out = Vec::new();
        for r in rows {
            out.push(CollectionRow {
                object_name: r.text(0).unwrap_or_default(),
                table_name: r.text(1).unwrap_or_default(),
                state: r.text(2).as_deref().and_then(CollectionState::parse),
                stamp_field: r.text(3),
                rows_total: r.i64(4),
                backfill_cursor: r.text(5),
                backfill_started_at: ts(r.text(6)),
                poll_cursor: ts(r.text(7)),
                deleted_cursor: ts(r.text(8)),
                describe_modified: ts(r.text(9)),
                has_columns: r.bool(10).unwrap_or(false),
                has_error: r.bool(11).unwrap_or(false),
                backfill_mode: r.text(12).as_deref().and_then(BackfillMode::parse),
                bulk_job_id: r.text(13),
                bulk_locator: r.text(14),
                replicateable: r.bool(15),
                table_shape: r.text(16),
                calculated_cursor: r.text(17),
                calculated_due: r.bool(18).unwrap_or(false),
                on_events: r.bool(19).unwrap_or(false),
            });
        }
        Ok(out)
    }
}

/// A field's column as `sequin_sf._columns` records it.
pub struct KnownColumn {
    pub spec: ColumnSpec,
    /// recorded as filled by the sync (false: the field is gone from Salesforce, its
    /// type no longer fits the column, or the operator dropped the column)
    pub active: bool,
    /// the table has the column (an operator may have dropped it)
    pub present: bool,
}

impl KnownColumn {
    /// The sync fills the column: recorded so, and still in the table.
    pub fn filled(&self) -> bool {
        self.active && self.present
    }
}

/// Every column of a collection, in position order. The type is the column's own in
/// the catalog, so a column an operator converted is read as such.
pub fn load_columns(
    s: &mut dyn Session,
    sync: &str,
    object: &str,
) -> Result<Vec<KnownColumn>, DbError> {
    {
        let rows = s.query(
            "SELECT m.field_name, m.column_name, m.sf_type,
                    format_type(a.atttypid, NULL), m.pg_type, m.compound_of,
                    m.createable, m.updateable, m.calculated, m.nillable, m.restricted_picklist,
                    coalesce(m.picklist_values, '{}'), m.active, a.attnum IS NOT NULL
             FROM sequin_sf._columns m
             JOIN sequin_sf._collections c USING (sync_name, object_name)
             LEFT JOIN pg_catalog.pg_attribute a
               ON a.attrelid = c.table_oid AND a.attname = m.column_name AND NOT a.attisdropped
             WHERE m.sync_name = $1 AND m.object_name = $2 ORDER BY m.position",
            &[sync.into(), object.into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            // the catalog's type when it is one we map, else the recorded one
            let actual: Option<String> = r.text(3);
            let recorded: String = r.text(4).unwrap_or_default();
            let pg_type = actual
                .as_deref()
                .and_then(PgType::from_catalog)
                .or_else(|| PgType::from_sql(&recorded))
                .unwrap_or(PgType::Text);
            out.push(KnownColumn {
                spec: ColumnSpec {
                    field: r.text(0).unwrap_or_default(),
                    column: r.text(1).unwrap_or_default(),
                    sf_type: r.text(2).unwrap_or_default(),
                    pg_type,
                    compound_of: r.text(5),
                    createable: r.bool(6).unwrap_or(false),
                    updateable: r.bool(7).unwrap_or(false),
                    calculated: r.bool(8).unwrap_or(false),
                    nillable: r.bool(9).unwrap_or(true),
                    restricted_picklist: r.bool(10).unwrap_or(false),
                    external_id: false,
                    picklist_values: r.text_array(11).unwrap_or_default(),
                },
                active: r.bool(12).unwrap_or(true),
                present: r.bool(13).unwrap_or(false),
            });
        }
        Ok(out)
    }
}
