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
use salesforce::ApiUsage;
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

/// How long a sync sends one request at a time after Salesforce refused one because
/// the org's long-running requests were all taken.
pub const LONG_REQUESTS_HOLD: Duration = Duration::from_secs(5 * 60);

/// How many requests a sync may have in flight at once: its `max_concurrent_requests`,
/// within its `share` of the org's long-running requests (each of its requests may
/// become one), and one while it holds back after the org's were all taken.
pub fn concurrency(requested: usize, share: Option<usize>, held: bool) -> usize {
    match held {
        true => 1,
        false => requested.min(share.unwrap_or(usize::MAX)).max(1),
    }
}

/// How near (a share of the org's daily API requests) to its `org_usage_ceiling` a
/// sync takes the path that costs fewer requests where it has a choice.
pub const CHEAPER_PATH_WITHIN: f64 = 0.10;

/// What one Bulk query job costs in requests besides its results pages: its creation
/// and the checks of its state while Salesforce runs it (a few at growing intervals).
const BULK_JOB_CALLS: u64 = 4;

/// Records per Bulk results request (`read::bulk`).
pub const BULK_RESULTS_PAGE: u64 = 50_000;

/// Why a REST backfill of `rows` rows (`calls_per_page` requests per page of
/// `page_rows`) reads through one Bulk query job instead: the org's daily API requests
/// (`usage`, as Salesforce last reported them) are within `CHEAPER_PATH_WITHIN` of the
/// sync's `ceiling`, and the job costs fewer requests than the pages. None otherwise.
pub fn bulk_saves_requests(
    rows: u64,
    page_rows: u64,
    calls_per_page: u64,
    usage: Option<ApiUsage>,
    ceiling: f64,
) -> Option<String> {
    let usage = usage.filter(|u| u.max > 0)?;
    let used = usage.used as f64 / usage.max as f64;
    let rest = rows.div_ceil(page_rows.max(1)) * calls_per_page;
    let bulk = BULK_JOB_CALLS + rows.div_ceil(BULK_RESULTS_PAGE);
    (used >= ceiling - CHEAPER_PATH_WITHIN && bulk < rest).then(|| {
        format!(
            "read through a Bulk query job below bulk_threshold: the org has used {} of its {} daily API \
             requests, within {:.0} points of this sync's ceiling ({:.0}%), and the job costs about {bulk} \
             requests against {rest} for REST pages",
            usage.used,
            usage.max,
            CHEAPER_PATH_WITHIN * 100.0,
            ceiling * 100.0
        )
    })
}

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

    /// The requests the sync may have in flight by the org's long-running requests
    /// allocation (`ConcurrentPerOrgLongTxn`, 25 in production orgs, 5 in Developer
    /// Edition): its `ceiling` share, at least one; None when /limits does not report it.
    pub fn long_requests_share(&self, ceiling: f64) -> Option<usize> {
        let (max, _) = self.get("ConcurrentPerOrgLongTxn")?;
        Some(((max as f64 * ceiling.clamp(0.0, 1.0)).floor() as usize).max(1))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sync_keeps_within_its_share_of_long_running_requests_and_holds_back_to_one() {
        let dev =
            Allocations::read(&json!({"ConcurrentPerOrgLongTxn": {"Max": 5, "Remaining": 5}}));
        let share = dev.long_requests_share(0.8);
        assert_eq!(share, Some(4));
        assert_eq!(concurrency(10, share, false), 4);
        assert_eq!(concurrency(2, share, false), 2);
        assert_eq!(concurrency(10, share, true), 1);
        let unreported = Allocations::read(&json!({}));
        assert_eq!(
            concurrency(10, unreported.long_requests_share(0.8), false),
            10
        );
        let tiny =
            Allocations::read(&json!({"ConcurrentPerOrgLongTxn": {"Max": 1, "Remaining": 0}}));
        assert_eq!(concurrency(3, tiny.long_requests_share(0.5), false), 1);
    }

    #[test]
    fn near_the_ceiling_a_backfill_takes_the_bulk_job_when_it_costs_fewer_requests() {
        let at = |used| Some(ApiUsage { used, max: 100_000 });
        // 20,000 rows: 10 REST pages against a job of about 5 requests
        let note = bulk_saves_requests(20_000, 2_000, 1, at(75_000), 0.8).unwrap();
        assert!(note.contains("75000 of its 100000"), "{note}");
        assert!(note.contains("about 5 requests against 10"), "{note}");
        // far from the ceiling, or where the job would cost more: REST as usual
        assert_eq!(bulk_saves_requests(20_000, 2_000, 1, at(60_000), 0.8), None);
        assert_eq!(bulk_saves_requests(6_000, 2_000, 1, at(75_000), 0.8), None);
        assert_eq!(bulk_saves_requests(20_000, 2_000, 1, None, 0.8), None);
        // field groups make each REST page cost more
        assert!(bulk_saves_requests(6_000, 2_000, 3, at(75_000), 0.8).is_some());
    }
}
