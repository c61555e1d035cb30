//! Request budgeting, pure and clock-injected: a sliding window of request costs, a
//! concurrency cap, the org-wide usage ceiling, retry backoff and poll-rate planning.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::usage::ApiUsage;

/// Default share of the org's daily quota the sync may push usage up to.
pub const DEFAULT_ORG_CEILING_FRACTION: f64 = 0.8;
/// How long to hold off after the org reached the ceiling before one probing request.
pub const DEFAULT_ORG_RECHECK: Duration = Duration::from_secs(60);

/// Whether spending `cost` more of an org allocation of `max`, `used` so far by every
/// client, stays within `fraction` of it: the share a sync may take, leaving the rest to
/// the org's other integrations. An allocation of unknown size (0) never blocks.
pub fn within_ceiling(used: u64, cost: u64, max: u64, fraction: f64) -> bool {
    let ceiling = (max as f64 * fraction.clamp(0.0, 1.0)).floor() as u64;
    max == 0 || used + cost <= ceiling
}

/// Why a request may not start yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// This sync's own requests-per-interval budget is spent.
    Window,
    /// The org's usage (all clients) is at the configured ceiling.
    OrgCeiling,
    /// `max_concurrent` requests are in flight.
    Concurrency,
}

/// When to try again. `until == None` means "after a permit is released".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitUntil {
    pub until: Option<Instant>,
    pub reason: WaitReason,
}

/// Held for the duration of a request; dropping it frees a concurrency slot.
#[derive(Debug)]
pub struct Permit {
    in_flight: Arc<AtomicUsize>,
    cost: u64,
}

impl Permit {
    pub fn cost(&self) -> u64 {
        self.cost
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy)]
struct OrgObservation {
    usage: ApiUsage,
    at: Instant,
    // Our own requests started since the observation, which the org count does not
    // yet include.
    own_since: u64,
}

/// A sync's request budget: at most `requests_per_interval` request costs in any
/// sliding `interval`, at most `max_concurrent` at once, and never past
/// `org_ceiling_fraction` of the org's quota as last reported by Salesforce.
#[derive(Debug)]
pub struct Budget {
    requests_per_interval: u64,
    interval: Duration,
    max_concurrent: usize,
    org_ceiling_fraction: f64,
    org_recheck: Duration,
    window: VecDeque<(Instant, u64)>,
    window_sum: u64,
    in_flight: Arc<AtomicUsize>,
    org: Option<OrgObservation>,
}

impl Budget {
    pub fn new(
        requests_per_interval: u64,
        interval: Duration,
        max_concurrent: usize,
        org_ceiling_fraction: f64,
    ) -> Budget {
        Budget {
            requests_per_interval: requests_per_interval.max(1),
            interval,
            max_concurrent: max_concurrent.max(1),
            org_ceiling_fraction: org_ceiling_fraction.clamp(0.0, 1.0),
            org_recheck: DEFAULT_ORG_RECHECK,
            window: VecDeque::new(),
            window_sum: 0,
            in_flight: Arc::new(AtomicUsize::new(0)),
            org: None,
        }
    }

    /// Changes how long to wait after hitting the org ceiling before probing again.
    pub fn with_org_recheck(mut self, recheck: Duration) -> Budget {
        self.org_recheck = recheck;
        self
    }

