//! Whether the process is asked to stop (SIGTERM), as the host knows it. Every wait of
//! the engine (a request in flight, a slot of the sync's concurrency) ends as soon as
//! it is, so a slow Salesforce never delays a shutdown.

use std::sync::OnceLock;

static CHECK: OnceLock<fn() -> bool> = OnceLock::new();

/// The host's check, set once per process before the first step. It is called from
/// the thread that runs the steps only.
pub fn set_check(check: fn() -> bool) {
    let _ = CHECK.set(check);
}

/// True once the host was asked to stop (false while no check is set).
pub fn stopping() -> bool {
    CHECK.get().is_some_and(|check| check())
}
