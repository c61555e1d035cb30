//! The client handle: shared HTTP connection pool, current session, counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use crate::auth::{Authenticator, Session};
use crate::config::ClientConfig;
use crate::error::{Error, Result, LONG_REQUESTS_TAKEN};
use crate::http::{self, RawResponse, RequestSpec};
use crate::usage::ApiUsage;

/// A Salesforce REST client. Cheap to clone (clones share the session, the connection
/// pool and the counters). Needs a tokio runtime owned by the caller.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth: Authenticator,
    api_version: String,
    session: RwLock<Option<Arc<Session>>>,
    // Serialises token calls so a burst of 401s produces one refresh, not one per caller.
    auth_lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    usage: Mutex<Option<ApiUsage>>,
    server_date: Mutex<Option<DateTime<Utc>>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    error_responses: AtomicU64,
    token_requests: AtomicU64,
    session_refreshes: AtomicU64,
    long_request_refusals: AtomicU64,
    bulk_result_bytes: AtomicU64,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Requests this client (and its clones) made so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Requests sent to the instance (data, describe, query, bulk ...), retries included.
    pub requests: u64,
    /// Of those, how many came back with an error status (>= 400).
    pub error_responses: u64,
    /// Calls to the OAuth token endpoint (not counted by Salesforce against the quota).
    pub token_requests: u64,
    /// Data calls retried after a 401 `INVALID_SESSION_ID`, with a token fetched by
    /// that call or by a concurrent one (so this may exceed the extra token requests).
    pub session_refreshes: u64,
    /// Requests Salesforce refused because the org's long-running requests (20 s or
    /// more, shared by every integration) were all taken (`REQUEST_LIMIT_EXCEEDED`,
    /// `ConcurrentPerOrgLongTxn Limit exceeded.`).
    pub long_request_refusals: u64,
    /// Bytes of Bulk query results downloaded: what Salesforce counts against the
    /// org's daily result storage (`DailyBulkV2QueryFileStorageMB`).
    pub bulk_result_bytes: u64,
}

/// The non-secret facts of the current session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub instance_url: String,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
}

/// One entry of `GET /services/data/`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiVersion {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub url: String,
    pub version: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("login_url", &self.inner.auth.login_url())
            .field("api_version", &self.inner.api_version)
            .field("instance_url", &self.instance_url())
            .finish()
    }
}

