//! What both backends and the worker need to talk to Salesforce: a tokio runtime whose
//! threads never receive Postgres's signals, and a client built from a stored credential.

use crate::secrets;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential \"{name}\": {source}")]
    Key {
        name: String,
        source: secrets::SecretError,
    },
    #[error("{0}")]
    Stored(#[from] sync_engine::credentials::CredentialError),
    #[error("credential \"{name}\": {source}")]
    Client {
        name: String,
        source: salesforce::Error,
    },
}

/// The runtime a backend's calls to Salesforce run on (the engine's: its threads never
/// receive Postgres's signals).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    sync_engine::runtime::http_runtime()
}

/// Reads a credential from `sequin_sf._credentials` (needs the privileges to do so) and
/// opens its secrets with the data directory's key.
pub fn load_credential(name: &str) -> Result<salesforce::Credential, CredentialError> {
    let key =
        secrets::key(secrets::KeyUse::ExistingOnly).map_err(|source| CredentialError::Key {
            name: name.to_string(),
            source,
        })?;
    let key_name = secrets::key_path().display().to_string();
    Ok(sync_engine::credentials::load(
        &mut crate::spi::SpiSession,
        name,
        (&key, &key_name),
    )?)
}

/// A client for a stored credential (see `sync_engine::credentials::client`).
pub fn client_for(
    name: &str,
    call_options_client: Option<&str>,
) -> Result<salesforce::Client, CredentialError> {
    sync_engine::credentials::client(load_credential(name)?, call_options_client).map_err(
        |source| CredentialError::Client {
            name: name.to_string(),
            source,
        },
    )
}
