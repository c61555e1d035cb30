//! The org's allocations as Salesforce's `/limits` reports them: read at most every 15
//! minutes (one request) and again before a Bulk query job starts if the last reading
//! is older than a minute, kept per sync in `sequin_sf._org_limits` (the view
//! `sequin_sf.org_limits` shows them with the sync's own share).
//!
//! A sync leaves `1 - org_usage_ceiling` of each allocation to the org's other
//! integrations. The daily API requests are paced by the budget (Sforce-Limit-Info on
//! every response); the Bulk query jobs and their result storage are checked here, by
//! the same rule (`pacing::within_ceiling`, counting one more job and one more MB): a
//! backfill whose job would pass it reads REST pages instead, and says so in
//! `sync_status.backfill_note`.

use std::time::{Duration, Instant};

use salesforce::pacing::within_ceiling;
use serde_json::{Map, Value};

/// The allocations a sync depends on, as `/limits` names them. Others (reports,
/// emails, storage) are none of its business.
pub const WATCHED: [&str; 5] = [
    "DailyApiRequests",
    "DailyBulkV2QueryJobs",
    "DailyBulkV2QueryFileStorageMB",
    "DailyDeliveredPlatformEvents",
    "ConcurrentPerOrgLongTxn",
];

/// The Bulk allocations a Bulk query job uses.
const BULK: [&str; 2] = ["DailyBulkV2QueryJobs", "DailyBulkV2QueryFileStorageMB"];

/// How often a running sync reads `/limits` (96 requests a day).
pub const READ_EVERY: Duration = Duration::from_secs(15 * 60);
/// How old a reading may be when a Bulk query job is about to start.
pub const FRESH_FOR_BULK: Duration = Duration::from_secs(60);

/// The last reading: when, and the watched allocations it had.
pub struct Allocations {
    pub read_at: Instant,
    pub limits: Map<String, Value>,
}

impl Allocations {
    /// The watched allocations of a `/limits` answer, read now.
    pub fn read(all: &Value) -> Self {
        Allocations {
            read_at: Instant::now(),
            limits: WATCHED
                .iter()
                .filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect(),
        }
    }

    /// Why a Bulk query job should not start now, with `ceiling` the share of each
    /// allocation the sync may reach (None: it may, or the org did not report them).
    pub fn bulk_refusal(&self, ceiling: f64) -> Option<String> {
        BULK.iter().find_map(|name| {
            let (max, remaining) = self.past_ceiling(name, ceiling)?;
            Some(format!(
                "the org has {remaining} of its {max} {name} left: one more Bulk query job would reach into {}, so the backfill reads REST pages instead",
                left_to_others(ceiling)
            ))
        })
    }

    /// Why the sync should not take change events now: the org's daily event
    /// deliveries left are at or below the share the sync leaves to others (None: it
    /// may, or the org did not report them). Its collections are polled meanwhile,
    /// which costs API requests instead, until a later reading shows room again.
    pub fn events_refusal(&self, ceiling: f64) -> Option<String> {
        let name = "DailyDeliveredPlatformEvents";
        let (max, remaining) = self.past_ceiling(name, ceiling)?;
        Some(format!(
            "the org has {remaining} of its {max} daily event deliveries ({name}) left, within {}: polling until a later reading of /limits shows room",
            left_to_others(ceiling)
        ))
    }

    /// (max, remaining) of allocation `name` when one more use of it would pass the
    /// `ceiling` share (`pacing::within_ceiling`, the rule of every allocation); None
    /// when it would not, or the org did not report it.
    fn past_ceiling(&self, name: &str, ceiling: f64) -> Option<(u64, u64)> {
        let (max, remaining) = self.get(name)?;
        let used = max.saturating_sub(remaining);
        (!within_ceiling(used, 1, max, ceiling)).then_some((max, remaining))
    }

    /// (max, remaining) of an allocation, if the org reported it.
    fn get(&self, name: &str) -> Option<(u64, u64)> {
        let a = self.limits.get(name)?;
        Some((a.get("Max")?.as_u64()?, a.get("Remaining")?.as_u64()?))
    }
}

/// "the 20% this sync leaves to other integrations (org_usage_ceiling 80%)".
fn left_to_others(ceiling: f64) -> String {
    format!(
        "the {:.0}% this sync leaves to other integrations (org_usage_ceiling {:.0}%)",
        (1.0 - ceiling) * 100.0,
        ceiling * 100.0
    )
}
