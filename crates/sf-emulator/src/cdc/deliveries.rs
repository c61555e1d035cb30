//! The org's event delivery allocation: every event a Pub/Sub subscriber receives
//! counts once for that subscriber, over a rolling 24 hours, and `/limits` reports
//! what is left as `DailyDeliveredPlatformEvents`.
//!
//! | fact | source |
//! | --- | --- |
//! | Event delivery is counted per delivered event and per subscriber, over 24 hours; defaults 50,000 (Performance, Unlimited), 25,000 (Enterprise), 10,000 (other editions), raised by add-ons | "Platform Event Allocations" and "Change Data Capture Allocations", Salesforce App Limits Cheatsheet, https://developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/platform-event-allocations.html |
//! | `/limits` has `DailyDeliveredPlatformEvents` {Max, Remaining} | "List Organization Limits", REST API Developer Guide |
//!
//! Unconfirmed, chosen here: that change events delivered over Pub/Sub count in
//! `DailyDeliveredPlatformEvents` (the allocation is shared by platform events and change
//! events; which `/limits` key reports it is not spelled out). Not modelled: what a
//! subscriber past the allocation gets; events go on being delivered and Remaining
//! stays at 0.

use parking_lot::Mutex;
use std::collections::VecDeque;

const DAY_MS: i64 = 24 * 3_600_000;

/// Events delivered per minute over the last 24 hours, deliveries the org's other
/// subscribers made (set by the control API), and the allocation.
pub struct Deliveries {
    minutes: Mutex<VecDeque<(i64, u64)>>,
    elsewhere: Mutex<u64>,
    limit: Mutex<u64>,
}

impl Deliveries {
    pub fn new(limit: u64) -> Deliveries {
        Deliveries {
            minutes: Mutex::new(VecDeque::new()),
            elsewhere: Mutex::new(0),
            limit: Mutex::new(limit),
        }
    }

    /// `n` events went to one subscriber now.
    pub fn count(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = crate::timefmt::wall_ms();
        let minute = now - now.rem_euclid(60_000);
        let mut m = self.minutes.lock();
        while m.front().is_some_and(|(t, _)| *t + DAY_MS <= now) {
            m.pop_front();
        }
        match m.back_mut() {
            Some((t, total)) if *t == minute => *total += n as u64,
            _ => m.push_back((minute, n as u64)),
        }
    }

    /// Events delivered in the last 24 hours, to this emulator's subscribers and to
    /// the others the control API says of.
    pub fn used(&self) -> u64 {
        let now = crate::timefmt::wall_ms();
        let mine: u64 = self
            .minutes
            .lock()
            .iter()
            .filter(|(t, _)| t + DAY_MS > now)
            .map(|(_, n)| n)
            .sum();
        mine + *self.elsewhere.lock()
    }

    /// (Max, Remaining) as `/limits` reports them.
    pub fn allocation(&self) -> (u64, u64) {
        let max = *self.limit.lock();
        (max, max.saturating_sub(self.used()))
    }

    /// Control API: the allocation, and deliveries to the org's other subscribers.
    pub fn set(&self, limit: Option<u64>, elsewhere: Option<u64>) {
        if let Some(l) = limit {
            *self.limit.lock() = l;
        }
        if let Some(e) = elsewhere {
            *self.elsewhere.lock() = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_count_against_the_allocation() {
        let d = Deliveries::new(100);
        assert_eq!(d.allocation(), (100, 100));
        d.count(30);
        d.count(5);
        assert_eq!(d.allocation(), (100, 65));
        d.set(None, Some(70));
        assert_eq!(d.allocation(), (100, 0), "never below zero");
        d.set(Some(1000), Some(0));
        assert_eq!(d.allocation(), (1000, 965));
    }
}
