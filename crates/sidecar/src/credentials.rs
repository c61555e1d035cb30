//! Credentials from the command line, beside the database: `sequin-sf credential
//! create` seals the secrets with sequin-sf's key and stores only the ciphertext (through
//! `sequin_sf._store_credential`, the checks `create_credential` makes), then lists the
//! org's objects to show the login works; `sequin-sf credential rotate-key` seals every
//! credential again under a new key in one transaction. Secrets are read from the
//! environment or a JSON file, never from the command line (which `ps` shows).

use std::path::Path;

use sync_engine::credentials::{open, seal, Secrets};
use sync_engine::db::{tx, Database};
use sync_engine::DbError;

use crate::keys::Key;
use crate::org_catalog::OrgCatalog;

/// What `credential create` was given besides the secrets.
pub struct NewCredential {
    pub name: String,
    pub kind: String,
    pub login_url: String,
    pub client_id: Option<String>,
    pub username: Option<String>,
}

/// The secrets: `SEQUIN_SF_CLIENT_SECRET`, `SEQUIN_SF_REFRESH_TOKEN`,
/// `SEQUIN_SF_PASSWORD`, `SEQUIN_SF_PRIVATE_KEY_FILE` (a PEM file), or the same keys as
/// `create_credential`'s secrets_file in a JSON file; each given once.
pub fn secrets(secrets_file: Option<&Path>) -> Result<Secrets, String> {
    let file: serde_json::Map<String, serde_json::Value> = match secrets_file {
        None => serde_json::Map::new(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a JSON object: {e}", p.display()))?
        }
    };
    let pick = |key: &str, env: &str| -> Result<Option<String>, String> {
        let from_env = std::env::var(env).ok().filter(|v| !v.is_empty());
        let from_file = match file.get(key) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(format!("{key} in the secrets file must be a string")),
        };
        match (from_env, from_file) {
            (Some(_), Some(_)) => Err(format!(
                "{key} is given both in {env} and in the secrets file; give each secret once"
            )),
            (a, b) => Ok(a.or(b)),
        }
    };
    let private_key = match std::env::var("SEQUIN_SF_PRIVATE_KEY_FILE") {
        Ok(path) if !path.is_empty() => {
            if file.contains_key("private_key") {
                return Err("private_key is given both in SEQUIN_SF_PRIVATE_KEY_FILE and in the secrets file; give each secret once".into());
            }
            Some(std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?)
        }
        _ => pick("private_key", "SEQUIN_SF_PRIVATE_KEY")?,
    };
    Ok(Secrets {
        client_secret: pick("client_secret", "SEQUIN_SF_CLIENT_SECRET")?,
        refresh_token: pick("refresh_token", "SEQUIN_SF_REFRESH_TOKEN")?,
        password: pick("password", "SEQUIN_SF_PASSWORD")?,
        private_key,
    })
}

/// Stores the credential, then lists its org's objects; returns what to print.
pub fn create(
    db: &dyn Database,
    key: &Key,
    c: &NewCredential,
    s: &Secrets,
) -> Result<String, String> {
    let sealed = seal(&key.bytes, &c.name, s)?;
    let given: Vec<String> = [
        ("client_secret", &s.client_secret),
        ("refresh_token", &s.refresh_token),
        ("password", &s.password),
        ("private_key", &s.private_key),
    ]
    .iter()
    .filter(|(_, v)| v.is_some())
    .map(|(k, _)| k.to_string())
    .collect();
    // held until the org is listed below, so that a running sequin-sf leaves it to us
    crate::org_catalog::hold_listing(db, &c.name).map_err(|e| e.to_string())?;
    tx(db, |t| {
        t.execute(
            "SELECT sequin_sf._store_credential($1, $2, $3, $4, $5, $6, $7)",
            &[
                c.name.as_str().into(),
                c.kind.as_str().into(),
                c.login_url.as_str().into(),
                c.client_id.as_deref().into(),
                c.username.as_deref().into(),
                (&given).into(),
                sealed.as_slice().into(),
            ],
        )
    })
    .map_err(|e| e.to_string())?;
    // (a one-off command: its requests are printed by no /metrics)
    let mut catalog = OrgCatalog::new(crate::http::Tally::default())?;
    let listed = catalog.list_objects(db, key, &c.name);
    crate::org_catalog::release_listing(db, &c.name).map_err(|e| e.to_string())?;
    match listed.map_err(|e| e.to_string())? {
        Ok(n) => Ok(format!(
            "credential {} stored (sealed with {}); logged in: the org has {n} objects",
            c.name, key.name
        )),
        Err(e) => Ok(format!(
            "credential {} stored (sealed with {}), but logging in failed: {e}\n\
             check login_url, client_id and the secrets; sequin_sf.drop_credential('{}') and create it again",
            c.name, key.name, c.name
        )),
    }
}

/// Seals every credential again under `new`, in one transaction: either all are, or
/// none (a credential `old` cannot open stops it, naming the credential).
pub fn rotate_key(db: &dyn Database, old: &Key, new: &Key) -> Result<usize, String> {
    tx(db, |t| {
        let rows = t.query(
            "SELECT name, secret FROM sequin_sf._credentials ORDER BY name FOR UPDATE",
            &[],
        )?;
        for row in &rows {
            let name = row.text(0).unwrap_or_default();
            let sealed = row.bytes(1).unwrap_or_default();
            let secrets = open(&old.bytes, &old.name, &name, &sealed)
                .map_err(|e| DbError::new(e.to_string()))?;
            let again = seal(&new.bytes, &name, &secrets).map_err(DbError::new)?;
            t.execute(
                "UPDATE sequin_sf._credentials SET secret = $2, updated_at = now() WHERE name = $1",
                &[name.as_str().into(), again.as_slice().into()],
            )?;
        }
        Ok::<_, DbError>(rows.len())
    })
    .map_err(|e| e.to_string())
}
