//! A dynamic background worker kept running by the process that started it: the
//! launcher keeps the database's supervisor running, the supervisor one worker per
//! sync. It is started when due and restarted when it stops, after a delay that
//! doubles while it keeps stopping soon after its start (a crash loop).

use std::time::{Duration, Instant};

use pgrx::bgworkers::{BackgroundWorkerStatus, DynamicBackgroundWorker};

/// The first wait before starting again a worker that stopped.
const FIRST_RESTART_DELAY: Duration = Duration::from_secs(5);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(300);
/// A worker that ran this long before stopping restarts after the first delay again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

pub struct Child {
    running: Option<(DynamicBackgroundWorker, Instant)>,
    delay: Duration,
    start_after: Instant,
}

/// What `Child::check` found.
pub enum Check {
    Running,
    /// It stopped just now; it is started again after this delay.
    Stopped(Duration),
    /// Not running: start it when `due`.
    Idle,
}

impl Child {
    pub fn new() -> Child {
        Child {
            running: None,
            delay: FIRST_RESTART_DELAY,
            start_after: Instant::now(),
        }
    }

    pub fn check(&mut self) -> Check {
        let Some((w, started)) = &self.running else {
            return Check::Idle;
        };
        if matches!(w.pid(), Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted)) {
            return Check::Running;
        }
        self.delay = if started.elapsed() >= HEALTHY_RUN {
            FIRST_RESTART_DELAY
        } else {
            (self.delay * 2).min(MAX_RESTART_DELAY)
        };
        self.start_after = Instant::now() + self.delay;
        self.running = None;
        Check::Stopped(self.delay)
    }

    /// True when it is not running and its (re)start is due.
    pub fn due(&self) -> bool {
        self.running.is_none() && Instant::now() >= self.start_after
    }

    /// Records the outcome of a start; without a worker (no free slot: see
    /// max_worker_processes) the next try waits for the current delay.
    pub fn started(&mut self, worker: Option<DynamicBackgroundWorker>) -> bool {
        match worker {
            Some(w) => {
                self.running = Some((w, Instant::now()));
                true
            }
            None => {
                self.start_after = Instant::now() + self.delay;
                false
            }
        }
    }

    pub fn retry_in(&self) -> Duration {
        self.delay
    }
}
