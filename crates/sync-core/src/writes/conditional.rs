//! The `If-Unmodified-Since` value of a conditional update.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// HTTP dates carry whole seconds while SystemModstamp has milliseconds: the stamp is
/// rounded up, so the change we last synced (made within that second) never counts as
/// a conflict. A change made in Salesforce later in that same second goes unnoticed;
/// the header cannot express anything finer.
pub fn if_unmodified_since(stamp: DateTime<Utc>) -> String {
    let floor = stamp.duration_trunc(TimeDelta::seconds(1)).unwrap_or(stamp);
    let up = if floor < stamp {
        floor + TimeDelta::seconds(1)
    } else {
        floor
    };
    up.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rounds_up_to_the_next_whole_second() {
        let exact = Utc.with_ymd_and_hms(2024, 2, 6, 20, 48, 32).unwrap();
        assert_eq!(if_unmodified_since(exact), "Tue, 06 Feb 2024 20:48:32 GMT");
        let later = exact + TimeDelta::milliseconds(1);
        assert_eq!(if_unmodified_since(later), "Tue, 06 Feb 2024 20:48:33 GMT");
        let end_of_day =
            Utc.with_ymd_and_hms(2024, 2, 6, 23, 59, 59).unwrap() + TimeDelta::milliseconds(500);
        assert_eq!(
            if_unmodified_since(end_of_day),
            "Wed, 07 Feb 2024 00:00:00 GMT"
        );
    }
}
