//! The rolling daily request quota, the long-request concurrency cap, and the
//! per-endpoint request counters and the peak of requests in flight that the control API
//! reports.

use crate::error::ApiError;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};

const WINDOW_MS: i64 = 24 * 3600 * 1000;
const BUCKET_MS: i64 = 60_000;

/// Every endpoint name the stats report, so readers always see each key.
pub const ENDPOINTS: &[&str] = &[
    "versions",
    "resources",
    "token",
    "revoke",
    "identity",
    "soap_login",
    "query",
    "query_more",
    "queryAll",
    "composite",
    "composite_batch",
    "collections",
    "sobject_create",
    "sobject_update",
    "sobject_upsert",
    "sobject_delete",
    "sobject_get",
    "sobject_basic",
    "undelete",
    "describe",
    "describe_global",
    "updated",
    "deleted",
    "bulk2_query",
    "bulk2_ingest",
    "bulk1",
    "limits",
    "not_found",
];

struct Quota {
    limit: u64,
    buckets: VecDeque<(i64, u64)>,
    long_limit: u64,
    long_in_flight: u64,
    /// long requests of other integrations running now (`PUT limits`)
    long_elsewhere: u64,
}

impl Quota {
    /// Slots of the long-request cap free now, every integration's counted.
    fn long_free(&self) -> u64 {
        self.long_limit
            .saturating_sub(self.long_in_flight + self.long_elsewhere)
    }

    /// Refused while the long-request cap is full.
    fn long_capacity(&self) -> Result<(), ApiError> {
        match self.long_free() {
            0 => Err(ApiError::new(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded.",
            )),
            _ => Ok(()),
        }
    }
}

pub struct Limits {
    quota: Mutex<Quota>,
    counts: Mutex<BTreeMap<String, u64>>,
    total: Mutex<u64>,
    /// requests being served now (from arrival, added latency included, to the reply),
    /// and the most at once since the stats were last reset
    in_flight: Mutex<InFlightCount>,
}

/// The endpoints of the requests being served, and the most at once: what a client's
/// concurrency limit can be checked against, with the endpoints that made the peak (to
/// tell which of a client's requests went past it).
#[derive(Default)]
struct InFlightCount {
    now: Vec<&'static str>,
    peak: Vec<&'static str>,
}

impl Limits {
    pub fn new(limit: u64, long_limit: u64) -> Limits {
        Limits {
            quota: Mutex::new(Quota {
                limit,
                buckets: VecDeque::new(),
                long_limit,
                long_in_flight: 0,
                long_elsewhere: 0,
            }),
            counts: Mutex::new(ENDPOINTS.iter().map(|e| (e.to_string(), 0)).collect()),
            total: Mutex::new(0),
            in_flight: Mutex::new(InFlightCount::default()),
        }
    }

