//! Every OAuth grant, bad credentials, instance URL, and refresh-on-401.

use std::io::Write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::RsaPrivateKey;
use salesforce::{Client, ClientConfig, Credential, Error, ErrorCode};

use crate::support::*;

fn assert_session(info: &salesforce::SessionInfo, emu: &Emu) {
    assert_eq!(info.instance_url, emu.url());
    let org = info
        .org_id
        .as_deref()
        .expect("org id from the identity URL");
    let user = info
        .user_id
        .as_deref()
        .expect("user id from the identity URL");
    assert!(org.starts_with("00D") && org.len() == 18, "{org}");
    assert!(user.starts_with("005") && user.len() == 18, "{user}");
}

/// The grant works, and the token it gives is accepted by a data call.
async fn assert_grant_works(emu: &Emu, credential: Credential) {
    let client = emu.client_with(credential);
    let info = client.authenticate().await.expect("token granted");
    assert_session(&info, emu);
    assert_eq!(client.session_info(), Some(info));
    let n = client.count("SELECT COUNT() FROM Account").await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(client.stats().token_requests, 1);
}

#[tokio::test]
async fn refresh_token_grant() {
    let emu = Emu::start().await;
    assert_grant_works(&emu, emu.refresh_credential()).await;
}

#[tokio::test]
async fn password_grant() {
    let emu = Emu::start().await;
    let cred = Credential::Password {
        login_url: emu.url(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        username: USERNAME.into(),
        password: PASSWORD.into(),
    };
    assert_grant_works(&emu, cred).await;
}

#[tokio::test]
async fn client_credentials_grant() {
    let emu = Emu::start().await;
    let cred = Credential::ClientCredentials {
        login_url: emu.url(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
    };
    assert_grant_works(&emu, cred).await;
}

/// A throwaway RSA key pair: the private key PEM (PKCS#8) and a file holding the
/// public key, which the emulator uses to verify assertions.
fn jwt_keys() -> (String, tempfile::NamedTempFile) {
    let mut rng = rand08::thread_rng();
    let private = RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let private_pem = private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(public_pem.as_bytes()).unwrap();
    (private_pem, file)
}

#[tokio::test]
async fn jwt_bearer_grant_and_wrong_key() {
    let (private_pem, public_file) = jwt_keys();
    let path = public_file.path().to_path_buf();
    let emu = Emu::start_with(|c| c.jwt_public_key = Some(path)).await;
    let cred = |pem: String, user: &str| Credential::JwtBearer {
        login_url: emu.url(),
        client_id: CLIENT_ID.into(),
        username: user.into(),
        private_key_pem: pem,
    };
    assert_grant_works(&emu, cred(private_pem.clone(), USERNAME)).await;

    // A key the emulator does not know: the signature does not verify.
    let (other_pem, _) = jwt_keys();
    let err = emu
        .client_with(cred(other_pem, USERNAME))
        .authenticate()
        .await
        .unwrap_err();
    match &err {
        Error::Auth { grant, error, .. } => {
            assert_eq!(*grant, "jwt_bearer");
            assert_eq!(error, "invalid_grant");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(!err.is_transient());

    // The right key but a user the emulator does not have.
    let err = emu
        .client_with(cred(private_pem, "nobody@emulator.test"))
        .authenticate()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth { ref error, .. } if error == "invalid_grant"),
        "{err:?}"
    );
}

#[tokio::test]
async fn jwt_key_that_is_not_pem_is_a_config_error() {
    let err = Client::new(ClientConfig::new(Credential::JwtBearer {
        login_url: "https://login.salesforce.com".into(),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_pem: "not a key".into(),
    }))
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("PEM"), "{err}");
}

/// Each kind of bad credential gives a typed `Error::Auth` whose message names the
/// login host, what Salesforce said, and what to check.
#[tokio::test]
async fn bad_credentials_give_clear_typed_errors() {
    let emu = Emu::start().await;
    let cases: Vec<(Credential, &str, &str, &str)> = vec![
        (
            Credential::RefreshToken {
                login_url: emu.url(),
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                refresh_token: "revoked".into(),
            },
            "refresh_token",
            "invalid_grant",
            "obtain a new refresh token",
        ),
        (
            Credential::Password {
                login_url: emu.url(),
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                username: USERNAME.into(),
                password: "wrong".into(),
            },
            "password",
            "invalid_grant",
            "security token",
        ),
        (
            Credential::Password {
                login_url: emu.url(),
                client_id: "unknown-app".into(),
                client_secret: CLIENT_SECRET.into(),
                username: USERNAME.into(),
                password: PASSWORD.into(),
            },
            "password",
            "invalid_client_id",
            "consumer key",
        ),
        (
            Credential::ClientCredentials {
                login_url: emu.url(),
                client_id: CLIENT_ID.into(),
                client_secret: "wrong".into(),
            },
            "client_credentials",
            "invalid_client",
            "consumer secret",
        ),
    ];
    for (cred, want_grant, want_error, hint) in cases {
        let client = emu.client_with(cred);
        let err = client.authenticate().await.unwrap_err();
        match &err {
            Error::Auth {
                login_url,
                grant,
                status,
                error,
                ..
            } => {
                assert_eq!(login_url, &emu.url());
                assert_eq!(*grant, want_grant);
                assert_eq!(*status, 400);
                assert_eq!(error, want_error);
            }
            other => panic!("expected an auth error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&emu.url()), "{text}");
        assert!(text.contains(hint), "{want_grant}: {text}");
        assert!(!err.is_transient());
        // A data call reports the same error instead of sending anything.
        let err = client
            .query("SELECT Id FROM Account", None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
        assert_eq!(client.stats().requests, 0);
    }
}

#[tokio::test]
async fn unreachable_login_host_is_a_connect_error() {
    // Bind and release a port so nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(ClientConfig::new(Credential::RefreshToken {
        login_url: format!("http://127.0.0.1:{port}"),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        refresh_token: REFRESH_TOKEN.into(),
    }))
    .unwrap();
    let err = client.authenticate().await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.is_transient());
    assert!(!err.outcome_unknown());
}

