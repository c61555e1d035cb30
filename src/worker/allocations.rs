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

use pgrx::prelude::*;
use salesforce::pacing::within_ceiling;
use serde_json::{Map, Value};

use super::catalog::SyncConfig;
use super::error::StepError;
use super::pg::tx;
use super::runtime::SyncRuntime;
use super::status;

/// The allocations a sync depends on, as `/limits` names them. Others (reports,
/// emails, storage) are none of its business.
const WATCHED: [&str; 5] = [
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
const FRESH_FOR_BULK: Duration = Duration::from_secs(60);

/// The last reading: when, and the watched allocations it had.
pub struct Allocations {
    read_at: Instant,
    limits: Map<String, Value>,
}

impl Allocations {
    /// (max, remaining) of an allocation, if the org reported it.
    fn get(&self, name: &str) -> Option<(u64, u64)> {
        let a = self.limits.get(name)?;
        Some((a.get("Max")?.as_u64()?, a.get("Remaining")?.as_u64()?))
    }
}

/// Reads `/limits` if the last reading (or attempt) is older than `max_age` and the
/// budget allows a request. An org that refuses the resource (a permission the
/// integration user lacks) is logged and asked again after `max_age`; nothing waits on
/// it.
pub fn refresh(rt: &mut SyncRuntime, cfg: &SyncConfig, max_age: Duration) -> Result<(), StepError> {
    if rt
        .allocations
        .as_ref()
        .is_some_and(|a| a.read_at.elapsed() < max_age)
    {
        return Ok(());
    }
    if !rt.try_spend(1) {
        return Ok(());
    }
    let all = match rt.call(rt.client.limits()) {
        Ok(v) => v,
        Err(StepError::Stopping) => return Err(StepError::Stopping),
        Err(e) => {
            // asked again after max_age, not at every step; what was known stays
            let limits = rt.allocations.take().map(|a| a.limits).unwrap_or_default();
            rt.allocations = Some(Allocations {
                read_at: Instant::now(),
                limits,
            });
            return match e {
                StepError::Salesforce(e) if !e.is_transient() => {
                    warning!(
                        "sequin_sf: sync {}: could not read the org's limits: {e}",
                        cfg.name
                    );
                    Ok(())
                }
                e => Err(e),
            };
        }
    };
    let limits: Map<String, Value> = WATCHED
        .iter()
        .filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    tx(|| status::record_org_limits(&cfg.name, &limits))?;
    rt.allocations = Some(Allocations {
        read_at: Instant::now(),
        limits,
    });
    Ok(())
}

/// Why a Bulk query job should not start now (None: it may, or the allocations are not
/// known).
pub fn bulk_job_refused(
    rt: &mut SyncRuntime,
    cfg: &SyncConfig,
) -> Result<Option<String>, StepError> {
    refresh(rt, cfg, FRESH_FOR_BULK)?;
    let Some(a) = rt.allocations.as_ref() else {
        return Ok(None);
    };
    Ok(BULK.iter().find_map(|name| {
        let (max, remaining) = a.get(name)?;
        let used = max.saturating_sub(remaining);
        (!within_ceiling(used, 1, max, cfg.org_usage_ceiling)).then(|| {
            format!(
                "the org has {remaining} of its {max} {name} left: one more Bulk query job would reach into the {:.0}% this sync leaves to other integrations (org_usage_ceiling {:.0}%), so the backfill reads REST pages instead",
                (1.0 - cfg.org_usage_ceiling) * 100.0,
                cfg.org_usage_ceiling * 100.0
            )
        })
    }))
}
