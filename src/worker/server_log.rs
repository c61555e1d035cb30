//! The engine's log records (the `log` facade) into the server log: warnings as
//! WARNING, the rest as LOG (debug as DEBUG1). Only the worker's main thread may call
//! Postgres's logging; a record from any other thread goes to stderr, which the server
//! collects too.

use std::sync::OnceLock;
use std::thread::ThreadId;

struct ServerLog {
    main: ThreadId,
}

static LOGGER: OnceLock<ServerLog> = OnceLock::new();

impl log::Log for ServerLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        if std::thread::current().id() != self.main {
            eprintln!("{message}");
            return;
        }
        match record.level() {
            log::Level::Error | log::Level::Warn => pgrx::warning!("{message}"),
            log::Level::Info => pgrx::log!("{message}"),
            log::Level::Debug | log::Level::Trace => pgrx::debug1!("{message}"),
        }
    }

    fn flush(&self) {}
}

/// Sends the engine's records here; call on the worker's main thread.
pub fn install() {
    let logger = LOGGER.get_or_init(|| ServerLog {
        main: std::thread::current().id(),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}
