//! `wsproxyctl certs` as an engine admin uses it, against a CA made by `openssl req -x509`
//! (no code of ours made it), checked by `openssl verify` and by a TLS client that trusts only
//! ca.pem and checks the name.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::sync::Arc;

use testkit::{run, Pki};
use tokio::io::{AsyncWriteExt, BufReader};

mod common;

use common::{ctl, s, stderr};

fn issue(pki: &Pki, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "certs",
        "issue",
        "--ca-cert",
        s(&pki.ca_cert),
        "--ca-key",
        s(&pki.ca_key),
        "--fqdn",
        "localhost",
        "--san",
        "127.0.0.1",
        "--san",
        "proxy.example.test",
        "--engine-cert",
        s(&pki.engine_cert),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    ctl(&args)
}

fn openssl_verify(ca: &Path, cert: &Path) -> String {
    String::from_utf8_lossy(&run(Command::new("openssl").arg("verify").arg("-CAfile").arg(ca).arg(cert))).to_string()
}

fn openssl_text(cert: &Path) -> String {
    String::from_utf8_lossy(&run(Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(cert))).to_string()
}

#[test]
fn issue_from_an_openssl_rsa_ca_pkcs8_and_pkcs1() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // PKCS#8 key (openssl 3 default) and the PKCS#1 form oVirt's engine keeps.
    let pkcs1 = dir.path().join("ca-pkcs1.pem");
    run(Command::new("openssl").args(["rsa", "-traditional", "-in"]).arg(&pki.ca_key).arg("-out").arg(&pkcs1));
    assert!(std::fs::read_to_string(&pkcs1).unwrap().contains("BEGIN RSA PRIVATE KEY"));

    for (ca_key, key_type) in [(&pki.ca_key, "ecdsa-p256"), (&pkcs1, "rsa2048")] {
        let out = dir.path().join(format!("out-{key_type}"));
        let args = [
            "certs",
            "issue",
            "--ca-cert",
            s(&pki.ca_cert),
            "--ca-key",
            s(ca_key),
            "--fqdn",
            "localhost",
            "--san",
            "127.0.0.1",
            "--engine-cert",
            s(&pki.engine_cert),
            "--out",
            s(&out),
            "--key-type",
            key_type,
        ];
        let o = ctl(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let cert = out.join("websocket-proxy.cer");
        assert_eq!(openssl_verify(&out.join("ca.pem"), &cert).trim(), format!("{}: OK", cert.display()));
        let text = openssl_text(&cert);
        assert!(text.contains("Subject: CN = localhost"), "{text}");
        assert!(text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"), "{text}");
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
        assert!(text.contains("CA:FALSE"), "{text}");
        let key = out.join("websocket-proxy.key.nopass");
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&key).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
        assert_eq!(std::fs::read(out.join("engine.cer")).unwrap(), std::fs::read(&pki.engine_cert).unwrap());
        // Validity at most 398 days.
        let end =
            Command::new("openssl").args(["x509", "-noout", "-checkend", &(399 * 86400).to_string(), "-in"]).arg(&cert).output().unwrap();
        assert!(String::from_utf8_lossy(&end.stdout).contains("will expire"), "must expire within 399 days");
        let end =
            Command::new("openssl").args(["x509", "-noout", "-checkend", &(397 * 86400).to_string(), "-in"]).arg(&cert).output().unwrap();
        assert!(end.status.success(), "default validity is 398 days");
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
}

#[test]
fn refusals_name_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let out = dir.path().join("out");

    // A CA key that is not the CA's.
    let o = ctl(&["certs", "issue", "--ca-cert", s(&pki.ca_cert), "--ca-key", s(&pki.engine_key), "--fqdn", "localhost", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not match the CA certificate"), "{}", stderr(&o));

    // A certificate that is not a CA.
    let o =
        ctl(&["certs", "issue", "--ca-cert", s(&pki.engine_cert), "--ca-key", s(&pki.engine_key), "--fqdn", "localhost", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a CA certificate"), "{}", stderr(&o));

    // Not a DNS name.
    for bad in ["not a name", "10.1.2.3", "*.example.com"] {
        let o = ctl(&["certs", "issue", "--ca-cert", s(&pki.ca_cert), "--ca-key", s(&pki.ca_key), "--fqdn", bad, "--out", s(&out)]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(stderr(&o).contains("--fqdn"), "{}", stderr(&o));
    }
    // Too long a validity.
    let o = issue(&pki, &out, &["--days", "400"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("398"), "{}", stderr(&o));
    assert!(!out.exists(), "nothing written on refusal");

    // An existing key is kept unless --force.
    assert!(issue(&pki, &out, &[]).status.success());
    let key_before = std::fs::read(out.join("websocket-proxy.key.nopass")).unwrap();
    let o = issue(&pki, &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("websocket-proxy.key.nopass")).unwrap(), key_before);
    assert!(issue(&pki, &out, &["--force"]).status.success());
    assert_ne!(std::fs::read(out.join("websocket-proxy.key.nopass")).unwrap(), key_before);

    // Missing input files.
    let o =
        ctl(&["certs", "issue", "--ca-cert", "/nonexistent/ca.pem", "--ca-key", s(&pki.ca_key), "--fqdn", "localhost", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/ca.pem"), "{}", stderr(&o));
}

#[test]
fn expired_ca_is_refused() {
    // openssl 3.0 (Debian 12) cannot back-date a certificate without `openssl ca` plumbing, so
    // this one CA is made with rcgen: only its dates matter here.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old-ca".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("ca.key"), key.serialize_pem()).unwrap();
    let o = ctl(&[
        "certs",
        "issue",
        "--ca-cert",
        s(&dir.path().join("ca.pem")),
        "--ca-key",
        s(&dir.path().join("ca.key")),
        "--fqdn",
        "localhost",
        "--out",
        s(&dir.path().join("out")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn issued_pair_serves_tls_in_wsproxy_to_a_client_trusting_only_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let out = dir.path().join("issued");
    let o = issue(&pki, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let relay = common::InProcessRelay::start_tls(&out).await;
    let port = relay.port;

    let (status, body) = testkit::raw_get(port, "localhost", "/healthz", &out.join("ca.pem")).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // The same client refuses the certificate for a name it does not carry.
    let err = testkit::raw_get(port, "other.example.test", "/healthz", &out.join("ca.pem")).await.unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn csr_round_trip_keeps_the_key_on_the_proxy_host() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let proxy = dir.path().join("proxy-host");
    let o = ctl(&["certs", "request", "--fqdn", "proxy.example.test", "--san", "192.0.2.10", "--out", s(&proxy)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csr = proxy.join("websocket-proxy.req");
    run(Command::new("openssl").args(["req", "-verify", "-noout", "-in"]).arg(&csr));
    let key_mode = std::fs::metadata(proxy.join("websocket-proxy.key.nopass")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);

    let cert = dir.path().join("websocket-proxy.cer");
    let o = ctl(&[
        "certs",
        "sign",
        "--ca-cert",
        s(&pki.ca_cert),
        "--ca-key",
        s(&pki.ca_key),
        "--csr",
        s(&csr),
        "--fqdn",
        "proxy.example.test",
        "--san",
        "192.0.2.10",
        "--out",
        s(&cert),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.contains("CN=proxy.example.test") && printed.contains("192.0.2.10"), "names are printed: {printed}");
    assert!(openssl_verify(&pki.ca_cert, &cert).contains(": OK"));
    let text = openssl_text(&cert);
    assert!(text.contains("DNS:proxy.example.test") && text.contains("IP Address:192.0.2.10"), "{text}");
    // The certificate is for the key made on the proxy host.
    let pub_of = |args: &[&str], file: &Path| run(Command::new("openssl").args(args).arg(file));
    assert_eq!(
        pub_of(&["x509", "-noout", "-pubkey", "-in"], &cert),
        pub_of(&["pkey", "-pubout", "-in"], &proxy.join("websocket-proxy.key.nopass"))
    );

    // A CSR for another name than the operator meant is refused.
    let o = ctl(&[
        "certs",
        "sign",
        "--ca-cert",
        s(&pki.ca_cert),
        "--ca-key",
        s(&pki.ca_key),
        "--csr",
        s(&csr),
        "--fqdn",
        "engine.example.test",
        "--out",
        s(&cert),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("refusing to sign"), "{}", stderr(&o));
    // A CSR that adds a name (the engine's own) to the proxy's: refused, naming it; without
    // --san for the IP it asked for, that is refused too.
    let sneaky = dir.path().join("sneaky");
    let o = ctl(&["certs", "request", "--fqdn", "proxy.example.test", "--san", "engine.example.test", "--out", s(&sneaky)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sign = |csr: &Path, extra: &[&str]| {
        let mut args = vec!["certs", "sign", "--ca-cert", s(&pki.ca_cert), "--ca-key", s(&pki.ca_key), "--csr", s(csr)];
        args.extend_from_slice(&["--fqdn", "proxy.example.test", "--out", s(&cert)]);
        args.extend_from_slice(extra);
        ctl(&args)
    };
    let o = sign(&sneaky.join("websocket-proxy.req"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("\"engine.example.test\"") && stderr(&o).contains("refusing to sign"), "{}", stderr(&o));
    let o = sign(&csr, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("\"192.0.2.10\""), "{}", stderr(&o));
    // The signed names are exactly the ones given, even when the CSR asks for fewer.
    let o = sign(&csr, &["--san", "192.0.2.10", "--san", "proxy2.example.test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = openssl_text(&cert);
    assert!(text.contains("DNS:proxy2.example.test") && !text.contains("engine.example.test"), "{text}");
    // A tampered CSR fails its signature check.
    let pem = std::fs::read_to_string(&csr).unwrap();
    let mut lines: Vec<String> = pem.lines().map(str::to_string).collect();
    let mid = lines.len() / 2;
    lines[mid] = lines[mid].chars().rev().collect();
    let tampered = dir.path().join("tampered.req");
    std::fs::write(&tampered, lines.join("\n")).unwrap();
    let o = ctl(&[
        "certs",
        "sign",
        "--ca-cert",
        s(&pki.ca_cert),
        "--ca-key",
        s(&pki.ca_key),
        "--csr",
        s(&tampered),
        "--fqdn",
        "proxy.example.test",
        "--out",
        s(&cert),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a valid certificate signing request"), "{}", stderr(&o));
}

/// A small https server playing the engine's pki-resource endpoints.
async fn fake_engine(pki: &Pki, web_cert: PathBuf, web_key: PathBuf) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let certified = wsproxy::tls::load_certified_key(&web_cert, &web_key).unwrap();
    let config =
        wsproxy::tls::server_config(Arc::new(wsproxy::reload::Reloadable::new(certified)), wsproxy::config::TlsMinVersion::Tls12).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let ca = std::fs::read(&pki.ca_cert).unwrap();
    let engine = std::fs::read(&pki.engine_cert).unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, ca, engine) = (acceptor.clone(), ca.clone(), engine.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut tls = BufReader::new(tls);
                let Ok((req, _)) = wsproxy::http::read_head(&mut tls).await else {
                    return;
                };
                let body = if req.path.contains("resource=ca-certificate") {
                    ca
                } else if req.path.contains("resource=engine-certificate") {
                    engine
                } else {
                    b"not found".to_vec()
                };
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let mut tls = tls.into_inner();
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_trusts_the_ca_only_through_a_pin() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (web_key, web_cert) = (dir.path().join("web.key"), dir.path().join("web.cer"));
    pki.issue("localhost", "subjectAltName=DNS:localhost", &web_key, &web_cert, "rsa:2048");
    let port = fake_engine(&pki, web_cert, web_key).await;
    let engine = format!("https://localhost:{port}");
    let fp =
        String::from_utf8_lossy(&run(Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(&pki.ca_cert)))
            .trim()
            .split('=')
            .nth(1)
            .unwrap()
            .to_string();
    let ctl_async = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_wsproxyctl")).args(&args).output().unwrap())
    };
    let out = dir.path().join("fetched");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["certs", "fetch", "--engine", &engine, "--out", s(&out)].iter().map(|x| x.to_string()).collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };

    // No pin: the fingerprint is shown, nothing is trusted or written.
    let o = ctl_async(args(&[])).await.unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&fp) && stderr(&o).contains("--ca-fingerprint"), "{}", stderr(&o));
    assert!(!out.exists());

    // Wrong pin: refused.
    let wrong = format!("sha256:{}", "00:".repeat(31) + "00");
    let o = ctl_async(args(&["--ca-fingerprint", &wrong])).await.unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not the pinned"), "{}", stderr(&o));
    assert!(!out.exists());

    // Right pin (as openssl prints it): both files written and identical to the engine's.
    let o = ctl_async(args(&["--ca-fingerprint", &format!("sha256:{fp}")])).await.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), std::fs::read(&pki.ca_cert).unwrap());
    assert_eq!(std::fs::read(out.join("engine.cer")).unwrap(), std::fs::read(&pki.engine_cert).unwrap());

    // A CA file works as the trust anchor too; a different CA file does not.
    let o = ctl_async(args(&["--ca-cert", s(&pki.ca_cert)])).await.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, foreign_cert) = pki.foreign_engine();
    let o = ctl_async(args(&["--ca-cert", s(&foreign_cert)])).await.unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("TLS"), "{}", stderr(&o));
}

#[test]
fn inspect_reports_and_fails_on_problems() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let out = dir.path().join("out");
    assert!(issue(&pki, &out, &[]).status.success());
    let o = ctl(&["certs", "inspect", s(&out)]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("localhost") && text.contains("days left") && text.contains("chain to CA"), "{text}");

    let o = ctl(&["certs", "inspect", "--json", s(&out)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);

    // Group-readable key.
    std::fs::set_permissions(out.join("websocket-proxy.key.nopass"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = ctl(&["certs", "inspect", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("chmod 600"));

    // Expires within 30 days.
    let short = dir.path().join("short");
    assert!(issue(&pki, &short, &["--days", "10"]).status.success());
    let o = ctl(&["certs", "inspect", s(&short)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("expires in"), "{}", String::from_utf8_lossy(&o.stdout));

    // Certificate from another CA.
    let (_, foreign) = pki.foreign_engine();
    std::fs::copy(&foreign, short.join("ca.pem")).unwrap();
    let o = ctl(&["certs", "inspect", s(&short)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("is not signed by"));
}

#[test]
fn packaging_never_includes_the_ca_key() {
    use wsproxyctl::pki::bundle::Bundle;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let out = dir.path().join("out");
    assert!(issue(&pki, &out, &[]).status.success());
    // Even with the CA key lying in the same directory...
    std::fs::copy(&pki.ca_key, out.join("ca.key")).unwrap();
    let bundle = Bundle::load(&out).unwrap();
    let data = bundle.secret_data();
    assert_eq!(data.keys().cloned().collect::<Vec<_>>(), ["ca.crt", "engine.cer", "tls.crt", "tls.key"]);
    let ca_key = std::fs::read(&pki.ca_key).unwrap();
    for (name, value) in data.iter() {
        assert_ne!(value, &ca_key, "{name} must not be the CA key");
    }
    let secrets = bundle.podman_secrets("wsproxy");
    assert_eq!(secrets.len(), 4);
    assert!(secrets.iter().all(|(_, v)| *v != ca_key));
    // ...and a directory whose proxy key *is* the CA key is refused outright.
    std::fs::copy(&pki.ca_key, out.join("websocket-proxy.key.nopass")).unwrap();
    let err = Bundle::load(&out).unwrap_err();
    assert!(err.message.contains("CA's private key"), "{}", err.message);
}

/// A CA certificate exported together with its key (one PEM file holding both) is refused,
/// and nothing is written: the engine CA key never reaches ca.pem, a Secret or a podman secret.
/// What is written is re-encoded from the certificate's DER.
#[test]
fn a_certificate_input_holding_a_private_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let combined = dir.path().join("ca-with-key.pem");
    let mut both = std::fs::read(&pki.ca_cert).unwrap();
    both.extend(std::fs::read(&pki.ca_key).unwrap());
    std::fs::write(&combined, &both).unwrap();
    let out = dir.path().join("out");
    let o = ctl(&[
        "certs",
        "issue",
        "--ca-cert",
        s(&combined),
        "--ca-key",
        s(&pki.ca_key),
        "--fqdn",
        "localhost",
        "--engine-cert",
        s(&pki.engine_cert),
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("PRIVATE KEY"), "{}", stderr(&o));
    assert!(!out.join("ca.pem").exists(), "nothing may be written");
    // The same for --engine-cert.
    let engine_with_key = dir.path().join("engine-with-key.pem");
    let mut both = std::fs::read(&pki.engine_cert).unwrap();
    both.extend(std::fs::read(&pki.engine_key).unwrap());
    std::fs::write(&engine_with_key, &both).unwrap();
    let o = issue(&pki, &out, &["--engine-cert", s(&engine_with_key)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A good issue writes certificates alone.
    let o = issue(&pki, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["ca.pem", "engine.cer", "websocket-proxy.cer"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----") && !text.contains("PRIVATE KEY"), "{f}: {text}");
    }
    // A bundle directory whose ca.pem was replaced by cert+key is refused by render.
    std::fs::write(out.join("ca.pem"), std::fs::read(&combined).unwrap()).unwrap();
    let o = ctl(&["render", "--target", "podman", "--proxy-fqdn", "localhost", "--certs", s(&out), "--out", s(&dir.path().join("r"))]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("PRIVATE KEY"), "{}", stderr(&o));
}

/// A TLS server that answers every request with `answer`, and records the request head.
async fn raw_https(pki: &Pki, web_cert: &Path, web_key: &Path, answer: Vec<u8>) -> (u16, Arc<std::sync::Mutex<String>>) {
    let _ = pki;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let certified = wsproxy::tls::load_certified_key(web_cert, web_key).unwrap();
    let config =
        wsproxy::tls::server_config(Arc::new(wsproxy::reload::Reloadable::new(certified)), wsproxy::config::TlsMinVersion::Tls12).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(tls) = acceptor.clone().accept(tcp).await else {
                continue;
            };
            let mut tls = tls;
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && tokio::io::AsyncReadExt::read(&mut tls, &mut b).await.unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            *seen2.lock().unwrap() = String::from_utf8_lossy(&head).into_owned();
            let _ = tls.write_all(&answer).await;
            let _ = tls.shutdown().await;
        }
    });
    (port, seen)
}

/// certs fetch's HTTPS client (hyper over rustls): Content-Length is honoured, the Host
/// header carries the port, and hostile answers are errors, never panics (a chunk size of
/// ffffffffffffffff once overflowed) or unbounded reads.
#[tokio::test(flavor = "multi_thread")]
async fn the_https_client_survives_hostile_answers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (web_key, web_cert) = (dir.path().join("web.key"), dir.path().join("web.cer"));
    pki.issue("localhost", "subjectAltName=DNS:localhost", &web_key, &web_cert, "rsa:2048");
    let mut roots = rustls::RootCertStore::empty();
    let der = wsproxyctl::pki::pem_cert_der(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    roots.add(der.into()).unwrap();
    let tls = wsproxy::tls::client_config_trusting(roots).unwrap();
    let get = |answer: &[u8]| {
        let (answer, tls, pki, web_cert, web_key) = (answer.to_vec(), tls.clone(), &pki, web_cert.clone(), web_key.clone());
        async move {
            let (port, seen) = raw_https(pki, &web_cert, &web_key, answer).await;
            let got = wsproxyctl::https_get::get("localhost", port, "/pki?x=1", tls).await;
            let seen = seen.lock().unwrap().clone();
            (got, seen, port)
        }
    };
    let (got, seen, port) = get(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiTRAILING JUNK").await;
    assert_eq!(got.unwrap(), (200, b"hi".to_vec()));
    assert!(seen.to_ascii_lowercase().contains(&format!("host: localhost:{port}\r\n")), "Host with port: {seen}");
    let (got, ..) = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").await;
    assert_eq!(got.unwrap(), (200, b"abcde".to_vec()));
    for hostile in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
        b"garbage",
        b"HTTP/1.1 99999 OK\r\n\r\n",
    ] {
        let (got, ..) = get(hostile).await;
        assert!(got.is_err(), "{:?} -> {got:?}", String::from_utf8_lossy(hostile));
    }
    // A body larger than the bound is refused, not read to the end.
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n".to_vec();
    big.resize(big.len() + 4194304, b'a');
    let (got, ..) = get(&big).await;
    assert!(got.unwrap_err().contains("at most"), "bounded");
}