    fn prune(q: &mut Quota, now: i64) {
        while let Some(&(t, _)) = q.buckets.front() {
            if t + WINDOW_MS <= now {
                q.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    /// Requests used in the last 24 hours, and the quota.
    pub fn usage(&self) -> (u64, u64) {
        let mut q = self.quota.lock();
        Self::prune(&mut q, crate::timefmt::wall_ms());
        (q.buckets.iter().map(|b| b.1).sum(), q.limit)
    }

    /// `api-usage=USED/MAX`.
    pub fn header_value(&self) -> String {
        let (used, max) = self.usage();
        format!("api-usage={used}/{max}")
    }

    /// Spends `n` requests of the quota, or fails with REQUEST_LIMIT_EXCEEDED when
    /// the quota is already spent.
    pub fn consume(&self, n: u64) -> Result<(), ApiError> {
        let now = crate::timefmt::wall_ms();
        let mut q = self.quota.lock();
        Self::prune(&mut q, now);
        let used: u64 = q.buckets.iter().map(|b| b.1).sum();
        if used >= q.limit {
            return Err(ApiError::new(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            ));
        }
        let bucket = now - now.rem_euclid(BUCKET_MS);
        match q.buckets.back_mut() {
            Some((t, c)) if *t == bucket => *c += n,
            _ => q.buckets.push_back((bucket, n)),
        }
        drop(q);
        *self.total.lock() += n;
        Ok(())
    }

    /// Counts a request toward the stats (never toward the quota).
    pub fn hit(&self, endpoint: &str) {
        *self.counts.lock().entry(endpoint.to_string()).or_insert(0) += 1;
    }

    pub fn stats(&self) -> (u64, BTreeMap<String, u64>) {
        (*self.total.lock(), self.counts.lock().clone())
    }

    /// Counts a request to `endpoint` as in flight until the guard is dropped.
    pub fn begin_request(&self, endpoint: &'static str) -> InFlight<'_> {
        let mut count = self.in_flight.lock();
        count.now.push(endpoint);
        if count.now.len() > count.peak.len() {
            count.peak = count.now.clone();
        }
        InFlight {
            limits: self,
            endpoint,
        }
    }

    /// The most requests in flight at once since the last reset.
    pub fn peak_in_flight(&self) -> u64 {
        self.in_flight.lock().peak.len() as u64
    }

    /// The endpoints of the requests in flight when the most were.
    pub fn peak_endpoints(&self) -> Vec<&'static str> {
        self.in_flight.lock().peak.clone()
    }

    pub fn reset_stats(&self) {
        let mut count = self.in_flight.lock();
        count.peak = count.now.clone();
        drop(count);
        *self.total.lock() = 0;
        for v in self.counts.lock().values_mut() {
            *v = 0;
        }
    }

    /// `PUT limits`: any of the three may be given.
    pub fn set(&self, limit: Option<u64>, used: Option<u64>, long_limit: Option<u64>) {
        let mut q = self.quota.lock();
        if let Some(l) = limit {
            q.limit = l;
        }
        if let Some(u) = used {
            q.buckets.clear();
            let now = crate::timefmt::wall_ms();
            q.buckets.push_back((now - now.rem_euclid(BUCKET_MS), u));
        }
        if let Some(l) = long_limit {
            q.long_limit = l;
        }
    }

    pub fn long_limit(&self) -> u64 {
        self.quota.lock().long_limit
    }

    /// Long requests running now.
    pub fn long_in_flight(&self) -> u64 {
        self.quota.lock().long_in_flight
    }

    /// Long requests other integrations run now (`PUT limits`
    /// `long_requests_elsewhere`): they take slots of the cap as this org's own do.
    pub fn set_long_elsewhere(&self, n: u64) {
        self.quota.lock().long_elsewhere = n;
    }

    /// Slots of the long-request cap free now, every integration's counted.
    pub fn long_remaining(&self) -> u64 {
        self.quota.lock().long_free()
    }

    /// Starts a long request, or refuses it when the cap is reached.
    pub fn begin_long(&self) -> Result<LongGuard<'_>, ApiError> {
        let mut q = self.quota.lock();
        q.long_capacity()?;
        q.long_in_flight += 1;
        Ok(LongGuard { limits: self })
    }

    /// Refuses new requests while the long-request cap is taken.
    pub fn check_long_capacity(&self) -> Result<(), ApiError> {
        self.quota.lock().long_capacity()
    }
}

/// Ends a request's count in flight when dropped.
pub struct InFlight<'a> {
    limits: &'a Limits,
    endpoint: &'static str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut count = self.limits.in_flight.lock();
        if let Some(i) = count.now.iter().position(|e| *e == self.endpoint) {
            count.now.swap_remove(i);
        }
    }
}

/// Releases a long-request slot when dropped.
pub struct LongGuard<'a> {
    limits: &'a Limits,
}

impl Drop for LongGuard<'_> {
    fn drop(&mut self) {
        let mut q = self.limits.quota.lock();
        q.long_in_flight = q.long_in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_runs_out() {
        let l = Limits::new(3, 1);
        assert!(l.consume(1).is_ok());
        assert!(l.consume(2).is_ok());
        let e = l.consume(1).unwrap_err();
        assert_eq!(e.status, 403);
        assert_eq!(e.code, "REQUEST_LIMIT_EXCEEDED");
        assert_eq!(l.header_value(), "api-usage=3/3");
        l.set(Some(10), Some(0), None);
        assert!(l.consume(1).is_ok());
        let g = l.begin_long().unwrap();
        assert!(l.begin_long().is_err());
        drop(g);
        assert!(l.begin_long().is_ok());
    }

    #[test]
    fn peak_in_flight_counts_requests_served_at_once() {
        let l = Limits::new(100, 25);
        let a = l.begin_request("query");
        let b = l.begin_request("describe");
        drop(a);
        let c = l.begin_request("query");
        assert_eq!(l.peak_in_flight(), 2);
        let mut at_peak = l.peak_endpoints();
        at_peak.sort();
        assert_eq!(at_peak, ["describe", "query"]);
        drop((b, c));
        l.reset_stats();
        assert_eq!(l.peak_in_flight(), 0);
        let _d = l.begin_request("limits");
        assert_eq!(l.peak_in_flight(), 1);
        assert_eq!(l.peak_endpoints(), ["limits"]);
    }
}
