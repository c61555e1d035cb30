//! TLS to the database, as managed services require it. Whether a connection uses TLS
//! is the connection string's `sslmode` (`disable`, `allow`/`prefer`: the default,
//! `require`, `verify-ca`, `verify-full`: `conninfo`); how the server's certificate is
//! checked is this program's choice, stricter than libpq's where libpq does not check:
//!
//! - against a CA file: `sslrootcert=PATH` in the connection string or `--tls-ca-file
//!   PATH` (RDS, Cloud SQL and Azure publish theirs);
//! - otherwise against the public CAs of the webpki root store (also `sslrootcert=system`);
//! - with the host name, but for `sslmode=verify-ca` (the chain only, as libpq);
//! - `--tls-no-verify`: not at all (a service with self-signed certificates, as
//!   `sslmode=require` in libpq): the traffic is encrypted, but a machine in the middle
//!   could read it. Said in the log at every connection.
//!
//! A client certificate (`sslcert` and `sslkey`, PEM) is presented where given.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::conninfo::TlsWords;

/// How the server's certificate is checked, and what this program presents.
#[derive(Debug, PartialEq)]
pub struct Checking {
    /// None: not checked.
    pub roots: Option<Roots>,
    /// Whether the certificate must name the host connected to.
    pub host_name: bool,
    /// A client certificate chain and its key (PEM files).
    pub client: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, PartialEq)]
pub enum Roots {
    /// The CA certificates of this PEM file.
    CaFile(PathBuf),
    /// The public CAs (webpki roots).
    Public,
}

/// The checking the connection string's words and the options ask for; contradictions
/// refused (a check asked for in one place and waived in the other, a CA named twice).
pub fn checking(
    words: &TlsWords,
    ca_file: Option<PathBuf>,
    no_verify: bool,
) -> Result<Checking, String> {
    let mode = words.mode.as_deref().unwrap_or("prefer");
    let checks = matches!(mode, "verify-ca" | "verify-full");
    if no_verify && (checks || words.root_cert.is_some()) {
        return Err(format!(
            "the connection string asks for the server's certificate to be checked \
             (sslmode={mode}{}) and --tls-no-verify not to: leave out one",
            if words.root_cert.is_some() {
                ", sslrootcert"
            } else {
                ""
            }
        ));
    }
    let roots = match (words.root_cert.as_deref(), ca_file) {
        (Some(_), Some(_)) => {
            return Err(
                "the CA is given twice, as sslrootcert in the connection string and \
                        --tls-ca-file: leave out one"
                    .to_string(),
            )
        }
        _ if no_verify => None,
        (Some("system"), None) | (None, None) => Some(Roots::Public),
        (Some(path), None) => Some(Roots::CaFile(PathBuf::from(path))),
        (None, Some(path)) => Some(Roots::CaFile(path)),
    };
    let client = match (&words.client_cert, &words.client_key) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => {
            return Err(
                "a client certificate needs both sslcert and sslkey in the connection string"
                    .to_string(),
            )
        }
    };
    Ok(Checking {
        roots,
        host_name: mode != "verify-ca",
        client,
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector `postgres::Client::connect` takes.
pub fn connector(checking: &Checking) -> Result<MakeRustlsConnect, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match &checking.roots {
        None => Arc::new(NoVerify(provider())),
        Some(roots) => {
            let store = match roots {
                Roots::Public => {
                    RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
                }
                Roots::CaFile(path) => ca_file(path)?,
            };
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
                .build()
                .map_err(|e| e.to_string())?;
            if checking.host_name {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &checking.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key) = client_certificate(cert, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate {}: {e}", cert.display()))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("the certificate file {shown}: {e}"))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("the certificate file {shown} holds no certificate"));
    }
    Ok(certs)
}

fn ca_file(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in pem_certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("the CA file {}: {e}", path.display()))?;
    }
    Ok(roots)
}

fn client_certificate(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = pem_certificates(cert)?;
    let shown = key.display();
    let pem = std::fs::read(key).map_err(|e| format!("the client key {shown}: {e}"))?;
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("the client key {shown}: {e}"))?
        .ok_or_else(|| format!("the client key {shown} holds no private key"))?;
    Ok((chain, key))
}

/// `sslmode=verify-ca`: the chain to a trusted CA is checked, the name is not (the
/// webpki verifier checks the chain before the name, so a wrong name means a good
/// chain).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate; still checks that the server holds its key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(mode: Option<&str>, root_cert: Option<&str>) -> TlsWords {
        TlsWords {
            mode: mode.map(str::to_string),
            root_cert: root_cert.map(str::to_string),
            ..TlsWords::default()
        }
    }

    #[test]
    fn checking_follows_the_words_and_options() {
        let full = checking(&words(Some("verify-full"), Some("/ca.pem")), None, false).unwrap();
        assert_eq!(full.roots, Some(Roots::CaFile("/ca.pem".into())));
        assert!(full.host_name);
        let ca = checking(&words(Some("verify-ca"), Some("system")), None, false).unwrap();
        assert_eq!((ca.roots, ca.host_name), (Some(Roots::Public), false));
        let option = checking(&words(Some("require"), None), Some("/o.pem".into()), false).unwrap();
        assert_eq!(option.roots, Some(Roots::CaFile("/o.pem".into())));
        let blind = checking(&words(Some("require"), None), None, true).unwrap();
        assert_eq!(blind.roots, None);
    }

    #[test]
    fn contradictions_are_refused() {
        let e = checking(&words(Some("verify-full"), None), None, true).unwrap_err();
        assert!(e.contains("--tls-no-verify"), "{e}");
        let e = checking(&words(None, Some("/ca.pem")), Some("/o.pem".into()), false).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let half = TlsWords {
            client_cert: Some("/c.pem".into()),
            ..TlsWords::default()
        };
        assert!(checking(&half, None, false).unwrap_err().contains("sslkey"));
    }
}
