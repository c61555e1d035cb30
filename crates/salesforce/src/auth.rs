//! OAuth token requests for each grant, and the RS256 assertion of the JWT bearer grant.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde::Deserialize;
use sha2::Sha256;

use crate::config::Credential;
use crate::error::{Error, Result};

/// What a successful token call gives us. `Debug` never prints the access token.
#[derive(Clone)]
pub struct Session {
    pub(crate) access_token: String,
    pub instance_url: String,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    /// Increments with every token obtained by one client, so concurrent callers can
    /// tell whether someone already replaced the token they saw fail.
    pub(crate) generation: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_token", &"<redacted>")
            .field("instance_url", &self.instance_url)
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("generation", &self.generation)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// A credential prepared for repeated use: the JWT key is parsed once.
pub(crate) struct Authenticator {
    credential: Credential,
    token_url: String,
    jwt_key: Option<SigningKey<Sha256>>,
}

impl Authenticator {
    pub(crate) fn new(credential: Credential) -> Result<Self> {
        let login_url = credential.login_url().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&login_url).map_err(|e| {
            Error::Config(format!("login URL {login_url:?} is not a valid URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "login URL {login_url:?} must start with https://"
            )));
        }
        let jwt_key = match &credential {
            Credential::JwtBearer {
                private_key_pem, ..
            } => Some(SigningKey::<Sha256>::new(parse_private_key(
                private_key_pem,
            )?)),
            _ => None,
        };
        Ok(Authenticator {
            token_url: format!("{login_url}/services/oauth2/token"),
            credential,
            jwt_key,
        })
    }

    pub(crate) fn login_url(&self) -> &str {
        self.credential.login_url().trim_end_matches('/')
    }

    fn form(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(match &self.credential {
            Credential::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
                ..
            } => vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
                ("refresh_token", refresh_token.clone()),
            ],
            Credential::Password {
                client_id,
                client_secret,
                username,
                password,
                ..
            } => vec![
                ("grant_type", "password".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
                ("username", username.clone()),
                ("password", password.clone()),
            ],
            Credential::ClientCredentials {
                client_id,
                client_secret,
                ..
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
            ],
            Credential::JwtBearer {
                client_id,
                username,
                ..
            } => {
                let key = self
                    .jwt_key
                    .as_ref()
                    .ok_or_else(|| Error::Config("JWT signing key missing".into()))?;
                let now = chrono::Utc::now().timestamp();
                let audience = jwt_audience(self.login_url());
                let assertion = jwt_assertion(key, client_id, username, &audience, now)?;
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                    ),
                    ("assertion", assertion),
                ]
            }
        })
    }

    /// Performs the token call. Counts nothing against the API quota.
    pub(crate) async fn fetch_token(
        &self,
        http: &reqwest::Client,
        generation: u64,
    ) -> Result<Session> {
        let grant = self.credential.kind();
        let form = self.form()?;
        let response = http
            .post(&self.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| login_transport_error(self.login_url(), e))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| login_transport_error(self.login_url(), e))?;
        if (200..300).contains(&status) {
            let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                Error::Decode(format!(
                    "token response from {} is not what Salesforce sends: {e}",
                    self.login_url()
                ))
            })?;
            let (org_id, user_id) = token
                .id
                .as_deref()
                .and_then(ids_from_identity_url)
                .map(|(o, u)| (Some(o), Some(u)))
                .unwrap_or((None, None));
            url::Url::parse(&token.instance_url).map_err(|e| {
                Error::Decode(format!(
                    "token response carried an invalid instance_url {:?}: {e}",
                    token.instance_url
                ))
            })?;
            return Ok(Session {
                access_token: token.access_token,
                instance_url: token.instance_url.trim_end_matches('/').to_string(),
                org_id,
                user_id,
                generation,
            });
        }
        let (error, description) = match serde_json::from_slice::<TokenError>(&body) {
            Ok(e) if !e.error.is_empty() => (e.error, e.error_description),
            _ if crate::http::is_redirect(status) => (
                format!("http_{status}"),
                format!(
                    "the login host redirected to {}; use the host it names as the login URL",
                    location.as_deref().unwrap_or("(no Location header)")
                ),
            ),
            _ => (
                format!("http_{status}"),
                String::from_utf8_lossy(&body).chars().take(300).collect(),
            ),
        };
        Err(Error::Auth {
            login_url: self.login_url().to_string(),
            grant,
            status,
            error,
            description,
        })
    }
}

fn login_transport_error(login_url: &str, e: reqwest::Error) -> Error {
    let detail = crate::http::describe_reqwest_error(&e);
    if e.is_connect() {
        Error::Connect(format!(
            "could not reach the Salesforce login host {login_url}: {detail}"
        ))
    } else if e.is_timeout() {
        Error::Timeout(format!("login host {login_url}: {detail}"))
    } else {
        Error::Transport(format!("login host {login_url}: {detail}"))
    }
}

