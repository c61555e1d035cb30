//! Poll cursors: where the next poll starts, and how a page moves the cursor.
//!
//! A transaction's rows become visible in Salesforce when it commits, possibly after
//! rows with later stamps were already read. Each poll therefore re-reads an overlap
//! window before the cursor; rows re-read unchanged are skipped when applied (their
//! stored stamp is equal), so the overlap costs bandwidth, never duplicate events.

use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, Utc};

/// SOQL datetime literal: `2024-02-06T20:48:32.000Z`.
pub fn soql_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses the datetime forms Salesforce returns (`2024-02-06T20:48:32.000+0000`) and
/// RFC 3339.
pub fn parse_sf_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Where the next poll's `>=` starts.
pub fn poll_since(cursor: DateTime<Utc>, overlap: Duration) -> DateTime<Utc> {
    cursor - overlap
}

/// The cursor after applying a page whose newest stamp is `page_max`. Pages arrive in
/// stamp order, so every row stamped before `page_max` is done; rows at exactly
/// `page_max` may continue on the next page and are re-read by the `>=`.
pub fn advance(cursor: DateTime<Utc>, page_max: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match page_max {
        Some(m) if m > cursor => m,
        _ => cursor,
    }
}

/// The newest stamp among records (JSON objects keyed by API name).
pub fn max_stamp<'a, I>(records: I, stamp_field: &str) -> Option<DateTime<Utc>>
where
    I: IntoIterator<Item = &'a serde_json::Value>,
{
    records
        .into_iter()
        .filter_map(|r| r.get(stamp_field)?.as_str().and_then(parse_sf_datetime))
        .max()
}

/// The window for `/deleted`: Salesforce counts in whole minutes and needs `end` after
/// `start`; the start re-reads `overlap` before the previous end.
pub fn deleted_window(
    last_end: DateTime<Utc>,
    now: DateTime<Utc>,
    overlap: Duration,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = (last_end - overlap).min(now - Duration::minutes(2));
    // Salesforce keeps deleted records for 15 days; older starts are rejected.
    let start = start.max(now - Duration::days(14));
    (start, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_salesforce_datetimes() {
        let want = Utc.with_ymd_and_hms(2024, 2, 6, 20, 48, 32).unwrap();
        assert_eq!(
            parse_sf_datetime("2024-02-06T20:48:32.000+0000"),
            Some(want)
        );
        assert_eq!(parse_sf_datetime("2024-02-06T20:48:32Z"), Some(want));
        assert_eq!(
            parse_sf_datetime("2024-02-06T21:48:32.000+01:00"),
            Some(want)
        );
        assert_eq!(parse_sf_datetime("nope"), None);
        assert_eq!(soql_datetime(want), "2024-02-06T20:48:32.000Z");
    }

    #[test]
    fn cursor_moves_forward_only() {
        let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let t1 = t0 + Duration::seconds(5);
        assert_eq!(advance(t0, Some(t1)), t1);
        assert_eq!(advance(t1, Some(t0)), t1);
        assert_eq!(advance(t1, None), t1);
        assert_eq!(poll_since(t1, Duration::seconds(5)), t0);
    }

    #[test]
    fn max_stamp_of_page() {
        let recs = [
            serde_json::json!({"Id": "a", "SystemModstamp": "2024-01-01T00:00:01.000+0000"}),
            serde_json::json!({"Id": "b", "SystemModstamp": "2024-01-01T00:00:03.000+0000"}),
            serde_json::json!({"Id": "c", "SystemModstamp": null}),
        ];
        let m = max_stamp(recs.iter(), "SystemModstamp").unwrap();
        assert_eq!(m, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 3).unwrap());
        assert_eq!(max_stamp([].iter(), "SystemModstamp"), None);
    }

    #[test]
    fn deleted_window_is_at_least_two_minutes() {
        let now = Utc.with_ymd_and_hms(2024, 1, 10, 0, 0, 0).unwrap();
        let (s, e) = deleted_window(now, now, Duration::seconds(30));
        assert_eq!(e, now);
        assert_eq!(s, now - Duration::minutes(2));
        let (s, _) = deleted_window(now - Duration::days(40), now, Duration::seconds(30));
        assert_eq!(s, now - Duration::days(14));
    }
}
