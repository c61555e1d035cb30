//! Serde helpers for Salesforce's loosely typed JSON.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Treats an explicit `null` like a missing field.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Parses the datetime forms Salesforce emits and accepts: `2024-02-06T20:48:32.000+0000`,
/// `...Z`, `...+00:00`, with or without fractional seconds.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

pub(crate) fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse_datetime(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("not a Salesforce datetime: {s:?}")))
}

pub(crate) fn opt_datetime<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_datetime(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a Salesforce datetime: {s:?}"))),
    }
}

/// Formats a time the way SOQL literals and `/updated` parameters want it.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Formats a time for `If-Modified-Since` / `If-Unmodified-Since` (RFC 1123).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn salesforce_datetime_forms() {
        let want = Utc.with_ymd_and_hms(2024, 2, 6, 20, 48, 32).unwrap();
        for s in [
            "2024-02-06T20:48:32.000+0000",
            "2024-02-06T20:48:32+0000",
            "2024-02-06T20:48:32Z",
            "2024-02-06T20:48:32.000Z",
            "2024-02-06T21:48:32.000+01:00",
        ] {
            assert_eq!(parse_datetime(s), Some(want), "{s}");
        }
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn formats() {
        let t = Utc.with_ymd_and_hms(1994, 11, 15, 8, 12, 31).unwrap();
        assert_eq!(http_date(t), "Tue, 15 Nov 1994 08:12:31 GMT");
        assert_eq!(format_datetime(t), "1994-11-15T08:12:31.000Z");
    }
}