/// Org and user ids are the last two path segments of the identity URL.
fn ids_from_identity_url(id: &str) -> Option<(String, String)> {
    let mut segments = id.trim_end_matches('/').rsplit('/');
    let user = segments.next()?.to_string();
    let org = segments.next()?.to_string();
    if user.is_empty() || org.is_empty() {
        return None;
    }
    Some((org, user))
}

fn parse_private_key(pem: &str) -> Result<RsaPrivateKey> {
    let pem = pem.trim();
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        RsaPrivateKey::from_pkcs1_pem(pem)
            .map_err(|e| Error::Config(format!("JWT private key (PKCS#1 PEM) is unreadable: {e}")))
    } else if pem.contains("BEGIN PRIVATE KEY") {
        RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| Error::Config(format!("JWT private key (PKCS#8 PEM) is unreadable: {e}")))
    } else if pem.contains("ENCRYPTED PRIVATE KEY") {
        Err(Error::Config(
            "JWT private key is encrypted; supply an unencrypted RSA key in PEM form".into(),
        ))
    } else {
        Err(Error::Config(
            "JWT private key must be an RSA key in PEM form \
             (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
                .into(),
        ))
    }
}

/// The JWT `aud` Salesforce expects: `https://login.salesforce.com` for production
/// (also when the token request goes to a My Domain host), `https://test.salesforce.com`
/// for sandboxes, and the site's own URL for anything else (Experience Cloud sites, or
/// a test server).
pub(crate) fn jwt_audience(login_url: &str) -> String {
    const PRODUCTION: &str = "https://login.salesforce.com";
    const SANDBOX: &str = "https://test.salesforce.com";
    let host = url::Url::parse(login_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let salesforce_host = host == "salesforce.com" || host.ends_with(".salesforce.com");
    if !salesforce_host {
        return login_url.trim_end_matches('/').to_string();
    }
    // Sandbox hosts: test.salesforce.com, NAME--SANDBOX.sandbox.my.salesforce.com, and the
    // older NAME--SANDBOX.csNN.my.salesforce.com / NAME--SANDBOX.my.salesforce.com.
    let sandbox = host == "test.salesforce.com"
        || host.ends_with(".sandbox.my.salesforce.com")
        || host
            .split('.')
            .next()
            .is_some_and(|first| first.contains("--"));
    if sandbox {
        SANDBOX.to_string()
    } else {
        PRODUCTION.to_string()
    }
}

/// Salesforce accepts assertions valid for at most three minutes.
const JWT_LIFETIME_SECS: i64 = 180;

fn jwt_assertion(
    key: &SigningKey<Sha256>,
    client_id: &str,
    username: &str,
    audience: &str,
    now: i64,
) -> Result<String> {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": username,
        "aud": audience,
        "exp": now + JWT_LIFETIME_SECS,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .try_sign(signing_input.as_bytes())
        .map_err(|e| Error::Config(format!("could not sign the JWT assertion: {e}")))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::signature::Verifier;

    #[test]
    fn identity_url_ids() {
        assert_eq!(
            ids_from_identity_url(
                "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001Sv6AAAS"
            ),
            Some(("00Dxx0000001gPLEAY".into(), "005xx000001Sv6AAAS".into()))
        );
        assert_eq!(ids_from_identity_url("nonsense"), None);
    }

    #[test]
    fn jwt_assertion_verifies_and_carries_claims() {
        let mut rng = rand08::thread_rng();
        let private = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = SigningKey::<Sha256>::new(parse_private_key(&pem).unwrap());
        let jwt = jwt_assertion(&key, "cid", "u@x", "https://login.salesforce.com", 1000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "cid");
        assert_eq!(claims["sub"], "u@x");
        assert_eq!(claims["aud"], "https://login.salesforce.com");
        assert_eq!(claims["exp"], 1180);
        let sig =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(private.to_public_key());
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        // A tampered payload must not verify.
        assert!(verifier
            .verify(format!("{}.{}x", parts[0], parts[1]).as_bytes(), &sig)
            .is_err());
    }

    #[test]
    fn jwt_audience_by_host() {
        for (login, aud) in [
            (
                "https://login.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://login.salesforce.com/",
                "https://login.salesforce.com",
            ),
            (
                "https://acme.my.salesforce.com",
                "https://login.salesforce.com",
            ),
            ("https://test.salesforce.com", "https://test.salesforce.com"),
            (
                "https://acme--uat.sandbox.my.salesforce.com",
                "https://test.salesforce.com",
            ),
            (
                "https://acme--dev.cs42.my.salesforce.com",
                "https://test.salesforce.com",
            ),
            (
                "https://acme.force.com/customers",
                "https://acme.force.com/customers",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://evilsalesforce.com", "https://evilsalesforce.com"),
        ] {
            assert_eq!(jwt_audience(login), aud, "{login}");
        }
    }

    #[test]
    fn rejects_non_rsa_pem() {
        assert!(matches!(parse_private_key("hello"), Err(Error::Config(_))));
        assert!(matches!(
            parse_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            Err(Error::Config(_))
        ));
    }
}
