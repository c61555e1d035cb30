//! What goes on the wire below any HTTP client: header-name spelling, and the instance
//! URL handed out by the token endpoint.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{Org, V};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one raw HTTP/1.1 request and returns the response head (status line and
/// header lines) exactly as the server wrote it.
async fn raw_head(addr: std::net::SocketAddr, request_lines: &[&str]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = request_lines.join("\r\n");
    req.push_str("\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let end = text.find("\r\n\r\n").expect("a complete response head");
    text[..end + 2].to_string()
}

/// The header names of a head, in order, as spelled on the wire.
fn names(head: &str) -> Vec<&str> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_are_spelled_as_salesforce_does() {
    let org = Org::start(&["--generate", "Account=3"]).await;
    let addr = org.running.addr();

    let head = raw_head(
        addr,
        &["GET /services/data/ HTTP/1.1", "Host: emulator.test"],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: application/json;charset=UTF-8\r\n"),
        "{head}"
    );
    assert!(names(&head).contains(&"Content-Length"), "{head}");
    assert!(names(&head).contains(&"Date"), "{head}");
    for n in names(&head) {
        assert!(n.starts_with(char::is_uppercase), "{n:?} in {head}");
    }

    let (s, job) = org
        .post(
            "jobs/query",
            json!({"operation": "query", "query": "SELECT Id, Name FROM Account"}),
        )
        .await;
    assert_eq!(s, 200);
    let id = job["id"].as_str().unwrap().to_string();
    let mut state = Value::Null;
    for _ in 0..50 {
        let (_, info) = org
            .call(Method::GET, &format!("{V}/jobs/query/{id}"), None)
            .await;
        state = info["state"].clone();
        if state == "JobComplete" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(state, "JobComplete");
    let auth = format!("Authorization: Bearer {}", org.token);
    let get = format!("GET {V}/jobs/query/{id}/results?maxRecords=2 HTTP/1.1");
    let head = raw_head(addr, &[&get, "Host: emulator.test", &auth]).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let names = names(&head);
    for expected in [
        "Content-Type",
        "Sforce-Locator",
        "Sforce-NumberOfRecords",
        "Sforce-Limit-Info",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {head}");
    }
    assert!(head.contains("\r\nSforce-NumberOfRecords: 2\r\n"), "{head}");
    assert!(head.contains("\r\nSforce-Limit-Info: api-usage="), "{head}");
    assert!(
        !head.contains("sforce-") && !head.contains("content-type"),
        "{head}"
    );

    // An error answer too (401 from a data call without a token).
    let head = raw_head(
        addr,
        &[&format!("GET {V}/limits HTTP/1.1"), "Host: emulator.test"],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: application/json;charset=UTF-8\r\n"),
        "{head}"
    );
}

async fn token_response_at(org: &Org, addr: &str, host: &str) -> Value {
    org.http
        .post(format!("http://{addr}/services/oauth2/token"))
        .header("Host", host)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "sequin-emulator"),
            ("client_secret", "emulator-secret"),
            ("refresh_token", "emulator-refresh-token"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn token_response(org: &Org, host: Option<&str>) -> Value {
    let mut r = org.http.post(org.url("/services/oauth2/token")).form(&[
        ("grant_type", "refresh_token"),
        ("client_id", "sequin-emulator"),
        ("client_secret", "emulator-secret"),
        ("refresh_token", "emulator-refresh-token"),
    ]);
    if let Some(h) = host {
        r = r.header("Host", h);
    }
    let resp = r.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_url_defaults_to_the_host_the_client_used() {
    // A specific listen address is the instance URL, whatever host the client used.
    let org = Org::start(&[]).await;
    let addr = org.running.addr();
    for host in [None, Some("login.example:443")] {
        let t = token_response(&org, host).await;
        assert_eq!(t["instance_url"], format!("http://{addr}"));
    }
    // Listening on 0.0.0.0 (docker/), the client is told to keep using its host name.
    let config =
        <sf_emulator::Config as clap::Parser>::parse_from(["sf-emulator", "--listen", "0.0.0.0:0"]);
    let running = sf_emulator::start(config).await.unwrap();
    let port = running.addr().port();
    let org = Org {
        running,
        http: reqwest::Client::new(),
        token: String::new(),
    };
    assert!(org.url("/").contains("0.0.0.0"));
    let direct = format!("127.0.0.1:{port}");
    let t: Value = org
        .http
        .post(format!("http://{direct}/services/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "sequin-emulator"),
            ("client_secret", "emulator-secret"),
            ("refresh_token", "emulator-refresh-token"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["instance_url"], format!("http://{direct}"));
    let t = token_response_at(&org, &direct, "sf-emulator:8899").await;
    assert_eq!(t["instance_url"], "http://sf-emulator:8899");
    assert!(t["id"]
        .as_str()
        .unwrap()
        .starts_with("http://sf-emulator:8899/id/00D"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_url_flag_fixes_the_url_whatever_the_host() {
    let org = Org::start(&["--instance-url", "https://acme.my.salesforce.example/"]).await;
    for host in [None, Some("elsewhere:1234")] {
        let t = token_response(&org, host).await;
        assert_eq!(t["instance_url"], "https://acme.my.salesforce.example");
    }
    // The resources list points its identity URL at the same instance.
    let (s, res) = org.call(Method::GET, V, None).await;
    assert_eq!(s, 200);
    assert!(res["identity"]
        .as_str()
        .unwrap()
        .starts_with("https://acme.my.salesforce.example/id/"));
    // A malformed value is refused at start-up.
    let parsed = <sf_emulator::Config as clap::Parser>::try_parse_from([
        "sf-emulator",
        "--instance-url",
        "acme.example",
    ]);
    assert!(parsed.is_err());
}