impl Client {
    /// Validates the configuration (URLs, JWT key, CA certificates) and builds the
    /// connection pool. Makes no request.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let api_version = config
            .api_version
            .trim()
            .trim_start_matches('v')
            .to_string();
        let valid_version = api_version
            .split_once('.')
            .map(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            })
            .unwrap_or(false);
        if !valid_version {
            return Err(Error::Config(format!(
                "API version {:?} is not of the form \"61.0\"",
                config.api_version
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("sequin_sf/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(name) = &config.call_options_client {
            builder = builder.default_headers(call_options(name)?);
        }
        if let Some(pem) = &config.extra_root_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| Error::Config(format!("extra root CA is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config(
                    "extra root CA PEM holds no certificate".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("could not build the HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                auth: Authenticator::new(config.credential)?,
                api_version,
                session: RwLock::new(None),
                auth_lock: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                usage: Mutex::new(None),
                server_date: Mutex::new(None),
                counters: Counters::default(),
            }),
        })
    }

    /// Obtains a fresh access token now (data calls also do this lazily). The data host
    /// is the `instance_url` of the token response.
    pub async fn authenticate(&self) -> Result<SessionInfo> {
        let _guard = self.inner.auth_lock.lock().await;
        let session = self.fetch_and_store_token().await?;
        Ok(session_info(&session))
    }

    /// The instance (data host) of the current session, once authenticated.
    pub fn instance_url(&self) -> Option<String> {
        self.current_session().map(|s| s.instance_url.clone())
    }

    /// Org id, user id and instance of the current session, once authenticated.
    pub fn session_info(&self) -> Option<SessionInfo> {
        self.current_session().map(|s| session_info(&s))
    }

    /// The API version in use, without the `v` (`"61.0"`).
    pub fn api_version(&self) -> &str {
        &self.inner.api_version
    }

    /// `/services/data/vNN.N`, the prefix of every versioned URL (composite subrequests
    /// need it).
    pub fn data_path(&self) -> String {
        format!("/services/data/v{}", self.inner.api_version)
    }

    /// The org's API usage from the most recent `Sforce-Limit-Info` header seen.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.inner.usage.lock().ok().and_then(|u| *u)
    }

    /// The `Date` header of the most recent response: Salesforce's clock, second
    /// precision. Time windows (`/updated`, `If-Modified-Since`, SystemModstamp
    /// cursors) should be based on it rather than on the local clock, which may be off.
    pub fn last_server_date(&self) -> Option<DateTime<Utc>> {
        self.inner.server_date.lock().ok().and_then(|d| *d)
    }

    /// Requests this client (and its clones) made so far.
    pub fn stats(&self) -> RequestStats {
        let c = &self.inner.counters;
        RequestStats {
            requests: c.requests.load(Ordering::Relaxed),
            error_responses: c.error_responses.load(Ordering::Relaxed),
            token_requests: c.token_requests.load(Ordering::Relaxed),
            session_refreshes: c.session_refreshes.load(Ordering::Relaxed),
            long_request_refusals: c.long_request_refusals.load(Ordering::Relaxed),
            bulk_result_bytes: c.bulk_result_bytes.load(Ordering::Relaxed),
        }
    }

    /// Counts downloaded Bulk query results (`RequestStats::bulk_result_bytes`).
    pub(crate) fn count_bulk_result_bytes(&self, n: u64) {
        let c = &self.inner.counters;
        c.bulk_result_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// `GET /services/data/`: the API versions the instance (or, before authentication,
    /// the login host) serves. Needs no token.
    pub async fn versions(&self) -> Result<Vec<ApiVersion>> {
        let base = match self.current_session() {
            Some(s) => s.instance_url.clone(),
            None => self.inner.auth.login_url().to_string(),
        };
        let response = self
            .inner
            .http
            .get(format!("{base}/services/data/"))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(http::transport_error)?;
        // Not an API call (no token, not counted by Salesforce): kept out of `stats()`.
        let raw = self.finish(response, false).await?;
        if raw.status >= 400 {
            return Err(http::api_error(raw.status, &raw.headers, &raw.body));
        }
        raw.json("API version list")
    }

    /// `GET /limits`: the org's limits as Salesforce reports them.
    pub async fn limits(&self) -> Result<serde_json::Value> {
        self.execute(RequestSpec::new(Method::GET, "limits"))
            .await?
            .json("limits")
    }

    // ---- request machinery shared by the endpoint modules ----

    fn current_session(&self) -> Option<Arc<Session>> {
        self.inner.session.read().ok().and_then(|s| s.clone())
    }

    /// Must be called with `auth_lock` held.
    async fn fetch_and_store_token(&self) -> Result<Arc<Session>> {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner
            .counters
            .token_requests
            .fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(
            self.inner
                .auth
                .fetch_token(&self.inner.http, generation)
                .await?,
        );
        if let Ok(mut slot) = self.inner.session.write() {
            *slot = Some(session.clone());
        }
        Ok(session)
    }

    /// The current session, or a new one. When `stale` names the generation of a token
    /// that just failed, a new token is fetched unless another caller already did.
    async fn session(&self, stale: Option<u64>) -> Result<Arc<Session>> {
        if stale.is_none() {
            if let Some(s) = self.current_session() {
                return Ok(s);
            }
        }
        let _guard = self.inner.auth_lock.lock().await;
        if let Some(s) = self.current_session() {
            if stale != Some(s.generation) {
                return Ok(s);
            }
        }
        self.fetch_and_store_token().await
    }

    /// The session for calls that carry the token themselves (the Pub/Sub API sends it
    /// as gRPC metadata, `crate::cdc`): the current one, or a new one when `stale` names
    /// the generation of a token the server just refused.
    pub(crate) async fn session_for_metadata(&self, stale: Option<u64>) -> Result<Arc<Session>> {
        if stale.is_some() {
            self.inner
                .counters
                .session_refreshes
                .fetch_add(1, Ordering::Relaxed);
        }
        self.session(stale).await
    }

    /// Sends a data request; on 401 `INVALID_SESSION_ID` refreshes the token once and
    /// retries once. Statuses below 400 (including 300 and 304) are returned; the rest
    /// become [`Error::Api`].
    pub(crate) async fn execute(&self, spec: RequestSpec) -> Result<RawResponse> {
        let session = self.session(None).await?;
        let mut raw = self.send_once(&spec, &session).await?;
        if http::is_invalid_session(raw.status, &raw.body) {
            let fresh = self.session(Some(session.generation)).await?;
            self.inner
                .counters
                .session_refreshes
                .fetch_add(1, Ordering::Relaxed);
            raw = self.send_once(&spec, &fresh).await?;
        }
        if raw.status >= 400 {
            return Err(http::api_error(raw.status, &raw.headers, &raw.body));
        }
        if http::is_redirect(raw.status) {
            return Err(http::redirect_error(raw.status, &raw.headers));
        }
        Ok(raw)
    }

    /// Like `execute`, but a successful response's body is written to `out` as it
    /// arrives, never held whole; returns its headers. Error responses are read whole
    /// (they are small) and become [`Error::Api`].
    pub(crate) async fn execute_into(
        &self,
        spec: RequestSpec,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<reqwest::header::HeaderMap> {
        let session = self.session(None).await?;
        let mut response = self.send_raw(&spec, &session).await?;
        if response.status().as_u16() == 401 {
            let raw = self.finish(response, true).await?;
            if !http::is_invalid_session(raw.status, &raw.body) {
                return Err(http::api_error(raw.status, &raw.headers, &raw.body));
            }
            let fresh = self.session(Some(session.generation)).await?;
            self.inner
                .counters
                .session_refreshes
                .fetch_add(1, Ordering::Relaxed);
            response = self.send_raw(&spec, &fresh).await?;
        }
        let status = response.status().as_u16();
        if status >= 300 {
            let raw = self.finish(response, true).await?;
            return Err(if http::is_redirect(status) {
                http::redirect_error(status, &raw.headers)
            } else {
                http::api_error(status, &raw.headers, &raw.body)
            });
        }
        self.observe(&response, true);
        let headers = response.headers().clone();
        while let Some(chunk) = response.chunk().await.map_err(http::body_error)? {
            out.write_all(&chunk)
                .map_err(|e| Error::Transport(format!("writing the response body: {e}")))?;
        }
        Ok(headers)
    }

    pub(crate) fn url_for(&self, session: &Session, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{}", session.instance_url, path)
        } else {
            format!(
                "{}/services/data/v{}/{}",
                session.instance_url, self.inner.api_version, path
            )
        }
    }

    async fn send_once(&self, spec: &RequestSpec, session: &Session) -> Result<RawResponse> {
        let response = self.send_raw(spec, session).await?;
        self.finish(response, true).await
    }

    /// Sends the request; the response's body is left unread.
    async fn send_raw(&self, spec: &RequestSpec, session: &Session) -> Result<reqwest::Response> {
        let url = self.url_for(session, &spec.path);
        let mut request = self
            .inner
            .http
            .request(spec.method.clone(), url)
            .bearer_auth(&session.access_token)
            .header(reqwest::header::ACCEPT, spec.accept);
        if !spec.query.is_empty() {
            request = request.query(&spec.query);
        }
        for (name, value) in &spec.headers {
            request = request.header(name.clone(), http::header_value(value)?);
        }
        if let Some(body) = &spec.json {
            request = request.json(body);
        }
        request.send().await.map_err(|e| {
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            http::transport_error(e)
        })
    }

    async fn finish(&self, response: reqwest::Response, counted: bool) -> Result<RawResponse> {
        self.observe(&response, counted);
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(http::body_error)?;
        if status == 403 && contains(&body, LONG_REQUESTS_TAKEN.as_bytes()) {
            let c = &self.inner.counters;
            c.long_request_refusals.fetch_add(1, Ordering::Relaxed);
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Counts a response and records what its headers say of the org (API usage, the
    /// server's clock).
    fn observe(&self, response: &reqwest::Response, counted: bool) {
        let c = &self.inner.counters;
        let status = response.status().as_u16();
        if counted {
            c.requests.fetch_add(1, Ordering::Relaxed);
            if status >= 400 {
                c.error_responses.fetch_add(1, Ordering::Relaxed);
            }
        }
        let headers = response.headers();
        if let Some(usage) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse_header)
        {
            if let Ok(mut slot) = self.inner.usage.lock() {
                *slot = Some(usage);
            }
        }
        if let Some(date) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        {
            if let Ok(mut slot) = self.inner.server_date.lock() {
                *slot = Some(date.with_timezone(&Utc));
            }
        }
    }
}

fn session_info(s: &Session) -> SessionInfo {
    SessionInfo {
        instance_url: s.instance_url.clone(),
        org_id: s.org_id.clone(),
        user_id: s.user_id.clone(),
    }
}

/// The `Sforce-Call-Options` header naming `client`; the name must be a plain
/// identifier, since it is matched in change events' `changeOrigin` later.
fn call_options(client: &str) -> Result<reqwest::header::HeaderMap> {
    if client.is_empty()
        || !client
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::Config(format!(
            "call options client {client:?}: use letters, digits, '_' or '-'"
        )));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("client={client}"))
        .map_err(|e| Error::Config(format!("call options client {client:?}: {e}")))?;
    headers.insert("sforce-call-options", value);
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credential;

    fn config(version: &str) -> ClientConfig {
        let mut c = ClientConfig::new(Credential::ClientCredentials {
            login_url: "https://acme.my.salesforce.com/".into(),
            client_id: "id".into(),
            client_secret: "secret".into(),
        });
        c.api_version = version.into();
        c
    }

    #[test]
    fn api_version_forms() {
        for (given, used) in [("61.0", "61.0"), ("v62.0", "62.0"), (" 58.0 ", "58.0")] {
            let client = Client::new(config(given)).unwrap();
            assert_eq!(client.api_version(), used);
            assert_eq!(client.data_path(), format!("/services/data/v{used}"));
        }
        for bad in ["61", "sixty.one", "61.", ".0", "61.0.1", ""] {
            let err = Client::new(config(bad)).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
            assert!(err.to_string().contains("61.0"), "{err}");
        }
    }

    #[test]
    fn fresh_client_has_no_session_and_no_counts() {
        let client = Client::new(config("61.0")).unwrap();
        assert_eq!(client.instance_url(), None);
        assert_eq!(client.session_info(), None);
        assert_eq!(client.api_usage(), None);
        assert_eq!(client.stats(), RequestStats::default());
        // Trailing slash of the login URL does not leak into messages or URLs.
        assert!(format!("{client:?}").contains("\"https://acme.my.salesforce.com\""));
    }
}
