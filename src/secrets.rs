//! The key credential secrets are sealed with (`sync_engine::credentials`): a file of
//! the data directory, so a dump or a copy of the tables alone never reveals them.

use std::ffi::CStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

const KEY_FILE: &str = "sequin_sf.key";
/// Left beside the key when it is created (it holds no secret): a data directory that has
/// it but not the key lost its key, so no database of the cluster may start a new one.
const KEY_MARKER: &str = "sequin_sf.key.created";
const MARKER_TEXT: &[u8] = b"sequin_sf created its key file (sequin_sf.key) in this directory\n";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the key file {0} is damaged (expected 32 bytes); restore it from a backup or recreate the credentials")]
    BadKey(String),
    #[error("the key file {0} is missing, and the stored credentials were encrypted with it; restore it from a backup of this data directory (or copy it from the primary to a standby), then retry")]
    MissingKey(String),
}

/// The cluster's data directory (only the postgres OS user can read it).
pub fn data_dir() -> PathBuf {
    // SAFETY: DataDir is set by the postmaster before any backend or worker runs.
    let dir = unsafe { CStr::from_ptr(pgrx::pg_sys::DataDir) };
    PathBuf::from(dir.to_string_lossy().into_owned())
}

/// The key file's path (errors name it).
pub fn key_path() -> PathBuf {
    data_dir().join(KEY_FILE)
}

fn marker_path() -> PathBuf {
    data_dir().join(KEY_MARKER)
}

/// Whether a missing key file may be created: only while no secret is sealed with
/// one (no credential in this database, and no key ever created in this data directory). A new key would leave every stored credential undecryptable, so a key that
/// went missing (a restore without it, a standby built before it existed) is an error
/// that says so, never a silent new start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    ExistingOnly,
    CreateIfMissing,
}

/// Reads the key, creating it on first use when allowed.
pub fn key(using: KeyUse) -> Result<[u8; 32], SecretError> {
    let path = key_path();
    let shown = path.display().to_string();
    let io = |source| SecretError::KeyFile {
        path: shown.clone(),
        source,
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let had_one = marker_path().exists();
            match using {
                KeyUse::CreateIfMissing if !had_one => create_key(&path).map_err(io)?,
                _ => return Err(SecretError::MissingKey(shown)),
            }
        }
        Err(e) => return Err(io(e)),
    };
    let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey(shown))?;
    // left on creation, or on first use for keys made before the marker existed (0.1.0)
    let marker = marker_path();
    if !marker.exists() {
        let _ = std::fs::write(marker, MARKER_TEXT);
    }
    Ok(key)
}

/// Creates the key file atomically: the key is written and synced under a temporary
/// name, then linked into place, which fails if another session got there first (its
/// key is then the one). Nobody ever reads a partly written key.
fn create_key(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let tmp = path.with_extension(format!("key.{}.tmp", std::process::id()));
    let k: [u8; 32] = rand::random();
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&k)?;
            f.sync_all()
        });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(k.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}
