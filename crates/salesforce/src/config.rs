//! What a client needs to know: the credential and connection settings.

use std::fmt;
use std::time::Duration;

/// How the client obtains an access token. `Debug` never prints secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// OAuth refresh token grant (the usual choice after a web-server flow).
    RefreshToken {
        login_url: String,
        client_id: String,
        client_secret: String,
        refresh_token: String,
    },
    /// OAuth username-password grant (password + security token when required).
    Password {
        login_url: String,
        client_id: String,
        client_secret: String,
        username: String,
        password: String,
    },
    /// OAuth client credentials grant; `login_url` must be the org's My Domain host.
    ClientCredentials {
        login_url: String,
        client_id: String,
        client_secret: String,
    },
    /// OAuth JWT bearer grant signed with RS256; PKCS#8 or PKCS#1 PEM key.
    JwtBearer {
        login_url: String,
        client_id: String,
        username: String,
        private_key_pem: String,
    },
}

impl Credential {
    pub fn login_url(&self) -> &str {
        match self {
            Credential::RefreshToken { login_url, .. }
            | Credential::Password { login_url, .. }
            | Credential::ClientCredentials { login_url, .. }
            | Credential::JwtBearer { login_url, .. } => login_url,
        }
    }

    pub fn client_id(&self) -> &str {
        match self {
            Credential::RefreshToken { client_id, .. }
            | Credential::Password { client_id, .. }
            | Credential::ClientCredentials { client_id, .. }
            | Credential::JwtBearer { client_id, .. } => client_id,
        }
    }

    /// The grant's name as used in messages (`refresh_token`, `password`,
    /// `client_credentials`, `jwt_bearer`), matching `create_credential`'s kinds.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::RefreshToken { .. } => "refresh_token",
            Credential::Password { .. } => "password",
            Credential::ClientCredentials { .. } => "client_credentials",
            Credential::JwtBearer { .. } => "jwt_bearer",
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HIDDEN: &str = "<redacted>";
        match self {
            Credential::RefreshToken {
                login_url,
                client_id,
                ..
            } => f
                .debug_struct("RefreshToken")
                .field("login_url", login_url)
                .field("client_id", client_id)
                .field("client_secret", &HIDDEN)
                .field("refresh_token", &HIDDEN)
                .finish(),
            Credential::Password {
                login_url,
                client_id,
                username,
                ..
            } => f
                .debug_struct("Password")
                .field("login_url", login_url)
                .field("client_id", client_id)
                .field("client_secret", &HIDDEN)
                .field("username", username)
                .field("password", &HIDDEN)
                .finish(),
            Credential::ClientCredentials {
                login_url,
                client_id,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("login_url", login_url)
                .field("client_id", client_id)
                .field("client_secret", &HIDDEN)
                .finish(),
            Credential::JwtBearer {
                login_url,
                client_id,
                username,
                ..
            } => f
                .debug_struct("JwtBearer")
                .field("login_url", login_url)
                .field("client_id", client_id)
                .field("username", username)
                .field("private_key_pem", &HIDDEN)
                .finish(),
        }
    }
}

/// Client settings. Build with [`ClientConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub credential: Credential,
    /// API version without the `v`, e.g. `"61.0"` (a leading `v` is tolerated).
    pub api_version: String,
    /// Upper bound on one whole request, body included.
    pub request_timeout: Duration,
    /// Upper bound on establishing the connection.
    pub connect_timeout: Duration,
    /// Extra trusted root certificates (PEM, one or more), e.g. a test CA.
    pub extra_root_ca_pem: Option<String>,
    /// Sent as `Sforce-Call-Options: client=<name>` on every request, so the changes
    /// this client makes can be told apart: Salesforce names the client in the
    /// `changeOrigin` of their change events ("EventBus.ChangeEventHeader",
    /// Apex Reference Guide; "Sforce-Call-Options Header", REST API Developer Guide).
    pub call_options_client: Option<String>,
}

/// The API version used unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "61.0";

impl ClientConfig {
    /// Defaults: API v61.0, 120 s per request, 10 s to connect, system roots only.
    pub fn new(credential: Credential) -> Self {
        ClientConfig {
            credential,
            api_version: DEFAULT_API_VERSION.to_string(),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            extra_root_ca_pem: None,
            call_options_client: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let creds = [
            Credential::RefreshToken {
                login_url: "https://l".into(),
                client_id: "cid".into(),
                client_secret: "SECRET1".into(),
                refresh_token: "SECRET2".into(),
            },
            Credential::Password {
                login_url: "https://l".into(),
                client_id: "cid".into(),
                client_secret: "SECRET1".into(),
                username: "u".into(),
                password: "SECRET2".into(),
            },
            Credential::ClientCredentials {
                login_url: "https://l".into(),
                client_id: "cid".into(),
                client_secret: "SECRET1".into(),
            },
            Credential::JwtBearer {
                login_url: "https://l".into(),
                client_id: "cid".into(),
                username: "u".into(),
                private_key_pem: "SECRET1".into(),
            },
        ];
        for c in creds {
            let text = format!("{:?}", ClientConfig::new(c));
            assert!(!text.contains("SECRET"), "{text}");
            assert!(text.contains("cid"), "{text}");
        }
    }
}
