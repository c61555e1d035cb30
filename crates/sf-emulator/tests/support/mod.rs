//! Shared by the API tests: an emulator started in-process with a token, and small
//! helpers for Salesforce-shaped answers.
#![allow(dead_code)]

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sf_emulator::{Config, Running};

pub const V: &str = "/services/data/v61.0";

pub struct Org {
    pub running: Running,
    pub http: Client,
    pub token: String,
}

impl Org {
    pub async fn start(args: &[&str]) -> Org {
        let mut argv = vec!["sf-emulator", "--listen", "127.0.0.1:0"];
        argv.extend_from_slice(args);
        let config = <Config as clap::Parser>::parse_from(argv);
        let running = sf_emulator::start(config).await.expect("emulator starts");
        let http = Client::new();
        let token = http
            .post(format!("{}/services/oauth2/token", running.base_url()))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "sequin-emulator"),
                ("client_secret", "emulator-secret"),
                ("refresh_token", "emulator-refresh-token"),
            ])
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        Org {
            running,
            http,
            token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.base_url(), path)
    }

    pub async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let r = self.raw(method, path, body).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST {V}/{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("{V}/{path}"), Some(body))
            .await
    }

    /// `/query` (the first page), asserting success.
    pub async fn query(&self, soql: &str) -> Value {
        self.run_query("query", soql).await
    }

    /// `/queryAll`: also rows in the recycle bin.
    pub async fn query_all(&self, soql: &str) -> Value {
        self.run_query("queryAll", soql).await
    }

    async fn run_query(&self, resource: &str, soql: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("{V}/{resource}")))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{resource} {soql}");
        r.json().await.unwrap()
    }

    pub async fn control(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .request(method, self.url(&format!("/__emulator/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stats(&self) -> Value {
        self.control(Method::GET, "stats", json!({})).await.1
    }
}

pub fn error_code(body: &Value) -> &str {
    body[0]["errorCode"].as_str().unwrap_or("")
}

pub fn opportunity(amount: f64) -> Value {
    json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2024-06-30", "Amount": amount})
}
