//! Injected failures: by rate or for the next N requests, optionally only on paths
//! containing a string.

use crate::error::ApiError;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Unavailable,
    Internal,
    Timeout,
    Drop,
    /// The request is carried out, then the connection closes without a response:
    /// the client cannot tell whether its write happened.
    DropAfter,
    InvalidSession,
    UnableToLockRow,
    RequestLimit,
    /// A SOQL query (`/query`, `/queryAll`, a next-page locator) that ran too long.
    QueryTimeout,
    /// Not a request fault: the next Bulk query job (Bulk 2.0 job, Bulk 1.0 batch)
    /// created ends `Failed` instead of completing.
    BulkJobFailed,
    /// Not a request fault: the next Bulk query job created ends `Aborted`.
    BulkJobAborted,
}

impl FaultKind {
    pub fn parse(s: &str) -> Option<FaultKind> {
        Some(match s {
            "503" | "unavailable" | "server_unavailable" => FaultKind::Unavailable,
            "500" | "internal" => FaultKind::Internal,
            "timeout" => FaultKind::Timeout,
            "drop" => FaultKind::Drop,
            "drop_after" | "lost_response" => FaultKind::DropAfter,
            "invalid_session" | "401" => FaultKind::InvalidSession,
            "unable_to_lock_row" => FaultKind::UnableToLockRow,
            "request_limit" | "403" => FaultKind::RequestLimit,
            "query_timeout" => FaultKind::QueryTimeout,
            "bulk_job_failed" => FaultKind::BulkJobFailed,
            "bulk_job_aborted" => FaultKind::BulkJobAborted,
            _ => return None,
        })
    }

    /// Kinds that shape how a Bulk query job ends rather than answer a request.
    pub fn is_job(self) -> bool {
        matches!(self, FaultKind::BulkJobFailed | FaultKind::BulkJobAborted)
    }

