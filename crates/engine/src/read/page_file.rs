//! Files holding pages on their way into a table: `COPY` reads them. The host says
//! where they live (`use_page_dir`: the extension, the data directory, where the server
//! may read them). Named for their owner (the extension: the database) and the process,
//! so that what a process left when it crashed or exited on an error is found and
//! removed (`remove_leftover_pages`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::inflight::{OwnedPage, RestFetched, RewrittenPage};

/// Earlier releases named their Bulk pages with the second prefix.
const PREFIXES: [&str; 2] = ["sequin_sf_page_", "sequin_sf_bulk_"];

/// Where this process's page files go, and the owner their names carry.
struct PageDir {
    dir: PathBuf,
    owner: String,
}

static PAGE_DIR: OnceLock<PageDir> = OnceLock::new();

/// Sets where page files go, once per process, before the first step. `owner` tells
/// apart the processes of several hosts sharing `dir`.
pub fn use_page_dir(dir: PathBuf, owner: String) {
    let _ = PAGE_DIR.set(PageDir { dir, owner });
}

fn page_dir() -> &'static PageDir {
    PAGE_DIR.get_or_init(|| PageDir {
        dir: std::env::temp_dir(),
        owner: "0".into(),
    })
}

/// A new file name for a page.
pub fn page_file() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let d = page_dir();
    d.dir.join(format!(
        "{}{}_{}_{}.page",
        PREFIXES[0],
        d.owner,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes the pages that processes of this owner left behind when they ended without
/// cleaning up (a crash, an error exit): those whose process is gone.
pub fn remove_leftover_pages() {
    let d = page_dir();
    let Ok(entries) = std::fs::read_dir(&d.dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = PREFIXES
            .iter()
            .find_map(|p| name.to_str()?.strip_prefix(&format!("{p}{}_", d.owner)))
            .and_then(|rest| rest.split('_').next()?.parse::<i32>().ok())
        else {
            continue;
        };
        if !process_alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Creates the file a page is written to.
pub fn create_page_file(path: &Path) -> salesforce::Result<std::fs::File> {
    std::fs::File::create(path)
        .map_err(|e| salesforce::Error::Transport(format!("{}: {e}", path.display())))
}

/// A new page file that `write` fills with a page rewritten for `COPY`.
pub fn rewritten_page(
    write: impl FnOnce(
        std::io::BufWriter<std::fs::File>,
    ) -> Result<sync_core::copy_rows::CopyPage, sync_core::records::RecordError>,
) -> salesforce::Result<RewrittenPage> {
    let page = OwnedPage(page_file());
    let out = std::io::BufWriter::new(create_page_file(&page.0)?);
    let copy = write(out).map_err(|e| salesforce::Error::Decode(e.to_string()))?;
    Ok((page, copy))
}

/// A REST page's records rewritten for `COPY` into a new page file.
pub fn rest_page_file(
    records: &str,
    columns: &[sync_core::ColumnSpec],
) -> salesforce::Result<RewrittenPage> {
    rewritten_page(|out| sync_core::copy_rows::rewrite_rest_page(records, out, columns))
}

/// Fetches a REST page and, given the table's columns (while the backfill's rows are
/// new to the table), rewrites it for `COPY` on a blocking thread, away from the
/// worker's Postgres work.
pub async fn fetch_rest_page(
    request: impl std::future::Future<Output = salesforce::Result<salesforce::RawQueryPage>>,
    columns: Option<Vec<sync_core::ColumnSpec>>,
) -> salesforce::Result<RestFetched> {
    let page = request.await?;
    let Some(columns) = columns else {
        return Ok(RestFetched { page, copy: None });
    };
    tokio::task::spawn_blocking(move || {
        let copy = rest_page_file(page.records_json(), &columns)?;
        Ok(RestFetched {
            page,
            copy: Some(copy),
        })
    })
    .await
    .map_err(|e| salesforce::Error::Decode(format!("rewriting a REST page: {e}")))?
}