#[tokio::test]
async fn bad_login_url_is_a_config_error() {
    for url in ["login.salesforce.com", "ftp://login.salesforce.com", ""] {
        let err = Client::new(ClientConfig::new(Credential::ClientCredentials {
            login_url: url.into(),
            client_id: "c".into(),
            client_secret: "s".into(),
        }))
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{url}: {err:?}");
    }
}

/// Data calls go to the `instance_url` of the token response, not the login host: log
/// in through a forwarding proxy and check no data call passes through it.
#[tokio::test]
async fn data_calls_use_instance_url_from_token_response() {
    let emu = Emu::start().await;
    let proxy = Proxy::start(emu.running.addr()).await;
    let client = emu.client_with(Credential::RefreshToken {
        login_url: proxy.url(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        refresh_token: REFRESH_TOKEN.into(),
    });
    let info = client.authenticate().await.unwrap();
    assert_eq!(info.instance_url, emu.url());
    assert_eq!(client.instance_url(), Some(emu.url()));
    let after_login = proxy.bytes();
    assert!(after_login > 0, "the token call went through the proxy");
    client.query("SELECT Id FROM Account", None).await.unwrap();
    client.describe("Contact", None).await.unwrap();
    assert_eq!(
        proxy.bytes(),
        after_login,
        "no data call used the login host"
    );
}

/// A TCP forwarder that counts the bytes clients send through it.
struct Proxy {
    addr: std::net::SocketAddr,
    sent: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut in_read, mut in_write) = inbound.into_split();
                    let (mut out_read, mut out_write) = outbound.into_split();
                    // Count upstream bytes as they pass: pooled connections stay open.
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match in_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                            if out_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = tokio::io::copy(&mut out_read, &mut in_write);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Proxy { addr, sent }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes clients sent through the proxy so far.
    fn bytes(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Expired tokens: the next data call gets 401 INVALID_SESSION_ID, refreshes once and
/// retries once, invisibly to the caller.
#[tokio::test]
async fn expired_token_is_refreshed_and_the_call_retried_once() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    client.count("SELECT COUNT() FROM Contact").await.unwrap();
    emu.control("POST", "expire_tokens", None).await;
    let before = emu.api_requests().await;
    let n = client.count("SELECT COUNT() FROM Contact").await.unwrap();
    assert_eq!(n, 0);
    let s = client.stats();
    assert_eq!(s.token_requests, 2);
    assert_eq!(s.session_refreshes, 1);
    assert_eq!(s.requests, 3, "one call, one 401, one retry");
    assert_eq!(s.error_responses, 1);
    assert!(emu.api_requests().await > before);
}

/// Many callers hitting an expired token at once cause one token call, not one each.
#[tokio::test]
async fn concurrent_401s_share_one_refresh() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    emu.control("POST", "expire_tokens", None).await;
    let calls = (0..8).map(|_| {
        let c = client.clone();
        async move { c.count("SELECT COUNT() FROM Account").await }
    });
    for r in futures_join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(client.stats().token_requests, 2);
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// A token refused twice in a row is not retried forever: the second 401 surfaces.
#[tokio::test]
async fn second_401_is_returned_not_retried() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    emu.fault("invalid_session", 2, Some("/query")).await;
    let err = client
        .query("SELECT Id FROM Account", None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some(&ErrorCode::InvalidSessionId));
    assert!(!err.is_transient());
    let s = client.stats();
    assert_eq!(
        (s.requests, s.token_requests, s.session_refreshes),
        (2, 2, 1)
    );
    // The fault is spent; the next call works with the current token.
    client.query("SELECT Id FROM Account", None).await.unwrap();
    assert_eq!(client.stats().token_requests, 2);
}

