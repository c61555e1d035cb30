//! Quota, sessions, faults, long requests, JWT bearer and hostile input over HTTP.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{error_code, Org, V};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_reported_and_enforced() {
    let org = Org::start(&["--api-limit", "5"]).await;
    let r = org.raw(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/5");
    let limits: Value = r.json().await.unwrap();
    assert_eq!(
        limits["DailyApiRequests"],
        json!({"Max": 5, "Remaining": 4})
    );
    for n in 2..=5 {
        let r = org.raw(Method::GET, &format!("{V}/sobjects"), None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["sforce-limit-info"], format!("api-usage={n}/5"));
    }
    let r = org.raw(Method::GET, &format!("{V}/sobjects"), None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=5/5");
    let b: Value = r.json().await.unwrap();
    assert_eq!(error_code(&b), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(b[0]["message"], "TotalRequests Limit exceeded.");
    // The control API is never counted and can refill the quota.
    let (s, _) = org
        .control(Method::PUT, "limits", json!({"api_used": 0}))
        .await;
    assert_eq!(s, 200);
    let r = org.raw(Method::GET, &format!("{V}/sobjects"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(org.stats().await["api_usage"]["used"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_and_bad_tokens_get_invalid_session() {
    let org = Org::start(&[]).await;
    let r = org
        .http
        .get(org.url(&format!("{V}/limits")))
        .bearer_auth("nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r.json().await.unwrap()), "INVALID_SESSION_ID");
    assert_eq!(
        org.call(Method::GET, &format!("{V}/limits"), None).await.0,
        200
    );
    org.control(Method::POST, "expire_tokens", json!({})).await;
    let (s, b) = org.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!((s.as_u16(), error_code(&b)), (401, "INVALID_SESSION_ID"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_faults_hit_matching_paths_then_stop() {
    let org = Org::start(&[]).await;
    let (s, _) = org
        .control(
            Method::POST,
            "faults",
            json!({"kind": "unable_to_lock_row", "count": 1, "path_contains": "/composite"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        org.call(Method::GET, &format!("{V}/limits"), None).await.0,
        200
    );
    let body = json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "A"}]});
    let (s, b) = org
        .call(
            Method::POST,
            &format!("{V}/composite/sobjects"),
            Some(body.clone()),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&b)), (400, "UNABLE_TO_LOCK_ROW"));
    let (s, b) = org
        .call(Method::POST, &format!("{V}/composite/sobjects"), Some(body))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b[0]["success"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_the_server_keeps_serving() {
    let org = Org::start(&["--generate", "Account=2"]).await;
    let send = |method: Method, path: String, body: &'static str| {
        let org = &org;
        async move {
            let r = org
                .http
                .request(method, org.url(&path))
                .bearer_auth(&org.token)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let cases: Vec<(Method, String, &'static str, u16, &str)> = vec![
        (
            Method::POST,
            format!("{V}/sobjects/Contact"),
            "{not json",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/sobjects/Contact"),
            "[1,2]",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/sobjects/Contact"),
            "",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/sobjects/Nope__c"),
            "{}",
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            format!("{V}/sobjects/Contact/0"),
            "",
            400,
            "MALFORMED_ID",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Id+FORM+Contact"),
            "",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Nope+FROM+Contact"),
            "",
            400,
            "INVALID_FIELD",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Id+FROM+Nope"),
            "",
            400,
            "INVALID_TYPE",
        ),
        (
            Method::GET,
            format!("{V}/query?q="),
            "",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/query?q=SELECT+Id+FROM+Contact+WHERE+Name+%3D+%27%5C"),
            "",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/query/01gnonsense-2000"),
            "",
            400,
            "INVALID_QUERY_LOCATOR",
        ),
        (
            Method::POST,
            format!("{V}/composite"),
            "{\"compositeRequest\": 5}",
            400,
            "JSON_PARSER_ERROR",
        ),
        (
            Method::POST,
            format!("{V}/composite"),
            "{\"compositeRequest\": [{\"method\":\"GET\"}]}",
            400,
            "INVALID_INPUT",
        ),
        (
            Method::POST,
            format!("{V}/composite/sobjects"),
            "{\"records\": [1, \"x\", null]}",
            200,
            "",
        ),
        (
            Method::POST,
            format!("{V}/composite/batch"),
            "{\"batchRequests\": []}",
            400,
            "LIMIT_EXCEEDED",
        ),
        (
            Method::POST,
            format!("{V}/jobs/query"),
            "{\"operation\":\"query\",\"query\":\"SELECT\"}",
            400,
            "MALFORMED_QUERY",
        ),
        (
            Method::GET,
            format!("{V}/jobs/query/750000000000000AAA/results"),
            "",
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            "/services/data/v20.0/limits".to_string(),
            "",
            404,
            "NOT_FOUND",
        ),
        (
            Method::GET,
            format!(
                "{V}/sobjects/Contact/updated?start=2024-01-01T00:00:00Z&end=2024-01-01T00:00:30Z"
            ),
            "",
            400,
            "INVALID_REPLICATION_DATE",
        ),
        (
            Method::GET,
            format!("{V}/sobjects/Contact/deleted?start=yesterday&end=2024-01-01T00:00:30Z"),
            "",
            400,
            "INVALID_REPLICATION_DATE",
        ),
        (
            Method::PUT,
            format!("{V}/sobjects/Contact"),
            "{}",
            405,
            "METHOD_NOT_ALLOWED",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (s, b) = send(method.clone(), path.clone(), body).await;
        assert_eq!(s, status, "{method} {path} {body}: {b}");
        if !code.is_empty() {
            assert_eq!(error_code(&b), code, "{method} {path} {body}: {b}");
        } else {
            assert!(
                b.as_array().unwrap().iter().all(|r| r["success"] == false),
                "{b}"
            );
        }
    }
    // Still serving.
    assert_eq!(
        org.query("SELECT COUNT() FROM Account").await["totalSize"],
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_requests_are_capped() {
    // Latency is set after start: it applies to the token call too.
    let org = Org::start(&["--long-request-limit", "1"]).await;
    org.control(Method::PUT, "limits", json!({"latency_ms": 20000}))
        .await;
    // A raw connection, so nothing on the client side outlives the test.
    let mut slow = tokio::net::TcpStream::connect(org.running.addr())
        .await
        .unwrap();
    let request = format!(
        "GET {V}/limits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        org.token
    );
    tokio::io::AsyncWriteExt::write_all(&mut slow, request.as_bytes())
        .await
        .unwrap();
    for _ in 0..500 {
        let (_, l) = org.control(Method::GET, "limits", json!({})).await;
        if l["long_requests_running"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (s, b) = org.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(
        (s.as_u16(), error_code(&b)),
        (403, "REQUEST_LIMIT_EXCEEDED")
    );
    assert_eq!(b[0]["message"], "ConcurrentPerOrgLongTxn Limit exceeded.");
    // A client that gives up frees its slot (the abandoned request is stopped).
    drop(slow);
    let mut freed = false;
    for _ in 0..300 {
        let (_, l) = org.control(Method::GET, "limits", json!({})).await;
        if l["long_requests_running"] == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(freed, "the abandoned long request still holds its slot");
    org.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_and_per_record_faults() {
    let org = Org::start(&[]).await;
    // drop_after: the write happens, the client gets no response.
    org.control(
        Method::POST,
        "faults",
        json!({"kind": "drop_after", "count": 1, "path_contains": "/sobjects/Contact"}),
    )
    .await;
    let sent = org
        .http
        .post(org.url(&format!("{V}/sobjects/Contact")))
        .bearer_auth(&org.token)
        .json(&json!({"LastName": "Ghost"}))
        .send()
        .await;
    assert!(sent.is_err(), "the connection closes without an answer");
    assert_eq!(
        org.query("SELECT Id FROM Contact WHERE LastName = 'Ghost'")
            .await["totalSize"],
        1
    );

    // per_record: one record of a collection fails, the others go through.
    let (s, rules) = org
        .control(
            Method::POST,
            "faults",
            json!({"kind": "unable_to_lock_row", "count": 1, "per_record": true}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(rules["faults"][0]["per_record"], true);
    let body = json!({"records": [
        {"attributes": {"type": "Contact"}, "LastName": "L1"},
        {"attributes": {"type": "Contact"}, "LastName": "L2"},
    ]});
    let (s, b) = org
        .call(Method::POST, &format!("{V}/composite/sobjects"), Some(body))
        .await;
    assert_eq!(s, 200, "a per-record fault does not fail the request");
    assert_eq!(b[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(b[1]["success"], true);
    assert_eq!(
        org.query("SELECT Id FROM Contact WHERE LastName = 'L1'")
            .await["totalSize"],
        0
    );
}

fn signed_jwt(key: &rsa::RsaPrivateKey, claims: &Value) -> String {
    use base64::Engine;
    use rsa::signature::{SignatureEncoding, Signer};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(br#"{"alg":"RS256"}"#);
    let body = b64.encode(serde_json::to_vec(claims).unwrap());
    let signing = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signing.sign(format!("{head}.{body}").as_bytes()).to_bytes();
    format!("{head}.{body}.{}", b64.encode(sig))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_checks_signature_issuer_subject_audience_and_expiry() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let mut rng = rand08::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let other = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let dir = std::env::temp_dir().join(format!("sf-emu-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("jwt.pub");
    std::fs::write(
        &pem,
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let org = Org::start(&["--jwt-public-key", pem.to_str().unwrap()]).await;
    let exp = chrono::Utc::now().timestamp() + 300;
    let grant = |assertion: String| {
        let org = &org;
        async move {
            let r = org
                .http
                .post(org.url("/services/oauth2/token"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let claims = |aud: Value, sub: &str, exp: i64| json!({"iss": "sequin-emulator", "sub": sub, "aud": aud, "exp": exp});
    for aud in [
        json!("https://login.salesforce.com"),
        json!("https://test.salesforce.com"),
        json!(org.running.base_url()),
    ] {
        let (s, b) = grant(signed_jwt(
            &key,
            &claims(aud.clone(), "admin@emulator.test", exp),
        ))
        .await;
        assert_eq!(s, 200, "aud {aud}: {b}");
        assert!(b["access_token"].as_str().is_some());
    }
    let (s, b) = grant(signed_jwt(
        &key,
        &claims(json!("https://evil.example"), "admin@emulator.test", exp),
    ))
    .await;
    assert_eq!(
        (s, b["error_description"].as_str()),
        (400, Some("audience is invalid"))
    );
    let (s, b) = grant(signed_jwt(
        &key,
        &claims(
            json!("https://login.salesforce.com"),
            "admin@emulator.test",
            exp - 600,
        ),
    ))
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = grant(signed_jwt(
        &key,
        &claims(json!("https://login.salesforce.com"), "someone@else", exp),
    ))
    .await;
    assert_eq!(s, 400);
    let (s, _) = grant(signed_jwt(
        &other,
        &claims(
            json!("https://login.salesforce.com"),
            "admin@emulator.test",
            exp,
        ),
    ))
    .await;
    assert_eq!(s, 400, "signed by a key the org does not trust");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_stop_others() {
    use tokio::io::AsyncWriteExt;
    let org = Org::start(&["--generate", "Account=3"]).await;
    // Not HTTP at all, and a request that stops halfway and stays open.
    let mut junk = tokio::net::TcpStream::connect(org.running.addr())
        .await
        .unwrap();
    junk.write_all(b"\x16\x03\x01 definitely not http\r\n\r\n")
        .await
        .unwrap();
    let mut stalled = tokio::net::TcpStream::connect(org.running.addr())
        .await
        .unwrap();
    stalled
        .write_all(b"POST /services/data/v61.0/sobjects/Contact HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"LastName\":")
        .await
        .unwrap();
    // Many clients at once, half of them sending garbage.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (http, token, url) = (
            org.http.clone(),
            org.token.clone(),
            org.url(&format!("{V}/query")),
        );
        tasks.push(tokio::spawn(async move {
            let q = if i % 2 == 0 {
                "SELECT COUNT() FROM Account"
            } else {
                "SELECT ((((( FROM"
            };
            let r = http
                .get(url)
                .query(&[("q", q)])
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (i, r.status().as_u16())
        }));
    }
    for t in tasks {
        let (i, status) = t.await.unwrap();
        assert_eq!(status, if i % 2 == 0 { 200 } else { 400 });
    }
    assert_eq!(
        org.query("SELECT COUNT() FROM Account").await["totalSize"],
        3
    );
    drop((junk, stalled));
}
