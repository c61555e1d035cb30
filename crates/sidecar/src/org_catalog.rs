//! What SQL reads of the org beside the database: with no library on the server, the
//! management functions cannot call Salesforce, so sequin-sf keeps the org's objects
//! (per credential) and the fields of every synced object in `sequin_sf._org_objects`
//! and `_org_fields` (sql/plain/library.sql). An org's objects are listed at once for a
//! new or changed credential, when SQL asks for a list over a minute old (a shared
//! advisory lock, `_org_list_ask_keys`), and daily: one global describe each. A synced
//! object's fields are recorded by its sync whenever it reads the describe
//! (`sync_engine::read::record_org_fields`); this describes only an object no sync has
//! described yet, once: a paused sync's, or one its sync has not set up within a minute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use sync_engine::db::{tx, Database, Session};
use sync_engine::DbError;

use crate::http::Tally;
use crate::keys::Key;

/// A failed read is tried again after this long (a credential whose login fails, an
/// object the user cannot describe).
const RETRY_AFTER: Duration = Duration::from_secs(60);

pub struct OrgCatalog {
    runtime: tokio::runtime::Runtime,
    /// the API requests made, for /metrics
    requests: Tally,
    /// (credential, object or "" for the object list) -> when a read of it last failed
    failed: HashMap<(String, String), Instant>,
    /// logged-in clients of one refresh, by credential (forgotten at the next, which
    /// reads credentials again: they may have been replaced or sealed anew)
    clients: HashMap<String, salesforce::Client>,
}

impl OrgCatalog {
    pub fn new(requests: Tally) -> Result<Self, String> {
        Ok(OrgCatalog {
            runtime: sync_engine::runtime::http_runtime()
                .map_err(|e| format!("could not start the HTTP runtime: {e}"))?,
            requests,
            failed: HashMap::new(),
            clients: HashMap::new(),
        })
    }

    /// Reads what is due (object lists, fields no sync has described), and counts the
    /// API requests it took.
    pub fn refresh(&mut self, db: &dyn Database, key: &Key) -> Result<(), DbError> {
        self.clients.clear();
        let done = self.read_due(db, key);
        let made: u64 = self.clients.values().map(|c| c.stats().requests).sum();
        self.requests.add(made);
        done
    }