    /// The error answered for every kind but `Timeout` (after its wait) and `Drop`.
    pub fn error(self) -> ApiError {
        match self {
            FaultKind::Unavailable | FaultKind::Timeout => ApiError::new(
                503,
                "SERVER_UNAVAILABLE",
                "Server temporarily unavailable, please try again later.",
            ),
            FaultKind::Internal
            | FaultKind::Drop
            | FaultKind::DropAfter
            | FaultKind::BulkJobFailed
            | FaultKind::BulkJobAborted => ApiError::new(
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred. Please include this ErrorId if you contact support: 1337424242-42424 (-1161139409)",
            ),
            FaultKind::InvalidSession => ApiError::session(),
            FaultKind::UnableToLockRow => ApiError::bad(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records",
            ),
            FaultKind::RequestLimit => ApiError::new(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            ),
            // Salesforce stops a query that runs past its time limit ("If the query
            // doesn't execute within the standard 2-minute timeout limit, the job fails
            // and a QUERY_TIMEOUT error is returned": "How Bulk Queries Are Processed",
            // https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/asynch_api_bulk_query_processing.htm).
            // Over REST clients report `QUERY_TIMEOUT: Your query request was running
            // for too long` (https://github.com/restforce/restforce/issues/790); the
            // HTTP status, 400, is not shown there. The emulator answers at once; add
            // latency (`latency_ms`) to also make the client wait.
            FaultKind::QueryTimeout => ApiError::bad(
                "QUERY_TIMEOUT",
                "Your query request was running for too long.",
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FaultRule {
    pub kind: FaultKind,
    pub rate: Option<f64>,
    pub remaining: Option<u64>,
    pub path_contains: Option<String>,
    /// Fires per record inside sObject Collections (the record fails with the
    /// fault's error, the others go through) instead of per request.
    pub per_record: bool,
    /// For `bulk_job_failed`: the job's `errorMessage` (else Salesforce's usual one).
    pub message: Option<String>,
}

/// Which rules a pick considers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Request,
    Record,
    Job,
}

impl FaultRule {
    fn target(&self) -> Target {
        if self.kind.is_job() {
            Target::Job
        } else if self.per_record {
            Target::Record
        } else {
            Target::Request
        }
    }
}

pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            rules: Mutex::new(Vec::new()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17)),
        }
    }

    pub fn add(&self, rule: FaultRule) {
        self.rules.lock().push(rule);
    }

    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.lock().clone()
    }

    /// The fault to inject into a request for `path`, if any rule fires.
    pub fn pick(&self, path: &str) -> Option<FaultKind> {
        self.pick_where(path, Target::Request).map(|(k, _)| k)
    }

    /// The fault to inject into one record of a collection request for `path`.
    pub fn pick_record(&self, path: &str) -> Option<FaultKind> {
        self.pick_where(path, Target::Record).map(|(k, _)| k)
    }

    /// How the Bulk query job created by a request for `path` is to end, if a
    /// `bulk_job_*` rule fires: the kind and the rule's message.
    pub fn pick_job(&self, path: &str) -> Option<(FaultKind, Option<String>)> {
        self.pick_where(path, Target::Job)
    }

    fn pick_where(&self, path: &str, target: Target) -> Option<(FaultKind, Option<String>)> {
        let mut rules = self.rules.lock();
        if !rules.iter().any(|r| r.target() == target) {
            return None;
        }
        let mut fired = None;
        for r in rules.iter_mut() {
            if r.target() != target
                || (r.kind == FaultKind::QueryTimeout && !is_soql_path(path))
                || r.path_contains
                    .as_deref()
                    .is_some_and(|p| !path.contains(p))
            {
                continue;
            }
            if let Some(n) = r.remaining.as_mut() {
                if *n > 0 {
                    *n -= 1;
                    fired = Some((r.kind, r.message.clone()));
                    break;
                }
                continue;
            }
            if let Some(rate) = r.rate {
                if self.rng.lock().random::<f64>() < rate {
                    fired = Some((r.kind, r.message.clone()));
                    break;
                }
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        fired
    }
}

/// `/services/data/vNN.N/query[All][/...]`: the requests a SOQL query runs in.
fn is_soql_path(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segs.as_slice(),
        ["services", "data", _, "query" | "queryAll", ..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out() {
        let f = Faults::new(1);
        f.add(FaultRule {
            kind: FaultKind::Unavailable,
            rate: None,
            remaining: Some(2),
            path_contains: Some("/query".into()),
            per_record: false,
            message: None,
        });
        f.add(FaultRule {
            kind: FaultKind::BulkJobFailed,
            rate: None,
            remaining: Some(1),
            path_contains: None,
            per_record: false,
            message: Some("why".into()),
        });
        assert_eq!(f.pick("/services/data/v61.0/sobjects"), None);
        assert_eq!(
            f.pick("/services/data/v61.0/query"),
            Some(FaultKind::Unavailable)
        );
        assert_eq!(
            f.pick("/services/data/v61.0/query"),
            Some(FaultKind::Unavailable)
        );
        assert_eq!(f.pick("/services/data/v61.0/query"), None);
        // Job rules never fire on requests, and fire once on a job.
        assert_eq!(
            f.pick_job("/services/data/v61.0/jobs/query"),
            Some((FaultKind::BulkJobFailed, Some("why".into())))
        );
        assert_eq!(f.pick_job("/services/data/v61.0/jobs/query"), None);
        assert!(f.rules().is_empty());
        // A query timeout only happens to SOQL queries.
        f.add(FaultRule {
            kind: FaultKind::QueryTimeout,
            rate: None,
            remaining: Some(1),
            path_contains: None,
            per_record: false,
            message: None,
        });
        assert_eq!(f.pick("/services/data/v61.0/jobs/query"), None);
        assert_eq!(f.pick("/services/data/v61.0/sobjects/Contact"), None);
        assert_eq!(
            f.pick("/services/data/v61.0/query/01g000000000001AAA-2000"),
            Some(FaultKind::QueryTimeout)
        );
    }
}