/// The first data call authenticates lazily.
#[tokio::test]
async fn first_data_call_authenticates() {
    let emu = Emu::start().await;
    let client = emu.client();
    assert_eq!(client.instance_url(), None);
    client.query("SELECT Id FROM Account", None).await.unwrap();
    assert_eq!(client.instance_url(), Some(emu.url()));
    assert_eq!(client.stats().token_requests, 1);
}

/// The token endpoint itself failing with 503 is an auth error, but a transient one.
#[tokio::test]
async fn token_endpoint_outage_is_transient() {
    let emu = Emu::start().await;
    emu.fault("503", 1, Some("/services/oauth2/token")).await;
    let client = emu.client();
    let err = client.authenticate().await.unwrap_err();
    assert!(matches!(err, Error::Auth { status: 503, .. }), "{err:?}");
    assert!(err.is_transient());
    client.authenticate().await.unwrap();
}

/// Nothing the client prints carries the access token or secrets.
#[tokio::test]
async fn debug_output_hides_tokens() {
    let emu = Emu::start().await;
    let client = emu.ready_client().await;
    let text = format!("{client:?} {:?}", client.session_info());
    assert!(text.contains(&emu.url()), "{text}");
    assert!(!text.contains("!AR"), "access token leaked: {text}");
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(REFRESH_TOKEN),
        "{text}"
    );
}

/// Keys in the older PKCS#1 form ("BEGIN RSA PRIVATE KEY"), as `openssl genrsa` wrote
/// them for years, work too.
#[tokio::test]
async fn jwt_bearer_with_pkcs1_keys() {
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    let mut rng = rand08::thread_rng();
    let private = RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let private_pem = private.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
    assert!(private_pem.contains("BEGIN RSA PRIVATE KEY"));
    let public_pem = private
        .to_public_key()
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(public_pem.as_bytes()).unwrap();
    let path = file.path().to_path_buf();
    let emu = Emu::start_with(|c| c.jwt_public_key = Some(path)).await;
    let cred = Credential::JwtBearer {
        login_url: emu.url(),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_pem: private_pem,
    };
    assert_grant_works(&emu, cred).await;
}
