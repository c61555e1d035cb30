//! Relative date literal ranges in whole UTC days, computed with integer
//! arithmetic so evaluation stays cheap and allocation-free.

use crate::ast::DateFunction;

pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// Days far outside any real date, used when arithmetic leaves the calendar.
const FAR: i64 = 1 << 40;

/// A half-open range `[start_ms, end_ms)`, both as epoch milliseconds; day-valued
/// fields compare against `[start_day, end_day)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateRange {
    pub start_day: i64,
    pub end_day: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl DateRange {
    fn days(start_day: i64, end_day: i64) -> Self {
        DateRange {
            start_day,
            end_day,
            start_ms: start_day.saturating_mul(MS_PER_DAY),
            end_ms: end_day.saturating_mul(MS_PER_DAY),
        }
    }
}

/// Civil date (year, month 1..=12, day) from days since 1970-01-01
/// (proleptic Gregorian; the usual era-based conversion).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// First day of month number `k`, where `k = year * 12 + (month - 1)`.
fn month_start(k: i64) -> i64 {
    let year = k.div_euclid(12);
    if year.abs() > 1_000_000 {
        return if k < 0 { -FAR } else { FAR };
    }
    days_from_civil(year, k.rem_euclid(12) as u32 + 1, 1)
}

/// The range a date function denotes, relative to `now_ms` (epoch ms, UTC).
pub(crate) fn range(f: DateFunction, now_ms: i64) -> DateRange {
    use DateFunction::*;
    let t = now_ms.div_euclid(MS_PER_DAY);
    // Weeks start on Sunday (Salesforce's default for the en_US locale);
    // 1970-01-01 was a Thursday.
    let week = t - (t + 4).rem_euclid(7);
    // Calendar arithmetic only for the functions that need it (this runs per row).
    let month = || {
        let (y, m, _) = civil_from_days(t);
        y * 12 + i64::from(m) - 1
    };
    let quarter_month = || {
        let m = month();
        m - m.rem_euclid(3)
    };
    let year_month = || {
        let m = month();
        m - m.rem_euclid(12)
    };
    let n64 = |n: u32| i64::from(n);
    match f {
        Yesterday => DateRange::days(t - 1, t),
        Today => DateRange::days(t, t + 1),
        Tomorrow => DateRange::days(t + 1, t + 2),
        // Includes today, up to the moment of evaluation.
        LastNDays(n) => DateRange {
            end_ms: now_ms + 1,
            ..DateRange::days(t - n64(n), t + 1)
        },
        Last90Days => range(LastNDays(90), now_ms),
        NextNDays(n) => DateRange::days(t + 1, t + 1 + n64(n)),
        Next90Days => DateRange::days(t + 1, t + 91),
        NDaysAgo(n) => DateRange::days(t - n64(n), t - n64(n) + 1),
        ThisWeek => DateRange::days(week, week + 7),
        LastWeek => DateRange::days(week - 7, week),
        NextWeek => DateRange::days(week + 7, week + 14),
        LastNWeeks(n) => DateRange::days(week - 7 * n64(n), week),
        NextNWeeks(n) => DateRange::days(week + 7, week + 7 + 7 * n64(n)),
        NWeeksAgo(n) => DateRange::days(week - 7 * n64(n), week - 7 * n64(n) + 7),
        ThisMonth => months(month(), 1),
        LastMonth => months(month() - 1, 1),
        NextMonth => months(month() + 1, 1),
        LastNMonths(n) => months(month() - n64(n), n64(n)),
        NextNMonths(n) => months(month() + 1, n64(n)),
        NMonthsAgo(n) => months(month() - n64(n), 1),
        ThisQuarter => months(quarter_month(), 3),
        LastQuarter => months(quarter_month() - 3, 3),
        NextQuarter => months(quarter_month() + 3, 3),
        LastNQuarters(n) => months(quarter_month() - 3 * n64(n), 3 * n64(n)),
        NextNQuarters(n) => months(quarter_month() + 3, 3 * n64(n)),
        NQuartersAgo(n) => months(quarter_month() - 3 * n64(n), 3),
        ThisYear => months(year_month(), 12),
        LastYear => months(year_month() - 12, 12),
        NextYear => months(year_month() + 12, 12),
        LastNYears(n) => months(year_month() - 12 * n64(n), 12 * n64(n)),
        NextNYears(n) => months(year_month() + 12, 12 * n64(n)),
        NYearsAgo(n) => months(year_month() - 12 * n64(n), 12),
    }
}

