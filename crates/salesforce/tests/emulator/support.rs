//! Starts the real emulator in-process and talks to its control API.

use std::time::Duration;

use salesforce::{Client, ClientConfig, Credential};
use serde_json::{json, Value};

pub const CLIENT_ID: &str = "sequin-emulator";
pub const CLIENT_SECRET: &str = "emulator-secret";
pub const REFRESH_TOKEN: &str = "emulator-refresh-token";
pub const USERNAME: &str = "admin@emulator.test";
pub const PASSWORD: &str = "emulator";

/// A running emulator plus a plain HTTP client for its `/__emulator/` control API.
pub struct Emu {
    pub running: sf_emulator::Running,
    http: reqwest::Client,
}

impl Emu {
    pub async fn start() -> Emu {
        Emu::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut sf_emulator::Config)) -> Emu {
        let mut config = sf_emulator::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        adjust(&mut config);
        let running = sf_emulator::start(config).await.expect("emulator starts");
        Emu {
            running,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self) -> String {
        self.running.base_url().to_string()
    }

    pub fn refresh_credential(&self) -> Credential {
        Credential::RefreshToken {
            login_url: self.url(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: REFRESH_TOKEN.into(),
        }
    }

    /// A client with the default refresh-token credential, not yet authenticated.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.refresh_credential())).expect("client builds")
    }

    pub fn client_with(&self, credential: Credential) -> Client {
        Client::new(ClientConfig::new(credential)).expect("client builds")
    }

    /// Calls the control API and returns its JSON body (`null` when empty); panics on
    /// an error status, because a test that cannot set up its org proves nothing.
    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/__emulator/{}", self.url(), path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("control API reachable");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            status.is_success(),
            "control {method} {path} failed: {status} {text}"
        );
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// A client that has already logged in.
    pub async fn ready_client(&self) -> Client {
        let client = self.client();
        client.authenticate().await.expect("login works");
        client
    }

    /// `PUT /__emulator/limits` with any of api_limit, api_used, long_request_limit,
    /// latency_ms.
    pub async fn set_limits(&self, limits: Value) {
        self.control("PUT", "limits", Some(limits)).await;
    }

    pub async fn generate(&self, object: &str, count: u64) {
        self.control(
            "POST",
            "generate",
            Some(json!({"object": object, "count": count})),
        )
        .await;
    }

    /// Creates records as a Salesforce user would; returns their ids.
    pub async fn create(&self, object: &str, records: Value) -> Vec<String> {
        let out = self
            .control("POST", &format!("records/{object}"), Some(records))
            .await;
        ids_of(&out)
    }

    pub async fn fault(&self, kind: &str, count: u64, path_contains: Option<&str>) {
        let mut body = json!({"kind": kind, "count": count});
        if let Some(p) = path_contains {
            body["path_contains"] = json!(p);
        }
        self.control("POST", "faults", Some(body)).await;
    }

    pub async fn stats(&self) -> Value {
        self.control("GET", "stats", None).await
    }

    /// API requests the emulator counted so far (control calls excluded).
    pub async fn api_requests(&self) -> u64 {
        self.stats().await["api_requests_total"].as_u64().unwrap()
    }
}

/// The control API answers record creation with ids in one of a few shapes; accept any
/// of them so the tests do not depend on which.
fn ids_of(v: &Value) -> Vec<String> {
    let list = match v {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m
            .get("ids")
            .or_else(|| m.get("results"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    list.iter()
        .filter_map(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => m.get("id").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .collect()
}

/// A JSON object literal as the `Map` the client's write methods take.
pub fn rec(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not a JSON object: {other}"),
    }
}

/// A raw HTTP/1.1 server for failures the emulator cannot produce (cut-off bodies,
/// redirects): answers each connection's first request with `reply(request_text,
/// base_url)` written verbatim, then closes. Returns its base URL.
pub async fn raw_server<F>(reply: F) -> String
where
    F: Fn(&str, &str) -> String + Send + Sync + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let reply = std::sync::Arc::new(reply);
    let served = base.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let reply = reply.clone();
            let base = served.clone();
            tokio::spawn(async move {
                // Read the whole request (headers and Content-Length body): closing
                // with unread bytes would reset the connection under the reply.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if request_complete(&buf) {
                        break;
                    }
                }
                let request = String::from_utf8_lossy(&buf).to_string();
                let _ = sock.write_all(reply(&request, &base).as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    base
}

fn request_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    buf.len() >= end + 4 + length
}