    pub fn requests_per_interval(&self) -> u64 {
        self.requests_per_interval
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Request costs charged within the window ending at `now`.
    pub fn used(&mut self, now: Instant) -> u64 {
        self.prune(now);
        self.window_sum
    }

    /// What is left of this sync's budget in the window ending at `now`.
    pub fn remaining(&mut self, now: Instant) -> u64 {
        self.requests_per_interval.saturating_sub(self.used(now))
    }

    /// Records the org-wide usage Salesforce reported (`Sforce-Limit-Info`). Callers
    /// may pass the same report again and again (e.g. `client.api_usage()` before every
    /// request): a report equal to the one held is not new information, so it neither
    /// restarts the ceiling's recheck delay nor forgets our requests made since.
    pub fn observe_usage(&mut self, usage: ApiUsage, now: Instant) {
        if self.org.is_some_and(|o| o.usage == usage) {
            return;
        }
        self.org = Some(OrgObservation {
            usage,
            at: now,
            own_since: 0,
        });
    }

    /// The org usage last observed, if any.
    pub fn org_usage(&self) -> Option<ApiUsage> {
        self.org.map(|o| o.usage)
    }

    /// Changes how many requests may be in flight at once (at least one); those in
    /// flight now finish.
    pub fn set_max_concurrent(&mut self, max_concurrent: usize) {
        self.max_concurrent = max_concurrent.max(1);
    }

    /// Applies changed settings (e.g. after a user altered the sync's rate limit),
    /// keeping the requests already charged in the window.
    pub fn reconfigure(
        &mut self,
        requests_per_interval: u64,
        interval: Duration,
        max_concurrent: usize,
        org_ceiling_fraction: f64,
    ) {
        self.requests_per_interval = requests_per_interval.max(1);
        self.interval = interval;
        self.max_concurrent = max_concurrent.max(1);
        self.org_ceiling_fraction = org_ceiling_fraction.clamp(0.0, 1.0);
    }

    /// Asks to start a request costing `cost` API calls at `now`.
    pub fn try_acquire(&mut self, cost: u64, now: Instant) -> Result<Permit, WaitUntil> {
        self.prune(now);
        if self.in_flight.load(Ordering::Acquire) >= self.max_concurrent {
            return Err(WaitUntil {
                until: None,
                reason: WaitReason::Concurrency,
            });
        }
        // A request costing more than the whole budget (a large /composite/batch) may
        // only start into an empty window; otherwise it could never start at all.
        if self.window_sum > 0 && self.window_sum + cost > self.requests_per_interval {
            return Err(WaitUntil {
                until: Some(self.window_frees_at(cost)),
                reason: WaitReason::Window,
            });
        }
        if let Some(org) = &mut self.org {
            let used = org.usage.used + org.own_since;
            if !within_ceiling(used, cost, org.usage.max, self.org_ceiling_fraction) {
                let probe_at = org.at + self.org_recheck;
                if now < probe_at {
                    return Err(WaitUntil {
                        until: Some(probe_at),
                        reason: WaitReason::OrgCeiling,
                    });
                }
                // Let one request through to learn the current usage; further ones
                // wait for the next recheck unless that response lowers the count.
                org.at = now;
            }
            org.own_since += cost;
        }
        self.window.push_back((now, cost));
        self.window_sum += cost;
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(Permit {
            in_flight: self.in_flight.clone(),
            cost,
        })
    }

    /// Charges requests made without a permit (e.g. by another component).
    pub fn charge(&mut self, cost: u64, now: Instant) {
        self.prune(now);
        self.window.push_back((now, cost));
        self.window_sum += cost;
        if let Some(org) = &mut self.org {
            org.own_since += cost;
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(t, c)) = self.window.front() {
            if now.saturating_duration_since(t) >= self.interval {
                self.window.pop_front();
                self.window_sum -= c;
            } else {
                break;
            }
        }
    }

    /// The moment enough old requests leave the window for `cost` to fit.
    fn window_frees_at(&self, cost: u64) -> Instant {
        let mut remaining = self.window_sum;
        for &(t, c) in &self.window {
            remaining -= c;
            if remaining + cost <= self.requests_per_interval {
                return t + self.interval;
            }
        }
        // A cost above the whole budget fits only into an empty window.
        self.window
            .back()
            .map(|&(t, _)| t + self.interval)
            .unwrap_or_else(Instant::now)
    }
}

/// Exponential backoff with jitter: the n-th delay lies in [d/2, d) where
/// d = min(cap, base * 2^n). Reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay with random jitter.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(rand::random::<f64>())
    }

    /// The next delay for `unit` in [0, 1) chosen by the caller (deterministic tests).
    pub fn next_delay_with(&mut self, unit: f64) -> Duration {
        let factor = 2f64.powi(self.attempt.min(62) as i32);
        let full = self.base.as_secs_f64() * factor;
        let full = full.min(self.cap.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let unit = unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(full / 2.0 + unit * full / 2.0)
    }

    /// The next delay, but never shorter than what the error asks for (`Retry-After`
    /// or the quota hint).
    pub fn next_delay_for(&mut self, error: &Error) -> Duration {
        let d = self.next_delay();
        match error.retry_after_hint() {
            Some(hint) if hint > d => hint,
            _ => d,
        }
    }
}

