//! The worker's per-sync runtime, as the writer sees it.

use super::WriterHost;
use crate::worker::SyncRuntime;

impl WriterHost for SyncRuntime {
    fn sync_name(&self) -> &str {
        &self.sync_name
    }

    fn schema_name(&self) -> &str {
        &self.schema_name
    }

    fn client(&self) -> &salesforce::Client {
        &self.client
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        SyncRuntime::block_on(self, f)
    }

    fn try_spend(&mut self, cost: u64) -> bool {
        SyncRuntime::try_spend(self, cost)
    }
}
