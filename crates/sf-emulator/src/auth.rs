//! OAuth token grants, revocation, the identity URL, SOAP login, and access-token
//! checks on data calls.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Req, Resp};
use base64::Engine;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand::Rng;
use rsa::RsaPublicKey;
use serde_json::json;
use sha2::Sha256;
use std::collections::HashMap;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Issued access tokens -> issue time (ms).
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, i64>>,
}

impl Tokens {
    pub fn issue(&self, org15: &str) -> (String, i64) {
        let mut rng = rand::rng();
        let tail: String = (0..96)
            .map(|_| {
                const CH: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
                CH[rng.random_range(0..CH.len())] as char
            })
            .collect();
        let token = format!("{org15}!AR{tail}");
        let now = crate::timefmt::wall_ms();
        self.issued.lock().insert(token.clone(), now);
        (token, now)
    }

    pub fn valid(&self, token: &str, lifetime_secs: u64) -> bool {
        let issued = self.issued.lock().get(token).copied();
        match issued {
            Some(t) => crate::timefmt::wall_ms() - t < lifetime_secs as i64 * 1000,
            None => false,
        }
    }

    pub fn revoke(&self, token: &str) {
        self.issued.lock().remove(token);
    }

    pub fn expire_all(&self) {
        self.issued.lock().clear();
    }
}

/// Reads the `--jwt-public-key` file: a PEM certificate, SPKI or PKCS#1 public key.
pub fn load_jwt_key(path: &std::path::Path) -> Result<RsaPublicKey, crate::Error> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let pem = std::fs::read_to_string(path).map_err(|source| crate::Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if pem.contains("BEGIN CERTIFICATE") {
        use x509_cert::der::{DecodePem, Encode};
        let cert = x509_cert::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| crate::Error::JwtKey(e.to_string()))?;
        let der = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| crate::Error::JwtKey(e.to_string()))?;
        RsaPublicKey::from_public_key_der(&der).map_err(|e| crate::Error::JwtKey(e.to_string()))
    } else if pem.contains("BEGIN RSA PUBLIC KEY") {
        RsaPublicKey::from_pkcs1_pem(&pem).map_err(|e| crate::Error::JwtKey(e.to_string()))
    } else {
        RsaPublicKey::from_public_key_pem(&pem).map_err(|e| crate::Error::JwtKey(e.to_string()))
    }
}

