//! https: the client trusts an extra root CA given in the configuration, and refuses
//! an unknown certificate with a connect error.

use std::process::Command;

use salesforce::{Client, ClientConfig, Error};

use crate::support::*;

/// A throwaway certificate for 127.0.0.1 made with the openssl command line tool (the
/// Python harness makes its certificates the same way).
fn make_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command line tool is installed");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

#[tokio::test]
async fn https_with_an_extra_root_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path());
    let (c, k) = (cert.clone(), key.clone());
    let emu = Emu::start_with(|cfg| {
        cfg.tls_cert = Some(c);
        cfg.tls_key = Some(k);
    })
    .await;
    assert!(emu.url().starts_with("https://"), "{}", emu.url());

    let mut config = ClientConfig::new(emu.refresh_credential());
    config.extra_root_ca_pem = Some(std::fs::read_to_string(&cert).unwrap());
    let client = Client::new(config).unwrap();
    let info = client.authenticate().await.unwrap();
    assert_eq!(info.instance_url, emu.url());
    assert_eq!(
        client.count("SELECT COUNT() FROM Account").await.unwrap(),
        0
    );

    // Without the CA the certificate is unknown: no connection, a clear error.
    let untrusting = Client::new(ClientConfig::new(emu.refresh_credential())).unwrap();
    let err = untrusting.authenticate().await.unwrap_err();
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // Garbage in place of a CA is a configuration error.
    let mut config = ClientConfig::new(emu.refresh_credential());
    config.extra_root_ca_pem = Some("not a certificate".into());
    assert!(matches!(Client::new(config), Err(Error::Config(_))));
}
