//! The sync engine: everything a sync does, for whichever process hosts it. The read
//! path (`read`: set-up, backfill, polls, change events, describe drift, refreshes) and
//! the write path (`write`: backlog, queue, plan, send, settle) run one step at a time
//! for each sync (`syncs`), between transactions of the database interface (`db`) that
//! the host implements: the extension with SPI inside a background worker.
//!
//! Hosts set two things per process before the first step: how to tell that the
//! process is asked to stop (`stop::set_check`) and where page files wait for `COPY`
//! (`read::use_page_dir`); log records go through the `log` facade.

pub mod allocations;
pub mod catalog;
pub mod credentials;
pub mod db;
pub mod endpoint;
pub mod error;
pub mod inflight;
pub mod read;
pub mod runtime;
pub mod status;
pub mod stop;
pub mod stream;
pub mod syncs;
pub mod write;

pub use db::{Database, DbError, Isolation, Param, Row, Session};
