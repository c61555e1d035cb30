//! The pacing budget fed with the usage the real emulator reports: a sync stops at the
//! org-usage ceiling and never takes the last of the org's quota.

use std::time::{Duration, Instant};

use salesforce::pacing::{Budget, WaitReason};
use serde_json::json;

use crate::support::*;

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn sync_stops_at_the_org_ceiling_from_limit_info() {
    let emu = Emu::start().await;
    emu.set_limits(json!({"api_limit": 1000, "api_used": 700}))
        .await;
    let client = emu.client();
    let mut budget = Budget::new(10_000, DAY, 4, 0.8).with_org_recheck(Duration::from_secs(30));
    let now = Instant::now();
    let mut sent = 0;
    let stopped = loop {
        if let Some(u) = client.api_usage() {
            budget.observe_usage(u, now);
        }
        match budget.try_acquire(1, now) {
            Ok(_permit) => {
                client.query("SELECT Id FROM Account", None).await.unwrap();
                sent += 1;
            }
            Err(wait) => break wait,
        }
        assert!(sent <= 1000, "the budget never stopped");
    };
    assert_eq!(stopped.reason, WaitReason::OrgCeiling);
    // The first request went out before any usage was known (700 -> 701); after that
    // requests stop once usage reaches 80% of 1000.
    assert_eq!(client.api_usage().unwrap().used, 800);
    assert_eq!(sent, 100);
    // Other clients free nothing, but after the recheck delay one probe goes out.
    let later = now + Duration::from_secs(30);
    assert!(budget.try_acquire(1, later).is_ok());
    assert!(budget.try_acquire(1, later).is_err());
}

#[tokio::test]
async fn the_sync_budget_binds_before_the_org_quota() {
    let emu = Emu::start().await;
    let client = emu.client();
    let mut budget = Budget::new(25, DAY, 1, 0.8);
    let now = Instant::now();
    let before = emu.api_requests().await;
    let mut sent = 0u64;
    while let Ok(permit) = budget.try_acquire(1, now) {
        client.query("SELECT Id FROM Account", None).await.unwrap();
        drop(permit);
        if let Some(u) = client.api_usage() {
            budget.observe_usage(u, now);
        }
        sent += 1;
        assert!(sent <= 25);
    }
    assert_eq!(sent, 25);
    assert_eq!(emu.api_requests().await - before, 25);
    assert_eq!(
        budget.try_acquire(1, now).unwrap_err().until,
        Some(now + DAY)
    );
}
