//! The org's `/limits`, read by the read path when due (`allocations::READ_EVERY`) and
//! before a Bulk query job starts, and recorded for `sequin_sf.org_limits`.

use std::time::{Duration, Instant};

use crate::allocations::{Allocations, FRESH_FOR_BULK};
use crate::catalog::SyncConfig;
use crate::db::tx;
use crate::error::StepError;
use crate::runtime::SyncRuntime;
use crate::status;

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
                    log::warn!(
                        "sequin_sf: sync {}: could not read the org's limits: {e}",
                        cfg.name
                    );
                    Ok(())
                }
                e => Err(e),
            };
        }
    };
    let read = Allocations::read(&all);
    tx(&*rt.db, |s| {
        status::record_org_limits(s, &cfg.name, &read.limits)
    })?;
    rt.allocations = Some(read);
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
    Ok(a.bulk_refusal(cfg.org_usage_ceiling))
}
