//! Poll planning: which live collections share one `/composite` call, and when
//! periodic chores are due.

use std::time::{Duration, Instant};

/// `/composite` allows at most 5 query subrequests per call.
pub const QUERIES_PER_COMPOSITE: usize = 5;

/// Polls never run more often than this, however generous the budget: below it the
/// cost is all overhead and the lag gain is nil.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Splits `n` collections into consecutive groups of at most 5 (one composite call each).
pub fn poll_groups(n: usize) -> Vec<std::ops::Range<usize>> {
    (0..n)
        .step_by(QUERIES_PER_COMPOSITE)
        .map(|start| start..(start + QUERIES_PER_COMPOSITE).min(n))
        .collect()
}

/// The interval between poll rounds: the budget's pace (see
/// `salesforce::pacing::poll_interval`), never below [`MIN_POLL_INTERVAL`]; `None`
/// pace (budget too small for one round per interval) falls back to one round per
/// `fallback`.
pub fn round_interval(pace: Option<Duration>, fallback: Duration) -> Duration {
    pace.unwrap_or(fallback).max(MIN_POLL_INTERVAL)
}

/// A chore that runs every `every`; `due` is true at start and then once per period.
#[derive(Debug, Clone)]
pub struct Periodic {
    every: Duration,
    last: Option<Instant>,
}

impl Periodic {
    pub fn new(every: Duration) -> Self {
        Periodic { every, last: None }
    }

    pub fn set_every(&mut self, every: Duration) {
        self.every = every;
    }

    pub fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every)
    }

    pub fn mark(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// Makes the chore due at the next check.
    pub fn force(&mut self) {
        self.last = None;
    }

    /// Time left until due (zero when due).
    pub fn remaining(&self, now: Instant) -> Duration {
        match self.last {
            None => Duration::ZERO,
            Some(t) => self.every.saturating_sub(now.saturating_duration_since(t)),
        }
    }
}

/// How often to prune what is older than `retention` (events, settled write-log
/// entries): at least every 10 minutes, and twice per retention when it is shorter, so
/// nothing outlives its retention by more than half of it.
pub fn prune_every(retention: Duration) -> Duration {
    (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// The schedule of one pruning chore, following a retention that may change at any time.
#[derive(Debug, Clone)]
pub struct Pruning(Periodic);

impl Default for Pruning {
    fn default() -> Self {
        Pruning(Periodic::new(Duration::from_secs(600)))
    }
}

impl Pruning {
    /// True (and counted as done) when pruning for `retention` is due.
    pub fn take_due(&mut self, retention: Duration, now: Instant) -> bool {
        self.0.set_every(prune_every(retention));
        let due = self.0.due(now);
        if due {
            self.0.mark(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_five() {
        assert_eq!(poll_groups(0), vec![]);
        assert_eq!(poll_groups(3), vec![0..3]);
        assert_eq!(poll_groups(10), vec![0..5, 5..10]);
        assert_eq!(poll_groups(11), vec![0..5, 5..10, 10..11]);
    }

    #[test]
    fn ten_collections_at_100k_per_day_poll_about_every_two_seconds() {
        let pace = salesforce_like_poll_interval(100_000, 86_400.0, 10, 0.2);
        let every = round_interval(Some(pace), Duration::from_secs(60));
        // median lag is half the round interval plus one request
        assert!(every.as_secs_f64() < 2.5, "{every:?}");
        assert!(every.as_secs_f64() > 1.5, "{every:?}");
        assert_eq!(
            round_interval(Some(Duration::from_millis(1)), Duration::ZERO),
            MIN_POLL_INTERVAL
        );
        assert_eq!(
            round_interval(None, Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }

    // The same arithmetic as the client's pacing module, so this crate's tests do not
    // need the HTTP client.
    fn salesforce_like_poll_interval(req: u64, secs: f64, n: usize, reserve: f64) -> Duration {
        let calls = n.div_ceil(QUERIES_PER_COMPOSITE) as f64;
        Duration::from_secs_f64(secs / (req as f64 * (1.0 - reserve) / calls))
    }

    #[test]
    fn periodic_chores() {
        let t0 = Instant::now();
        let mut p = Periodic::new(Duration::from_secs(10));
        assert!(p.due(t0));
        p.mark(t0);
        assert!(!p.due(t0 + Duration::from_secs(9)));
        assert_eq!(
            p.remaining(t0 + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        assert!(p.due(t0 + Duration::from_secs(10)));
        p.force();
        assert!(p.due(t0));
    }

    #[test]
    fn pruning_follows_short_retentions_and_happens_every_ten_minutes_at_least() {
        assert_eq!(prune_every(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(
            prune_every(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            prune_every(Duration::from_secs(7 * 86_400)),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn pruning_is_due_once_per_period_of_the_current_retention() {
        let t0 = Instant::now();
        let mut p = Pruning::default();
        assert!(p.take_due(Duration::from_secs(60), t0));
        assert!(!p.take_due(Duration::from_secs(60), t0 + Duration::from_secs(29)));
        assert!(p.take_due(Duration::from_secs(60), t0 + Duration::from_secs(30)));
        // a shorter retention takes effect at once
        assert!(p.take_due(Duration::from_secs(2), t0 + Duration::from_secs(31)));
    }
}
