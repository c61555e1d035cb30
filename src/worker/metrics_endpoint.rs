//! The Prometheus endpoint of the database's worker (`sequin_sf.metrics_listen`, off by
//! default; a bare port listens on loopback): `/metrics` answers what
//! `sequin_sf.metrics_text()` last gave (read by the worker's main loop at most once a
//! second, as only the main thread may use SPI) with the reading's age, and `/healthz`
//! 200 while that reading is fresh. The HTTP side is the engine's, as for sequin-sf.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sync_engine::db::tx;
use sync_engine::endpoint::{self, Answer};

use super::spi::Spi;

/// How often the main loop reads the metrics while the endpoint runs.
const READ_EVERY: Duration = Duration::from_secs(1);
/// A reading older than this makes `/healthz` answer 503: the main loop is stuck.
const STALE_AFTER: Duration = Duration::from_secs(30);

type Reading = Arc<Mutex<Option<(String, Instant)>>>;

/// The endpoint, once started, and what it serves.
#[derive(Default)]
pub struct MetricsEndpoint {
    reading: Option<Reading>,
}

impl MetricsEndpoint {
    /// Starts the endpoint if the setting names an address (once: the setting takes
    /// effect at server start), and reads the metrics again when due.
    pub fn keep(&mut self) {
        if self.reading.is_none() {
            let Some(listen) = crate::guc::metrics_listen() else {
                return;
            };
            self.reading = Some(start(&listen));
        }
        let Some(reading) = &self.reading else { return };
        let due = reading
            .lock()
            .map(|r| r.as_ref().is_none_or(|(_, at)| at.elapsed() >= READ_EVERY))
            .unwrap_or(false);
        if !due {
            return;
        }
        let text = tx(&Spi, |s| {
            s.query_one("SELECT sequin_sf.metrics_text()", &[])
                .map(|r| r.and_then(|r| r.text(0)).unwrap_or_default())
        });
        match text {
            Ok(text) => {
                if let Ok(mut r) = reading.lock() {
                    *r = Some((text, Instant::now()));
                }
            }
            Err(e) => pgrx::warning!("sequin_sf: reading the metrics for the endpoint: {e}"),
        }
    }
}

/// Binds the address and serves from a thread; a failure is logged and the endpoint
/// stays off (the reading is kept, unused, so it is not tried at every pass).
fn start(listen: &str) -> Reading {
    let reading: Reading = Arc::default();
    let served = reading.clone();
    let started = endpoint::listen_address(listen).and_then(|address| {
        endpoint::serve(address, move |path| answer(&served, path)).map_err(|e| e.to_string())
    });
    match started {
        Ok(bound) => pgrx::log!("sequin_sf: /metrics and /healthz on http://{bound}"),
        Err(e) => pgrx::warning!(
            "sequin_sf: sequin_sf.metrics_listen = '{listen}': the endpoint is off: {e}"
        ),
    }
    reading
}

fn answer(reading: &Reading, path: &str) -> Answer {
    let last = reading.lock().ok().and_then(|r| r.clone());
    match (path, last) {
        ("/metrics" | "/healthz", None) => (
            "503 Service Unavailable",
            "starting: the worker has not read the metrics yet\n".into(),
        ),
        ("/metrics", Some((mut text, at))) => {
            text.push_str(
                "# HELP sequin_sf_worker_metrics_age_seconds Seconds since the worker read these metrics.\n\
                 # TYPE sequin_sf_worker_metrics_age_seconds gauge\n",
            );
            text.push_str(&format!(
                "sequin_sf_worker_metrics_age_seconds {}\n",
                at.elapsed().as_secs_f64()
            ));
            ("200 OK", text)
        }
        ("/healthz", Some((_, at))) if at.elapsed() < STALE_AFTER => ("200 OK", "ok\n".into()),
        ("/healthz", Some((_, at))) => (
            "503 Service Unavailable",
            format!(
                "stalled: the worker last read the database {:.0} s ago\n",
                at.elapsed().as_secs_f64()
            ),
        ),
        _ => endpoint::not_found(),
    }
}
