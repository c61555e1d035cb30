//! Salesforce's date and datetime text forms, and a millisecond clock that never goes
//! backwards (so `SystemModstamp` cursors behave).

// Calendar arithmetic is the SOQL crate's, so query date literals and the dates
// written in responses can never disagree.
use soql::{civil_from_days, days_from_civil};
use std::sync::atomic::{AtomicI64, Ordering};

pub const MS_PER_DAY: i64 = 86_400_000;

static LAST_STAMP: AtomicI64 = AtomicI64::new(0);

/// Wall-clock milliseconds since the epoch.
pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Milliseconds since the epoch for stamping a change: never smaller than any stamp
/// handed out before.
pub fn stamp_ms() -> i64 {
    let now = wall_ms();
    let prev = LAST_STAMP.fetch_max(now, Ordering::SeqCst);
    now.max(prev)
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn push_year(out: &mut Vec<u8>, y: i64) {
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push2(out, y / 100);
        push2(out, y % 100);
    } else {
        out.extend_from_slice(y.to_string().as_bytes());
    }
}

/// Appends `2024-02-06`.
pub fn write_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    push_year(out, y);
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
}

/// Appends `2024-02-06T20:48:32.000+0000`.
pub fn write_datetime(out: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    write_date(out, days);
    out.push(b'T');
    let secs = (rem / 1000) as u32;
    push2(out, secs / 3600);
    out.push(b':');
    push2(out, (secs / 60) % 60);
    out.push(b':');
    push2(out, secs % 60);
    out.push(b'.');
    let millis = (rem % 1000) as u32;
    out.push(b'0' + (millis / 100) as u8);
    push2(out, millis % 100);
    out.extend_from_slice(b"+0000");
}

/// Appends a time of day, `20:48:32.000Z`.
pub fn write_time(out: &mut Vec<u8>, ms: i32) {
    let ms = ms.rem_euclid(MS_PER_DAY as i32) as u32;
    push2(out, ms / 3_600_000);
    out.push(b':');
    push2(out, (ms / 60_000) % 60);
    out.push(b':');
    push2(out, (ms / 1000) % 60);
    out.push(b'.');
    out.push(b'0' + (ms % 1000 / 100) as u8);
    push2(out, ms % 100);
    out.push(b'Z');
}

pub fn datetime_string(ms: i64) -> String {
    let mut v = Vec::with_capacity(28);
    write_datetime(&mut v, ms);
    String::from_utf8_lossy(&v).into_owned()
}

pub fn date_string(days: i64) -> String {
    let mut v = Vec::with_capacity(10);
    write_date(&mut v, days);
    String::from_utf8_lossy(&v).into_owned()
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, c| {
        acc.checked_mul(10)?.checked_add((c - b'0') as u32)
    })
}

/// Parses `YYYY-MM-DD` into a day number.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&b[..4])? as i64;
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses the datetime forms clients send: `2024-01-01T00:00:00`, optional fraction of
/// any length, then `Z`, `+hh:mm`, `+hhmm` or nothing (UTC). Also a bare date (midnight UTC).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() == 10 {
        return parse_date(s).map(|d| d * MS_PER_DAY);
    }
    let b = s.as_bytes();
    if b.len() < 19 || !(b[10] == b'T' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = parse_date(&s[..10])?;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &b[start..i];
        let mut scale = 100;
        for &c in frac.iter().take(3) {
            millis += (c - b'0') as i64 * scale;
            scale /= 10;
        }
    }
    let offset_min: i64 = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hh, mm) = match rest {
                [a, b2, b':', c, d] => (digits(&[*a, *b2])?, digits(&[*c, *d])?),
                [a, b2, c, d] => (digits(&[*a, *b2])?, digits(&[*c, *d])?),
                [a, b2] => (digits(&[*a, *b2])?, 0),
                _ => return None,
            };
            let m = (hh * 60 + mm) as i64;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    Some(
        days * MS_PER_DAY + (h as i64 * 3600 + mi as i64 * 60 + sec as i64) * 1000 + millis
            - offset_min * 60_000,
    )
}

/// RFC 1123 (`Tue, 06 Feb 2024 20:48:32 GMT`), used by `If-Modified-Since`.
pub fn parse_http_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(s.trim())
        .ok()
        .map(|d| d.timestamp_millis())
}

pub fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let ms = parse_datetime("2024-02-06T20:48:32.000+0000").unwrap();
        assert_eq!(datetime_string(ms), "2024-02-06T20:48:32.000+0000");
        assert_eq!(parse_datetime("2024-02-06T20:48:32Z"), Some(ms));
        assert_eq!(parse_datetime("2024-02-06T21:48:32.000000+01:00"), Some(ms));
        assert_eq!(parse_datetime("2024-02-06T20:48:32.5Z"), Some(ms + 500));
        assert_eq!(date_string(parse_date("2000-02-29").unwrap()), "2000-02-29");
        assert_eq!(parse_date("2001-02-29"), None);
        assert_eq!(datetime_string(-1), "1969-12-31T23:59:59.999+0000");
        let h = parse_http_date("Tue, 06 Feb 2024 20:48:32 GMT").unwrap();
        assert_eq!(h, ms);
        assert_eq!(http_date(ms), "Tue, 06 Feb 2024 20:48:32 GMT");
    }
}