/// `count` whole months starting at month number `first`.
fn months(first: i64, count: i64) -> DateRange {
    DateRange::days(month_start(first), month_start(first + count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn days(y: i32, m: u32, d: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .signed_duration_since(NaiveDate::default())
            .num_days()
    }

    #[test]
    fn civil_conversion_round_trips_against_chrono() {
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days(y as i32, m, d), z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    // Wednesday 2024-03-13 15:00 UTC.
    const NOW: i64 = 1_710_342_000_000;

    fn r(f: DateFunction) -> (i64, i64) {
        let x = range(f, NOW);
        (x.start_day, x.end_day)
    }

    #[test]
    fn day_ranges() {
        use DateFunction::*;
        let t = days(2024, 3, 13);
        assert_eq!(civil_from_days(t), (2024, 3, 13));
        assert_eq!(NOW.div_euclid(MS_PER_DAY), t);
        assert_eq!(r(Today), (t, t + 1));
        assert_eq!(r(Yesterday), (t - 1, t));
        assert_eq!(r(Tomorrow), (t + 1, t + 2));
        assert_eq!(r(LastNDays(7)), (t - 7, t + 1));
        assert_eq!(range(LastNDays(7), NOW).end_ms, NOW + 1);
        assert_eq!(r(Last90Days), (t - 90, t + 1));
        assert_eq!(r(NextNDays(3)), (t + 1, t + 4));
        assert_eq!(r(Next90Days), (t + 1, t + 91));
        assert_eq!(r(NDaysAgo(2)), (t - 2, t - 1));
    }

    #[test]
    fn week_ranges_start_on_sunday() {
        use DateFunction::*;
        let sun = days(2024, 3, 10);
        assert_eq!(r(ThisWeek), (sun, sun + 7));
        assert_eq!(r(LastWeek), (sun - 7, sun));
        assert_eq!(r(NextWeek), (sun + 7, sun + 14));
        assert_eq!(r(LastNWeeks(2)), (sun - 14, sun));
        assert_eq!(r(NextNWeeks(2)), (sun + 7, sun + 21));
        assert_eq!(r(NWeeksAgo(2)), (sun - 14, sun - 7));
        // On a Sunday the week starts that day.
        let sunday_noon = sun * MS_PER_DAY + 12 * 3_600_000;
        assert_eq!(range(ThisWeek, sunday_noon).start_day, sun);
    }

    #[test]
    fn month_quarter_year_ranges() {
        use DateFunction::*;
        assert_eq!(r(ThisMonth), (days(2024, 3, 1), days(2024, 4, 1)));
        assert_eq!(r(LastMonth), (days(2024, 2, 1), days(2024, 3, 1)));
        assert_eq!(r(NextMonth), (days(2024, 4, 1), days(2024, 5, 1)));
        assert_eq!(r(LastNMonths(3)), (days(2023, 12, 1), days(2024, 3, 1)));
        assert_eq!(r(NextNMonths(10)), (days(2024, 4, 1), days(2025, 2, 1)));
        assert_eq!(r(NMonthsAgo(3)), (days(2023, 12, 1), days(2024, 1, 1)));
        assert_eq!(r(ThisQuarter), (days(2024, 1, 1), days(2024, 4, 1)));
        assert_eq!(r(LastQuarter), (days(2023, 10, 1), days(2024, 1, 1)));
        assert_eq!(r(NextQuarter), (days(2024, 4, 1), days(2024, 7, 1)));
        assert_eq!(r(LastNQuarters(2)), (days(2023, 7, 1), days(2024, 1, 1)));
        assert_eq!(r(NQuartersAgo(1)), (days(2023, 10, 1), days(2024, 1, 1)));
        assert_eq!(r(ThisYear), (days(2024, 1, 1), days(2025, 1, 1)));
        assert_eq!(r(LastYear), (days(2023, 1, 1), days(2024, 1, 1)));
        assert_eq!(r(NextYear), (days(2025, 1, 1), days(2026, 1, 1)));
        assert_eq!(r(LastNYears(2)), (days(2022, 1, 1), days(2024, 1, 1)));
        assert_eq!(r(NextNYears(2)), (days(2025, 1, 1), days(2027, 1, 1)));
        assert_eq!(r(NYearsAgo(1)), (days(2023, 1, 1), days(2024, 1, 1)));
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        use DateFunction::*;
        for f in [
            LastNDays(u32::MAX),
            NextNMonths(u32::MAX),
            LastNYears(u32::MAX),
            NYearsAgo(u32::MAX),
        ] {
            let x = range(f, NOW);
            assert!(x.start_day <= x.end_day, "{f:?}");
        }
    }
}