fn oauth_error(code: &str, desc: &str) -> Resp {
    Resp::json(400, &json!({"error": code, "error_description": desc}))
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `POST /services/oauth2/token`.
pub fn token(app: &App, req: &Req) -> Resp {
    let form = req.form();
    let grant = field(&form, "grant_type").unwrap_or("");
    let cfg = &app.config;
    let check_client = |require_secret: bool| -> Result<(), Resp> {
        match field(&form, "client_id") {
            Some(id) if id == cfg.client_id => {}
            _ => {
                return Err(oauth_error(
                    "invalid_client_id",
                    "client identifier invalid",
                ))
            }
        }
        match field(&form, "client_secret") {
            Some(s) if s == cfg.client_secret => Ok(()),
            None if !require_secret => Ok(()),
            _ => Err(oauth_error("invalid_client", "invalid client credentials")),
        }
    };
    let outcome: Result<(), Resp> = match grant {
        "refresh_token" => check_client(false).and_then(|_| {
            if field(&form, "refresh_token") == Some(cfg.refresh_token.as_str()) {
                Ok(())
            } else {
                Err(oauth_error("invalid_grant", "expired access/refresh token"))
            }
        }),
        "password" => check_client(true).and_then(|_| {
            if field(&form, "username") == Some(cfg.username.as_str())
                && field(&form, "password") == Some(cfg.password.as_str())
            {
                Ok(())
            } else {
                Err(oauth_error("invalid_grant", "authentication failure"))
            }
        }),
        "client_credentials" => {
            let (id, secret) = basic_auth(req).unwrap_or_else(|| {
                (
                    field(&form, "client_id").unwrap_or("").to_string(),
                    field(&form, "client_secret").unwrap_or("").to_string(),
                )
            });
            if id != cfg.client_id {
                Err(oauth_error(
                    "invalid_client_id",
                    "client identifier invalid",
                ))
            } else if secret != cfg.client_secret {
                Err(oauth_error("invalid_client", "invalid client credentials"))
            } else {
                Ok(())
            }
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            verify_jwt(app, field(&form, "assertion").unwrap_or(""))
        }
        "authorization_code" => Err(oauth_error("invalid_grant", "invalid authorization code")),
        _ => Err(oauth_error(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    };
    if let Err(r) = outcome {
        return r;
    }
    let org15 = &app.org.org_id[..15];
    let (access, issued) = app.tokens.issue(org15);
    let instance = app.instance_url(req);
    let id = format!("{instance}/id/{}/{}", app.org.org_id, app.org.user_id);
    let issued_at = issued.to_string();
    let signature = match Hmac::<Sha256>::new_from_slice(cfg.client_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(id.as_bytes());
            mac.update(issued_at.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    Resp::json(
        200,
        &json!({
            "access_token": access,
            "signature": signature,
            "scope": "api refresh_token",
            "instance_url": instance,
            "id": id,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }),
    )
}

fn basic_auth(req: &Req) -> Option<(String, String)> {
    let h = req.header("authorization")?;
    let b64 = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))?;
    let raw = B64.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((dec(id), dec(secret)))
}

fn verify_jwt(app: &App, assertion: &str) -> Result<(), Resp> {
    let bad = |why: &str| Err(oauth_error("invalid_grant", why));
    let Some(key) = app.jwt_key.as_ref() else {
        return bad("invalid assertion");
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return bad("invalid assertion");
    };
    let decode = |x: &str| B64URL.decode(x.trim_end_matches('='));
    let (Ok(header), Ok(payload), Ok(sig)) = (decode(h), decode(p), decode(s)) else {
        return bad("invalid assertion");
    };
    let header: serde_json::Value = match serde_json::from_slice(&header) {
        Ok(v) => v,
        Err(_) => return bad("invalid assertion"),
    };
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return bad("invalid assertion");
    }
    {
        use rsa::signature::Verifier;
        let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig.as_slice()) else {
            return bad("invalid assertion");
        };
        let signed = format!("{h}.{p}");
        if vk.verify(signed.as_bytes(), &sig).is_err() {
            return bad("invalid assertion");
        }
    }
    let claims: serde_json::Value = match serde_json::from_slice(&payload) {
        Ok(v) => v,
        Err(_) => return bad("invalid assertion"),
    };
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if text("iss") != app.config.client_id {
        return Err(oauth_error(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    if text("sub") != app.config.username {
        return bad("user hasn't approved this consumer");
    }
    // Salesforce accepts its two login hosts (or an Experience Cloud site); the
    // emulator's own URL stands in for a site, so clients pointed at it work.
    let audience_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        a == "https://login.salesforce.com"
            || a == "https://test.salesforce.com"
            || a == app.base_url.trim_end_matches('/')
            || app.config.instance_url.as_deref() == Some(a)
    };
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => audience_ok(a),
        Some(serde_json::Value::Array(list)) => {
            list.iter().any(|a| a.as_str().is_some_and(audience_ok))
        }
        _ => false,
    };
    if !aud_ok {
        return bad("audience is invalid");
    }
    let exp = match claims.get("exp") {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match exp {
        Some(e) if e * 1000.0 > crate::timefmt::wall_ms() as f64 => Ok(()),
        Some(_) => bad("expired authorization code"),
        None => bad("invalid assertion"),
    }
}

/// `POST /services/oauth2/revoke`.
pub fn revoke(app: &App, req: &Req) -> Resp {
    let form = req.form();
    match field(&form, "token") {
        Some(t) => {
            app.tokens.revoke(t);
            Resp::empty(200)
        }
        None => oauth_error("unsupported_token_type", "this token type is not supported"),
    }
}

/// The bearer token of a data call (`Authorization: Bearer|OAuth`, or
/// `X-SFDC-Session` for Bulk 1.0).
pub fn bearer(req: &Req) -> Option<&str> {
    if let Some(h) = req.header("authorization") {
        let h = h.trim();
        for p in ["Bearer ", "bearer ", "OAuth ", "oauth "] {
            if let Some(t) = h.strip_prefix(p) {
                return Some(t.trim());
            }
        }
        return None;
    }
    req.header("x-sfdc-session").map(str::trim)
}

pub fn check(app: &App, req: &Req) -> Result<(), ApiError> {
    match bearer(req) {
        Some(t) if app.tokens.valid(t, app.config.token_lifetime_secs) => Ok(()),
        _ => Err(ApiError::session()),
    }
}

/// `GET /id/{org}/{user}`.
pub fn identity(app: &App, req: &Req, org: &str, user: &str) -> Resp {
    if check(app, req).is_err() {
        return Resp::text(403, "text/plain;charset=UTF-8", "Bad_OAuth_Token");
    }
    if crate::ids::normalize(org) != crate::ids::normalize(&app.org.org_id)
        || crate::ids::normalize(user) != crate::ids::normalize(&app.org.user_id)
    {
        return Resp::text(404, "text/plain;charset=UTF-8", "Bad_Id");
    }
    let b = &app.instance_url(req);
    let v = "61.0";
    let u = &app.config.username;
    Resp::json(
        200,
        &json!({
            "id": format!("{b}/id/{}/{}", app.org.org_id, app.org.user_id),
            "asserted_user": true,
            "user_id": app.org.user_id,
            "organization_id": app.org.org_id,
            "username": u,
            "nick_name": u.split('@').next().unwrap_or(u),
            "display_name": "Emulator Admin",
            "email": u,
            "email_verified": true,
            "first_name": "Emulator",
            "last_name": "Admin",
            "timezone": "America/Los_Angeles",
            "active": true,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": -28800000,
            "last_modified_date": crate::timefmt::datetime_string(app.started_ms),
            "is_app_installed": true,
            "urls": {
                "enterprise": format!("{b}/services/Soap/c/{v}/{}", app.org.org_id),
                "partner": format!("{b}/services/Soap/u/{v}/{}", app.org.org_id),
                "rest": format!("{b}/services/data/v{v}/"),
                "sobjects": format!("{b}/services/data/v{v}/sobjects/"),
                "search": format!("{b}/services/data/v{v}/search/"),
                "query": format!("{b}/services/data/v{v}/query/"),
                "recent": format!("{b}/services/data/v{v}/recent/"),
                "profile": format!("{b}/{}", app.org.user_id),
                "limits": format!("{b}/services/data/v{v}/limits/"),
            },
        }),
    )
}

fn xml_text(body: &str, local: &str) -> Option<String> {
    let open_plain = format!("<{local}>");
    let start = match body.find(&open_plain) {
        Some(i) => i + open_plain.len(),
        None => {
            let needle = format!(":{local}>");
            let mut from = 0;
            loop {
                let i = body[from..].find(&needle)? + from;
                let lt = body[..i].rfind('<')?;
                if !body[lt..i].contains('/') {
                    break i + needle.len();
                }
                from = i + needle.len();
            }
        }
    };
    let end = body[start..].find("</")? + start;
    Some(
        body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `POST /services/Soap/u/{version}` with a `login` call.
pub fn soap_login(app: &App, req: &Req, version: &str) -> Resp {
    let body = String::from_utf8_lossy(&req.body);
    let user = xml_text(&body, "username");
    let pass = xml_text(&body, "password");
    let ok = user.as_deref() == Some(app.config.username.as_str())
        && pass.as_deref() == Some(app.config.password.as_str());
    if !ok {
        let msg = "Invalid username, password, security token; or user locked out.";
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: {msg}</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode><sf:exceptionMessage>{msg}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
        );
        return Resp::text(500, "text/xml;charset=UTF-8", xml);
    }
    let (session, _) = app.tokens.issue(&app.org.org_id[..15]);
    let b = &app.instance_url(req);
    let org = &app.org.org_id;
    let uid = &app.org.user_id;
    let uname = xml_escape(&app.config.username);
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result><metadataServerUrl>{b}/services/Soap/m/{version}/{org}</metadataServerUrl><passwordExpired>false</passwordExpired><sandbox>false</sandbox><serverUrl>{b}/services/Soap/u/{version}/{org}</serverUrl><sessionId>{session}</sessionId><userId>{uid}</userId><userInfo><accessibilityMode>false</accessibilityMode><currencySymbol>$</currencySymbol><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit><orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode><orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments><orgHasPersonAccounts>false</orgHasPersonAccounts><organizationId>{org}</organizationId><organizationMultiCurrency>false</organizationMultiCurrency><organizationName>Emulator Org</organizationName><profileId>00eEm0000000001AAA</profileId><roleId xsi:nil="true"/><sessionSecondsValid>{secs}</sessionSecondsValid><userDefaultCurrencyIsoCode xsi:nil="true"/><userEmail>{uname}</userEmail><userFullName>Emulator Admin</userFullName><userId>{uid}</userId><userLanguage>en_US</userLanguage><userLocale>en_US</userLocale><userName>{uname}</userName><userTimeZone>America/Los_Angeles</userTimeZone><userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"#,
        secs = app.config.token_lifetime_secs
    );
    Resp::text(200, "text/xml;charset=UTF-8", xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_fields() {
        let body = r#"<env:Envelope><env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com"><n1:username>a@b.c</n1:username><n1:password>p&amp;w</n1:password></n1:login></env:Body></env:Envelope>"#;
        assert_eq!(xml_text(body, "username").as_deref(), Some("a@b.c"));
        assert_eq!(xml_text(body, "password").as_deref(), Some("p&w"));
        let plain = "<login><username>x</username></login>";
        assert_eq!(xml_text(plain, "username").as_deref(), Some("x"));
    }
}
