//! Typed errors for Salesforce's error codes and injected faults, and `is_transient`.

use std::time::Duration;

use salesforce::{Error, ErrorCode};
use serde_json::json;

use crate::support::*;

/// The error a query that must fail comes back with.
async fn query_err(client: &salesforce::Client, soql: &str) -> Error {
    client.query(soql, None).await.unwrap_err()
}

#[tokio::test]
async fn malformed_query_and_invalid_field_and_type() {
    let emu = Emu::start().await;
    let client = emu.client();
    let err = query_err(&client, "SELEKT Id FROM Contact").await;
    assert_eq!(err.code(), Some(&ErrorCode::MalformedQuery));
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_transient());
    assert!(err.to_string().contains("MALFORMED_QUERY"), "{err}");

    let err = query_err(&client, "SELECT Id, NoSuchField__c FROM Contact").await;
    assert_eq!(err.code(), Some(&ErrorCode::InvalidField));
    assert!(err.to_string().contains("NoSuchField__c"), "{err}");
    assert!(!err.is_transient());

    let err = query_err(&client, "SELECT Id FROM Nope__c").await;
    assert_eq!(err.code(), Some(&ErrorCode::InvalidType));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn request_limit_exceeded_when_quota_spent() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    emu.set_limits(json!({"api_limit": 1000, "api_used": 1000}))
        .await;
    let err = query_err(&client, "SELECT Id FROM Account").await;
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some(&ErrorCode::RequestLimitExceeded));
    assert!(err.is_transient());
    assert!(err.retry_after_hint().unwrap() >= Duration::from_secs(60));
    assert!(
        err.to_string().contains("TotalRequests Limit exceeded"),
        "{err}"
    );
    // The refusal still tells the client the org's usage.
    let u = client.api_usage().unwrap();
    assert_eq!(u.max, 1000);
    assert!(u.used >= 1000);
}

#[tokio::test]
async fn injected_faults_are_typed_and_classified() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    let q = "SELECT Id FROM Account";

    emu.fault("503", 1, None).await;
    let err = query_err(&client, q).await;
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.code(), Some(&ErrorCode::ServerUnavailable));
    assert!(err.is_transient() && !err.outcome_unknown());

    emu.fault("500", 1, None).await;
    let err = query_err(&client, q).await;
    assert_eq!(err.status(), Some(500));
    assert!(err.is_transient());

    emu.fault("unable_to_lock_row", 1, None).await;
    let err = query_err(&client, q).await;
    assert_eq!(err.code(), Some(&ErrorCode::UnableToLockRow));
    assert!(err.is_transient());

    emu.fault("request_limit", 1, None).await;
    let err = query_err(&client, q).await;
    assert_eq!(err.code(), Some(&ErrorCode::RequestLimitExceeded));
    assert!(err.is_transient());

    // A dropped connection: the request may have been processed.
    emu.fault("drop", 1, None).await;
    let err = query_err(&client, q).await;
    assert!(
        matches!(err, Error::Transport(_)),
        "dropped connection gives {err:?}"
    );
    assert!(err.is_transient() && err.outcome_unknown());

    // Faults are spent; the client recovers on its own.
    client.query(q, None).await.unwrap();
}

#[tokio::test]
async fn client_timeout_is_a_timeout_error() {
    let emu = Emu::start().await;
    let mut config = salesforce::ClientConfig::new(emu.refresh_credential());
    config.request_timeout = Duration::from_millis(300);
    let client = salesforce::Client::new(config).unwrap();
    client.authenticate().await.unwrap();
    emu.set_limits(json!({"latency_ms": 2000})).await;
    let err = query_err(&client, "SELECT Id FROM Account").await;
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(err.is_transient() && err.outcome_unknown());
    emu.set_limits(json!({"latency_ms": 0})).await;
}

#[tokio::test]
async fn not_found_record_is_not_transient() {
    let emu = Emu::start().await;
    let client = emu.client();
    let err = client
        .get_record("Contact", "003000000000000AAA", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!err.is_transient());
}

/// A token response pointing the client back at `instance`.
fn token_reply(instance: &str) -> String {
    let body = serde_json::json!({
        "access_token": "00Dx!AR-token",
        "instance_url": instance,
        "id": format!("{instance}/id/00Dxx0000001gPLEAY/005xx000001Sv6AAAS"),
        "token_type": "Bearer",
        "issued_at": "1700000000000",
    })
    .to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A server that breaks every data response off after the headers (the emulator cannot
/// do this). The token call is answered properly.
async fn truncating_server() -> String {
    raw_server(|request, base| {
        if request.starts_with("POST /services/oauth2/token") {
            token_reply(base)
        } else {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"totalSize\":".into()
        }
    })
    .await
}

#[tokio::test]
async fn response_cut_off_mid_body_is_a_transport_error() {
    let client = client_for(&truncating_server().await);
    client.authenticate().await.unwrap();
    let err = query_err(&client, "SELECT Id FROM Account").await;
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.is_transient() && err.outcome_unknown());
}

fn client_for(login_url: &str) -> salesforce::Client {
    salesforce::Client::new(salesforce::ClientConfig::new(
        salesforce::Credential::RefreshToken {
            login_url: login_url.to_string(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            refresh_token: REFRESH_TOKEN.into(),
        },
    ))
    .unwrap()
}

/// Redirects are never followed (the token must not travel to another host); they
/// become errors that name the target.
#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let redirect = |to: &str| {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    };
    let login =
        raw_server(move |_, _| redirect("https://acme.my.salesforce.com/services/oauth2/token"))
            .await;
    let err = client_for(&login).authenticate().await.unwrap_err();
    assert!(matches!(err, Error::Auth { status: 302, .. }), "{err:?}");
    assert!(
        err.to_string().contains("https://acme.my.salesforce.com"),
        "{err}"
    );

    let data = raw_server(move |request, base| {
        if request.starts_with("POST /services/oauth2/token") {
            token_reply(base)
        } else {
            "HTTP/1.1 301 Moved\r\nlocation: https://elsewhere.example/q\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .to_string()
        }
    })
    .await;
    let client = client_for(&data);
    let err = query_err(&client, "SELECT Id FROM Account").await;
    assert_eq!(err.status(), Some(301));
    assert!(
        err.to_string().contains("https://elsewhere.example/q"),
        "{err}"
    );
    assert!(!err.is_transient());
}

/// Too many concurrent long requests: the same code as the daily quota, but it clears
/// as soon as a long request ends, so no 60 s hint.
#[tokio::test]
async fn concurrent_long_request_limit() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    emu.set_limits(json!({"long_request_limit": 0, "latency_ms": 20000}))
        .await;
    let err = query_err(&client, "SELECT Id FROM Account").await;
    emu.set_limits(json!({"latency_ms": 0})).await;
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some(&ErrorCode::RequestLimitExceeded));
    assert!(err.to_string().contains("ConcurrentPerOrgLongTxn"), "{err}");
    assert!(err.is_transient());
    assert_eq!(err.retry_after_hint(), None);
}
