//! The worker's per-sync runtime, as the writer sees it.

use std::time::{Duration, Instant};

use super::WriterHost;
use crate::runtime::SyncRuntime;

impl WriterHost for SyncRuntime {
    fn db(&self) -> &dyn crate::db::Database {
        &*self.db
    }

    fn schema_name(&self) -> &str {
        &self.schema_name
    }

    fn client(&self) -> &salesforce::Client {
        &self.client
    }

    fn run_unless_stopping<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        SyncRuntime::run_unless_stopping(self, f)
    }

    fn try_spend(&mut self, cost: u64) -> bool {
        SyncRuntime::try_spend(self, cost)
    }

    fn prune_due(&mut self, retention: Duration) -> bool {
        self.write_prune.take_due(retention, Instant::now())
    }
}