    fn read_due(&mut self, db: &dyn Database, key: &Key) -> Result<(), DbError> {
        let credentials: Vec<String> = tx(db, |s| {
            Ok::<_, DbError>(
                s.query(
                    "SELECT c.name FROM sequin_sf._credentials c
                       LEFT JOIN sequin_sf._org_objects_read r ON r.credential = c.name
                      WHERE r.credential IS NULL OR r.read_at < c.updated_at
                         OR r.read_at < now() - interval '1 day'
                         OR (sequin_sf._org_list_stale(r.read_at) AND EXISTS (
                                SELECT 1 FROM pg_catalog.pg_locks l, sequin_sf._org_list_ask_keys(c.name) k
                                 WHERE l.locktype = 'advisory' AND l.objsubid = 2
                                   AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                                      WHERE datname = current_database())
                                   AND l.classid = k.key1::oid AND l.objid = k.key2::oid))
                      ORDER BY c.name",
                    &[],
                )?
                .iter()
                .filter_map(|r| r.text(0))
                .collect(),
            )
        })?;
        for credential in credentials {
            // (a credential another process lists is left to it)
            if self.may_try(&credential, "") && try_hold_listing(db, &credential)? {
                let listed = self.list_objects(db, key, &credential);
                release_listing(db, &credential)?;
                // a failure to list is recorded for SQL to say, and logged
                let _outcome = listed?;
            }
        }
        let objects: Vec<(String, String, String)> = tx(db, |s| {
            Ok::<_, DbError>(
                s.query(
                    "SELECT DISTINCT ON (s.credential, c.object_name) s.credential, s.name, c.object_name
                       FROM sequin_sf._collections c JOIN sequin_sf._syncs s ON s.name = c.sync_name
                      WHERE NOT EXISTS (SELECT 1 FROM sequin_sf._org_fields f
                                         WHERE f.credential = s.credential AND f.object_name = c.object_name)
                        -- a running sync describes its new collection itself, within a
                        -- pass unless a backfill before it holds it up
                        AND (s.paused OR c.added_at < now() - interval '1 minute')
                      ORDER BY s.credential, c.object_name, s.name",
                    &[],
                )?
                .iter()
                .filter_map(|r| Some((r.text(0)?, r.text(1)?, r.text(2)?)))
                .collect(),
            )
        })?;
        for (credential, sync, object) in objects {
            if self.may_try(&credential, &object) {
                self.describe_fields(db, key, &credential, &sync, &object)?;
            }
        }
        Ok(())
    }

    /// The credential's client, built (and logged in at its first request) once per
    /// refresh, however many of its objects are read.
    fn client(
        &mut self,
        db: &dyn Database,
        key: &Key,
        credential: &str,
    ) -> Result<salesforce::Client, String> {
        if let Some(c) = self.clients.get(credential) {
            return Ok(c.clone());
        }
        let c = crate::keys::client_for(db, key, credential, None)?;
        self.clients.insert(credential.to_string(), c.clone());
        Ok(c)
    }

    fn may_try(&self, credential: &str, object: &str) -> bool {
        self.failed
            .get(&(credential.to_string(), object.to_string()))
            .is_none_or(|at| at.elapsed() >= RETRY_AFTER)
    }

    fn failed(&mut self, credential: &str, object: &str, error: &str) {
        log::warn!("sequin-sf: reading the org of credential {credential}: {error}");
        self.failed
            .insert((credential.to_string(), object.to_string()), Instant::now());
    }

    /// Lists the org's objects for the credential into `_org_objects`; a failure is
    /// recorded with the read, for `available_collections` to say. The caller holds
    /// the listing (`hold_listing`).
    pub fn list_objects(
        &mut self,
        db: &dyn Database,
        key: &Key,
        credential: &str,
    ) -> Result<Result<usize, String>, DbError> {
        let listed = self.client(db, key, credential).and_then(|client| {
            match self.runtime.block_on(client.describe_global(None)) {
                Ok(g) => Ok(g.map(|g| g.sobjects).unwrap_or_default()),
                Err(e) => Err(e.to_string()),
            }
        });
        let (rows, error) = match &listed {
            Ok(objects) => (
                serde_json::Value::Array(
                    objects
                        .iter()
                        .map(|o| {
                            json!({"name": o.name, "label": o.label, "custom": o.custom,
                                   "queryable": o.queryable, "replicateable": o.replicateable})
                        })
                        .collect(),
                ),
                None,
            ),
            Err(e) => (json!([]), Some(e.as_str())),
        };
        tx(db, |s: &mut dyn Session| {
            if error.is_none() {
                s.execute(
                    "DELETE FROM sequin_sf._org_objects WHERE credential = $1",
                    &[credential.into()],
                )?;
                s.execute(
                    "INSERT INTO sequin_sf._org_objects (credential, name, label, custom, queryable, replicateable)
                     SELECT $1, x.name, x.label, x.custom, x.queryable, x.replicateable
                       FROM jsonb_to_recordset($2) AS x(name text, label text, custom boolean,
                                                        queryable boolean, replicateable boolean)",
                    &[credential.into(), (&rows).into()],
                )?;
            }
            // the credential may have been dropped meanwhile: then nothing is recorded
            s.execute(
                "INSERT INTO sequin_sf._org_objects_read (credential, read_at, error)
                 SELECT $1, now(), $2 WHERE EXISTS (SELECT 1 FROM sequin_sf._credentials WHERE name = $1)
                 ON CONFLICT (credential) DO UPDATE SET read_at = now(), error = $2",
                &[credential.into(), error.into()],
            )
        })?;
        if let Err(e) = &listed {
            self.failed(credential, "", e);
        }
        Ok(listed.map(|objects| objects.len()))
    }

    /// Describes an object of `sync` no sync has described yet, recording its fields as
    /// the sync would (`record_org_fields`).
    fn describe_fields(
        &mut self,
        db: &dyn Database,
        key: &Key,
        credential: &str,
        sync: &str,
        object: &str,
    ) -> Result<(), DbError> {
        let described = self.client(db, key, credential).and_then(|client| {
            match self.runtime.block_on(client.describe(object, None)) {
                Ok(Some(d)) => Ok(d),
                Ok(None) => Err(format!("{object} was not described")),
                Err(e) => Err(e.to_string()),
            }
        });
        match described {
            Ok(d) => tx(db, |s: &mut dyn Session| {
                sync_engine::read::record_org_fields(s, sync, object, &d)
            }),
            Err(e) => {
                self.failed(credential, object, &e);
                Ok(())
            }
        }
    }
}

/// The advisory lock (two keys, `$1` the credential) a process holds for its session
/// while it lists a credential's org: a `credential create` command lists the org of
/// the credential it stores, and a running sequin-sf would find that credential not
/// yet listed; the org is listed once, not by both at once.
const LISTING_LOCK: &str = "hashtext('sequin_sf org list'), hashtext($1)";

/// Takes the listing of `credential`'s org for this session, waiting for another
/// process that lists it (a command storing a credential, before it stores it).
pub fn hold_listing(db: &dyn Database, credential: &str) -> Result<(), DbError> {
    tx(db, |s| {
        s.execute(
            &format!("SELECT pg_advisory_lock({LISTING_LOCK})"),
            &[credential.into()],
        )
    })
}

/// Takes the listing of `credential`'s org if no other process holds it.
fn try_hold_listing(db: &dyn Database, credential: &str) -> Result<bool, DbError> {
    tx(db, |s| {
        Ok(s.query_one(
            &format!("SELECT pg_try_advisory_lock({LISTING_LOCK})"),
            &[credential.into()],
        )?
        .and_then(|r| r.bool(0))
        .unwrap_or(false))
    })
}

pub fn release_listing(db: &dyn Database, credential: &str) -> Result<(), DbError> {
    tx(db, |s| {
        s.execute(
            &format!("SELECT pg_advisory_unlock({LISTING_LOCK})"),
            &[credential.into()],
        )
    })
}
