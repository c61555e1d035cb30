//! Id ranges of a REST backfill read in parallel. Keyset pages of one query follow
//! each other (a page's continuation is known only once it arrived), so a backfill that
//! may have several requests in flight splits the object's Id space into ranges, each
//! paged on its own: `Id >= from AND Id < to`, then `Id > last stored`.
//!
//! The split points are interpolated between the smallest and the largest Id (record
//! Ids of one object share their key prefix and grow as records are created), reading
//! the 15-character Id as base-62 digits in byte order. The first range has no lower
//! bound and the last no upper one, so the ranges cover every Id whatever order
//! Salesforce compares them in: a split point out of order only makes two ranges
//! overlap (a row read twice is upserted) or one range empty, never leaves a gap.
//!
//! The ranges are the backfill's cursor (`_collections.backfill_cursor`, as JSON):
//! each page moves its range's `after` in the transaction that stores the page, and a
//! range whose last page is stored is dropped, so a restart resumes every range where
//! it stopped.

use serde::{Deserialize, Serialize};

/// Digits of an Id in byte order (`0-9`, `A-Z`, `a-z`).
const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// One range still to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// Inclusive lower bound (None: from the start).
    pub from: Option<String>,
    /// The last Id stored from this range (the keyset cursor), once a page was.
    pub after: Option<String>,
    /// Exclusive upper bound (None: to the end).
    pub to: Option<String>,
}

/// The ranges of a backfill in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges {
    pub ranges: Vec<IdRange>,
}

impl Ranges {
    /// The ranges stored in a backfill cursor; None for a plain Id cursor (one keyset
    /// query) or text that is not ranges.
    pub fn from_cursor(cursor: &str) -> Option<Ranges> {
        if !cursor.starts_with('{') {
            return None;
        }
        serde_json::from_str(cursor).ok()
    }

    pub fn to_cursor(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `n` ranges covering everything, split between `min_id` and `max_id` (the
    /// smallest and largest Id). Fewer when the Ids leave no room between them.
    pub fn split(min_id: &str, max_id: &str, n: usize) -> Ranges {
        let points = split_points(min_id, max_id, n);
        let mut bounds: Vec<Option<String>> = vec![None];
        bounds.extend(points.into_iter().map(Some));
        bounds.push(None);
        Ranges {
            ranges: bounds
                .windows(2)
                .map(|w| IdRange {
                    from: w[0].clone(),
                    after: None,
                    to: w[1].clone(),
                })
                .collect(),
        }
    }
}

impl IdRange {
    /// A key naming the range among the others (its upper bound).
    pub fn key(&self) -> String {
        self.to.clone().unwrap_or_default()
    }

    /// The keyset query of the range's next records, in Id order; `limit` cuts it (a
    /// page shorter than the limit then ends the range).
    pub fn query(&self, object: &str, fields: &[&str], limit: Option<u32>) -> String {
        let mut cond: Vec<String> = crate::queries::not_deleted(object)
            .into_iter()
            .map(str::to_string)
            .collect();
        match (&self.after, &self.from) {
            (Some(a), _) if safe(a) => cond.push(format!("Id > '{a}'")),
            (_, Some(f)) if safe(f) => cond.push(format!("Id >= '{f}'")),
            _ => {}
        }
        if let Some(t) = self.to.as_deref().filter(|t| safe(t)) {
            cond.push(format!("Id < '{t}'"));
        }
        let mut q = crate::queries::select_where(object, fields, &cond);
        q.push_str(" ORDER BY Id");
        if let Some(n) = limit {
            q.push_str(&format!(" LIMIT {n}"));
        }
        q
    }
}

fn safe(id: &str) -> bool {
    !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn digit(b: u8) -> Option<u128> {
    DIGITS.iter().position(|d| *d == b).map(|p| p as u128)
}

/// `n - 1` increasing 15-character Ids between `min_id` and `max_id` (exclusive),
/// evenly spaced in base 62 after their common prefix.
fn split_points(min_id: &str, max_id: &str, n: usize) -> Vec<String> {
    let (lo, hi) = (prefix15(min_id), prefix15(max_id));
    if n < 2 || lo.len() != 15 || hi.len() != 15 || lo >= hi {
        return Vec::new();
    }
    let common = lo
        .bytes()
        .zip(hi.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let width = 15 - common;
    let value = |s: &str| -> Option<u128> {
        s.bytes()
            .skip(common)
            .try_fold(0u128, |acc, b| Some(acc * 62 + digit(b)?))
    };
    let (Some(a), Some(b)) = (value(&lo), value(&hi)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for i in 1..n as u128 {
        let v = a + (b - a) * i / n as u128;
        let id = format!("{}{}", &lo[..common], encode(v, width));
        if id.as_str() > lo.as_str() && out.last().is_none_or(|p| *p < id) {
            out.push(id);
        }
    }
    out
}

fn prefix15(id: &str) -> String {
    id.chars().take(15).collect()
}

fn encode(mut v: u128, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = DIGITS[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_everything_in_increasing_order() {
        let r = Ranges::split("003000000000001AAA", "003000000000zzzAAA", 4);
        assert_eq!(r.ranges.len(), 4);
        assert_eq!(r.ranges[0].from, None);
        assert_eq!(r.ranges[3].to, None);
        for w in r.ranges.windows(2) {
            assert_eq!(w[0].to, w[1].from);
            assert!(w[1].from.as_deref().unwrap() > "003000000000001");
        }
        let bounds: Vec<&str> = r.ranges[1..]
            .iter()
            .map(|x| x.from.as_deref().unwrap())
            .collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
        assert!(bounds
            .iter()
            .all(|b| b.len() == 15 && b.starts_with("003000000000")));
    }

    #[test]
    fn no_room_means_one_range() {
        assert_eq!(
            Ranges::split("003000000000001", "003000000000001", 4)
                .ranges
                .len(),
            1
        );
        assert_eq!(
            Ranges::split("003000000000002", "003000000000001", 4)
                .ranges
                .len(),
            1
        );
        assert_eq!(Ranges::split("bad", "003000000000001", 4).ranges.len(), 1);
        // adjacent Ids leave room for no split point
        assert_eq!(
            Ranges::split("003000000000001", "003000000000002", 4)
                .ranges
                .len(),
            1
        );
    }

    #[test]
    fn queries_and_cursors() {
        let r = IdRange {
            from: Some("003000000000A00".into()),
            after: None,
            to: Some("003000000000B00".into()),
        };
        assert_eq!(
            r.query("Contact", &["Id", "Name"], None),
            "SELECT Id, Name FROM Contact WHERE Id >= '003000000000A00' AND Id < '003000000000B00' ORDER BY Id"
        );
        let moved = IdRange {
            after: Some("003000000000A7xAAA".into()),
            ..r
        };
        assert!(moved.query("Contact", &["Id"], Some(500)).ends_with(
            "WHERE Id > '003000000000A7xAAA' AND Id < '003000000000B00' ORDER BY Id LIMIT 500"
        ));
        let all = Ranges::split("003000000000001", "003000000000zzz", 3);
        assert_eq!(Ranges::from_cursor(&all.to_cursor()), Some(all));
        assert_eq!(Ranges::from_cursor("003000000000001AAA"), None);
        let quoted = IdRange {
            from: Some("x' OR Id != '".into()),
            after: None,
            to: None,
        };
        assert_eq!(
            quoted.query("Contact", &["Id"], None),
            "SELECT Id FROM Contact ORDER BY Id"
        );
    }
}
