//! The workers' SIGTERM and SIGHUP: handlers that are safe on any thread, and waiting on
//! the latch they set.
//!
//! The kernel gives a process-directed signal to any thread that does not block it. The
//! runtime's threads block every signal once they start (client.rs), but a thread a
//! library starts some other way, or one caught before its first instruction, can still
//! take SIGTERM. pgrx's own handlers call SetLatch through its thread-checked binding,
//! which panics off the main thread, and a panic in a signal handler aborts the process:
//! seen at fast shutdown as "terminated by signal 6" while a change event stream was
//! reconnecting. These handlers only store to Postgres's flags and call SetLatch itself,
//! which Postgres documents as safe in a signal handler.

use std::time::Duration;

use pgrx::pg_sys;

mod c {
    use pgrx::pg_sys;

    extern "C" {
        /// Postgres's SetLatch, unchecked: callable from a signal handler on any thread.
        #[link_name = "SetLatch"]
        pub fn set_latch(latch: *mut pg_sys::Latch);
    }
}

/// The flag Postgres's own shutdown handler sets, and then the latch.
extern "C-unwind" fn on_sigterm(_signal: std::ffi::c_int) {
    let saved = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: stores to sig_atomic_t flags and SetLatch, as Postgres's handlers do
    unsafe {
        std::ptr::write_volatile(&raw mut pg_sys::ShutdownRequestPending, 1);
        c::set_latch(pg_sys::MyLatch);
    }
    restore_errno(saved);
}

extern "C-unwind" fn on_sighup(_signal: std::ffi::c_int) {
    let saved = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: as on_sigterm
    unsafe {
        std::ptr::write_volatile(&raw mut pg_sys::ConfigReloadPending, 1);
        c::set_latch(pg_sys::MyLatch);
    }
    restore_errno(saved);
}

/// A handler must leave errno as it found it: the interrupted code may be about to read it.
fn restore_errno(saved: Option<i32>) {
    if let Some(e) = saved {
        // SAFETY: the calling thread's own errno
        unsafe { *libc::__errno_location() = e };
    }
}

/// Installs the handlers; call first thing in a worker's main function.
pub fn attach() {
    // SAFETY: the worker's main thread, before anything else runs
    unsafe {
        #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
        {
            pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(on_sigterm));
            pg_sys::pqsignal(pg_sys::SIGHUP as i32, Some(on_sighup));
        }
        #[cfg(feature = "pg18")]
        {
            pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(on_sigterm));
            pg_sys::pqsignal_be(pg_sys::SIGHUP as i32, Some(on_sighup));
        }
        // a background worker starts with every signal blocked
        pg_sys::BackgroundWorkerUnblockSignals();
    }
}

/// Sleeps until the latch is set or `timeout` passes; false once the worker should stop
/// (SIGTERM, or the postmaster is gone).
pub fn wait_latch(timeout: Duration) -> bool {
    let flags = pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_POSTMASTER_DEATH;
    let millis = timeout.as_millis().min(i32::MAX as u128) as std::ffi::c_long;
    // SAFETY: the worker's main thread; MyLatch is its own latch
    let woke = unsafe {
        let woke = pg_sys::WaitLatch(
            pg_sys::MyLatch,
            flags as i32,
            millis,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
        pgrx::check_for_interrupts!();
        woke
    };
    woke & pg_sys::WL_POSTMASTER_DEATH as i32 == 0 && !stopping()
}

/// True once SIGTERM arrived (the flag is never reset).
pub fn stopping() -> bool {
    // SAFETY: a plain read of a sig_atomic_t the signal handler sets.
    unsafe { std::ptr::read_volatile(&raw const pg_sys::ShutdownRequestPending) != 0 }
}

/// True once per SIGHUP: the caller reads the configuration file again.
pub fn reload_requested() -> bool {
    // SAFETY: as stopping(); the flag is reset here, on the main thread
    unsafe {
        let asked = std::ptr::read_volatile(&raw const pg_sys::ConfigReloadPending) != 0;
        if asked {
            std::ptr::write_volatile(&raw mut pg_sys::ConfigReloadPending, 0);
        }
        asked
    }
}
