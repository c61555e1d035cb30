//! Command-line flags, which are also the library's configuration.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The control API, printed under the flags by `--help`.
const CONTROL_HELP: &str = "\
Control API (under /__emulator/, no auth, never counted as API usage):
  GET    health                          liveness
  GET    stats                           api_requests_total, api_usage, per-endpoint counts, records,
                                         peak_requests_in_flight (most API requests served at once),
                                         peak_endpoints (the endpoints of those requests)
  POST   stats/reset                     zero the counters (not the quota)
  POST   generate                        {\"object\":\"Contact\",\"count\":N,\"seed\":S}
  POST   records/{Object}                create records as a user would: one object or an array
  GET    records/{Object}/{Id}           read a record (also from the recycle bin)
  PATCH  records/{Object}/{Id}           change fields (stamps SystemModstamp)
  DELETE records/{Object}/{Id}[?purge=true]   soft delete, or hard delete
  POST   records/{Object}/{Id}/undelete  restore from the recycle bin
  POST   records/{Object}/{Id}/archive   archive an activity (Task, Event) as Salesforce does a year on:
                                          IsArchived = true, left out by /query and Bulk \"query\" jobs,
                                          returned by /queryAll and \"queryAll\" jobs; stamps unchanged;
                                          {\"archived\":false} undoes it
  POST   schema/{Object}/fields          add a field: {\"name\",\"type\",\"externalId\",...}
  DELETE schema/{Object}/fields/{Field}  remove a custom field
  PATCH  schema/{Object}/fields/{Field}  an admin changes a field: {\"hidden\":B} (field-level security:
                                          absent from describe, INVALID_FIELD in SOQL and writes, values
                                          kept) and/or, custom fields only, {\"type\":T,\"length\",\"precision\",
                                          \"scale\",\"values\":[...],\"masterDetail\":B}; stored values are
                                          converted, what does not convert is lost (null)
  POST   schema/objects                  add a custom object: {\"name\":\"Thing__c\",\"fields\":[...]}
  POST   faults                          {\"kind\":K,\"rate\":F|\"count\":N,\"path_contains\":P,\"per_record\":B,\"message\":M}
  GET    faults / DELETE faults          list / clear fault rules
  POST   expire_tokens                   every access token answers 401 from now on
  POST   expire_locators                 every query locator answers INVALID_QUERY_LOCATOR
  PUT    limits                          {\"api_limit\",\"api_used\",\"long_request_limit\",\"latency_ms\",
                                          \"bulk_job_ms\",\"bulk_results_ttl_ms\",\"bulk_query_jobs_elsewhere\",
                                          \"bulk_storage_mb_elsewhere\",\"long_requests_elsewhere\"} (any
                                          subset; the Bulk ones: query jobs and result MB other
                                          clients used today; the last: long requests other
                                          clients run now, which take slots of the cap: while
                                          it is full, new requests are refused)
  GET    limits                          the current values
  PATCH  bulk_jobs/{Id}                  end a running Bulk query job now: {\"state\":\"Failed\",\"errorMessage\":M}
                                          | {\"state\":\"Aborted\"} | {\"state\":\"JobComplete\"} (Bulk 1.0: its batches)
  POST   expire_bulk_jobs                delete every finished Bulk query job and its results now
                                          (as Salesforce does after 7 days): then 404 NOT_FOUND
  GET    blob/{N}                        N filler bytes (the benchmarks' loopback baseline)
  GET    cdc                             objects selected for Change Data Capture (standard channel),
                                          custom channels and their objects, the entity limit, the
                                          Pub/Sub address, latest replay id (hex) and events retained
  PUT    cdc                             select objects for Change Data Capture, as Setup does:
                                          {\"objects\":[\"Contact\",\"Invoice__c\"]} (replaces the standard
                                          channel's selection); {\"entity_limit\":5}: most distinct objects
                                          Tooling API members may select across channels (0: none)
  POST   cdc/gap                         publish a gap event: {\"object\":\"Contact\",\"changeType\":\"GAP_UPDATE\",
                                          \"ids\":[\"003...\"]} (GAP_CREATE, GAP_UPDATE, GAP_DELETE, GAP_UNDELETE)
  POST   cdc/overflow                    publish a GAP_OVERFLOW event: {\"object\":\"Contact\"}
  POST   cdc/drop_streams                end every open Subscribe stream with UNAVAILABLE
  POST   cdc/expire_replay_ids           forget retained events: every replay id issued so far fails
                                          (INVALID_ARGUMENT, ...fetch.replayid.corrupted), as after 72 hours
Fault kinds: 503, 500, timeout, drop, drop_after, invalid_session, unable_to_lock_row, request_limit;
  query_timeout: the next SOQL queries (/query, /queryAll, next pages; no other request) answer
  400 QUERY_TIMEOUT \"Your query request was running for too long.\";
  bulk_job_failed, bulk_job_aborted: the next Bulk query jobs created (Bulk 2.0 jobs, Bulk 1.0
  batches) end Failed (errorMessage: \"message\", else Salesforce's retry-limit text) or Aborted
  once their --bulk-job-ms is up, instead of completing.";

/// A Salesforce org emulator: REST, SOAP login, OAuth and Bulk APIs, in memory.
#[derive(Parser, Debug, Clone)]
#[command(name = "sf-emulator", version, about, after_help = CONTROL_HELP)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// PEM certificate chain; with --tls-key, serve https.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The org's fixed instance URL, handed out as `instance_url` by the token endpoint
    /// and used in identity and SOAP login URLs (e.g. `http://sf-emulator:8899` when
    /// clients reach the emulator under a name other than its listen address).
    /// Default: the listen address; when listening on 0.0.0.0 or ::, each request's
    /// `Host` header (`https://` when TLS is on).
    #[arg(long, value_parser = parse_instance_url)]
    pub instance_url: Option<String>,
    /// OAuth consumer key (client id) accepted by every grant.
    #[arg(long, default_value = "sequin-emulator")]
    pub client_id: String,
    /// OAuth consumer secret.
    #[arg(long, default_value = "emulator-secret")]
    pub client_secret: String,
    /// Refresh token accepted by the refresh_token grant.
    #[arg(long, default_value = "emulator-refresh-token")]
    pub refresh_token: String,
    /// Username of the org's admin user (password grant, SOAP login, JWT `sub`).
    #[arg(long, default_value = "admin@emulator.test")]
    pub username: String,
    /// Password of the admin user.
    #[arg(long, default_value = "emulator")]
    pub password: String,
    /// PEM certificate or public key that verifies jwt-bearer assertions (RS256).
    #[arg(long)]
    pub jwt_public_key: Option<PathBuf>,
    /// Access-token lifetime; after it, calls answer 401 INVALID_SESSION_ID.
    #[arg(long, default_value_t = 7200)]
    pub token_lifetime_secs: u64,
    /// Rolling 24-hour API request quota (403 REQUEST_LIMIT_EXCEEDED when spent).
    #[arg(long, default_value_t = 100_000)]
    pub api_limit: u64,
    /// Concurrent long-running requests allowed before 403 ConcurrentPerOrgLongTxn.
    #[arg(long, default_value_t = 25)]
    pub long_request_limit: u64,
    /// Added delay for every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// How long a Bulk query job runs, in milliseconds (Bulk 2.0 job, Bulk 1.0 batch):
    /// UploadComplete (Queued) for the first quarter, then InProgress, then JobComplete
    /// (Completed). 0: a job completes at its first status poll.
    #[arg(long, default_value_t = 0)]
    pub bulk_job_ms: u64,
    /// How long a finished Bulk query job and its results are kept, in milliseconds;
    /// then the job is deleted (404 NOT_FOUND; Bulk 1.0: InvalidJob). Salesforce keeps
    /// them 7 days, the default.
    #[arg(long, default_value_t = 604_800_000)]
    pub bulk_results_ttl_ms: u64,
    /// Fraction (0..1) of API requests that fail with --fault-kind.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Fault injected by --fault-rate: 503, 500, timeout, drop, drop_after,
    /// invalid_session, unable_to_lock_row, request_limit, query_timeout (SOQL queries
    /// only), bulk_job_failed or bulk_job_aborted (that fraction of Bulk query jobs).
    #[arg(long, default_value = "503")]
    pub fault_kind: String,
    /// Seed for generated data and fault dice; the same seed gives the same org.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Serve Salesforce's Pub/Sub API (gRPC, HTTP/2; TLS with --tls-cert/--tls-key) on
    /// this address (port 0 picks one); prints `pubsub listening on ADDR` after the
    /// `listening on` line. Off without it.
    #[arg(long)]
    pub pubsub_listen: Option<SocketAddr>,
    /// How long an idle Subscribe stream waits before an empty FetchResponse
    /// (keepalive); Salesforce sends one "within 270 seconds".
    #[arg(long, default_value_t = 270_000)]
    pub pubsub_keepalive_ms: u64,
    /// Objects selected for Change Data Capture at start, e.g. `Contact,Account`
    /// (`PUT /__emulator/cdc` changes it).
    #[arg(long, value_delimiter = ',')]
    pub cdc_objects: Vec<String>,
    /// Change events retained for replay: at most this many, and none older than
    /// --cdc-retention-hours.
    #[arg(long, default_value_t = 100_000)]
    pub cdc_retention_events: usize,
    /// Hours a change event stays replayable (Salesforce: 72).
    #[arg(long, default_value_t = 72)]
    pub cdc_retention_hours: u64,
    /// Changes in one transaction beyond which the rest become one GAP_OVERFLOW event
    /// per object (Salesforce: 100,000).
    #[arg(long, default_value_t = 100_000)]
    pub cdc_overflow_threshold: usize,
    /// Most distinct objects the Tooling API lets an org select for Change Data
    /// Capture across all channels (Salesforce without the add-on: 5); 0 is no limit.
    /// `PUT /__emulator/cdc` and --cdc-objects are not limited.
    #[arg(long, default_value_t = 0)]
    pub cdc_entity_limit: usize,
    /// The org's daily event delivery allocation (`DailyDeliveredPlatformEvents` in
    /// `/limits`; Salesforce: 50,000 in Performance and Unlimited Edition).
    #[arg(long, default_value_t = 50_000)]
    pub event_delivery_limit: u64,
    /// Records to generate at start, e.g. `Account=100000,Contact=1000000`.
    #[arg(long, value_parser = parse_generate, default_value = "")]
    pub generate: GenerateSpec,
}

fn parse_instance_url(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| format!("--instance-url must start with http:// or https://, got {s:?}"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "--instance-url must be scheme://host[:port] with no path, got {s:?}"
        ));
    }
    Ok(t.to_string())
}

/// `Object=count` pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerateSpec(pub Vec<(String, usize)>);

fn parse_generate(s: &str) -> Result<GenerateSpec, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (obj, n) = part
            .split_once('=')
            .ok_or_else(|| format!("expected Object=count, got {part:?}"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("bad count in {part:?}"))?;
        out.push((obj.trim().to_string(), n));
    }
    Ok(GenerateSpec(out))
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["sf-emulator"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_generate() {
        let c = Config::default();
        assert_eq!(c.client_id, "sequin-emulator");
        assert_eq!(c.username, "admin@emulator.test");
        assert_eq!(c.api_limit, 100_000);
        let c = Config::parse_from(["x", "--generate", "Contact=10,Account=2"]);
        assert_eq!(
            c.generate.0,
            vec![("Contact".to_string(), 10), ("Account".to_string(), 2)]
        );
    }
}
