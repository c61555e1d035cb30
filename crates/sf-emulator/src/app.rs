//! The shared state every request sees.

use crate::auth::Tokens;
use crate::config::Config;
use crate::faults::{FaultKind, FaultRule, Faults};
use crate::limits::Limits;
use crate::org::Org;
use rsa::RsaPublicKey;

pub struct App {
    pub config: Config,
    /// `http://127.0.0.1:PORT`, used for `instance_url` and identity URLs.
    pub base_url: String,
    pub org: Org,
    pub tokens: Tokens,
    pub limits: Limits,
    pub faults: Faults,
    pub jwt_key: Option<RsaPublicKey>,
    pub locators: crate::query::Locators,
    pub bulk: crate::bulk2::Jobs,
    pub bulk1: crate::bulk1::Jobs,
    /// Bulk query job run time and results lifetime (`--bulk-job-ms`,
    /// `--bulk-results-ttl-ms`, `PUT /__emulator/limits`).
    pub bulk_timing: crate::bulk2::Timing,
    pub started_ms: i64,
    pub latency_ms: parking_lot::Mutex<u64>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Attached to every response so header names go out as Salesforce spells them.
    pub header_case: hyper::http::Extensions,
    /// Change Data Capture: each channel's selected objects and retained change
    /// events.
    pub cdc: std::sync::Arc<crate::cdc::Bus>,
    /// Tooling API access and query locators (PlatformEventChannel and
    /// PlatformEventChannelMember).
    pub tooling: crate::tooling::Tooling,
    /// Change events delivered to subscribers against the org's allocation.
    pub deliveries: crate::cdc::deliveries::Deliveries,
    /// `host:port` of the Pub/Sub API server, once it listens (`--pubsub-listen`).
    pub pubsub_addr: std::sync::OnceLock<String>,
}

impl App {
    pub fn new(
        config: Config,
        base_url: String,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<App, crate::Error> {
        let jwt_key = match &config.jwt_public_key {
            Some(p) => Some(crate::auth::load_jwt_key(p)?),
            None => None,
        };
        let faults = Faults::new(config.seed);
        if config.fault_rate > 0.0 {
            let kind = FaultKind::parse(&config.fault_kind).ok_or_else(|| {
                crate::Error::Generate(format!("unknown --fault-kind {}", config.fault_kind))
            })?;
            faults.add(FaultRule {
                kind,
                rate: Some(config.fault_rate),
                remaining: None,
                path_contains: None,
                per_record: false,
                message: None,
            });
        }
        let org = Org::new(&config.username)?;
        let cdc = crate::cdc::Bus::new(
            &org.user_id,
            crate::cdc::bus::Limits {
                retention_events: config.cdc_retention_events.max(1),
                retention_ms: (config.cdc_retention_hours as i64).saturating_mul(3_600_000),
                overflow_threshold: config.cdc_overflow_threshold,
                entity_limit: config.cdc_entity_limit,
            },
        );
        Ok(App {
            org,
            cdc: std::sync::Arc::new(cdc),
            pubsub_addr: std::sync::OnceLock::new(),
            deliveries: crate::cdc::deliveries::Deliveries::new(config.event_delivery_limit),
            tooling: Default::default(),
            limits: Limits::new(config.api_limit, config.long_request_limit),
            latency_ms: parking_lot::Mutex::new(config.latency_ms),
            bulk_timing: crate::bulk2::Timing::new(config.bulk_job_ms, config.bulk_results_ttl_ms),
            config,
            base_url,
            tokens: Tokens::default(),
            faults,
            jwt_key,
            locators: Default::default(),
            bulk: Default::default(),
            bulk1: Default::default(),
            started_ms: crate::timefmt::wall_ms(),
            shutdown,
            header_case: hyper::http::Extensions::new(),
        })
    }

    /// The instance URL clients are told to call: `--instance-url`; else, when
    /// listening on an unspecified address (0.0.0.0, ::, as in docker/), the scheme and
    /// `Host` of this request (what the client used to reach us); else the listen
    /// address. A specific listen address keeps login host and instance apart, as on a
    /// real org (clients that log in through another host are still sent to us).
    pub fn instance_url(&self, req: &crate::http::Req) -> String {
        if let Some(u) = &self.config.instance_url {
            return u.clone();
        }
        if !self.config.listen.ip().is_unspecified() {
            return self.base_url.clone();
        }
        let host = req.header("host").map(str::trim).filter(|h| {
            !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains('/')
        });
        match host {
            Some(h) => {
                let scheme = if self.base_url.starts_with("https://") {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{h}")
            }
            None => self.base_url.clone(),
        }
    }

    /// Waits `ms`, or less if the emulator shuts down meanwhile.
    pub async fn sleep(&self, ms: u64) {
        let mut rx = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
            _ = rx.wait_for(|v| *v) => {}
        }
    }
}
