//! The worker's transaction and error helpers, shared by the read and the write path:
//! every piece of work runs in a short transaction of its own (`tx`), never across an
//! HTTP call, and a Postgres ERROR inside one is caught (`catch_errors`) so one failing
//! sync cannot take the worker, and every other sync, down with it.

use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;

/// Runs `f`, turning a Postgres ERROR (or a Rust panic) raised inside it into its
/// message after aborting the open transaction, so one failing sync cannot take the
/// whole worker (and every other sync) down with it.
pub fn catch_errors<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    use pgrx::pg_sys::panic::CaughtError;
    pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| Ok(f())))
        .catch_others(|caught| {
            // SAFETY: main thread; aborting with no transaction open is a no-op.
            unsafe { pgrx::pg_sys::AbortCurrentTransaction() };
            Err(match &caught {
                // the detail names what is involved (the view that depends on a column)
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => match r.detail() {
                    Some(detail) => format!("{} ({detail})", r.message()),
                    None => r.message().to_string(),
                },
                CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
            })
        })
        .execute()
}

/// Runs `f` in its own transaction.
pub fn tx<R>(f: impl FnOnce() -> R) -> R {
    BackgroundWorker::transaction(std::panic::AssertUnwindSafe(f))
}

/// Runs `f` in its own REPEATABLE READ transaction: every statement sees the database as
/// of the first one (plus the transaction's own changes).
pub fn tx_repeatable_read<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the default back however the transaction ends.
    struct Restore(std::ffi::c_int);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: a plain write of the backend's own setting, on its only thread
            unsafe { pg_sys::DefaultXactIsoLevel = self.0 };
        }
    }
    // SAFETY: as above. A transaction takes its level from the default when it starts,
    // before BackgroundWorker::transaction takes its snapshot.
    let _restore = Restore(unsafe { pg_sys::DefaultXactIsoLevel });
    unsafe { pg_sys::DefaultXactIsoLevel = pg_sys::XACT_REPEATABLE_READ as std::ffi::c_int };
    tx(f)
}
