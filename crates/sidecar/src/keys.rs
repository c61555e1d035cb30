//! The key credentials' secrets are sealed with: 32 bytes that sequin-sf holds (a file,
//! or hex in an environment variable) and the database never sees. Sealing itself is
//! the engine's (`sync_engine::credentials`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sync_engine::db::{tx, Database};

pub struct Key {
    pub bytes: [u8; 32],
    /// where it came from, for messages (never the key itself)
    pub name: String,
}

/// The key of a file holding exactly 32 bytes.
pub fn from_file(path: &Path) -> Result<Key, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("the key file {}: {e}", path.display()))?;
    let bytes = bytes.try_into().map_err(|_| {
        format!(
            "the key file {} does not hold a key (expected 32 bytes); `sequin-sf key create PATH` makes one",
            path.display()
        )
    })?;
    Ok(Key {
        bytes,
        name: path.display().to_string(),
    })
}

/// The key given as 64 hexadecimal digits (`SEQUIN_SF_KEY`).
pub fn from_hex(hex: &str, name: &str) -> Result<Key, String> {
    let hex = hex.trim();
    let wrong = || format!("{name} must be 64 hexadecimal digits (32 bytes)");
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(wrong());
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| wrong())?;
    }
    Ok(Key {
        bytes,
        name: name.to_string(),
    })
}

/// Writes a new random key to `path`, readable by its owner only; an existing file is
/// never replaced (it may be the only copy of the key to the stored credentials).
pub fn create(path: &Path) -> Result<(), String> {
    let bytes: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            format!(
                "{}: {e} (an existing key file is never replaced)",
                path.display()
            )
        })?;
    file.write_all(&bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A Salesforce client for a stored credential, its secrets opened with `key`.
pub fn client_for(
    db: &dyn Database,
    key: &Key,
    credential: &str,
    call_options_client: Option<&str>,
) -> Result<salesforce::Client, String> {
    let loaded = tx(db, |s| {
        Ok::<_, sync_engine::DbError>(sync_engine::credentials::load(
            s,
            credential,
            (&key.bytes, &key.name),
        ))
    })
    .map_err(|e| e.to_string())?;
    let credential = loaded.map_err(|e| e.to_string())?;
    sync_engine::credentials::client(credential, call_options_client).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys_are_32_bytes() {
        let k = from_hex(&"0f".repeat(32), "SEQUIN_SF_KEY").unwrap();
        assert_eq!(k.bytes, [15u8; 32]);
        assert!(from_hex("0f0f", "SEQUIN_SF_KEY").is_err());
        assert!(from_hex(&"zz".repeat(32), "SEQUIN_SF_KEY").is_err());
    }

    #[test]
    fn a_key_file_is_never_replaced() {
        let dir = std::env::temp_dir().join(format!("sequin-sf-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let _ = std::fs::remove_file(&path);
        create(&path).unwrap();
        let first = from_file(&path).unwrap().bytes;
        assert!(create(&path).is_err());
        assert_eq!(from_file(&path).unwrap().bytes, first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
