//! What both backends and the worker need to talk to Salesforce: a tokio runtime whose
//! threads never receive Postgres's signals, and a client built from a stored credential.

use std::time::Duration;

use pgrx::prelude::*;

use crate::secrets;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential \"{0}\" does not exist; create it with sequin_sf.create_credential(...)")]
    Missing(String),
    #[error("credential \"{name}\": {source}")]
    Secret {
        name: String,
        source: secrets::SecretError,
    },
    #[error("credential \"{name}\" of kind {kind} lacks {what}; recreate it with sequin_sf.create_credential(...)")]
    Incomplete {
        name: String,
        kind: String,
        what: &'static str,
    },
    #[error("credential \"{name}\": {source}")]
    Client {
        name: String,
        source: salesforce::Error,
    },
    #[error("reading credential \"{name}\": {source}")]
    Spi {
        name: String,
        source: pgrx::spi::Error,
    },
}

/// The runtime a backend's calls to Salesforce run on (the engine's: its threads never
/// receive Postgres's signals).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    sync_engine::runtime::http_runtime()
}

/// Reads a credential from `sequin_sf._credentials` (needs the privileges to do so) and
/// decrypts its secrets.
pub fn load_credential(name: &str) -> Result<salesforce::Credential, CredentialError> {
    let spi = |source| CredentialError::Spi {
        name: name.to_string(),
        source,
    };
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT kind, login_url, client_id, username, secret FROM sequin_sf._credentials WHERE name = $1",
            None,
            &[name.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let r = t.first();
        Ok::<_, pgrx::spi::Error>(Some((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<String>(2)?.unwrap_or_default(),
            r.get::<String>(3)?,
            r.get::<String>(4)?,
            r.get::<Vec<u8>>(5)?.unwrap_or_default(),
        )))
    })
    .map_err(spi)?;
    let Some((kind, login_url, client_id, username, sealed)) = row else {
        return Err(CredentialError::Missing(name.to_string()));
    };
    let s = secrets::open(name, &sealed).map_err(|source| CredentialError::Secret {
        name: name.to_string(),
        source,
    })?;
    let need = |v: Option<String>, what: &'static str| {
        v.ok_or_else(|| CredentialError::Incomplete {
            name: name.to_string(),
            kind: kind.clone(),
            what,
        })
    };
    let client_id = need(client_id, "client_id")?;
    Ok(match kind.as_str() {
        "refresh_token" => salesforce::Credential::RefreshToken {
            login_url,
            client_id,
            client_secret: need(s.client_secret, "client_secret")?,
            refresh_token: need(s.refresh_token, "refresh_token")?,
        },
        "password" => salesforce::Credential::Password {
            login_url,
            client_id,
            client_secret: need(s.client_secret, "client_secret")?,
            username: need(username, "username")?,
            password: need(s.password, "password")?,
        },
        "client_credentials" => salesforce::Credential::ClientCredentials {
            login_url,
            client_id,
            client_secret: need(s.client_secret, "client_secret")?,
        },
        _ => salesforce::Credential::JwtBearer {
            login_url,
            client_id,
            username: need(username, "username")?,
            private_key_pem: need(s.private_key, "private_key")?,
        },
    })
}

/// A client for a stored credential. Timeouts are short enough that a stuck request
/// never delays a shutdown for long. `call_options_client` names the client in every
/// request's `Sforce-Call-Options` (the worker's own changes are recognised by it).
pub fn client_for(
    name: &str,
    call_options_client: Option<&str>,
) -> Result<salesforce::Client, CredentialError> {
    let mut config = salesforce::ClientConfig::new(load_credential(name)?);
    config.call_options_client = call_options_client.map(str::to_string);
    config.request_timeout = Duration::from_secs(60);
    config.connect_timeout = Duration::from_secs(10);
    salesforce::Client::new(config).map_err(|source| CredentialError::Client {
        name: name.to_string(),
        source,
    })
}
