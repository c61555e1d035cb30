//! Stored credentials: their secrets sealed with ChaCha20-Poly1305 under a 32-byte key
//! the host keeps outside the database (the extension: a file of the data directory),
//! so a dump or a copy of the tables alone never reveals them; and a credential read
//! back from `sequin_sf._credentials` as a Salesforce client takes it.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::db::{DbError, Session};

const NONCE_LEN: usize = 12;

/// Format tag of sealed secrets bound to their credential's name (associated data).
/// Secrets sealed before it have no tag and are opened without associated data.
const BOUND: u8 = 1;

/// The secret parts of a credential. `Debug` is not derived so they never get printed.
#[derive(Default, Serialize, Deserialize)]
pub struct Secrets {
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
    pub password: Option<String>,
    pub private_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential \"{0}\" does not exist; create it with sequin_sf.create_credential(...)")]
    Missing(String),
    /// `key` names the key the host used (its file), for the message.
    #[error("credential \"{name}\": the stored secret could not be decrypted: the key {key} is not the one it was encrypted with, or the secret was not stored for this credential; recreate the credential")]
    Decrypt { name: String, key: String },
    #[error("credential \"{name}\": the decrypted secret is malformed: {message}")]
    Malformed { name: String, message: String },
    #[error("credential \"{name}\" of kind {kind} lacks {what}; recreate it with sequin_sf.create_credential(...)")]
    Incomplete {
        name: String,
        kind: String,
        what: &'static str,
    },
    #[error("reading credential \"{name}\": {source}")]
    Db { name: String, source: DbError },
}

/// BOUND || nonce || ciphertext of the JSON-encoded secrets, with the credential's name
/// as associated data: a sealed secret copied to another credential does not open.
pub fn seal(key: &[u8; 32], credential: &str, secrets: &Secrets) -> Result<Vec<u8>, String> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let nonce: [u8; NONCE_LEN] = rand::random();
    let plain = serde_json::to_vec(secrets).map_err(|e| e.to_string())?;
    let payload = Payload {
        msg: &plain,
        aad: credential.as_bytes(),
    };
    let mut out = vec![BOUND];
    out.extend_from_slice(&nonce);
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| "encryption failed".to_string())?,
    );
    Ok(out)
}

/// Opens what `seal` sealed for `credential`; `key_name` says in an error which key was
/// tried.
pub fn open(
    key: &[u8; 32],
    key_name: &str,
    credential: &str,
    sealed: &[u8],
) -> Result<Secrets, CredentialError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let decrypt = |body: &[u8], aad: &[u8]| {
        if body.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = body.split_at(NONCE_LEN);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
    };
    let plain = match sealed.split_first() {
        Some((&BOUND, rest)) => decrypt(rest, credential.as_bytes()),
        _ => None,
    }
    // sealed before secrets were bound to their credential (release 0.1.0)
    .or_else(|| decrypt(sealed, b""))
    .ok_or_else(|| CredentialError::Decrypt {
        name: credential.to_string(),
        key: key_name.to_string(),
    })?;
    serde_json::from_slice(&plain).map_err(|e| CredentialError::Malformed {
        name: credential.to_string(),
        message: e.to_string(),
    })
}

/// Reads a credential from `sequin_sf._credentials` and opens its secrets with `key`
/// (the host's, read by `key_name`).
pub fn load(
    s: &mut dyn Session,
    name: &str,
    (key, key_name): (&[u8; 32], &str),
) -> Result<salesforce::Credential, CredentialError> {
    let row = s
        .query_one(
            "SELECT kind, login_url, client_id, username, secret FROM sequin_sf._credentials WHERE name = $1",
            &[name.into()],
        )
        .map_err(|source| CredentialError::Db {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| CredentialError::Missing(name.to_string()))?;
    let kind = row.text(0).unwrap_or_default();
    let login_url = row.text(1).unwrap_or_default();
    let sealed = row.bytes(4).unwrap_or_default();
    let secrets = open(key, key_name, name, &sealed)?;
    let need = |v: Option<String>, what: &'static str| {
        v.ok_or_else(|| CredentialError::Incomplete {
            name: name.to_string(),
            kind: kind.clone(),
            what,
        })
    };
    let client_id = need(row.text(2), "client_id")?;
    let username = row.text(3);
    Ok(match kind.as_str() {
        "refresh_token" => salesforce::Credential::RefreshToken {
            login_url,
            client_id,
            client_secret: need(secrets.client_secret, "client_secret")?,
            refresh_token: need(secrets.refresh_token, "refresh_token")?,
        },
        "password" => salesforce::Credential::Password {
            login_url,
            client_id,
            client_secret: need(secrets.client_secret, "client_secret")?,
            username: need(username, "username")?,
            password: need(secrets.password, "password")?,
        },
        "client_credentials" => salesforce::Credential::ClientCredentials {
            login_url,
            client_id,
            client_secret: need(secrets.client_secret, "client_secret")?,
        },
        _ => salesforce::Credential::JwtBearer {
            login_url,
            client_id,
            username: need(username, "username")?,
            private_key_pem: need(secrets.private_key, "private_key")?,
        },
    })
}

/// A client for a stored credential, with the timeouts a sync uses: short enough that
/// a stuck request never delays a shutdown for long. `call_options_client` names the
/// client in every request's `Sforce-Call-Options` (the sync's own changes are
/// recognised by it).
pub fn client(
    credential: salesforce::Credential,
    call_options_client: Option<&str>,
) -> Result<salesforce::Client, salesforce::Error> {
    let mut config = salesforce::ClientConfig::new(credential);
    config.call_options_client = call_options_client.map(str::to_string);
    config.request_timeout = std::time::Duration::from_secs(60);
    config.connect_timeout = std::time::Duration::from_secs(10);
    salesforce::Client::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_their_key_and_name_only() {
        let key = [7u8; 32];
        let s = Secrets {
            client_secret: Some("cs".into()),
            ..Secrets::default()
        };
        let sealed = seal(&key, "a", &s).unwrap();
        let opened = open(&key, "k", "a", &sealed).unwrap();
        assert_eq!(opened.client_secret.as_deref(), Some("cs"));
        assert!(matches!(
            open(&key, "k", "b", &sealed),
            Err(CredentialError::Decrypt { .. })
        ));
        assert!(matches!(
            open(&[8u8; 32], "k", "a", &sealed),
            Err(CredentialError::Decrypt { .. })
        ));
    }
}
