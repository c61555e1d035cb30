//! What SQL reads of the org beside the database: with no library on the server, the
//! management functions cannot call Salesforce, so sequin-sf keeps the org's objects
//! (per credential) and the fields of every synced object in `sequin_sf._org_objects`
//! and `_org_fields` (sql/plain/library.sql), read again hourly, at once for a new
//! credential or collection. One global describe per credential and one describe per
//! synced object an hour.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use sync_engine::db::{tx, Database, Session};
use sync_engine::DbError;

use crate::keys::Key;

/// A failed read is tried again after this long (a credential whose login fails, an
/// object the user cannot describe).
const RETRY_AFTER: Duration = Duration::from_secs(60);

pub struct OrgCatalog {
    runtime: tokio::runtime::Runtime,
    /// (credential, object or "" for the object list) -> when a read of it last failed
    failed: HashMap<(String, String), Instant>,
    /// logged-in clients of one refresh, by credential (forgotten at the next, which
    /// reads credentials again: they may have been replaced or sealed anew)
    clients: HashMap<String, salesforce::Client>,
}

impl OrgCatalog {
    pub fn new() -> Result<Self, String> {
        Ok(OrgCatalog {
            runtime: sync_engine::runtime::http_runtime()
                .map_err(|e| format!("could not start the HTTP runtime: {e}"))?,
            failed: HashMap::new(),
            clients: HashMap::new(),
        })
    }

    /// Reads what is due: object lists of credentials never or not lately listed, fields
    /// of synced objects never or not lately described.
    pub fn refresh(&mut self, db: &dyn Database, key: &Key) -> Result<(), DbError> {
        self.clients.clear();
        let credentials: Vec<String> = tx(db, |s| {
            Ok::<_, DbError>(
                s.query(
                    "SELECT c.name FROM sequin_sf._credentials c
                       LEFT JOIN sequin_sf._org_objects_read r ON r.credential = c.name
                      WHERE r.credential IS NULL OR r.read_at < c.updated_at
                         OR r.read_at < now() - interval '1 hour'
                      ORDER BY c.name",
                    &[],
                )?
                .iter()
                .filter_map(|r| r.text(0))
                .collect(),
            )
        })?;
        for credential in credentials {
            if self.may_try(&credential, "") {
                // a failure is recorded for SQL to say, and logged
                let _listed = self.list_objects(db, key, &credential)?;
            }
        }
        let objects: Vec<(String, String)> = tx(db, |s| {
            Ok::<_, DbError>(
                s.query(
                    "SELECT DISTINCT s.credential, c.object_name
                       FROM sequin_sf._collections c JOIN sequin_sf._syncs s ON s.name = c.sync_name
                      WHERE NOT EXISTS (SELECT 1 FROM sequin_sf._org_fields f
                                         WHERE f.credential = s.credential AND f.object_name = c.object_name
                                           AND f.read_at > now() - interval '1 hour')
                      ORDER BY 1, 2",
                    &[],
                )?
                .iter()
                .filter_map(|r| Some((r.text(0)?, r.text(1)?)))
                .collect(),
            )
        })?;
        for (credential, object) in objects {
            if self.may_try(&credential, &object) {
                self.describe_fields(db, key, &credential, &object)?;
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
    /// recorded with the read, for `available_collections` to say.
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
            lock_credential(s, credential)?;
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

    fn describe_fields(
        &mut self,
        db: &dyn Database,
        key: &Key,
        credential: &str,
        object: &str,
    ) -> Result<(), DbError> {
        let described = self.client(db, key, credential).and_then(|client| {
            match self.runtime.block_on(client.describe(object, None)) {
                Ok(Some(d)) => Ok(d.fields),
                Ok(None) => Err(format!("{object} was not described")),
                Err(e) => Err(e.to_string()),
            }
        });
        let fields = match described {
            Ok(f) => f,
            Err(e) => {
                self.failed(credential, object, &e);
                return Ok(());
            }
        };
        let rows = serde_json::Value::Array(
            fields
                .iter()
                .map(|f| json!({"name": f.name, "external_id": f.external_id}))
                .collect(),
        );
        tx(db, |s: &mut dyn Session| {
            lock_credential(s, credential)?;
            s.execute(
                "DELETE FROM sequin_sf._org_fields WHERE credential = $1 AND object_name = $2",
                &[credential.into(), object.into()],
            )?;
            s.execute(
                "INSERT INTO sequin_sf._org_fields (credential, object_name, name, external_id)
                 SELECT $1, $2, x.name, x.external_id
                   FROM jsonb_to_recordset($3) AS x(name text, external_id boolean)
                  WHERE EXISTS (SELECT 1 FROM sequin_sf._credentials WHERE name = $1)",
                &[credential.into(), object.into(), (&rows).into()],
            )
        })
    }
}

/// Serialises writers of one credential's rows (a `credential create` command and a
/// running sequin-sf may list the same org at once) until the transaction ends.
fn lock_credential(s: &mut dyn Session, credential: &str) -> Result<(), DbError> {
    s.execute(
        "SELECT pg_advisory_xact_lock(hashtext('sequin_sf org catalog'), hashtext($1))",
        &[credential.into()],
    )
}
