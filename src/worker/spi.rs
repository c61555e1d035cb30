//! The engine's database, inside a background worker: statements through SPI
//! (`crate::spi::SpiSession`) in transactions the worker starts and ends itself. A
//! Postgres ERROR inside one unwinds to `guarded`, which aborts the transaction, so one
//! failing sync cannot take the worker, and every other sync, down with it.

use pgrx::pg_sys;
use sync_engine::db::{Database, DbError, Isolation, Session};

use crate::spi::SpiSession;

/// SPI in the worker's own backend.
pub struct Spi;

/// Puts the default isolation back however the transaction ends.
struct RestoreIsolation(std::ffi::c_int);

impl Drop for RestoreIsolation {
    fn drop(&mut self) {
        // SAFETY: a plain write of the backend's own setting, on its only thread
        unsafe { pg_sys::DefaultXactIsoLevel = self.0 };
    }
}

impl Database for Spi {
    fn transaction(
        &self,
        isolation: Isolation,
        body: &mut dyn FnMut(&mut dyn Session) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        // SAFETY: the worker's main thread, between transactions. A transaction takes
        // its level from the default when it starts, before its snapshot is taken.
        let _restore = RestoreIsolation(unsafe { pg_sys::DefaultXactIsoLevel });
        if isolation == Isolation::RepeatableRead {
            unsafe {
                pg_sys::DefaultXactIsoLevel = pg_sys::XACT_REPEATABLE_READ as std::ffi::c_int
            };
        }
        // SAFETY: as BackgroundWorker::transaction does; an ERROR inside the body
        // unwinds past this to `guarded`, which aborts the transaction.
        unsafe {
            pg_sys::SetCurrentStatementStartTimestamp();
            pg_sys::StartTransactionCommand();
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        }
        let result = body(&mut SpiSession);
        // SAFETY: ends the transaction started above, keeping its work only on success
        unsafe {
            pg_sys::PopActiveSnapshot();
            if result.is_ok() {
                pg_sys::CommitTransactionCommand();
            } else {
                pg_sys::AbortCurrentTransaction();
            }
        }
        result
    }

    fn guarded(&self, body: &mut dyn FnMut()) -> Result<(), String> {
        catch_errors(body)
    }
}

/// Runs `f`, turning a Postgres ERROR (or a Rust panic) raised inside it into its
/// message after aborting the open transaction.
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
