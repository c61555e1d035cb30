//! Salesforce record ids: 15-character case-sensitive ids and the 18-character form
//! with its case-checksum suffix.
//!
//! The emulator encodes a record's row number in its id (`<prefix>Em0<9 base62 digits>`),
//! so a lookup by id needs no index.

const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Instance and reserved characters every emulator id carries after the key prefix.
const POD: &[u8; 3] = b"Em0";

/// The three checksum characters that turn a 15-character id into 18.
pub fn checksum(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk, slot) in out.iter_mut().enumerate() {
        let mut bits = 0usize;
        for j in 0..5 {
            if let Some(c) = id15.get(chunk * 5 + j) {
                if c.is_ascii_uppercase() {
                    bits |= 1 << j;
                }
            }
        }
        *slot = CHECKSUM_ALPHABET[bits];
    }
    out
}

/// Turns a 15-character id into its 18-character form; returns other lengths unchanged.
pub fn to18(id: &str) -> String {
    if id.len() != 15 {
        return id.to_string();
    }
    let mut s = String::with_capacity(18);
    s.push_str(id);
    for c in checksum(id.as_bytes()) {
        s.push(c as char);
    }
    s
}

/// Checks an id's shape (15 or 18 alphanumerics, and a correct checksum for 18) and
/// returns its 15-character form.
pub fn normalize(id: &str) -> Option<&str> {
    let b = id.as_bytes();
    if !(b.len() == 15 || b.len() == 18) || !b.iter().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if b.len() == 18 {
        let want = checksum(&b[..15]);
        // Salesforce treats the suffix case-insensitively.
        if !want
            .iter()
            .zip(&b[15..])
            .all(|(w, g)| w.eq_ignore_ascii_case(g))
        {
            return None;
        }
    }
    Some(&id[..15])
}

/// Writes the 18-character id of row `seq` of an object with key prefix `prefix`.
pub fn write_id(prefix: &[u8; 3], seq: u64, out: &mut [u8; 18]) {
    out[..3].copy_from_slice(prefix);
    out[3..6].copy_from_slice(POD);
    let mut n = seq;
    for i in (6..15).rev() {
        out[i] = BASE62[(n % 62) as usize];
        n /= 62;
    }
    let cs = checksum(&out[..15]);
    out[15..].copy_from_slice(&cs);
}

/// The 18-character id of row `seq`.
pub fn make_id(prefix: &[u8; 3], seq: u64) -> String {
    let mut buf = [0u8; 18];
    write_id(prefix, seq, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn base62_value(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as u64),
        b'A'..=b'Z' => Some((c - b'A') as u64 + 10),
        b'a'..=b'z' => Some((c - b'a') as u64 + 36),
        _ => None,
    }
}

/// Decodes an id minted by this emulator into (key prefix, row sequence number).
pub fn decode(id: &str) -> Option<([u8; 3], u64)> {
    let id15 = normalize(id)?.as_bytes();
    if &id15[3..6] != POD {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &id15[6..15] {
        n = n * 62 + base62_value(c)?;
    }
    Some(([id15[0], id15[1], id15[2]], n))
}

/// The key prefix of any well-formed id.
pub fn prefix_of(id: &str) -> Option<[u8; 3]> {
    let b = normalize(id)?.as_bytes();
    Some([b[0], b[1], b[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        assert_eq!(to18("001D000000IqhSL"), "001D000000IqhSLIAZ");
        assert_eq!(to18("003RO0000035WQg"), "003RO0000035WQgYAM");
    }

    #[test]
    fn round_trip() {
        let id = make_id(b"003", 123_456_789);
        assert_eq!(id.len(), 18);
        assert_eq!(decode(&id), Some((*b"003", 123_456_789)));
        assert_eq!(decode(&id[..15]), Some((*b"003", 123_456_789)));
        assert_eq!(normalize("003RO0000035WQgYAX"), None);
        assert_eq!(normalize("003RO0000035WQgyam"), Some("003RO0000035WQg"));
        assert_eq!(normalize("not-an-id"), None);
    }
}