/// How often a full round of polls can run: each round packs `collections` queries
/// into composite calls of `queries_per_call` (5 for `/composite`), and
/// `reserve_fraction` of the budget stays free for backfill, writes and describes.
/// `None` when the budget cannot afford even one round per interval.
pub fn poll_interval(
    requests_per_interval: u64,
    interval: Duration,
    collections: usize,
    queries_per_call: usize,
    reserve_fraction: f64,
) -> Option<Duration> {
    if collections == 0 {
        return None;
    }
    let calls_per_round = collections.div_ceil(queries_per_call.max(1)) as f64;
    let usable = requests_per_interval as f64 * (1.0 - reserve_fraction.clamp(0.0, 1.0));
    let rounds = usable / calls_per_round;
    if rounds < 1.0 {
        return None;
    }
    Some(Duration::from_secs_f64(interval.as_secs_f64() / rounds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiError, ErrorCode};

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn window_limits_and_frees_in_order() {
        let t0 = Instant::now();
        let mut b = Budget::new(3, Duration::from_secs(10), 10, 1.0);
        let p1 = b.try_acquire(1, t0).unwrap();
        let p2 = b.try_acquire(1, t0 + Duration::from_secs(2)).unwrap();
        let p3 = b.try_acquire(1, t0 + Duration::from_secs(4)).unwrap();
        drop((p1, p2, p3));
        let wait = b.try_acquire(1, t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(wait.reason, WaitReason::Window);
        assert_eq!(wait.until, Some(t0 + Duration::from_secs(10)));
        // Cost 2 needs the first two requests to leave the window.
        let wait = b.try_acquire(2, t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(wait.until, Some(t0 + Duration::from_secs(12)));
        assert!(b.try_acquire(1, t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(b.used(t0 + Duration::from_secs(10)), 3);
        assert_eq!(b.remaining(t0 + Duration::from_secs(14)), 2);
    }

    #[test]
    fn concurrency_permits_are_released_on_drop() {
        let t0 = Instant::now();
        let mut b = Budget::new(100, DAY, 2, 1.0);
        let p1 = b.try_acquire(1, t0).unwrap();
        let _p2 = b.try_acquire(1, t0).unwrap();
        let wait = b.try_acquire(1, t0).unwrap_err();
        assert_eq!(wait.reason, WaitReason::Concurrency);
        assert_eq!(wait.until, None);
        assert_eq!(b.in_flight(), 2);
        drop(p1);
        assert!(b.try_acquire(1, t0).is_ok());
    }

    #[test]
    fn org_ceiling_holds_back_and_probes() {
        let t0 = Instant::now();
        let mut b = Budget::new(1_000, DAY, 10, 0.8).with_org_recheck(Duration::from_secs(30));
        b.observe_usage(ApiUsage { used: 78, max: 100 }, t0);
        // 78 + 1 and 78 + 2 fit under 80; the third would reach 81.
        drop(b.try_acquire(1, t0).unwrap());
        drop(b.try_acquire(1, t0).unwrap());
        let wait = b.try_acquire(1, t0).unwrap_err();
        assert_eq!(wait.reason, WaitReason::OrgCeiling);
        assert_eq!(wait.until, Some(t0 + Duration::from_secs(30)));
        // After the recheck delay, one probe passes; the next waits again.
        let t1 = t0 + Duration::from_secs(30);
        drop(b.try_acquire(1, t1).unwrap());
        assert_eq!(
            b.try_acquire(1, t1).unwrap_err().until,
            Some(t1 + Duration::from_secs(30))
        );
        // Fresh usage below the ceiling lets requests through at once.
        b.observe_usage(ApiUsage { used: 10, max: 100 }, t1);
        assert!(b.try_acquire(1, t1).is_ok());
    }

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(b.next_delay_with(0.0), Duration::from_millis(500));
        assert_eq!(b.next_delay_with(0.0), Duration::from_secs(1));
        assert_eq!(b.next_delay_with(0.0), Duration::from_secs(2));
        assert_eq!(b.next_delay_with(1.0), Duration::from_secs(8));
        assert_eq!(b.next_delay_with(1.0), Duration::from_secs(8));
        assert_eq!(b.attempts(), 5);
        b.reset();
        assert_eq!(b.next_delay_with(1.0), Duration::from_secs(1));
        // Attempts 1 and 2 (d = 2 s, 4 s); from attempt 3 on d is capped at 8 s.
        b.next_delay();
        b.next_delay();
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(d >= Duration::from_secs(4) && d <= Duration::from_secs(8));
        }
    }

    #[test]
    fn backoff_respects_error_hint() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let quota = Error::Api {
            status: 403,
            errors: vec![ApiError {
                error_code: ErrorCode::RequestLimitExceeded,
                message: "TotalRequests Limit exceeded.".into(),
                fields: vec![],
            }],
            retry_after: None,
        };
        assert_eq!(b.next_delay_for(&quota), Duration::from_secs(60));
    }

    #[test]
    fn poll_interval_math() {
        let d = poll_interval(100_000, DAY, 10, 5, 0.0).unwrap();
        assert!((d.as_secs_f64() - 1.728).abs() < 1e-9, "{d:?}");
        let d = poll_interval(100_000, DAY, 11, 5, 0.5).unwrap();
        assert!((d.as_secs_f64() - 86_400.0 / (50_000.0 / 3.0)).abs() < 1e-9);
        assert_eq!(poll_interval(1, DAY, 10, 5, 0.0), None);
        assert_eq!(poll_interval(100, DAY, 0, 5, 0.0), None);
    }

    #[test]
    fn window_boundary_is_exclusive_of_the_interval() {
        let t0 = Instant::now();
        let mut b = Budget::new(1, Duration::from_secs(10), 5, 1.0);
        drop(b.try_acquire(1, t0).unwrap());
        let just_before = t0 + Duration::from_millis(9_999);
        assert_eq!(
            b.try_acquire(1, just_before).unwrap_err().reason,
            WaitReason::Window
        );
        assert_eq!(b.used(just_before), 1);
        let at = t0 + Duration::from_secs(10);
        assert_eq!(b.used(at), 0);
        assert!(b.try_acquire(1, at).is_ok());
    }

    #[test]
    fn oversized_cost_starts_only_into_an_empty_window() {
        let t0 = Instant::now();
        let mut b = Budget::new(10, Duration::from_secs(60), 5, 1.0);
        drop(b.try_acquire(1, t0).unwrap());
        let wait = b.try_acquire(25, t0).unwrap_err();
        assert_eq!(wait.reason, WaitReason::Window);
        assert_eq!(wait.until, Some(t0 + Duration::from_secs(60)));
        // Once the window is empty it goes, and then holds the window for an interval.
        let t1 = t0 + Duration::from_secs(60);
        drop(b.try_acquire(25, t1).unwrap());
        assert_eq!(b.used(t1), 25);
        assert_eq!(
            b.try_acquire(1, t1).unwrap_err().until,
            Some(t1 + Duration::from_secs(60))
        );
    }

    #[test]
    fn charge_counts_against_window_and_org_projection() {
        let t0 = Instant::now();
        let mut b = Budget::new(5, Duration::from_secs(60), 5, 0.8);
        b.observe_usage(ApiUsage { used: 70, max: 100 }, t0);
        b.charge(4, t0);
        assert_eq!(b.remaining(t0), 1);
        // 70 + 4 charged + 1 = 75 fits under 80 and the window has room for 1.
        drop(b.try_acquire(1, t0).unwrap());
        assert_eq!(b.try_acquire(1, t0).unwrap_err().reason, WaitReason::Window);
        // With a bigger window, the org projection (70 + 5 + 6 > 80) is what stops us.
        b.reconfigure(100, Duration::from_secs(60), 5, 0.8);
        assert_eq!(b.requests_per_interval(), 100);
        assert_eq!(b.used(t0), 5, "reconfigure keeps what was charged");
        let wait = b.try_acquire(6, t0).unwrap_err();
        assert_eq!(wait.reason, WaitReason::OrgCeiling);
        assert!(b.try_acquire(5, t0).is_ok());
    }

    #[test]
    fn repeated_identical_usage_reports_do_not_block_forever() {
        // A caller that feeds client.api_usage() before every attempt reports the same
        // (stale) numbers each time; the probe must still happen after the recheck delay.
        let t0 = Instant::now();
        let recheck = Duration::from_secs(15);
        let mut b = Budget::new(1_000, DAY, 10, 0.8).with_org_recheck(recheck);
        let at_ceiling = ApiUsage { used: 80, max: 100 };
        b.observe_usage(at_ceiling, t0);
        let mut probed_at = None;
        for s in 0..40 {
            let now = t0 + Duration::from_secs(s);
            b.observe_usage(at_ceiling, now);
            if b.try_acquire(1, now).is_ok() {
                probed_at = Some(s);
                break;
            }
        }
        assert_eq!(probed_at, Some(15));
        assert_eq!(b.org_usage(), Some(at_ceiling));
        // A genuinely new report (usage grew) restarts the delay from its arrival.
        let t1 = t0 + Duration::from_secs(16);
        b.observe_usage(ApiUsage { used: 81, max: 100 }, t1);
        assert_eq!(b.try_acquire(1, t1).unwrap_err().until, Some(t1 + recheck));
    }

    #[test]
    fn within_ceiling_leaves_the_rest_of_an_allocation_to_others() {
        assert!(within_ceiling(7_999, 1, 10_000, 0.8));
        assert!(!within_ceiling(8_000, 1, 10_000, 0.8));
        assert!(within_ceiling(9_999, 1, 10_000, 1.0));
        assert!(!within_ceiling(10_000, 1, 10_000, 1.0));
        assert!(within_ceiling(5, 1, 0, 0.8));
    }

    #[test]
    fn unknown_org_max_and_full_ceiling_never_block() {
        let t0 = Instant::now();
        let mut b = Budget::new(1_000, DAY, 10, 0.8);
        b.observe_usage(ApiUsage { used: 5, max: 0 }, t0);
        assert!(b.try_acquire(1, t0).is_ok());
        let mut b = Budget::new(1_000, DAY, 10, 1.0);
        b.observe_usage(ApiUsage { used: 99, max: 100 }, t0);
        drop(b.try_acquire(1, t0).unwrap());
        assert_eq!(
            b.try_acquire(1, t0).unwrap_err().reason,
            WaitReason::OrgCeiling
        );
    }

    #[test]
    fn default_ceiling_keeps_a_fifth_of_the_org_quota() {
        let t0 = Instant::now();
        let mut b = Budget::new(u64::MAX, DAY, 1_000, DEFAULT_ORG_CEILING_FRACTION);
        b.observe_usage(
            ApiUsage {
                used: 0,
                max: 100_000,
            },
            t0,
        );
        let mut granted = 0u64;
        while b.try_acquire(1, t0).is_ok() {
            granted += 1;
            if granted > 100_000 {
                break;
            }
        }
        assert_eq!(granted, 80_000);
    }

    #[test]
    fn settings_are_clamped_to_sane_values() {
        let mut b = Budget::new(0, DAY, 0, 7.0);
        assert_eq!(b.requests_per_interval(), 1);
        assert_eq!(b.max_concurrent(), 1);
        let t0 = Instant::now();
        b.observe_usage(ApiUsage { used: 99, max: 100 }, t0);
        // Ceiling clamped to 100%: 99 + 1 fits.
        assert!(b.try_acquire(1, t0).is_ok());
    }

    #[test]
    fn concurrency_is_checked_before_the_window() {
        let t0 = Instant::now();
        let mut b = Budget::new(1, DAY, 1, 1.0);
        let p = b.try_acquire(1, t0).unwrap();
        assert_eq!(p.cost(), 1);
        assert_eq!(
            b.try_acquire(1, t0).unwrap_err().reason,
            WaitReason::Concurrency
        );
        drop(p);
        assert_eq!(b.in_flight(), 0);
        assert_eq!(b.try_acquire(1, t0).unwrap_err().reason, WaitReason::Window);
    }

    #[test]
    fn backoff_jitter_stays_in_range_and_survives_many_attempts() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut seen = Vec::new();
        for i in 0..10 {
            let unit = (i as f64) / 10.0;
            let d = b.next_delay_with(unit);
            let full = (0.1 * 2f64.powi(i)).min(30.0);
            assert!(d.as_secs_f64() >= full / 2.0 - 1e-9, "{i}: {d:?}");
            assert!(d.as_secs_f64() < full + 1e-9, "{i}: {d:?}");
            seen.push(d);
        }
        // Thousands of failures neither overflow nor exceed the cap.
        for _ in 0..5_000 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        assert_eq!(b.attempts(), 5_010);
        // Random jitter actually varies.
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let draws: std::collections::HashSet<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn backoff_follows_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let unavailable = Error::Api {
            status: 503,
            errors: vec![],
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(b.next_delay_for(&unavailable), Duration::from_secs(7));
        // Without a hint, the jittered delay.
        let lock = Error::Api {
            status: 400,
            errors: vec![ApiError {
                error_code: ErrorCode::UnableToLockRow,
                message: String::new(),
                fields: vec![],
            }],
            retry_after: None,
        };
        assert!(b.next_delay_for(&lock) <= Duration::from_millis(40));
    }

    #[test]
    fn poll_rate_meets_two_second_median_lag_at_100k_per_day() {
        // 10 collections, 5 queries per /composite call: 2 calls per round. A change
        // waits on average half a round for the next poll.
        let d = poll_interval(100_000, DAY, 10, 5, 0.0).unwrap();
        assert!(d.as_secs_f64() / 2.0 <= 1.0, "{d:?}");
        // Keeping a fifth of the budget for backfill and writes still leaves the median
        // wait near a second.
        let d = poll_interval(100_000, DAY, 10, 5, 0.2).unwrap();
        assert!((d.as_secs_f64() - 2.16).abs() < 1e-9, "{d:?}");
        // Sequin's approach (one call per collection per poll) at the same quota: 8.64 s.
        let d = poll_interval(100_000, DAY, 10, 1, 0.0).unwrap();
        assert!((d.as_secs_f64() - 8.64).abs() < 1e-9, "{d:?}");
        // The default 28,800/day budget with 3 collections: one round every 3 s.
        let d = poll_interval(28_800, DAY, 3, 5, 0.0).unwrap();
        assert!((d.as_secs_f64() - 3.0).abs() < 1e-9, "{d:?}");
        // A poll schedule the budget allows is actually granted by the budget.
        let t0 = Instant::now();
        let mut b = Budget::new(100_000, DAY, 1, 1.0);
        let round = poll_interval(100_000, DAY, 10, 5, 0.0).unwrap();
        for i in 0..50_000u32 {
            let now = t0 + round * i;
            drop(
                b.try_acquire(2, now)
                    .unwrap_or_else(|w| panic!("round {i}: {w:?}")),
            );
        }
    }
}
