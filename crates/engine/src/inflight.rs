//! Requests a sync keeps in flight between its steps (its runtime holds them): one
//! started ahead while the worker applies the page before it. Apart from both the
//! runtime and the read path, which each need them.

use sync_core::copy_rows::CopyPage;

/// A request started ahead (`SyncRuntime::fetch_ahead`); dropping it abandons it.
pub struct Ahead<T>(pub(crate) Option<tokio::task::JoinHandle<salesforce::Result<T>>>);

impl<T> Drop for Ahead<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}

/// A page file removed when dropped.
pub struct OwnedPage(pub std::path::PathBuf);

impl Drop for OwnedPage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A page file and what it holds.
pub type RewrittenPage = (OwnedPage, CopyPage);

/// A fetched REST page and, when asked for, the page rewritten for `COPY`.
pub struct RestFetched {
    pub page: salesforce::RawQueryPage,
    pub copy: Option<RewrittenPage>,
}

/// A Bulk results page, rewritten for `COPY` (`sync_core::copy_rows`) into a page file.
pub type FetchedPage = (salesforce::BulkPageInfo, RewrittenPage);

/// A Bulk results page being fetched and rewritten by a request started ahead, while
/// the page before it is applied. Dropped unused, it is abandoned; its file goes with
/// it (`OwnedPage`).
pub struct BulkDownload {
    /// The job and the locator it was asked for.
    pub(crate) job_id: String,
    pub(crate) locator: Option<String>,
    pub(crate) ahead: Ahead<FetchedPage>,
}
