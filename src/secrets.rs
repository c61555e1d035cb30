//! Credential secrets at rest: ChaCha20-Poly1305 with a key kept in a file of the data
//! directory, so a dump or a copy of the tables alone never reveals them.

use std::ffi::CStr;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

const KEY_FILE: &str = "sequin_sf.key";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the key file {0} is damaged (expected 32 bytes); restore it from a backup or recreate the credentials")]
    BadKey(String),
    #[error("the stored secret could not be decrypted: the key file {0} is not the one it was encrypted with; recreate the credential")]
    Decrypt(String),
    #[error("the decrypted secret is malformed: {0}")]
    Malformed(String),
}

/// The secret parts of a credential. `Debug` is not derived so they never get printed.
#[derive(Default, Serialize, Deserialize)]
pub struct Secrets {
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
    pub password: Option<String>,
    pub private_key: Option<String>,
}

/// The cluster's data directory (only the postgres OS user can read it).
pub fn data_dir() -> PathBuf {
    // SAFETY: DataDir is set by the postmaster before any backend or worker runs.
    let dir = unsafe { CStr::from_ptr(pgrx::pg_sys::DataDir) };
    PathBuf::from(dir.to_string_lossy().into_owned())
}

fn key_path() -> PathBuf {
    data_dir().join(KEY_FILE)
}

/// Reads the key, creating it (mode 0600, exclusive create) on first use.
fn key() -> Result<[u8; 32], SecretError> {
    let path = key_path();
    let shown = path.display().to_string();
    let io = |source| SecretError::KeyFile {
        path: shown.clone(),
        source,
    };
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            let k: [u8; 32] = rand::random();
            f.write_all(&k).map_err(io)?;
            f.sync_all().map_err(io)?;
            return Ok(k);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let mut buf = Vec::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(io)?;
    buf.try_into().map_err(|_| SecretError::BadKey(shown))
}

/// nonce || ciphertext of the JSON-encoded secrets.
pub fn seal(secrets: &Secrets) -> Result<Vec<u8>, SecretError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key()?));
    let nonce: [u8; NONCE_LEN] = rand::random();
    let plain = serde_json::to_vec(secrets).map_err(|e| SecretError::Malformed(e.to_string()))?;
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| SecretError::Malformed("encryption failed".into()))?,
    );
    Ok(out)
}

pub fn open(sealed: &[u8]) -> Result<Secrets, SecretError> {
    let shown = key_path().display().to_string();
    if sealed.len() < NONCE_LEN {
        return Err(SecretError::Decrypt(shown));
    }
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key()?));
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), body)
        .map_err(|_| SecretError::Decrypt(shown))?;
    serde_json::from_slice(&plain).map_err(|e| SecretError::Malformed(e.to_string()))
}
