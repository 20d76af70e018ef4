//! The relay binary end to end, as an oVirt admin would run it: an engine-setup-style conf.d,
//! certificates and an engine key made by openssl, tickets signed by openssl, real Xvnc
//! servers, and a websocket client over wss that trusts only the CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::SinkExt;
use testkit::Signal;
use testkit::{
    close_of, connect_ws, free_port, raw_upgrade, rfb_handshake, sign_ticket, Pki, Proc, TicketSpec, VncSecurity, WsOutcome, Xvnc,
};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "s3cret!";

/// Write a conf.d the way engine-setup does (10-setup.conf), plus test-specific extras.
fn conf_d(dir: &Path, pki: &Pki, port: u16, extra: &str) -> std::path::PathBuf {
    let confd = dir.join("ovirt-websocket-proxy.conf.d");
    std::fs::create_dir_all(&confd).unwrap();
    std::fs::write(
        confd.join("10-setup.conf"),
        format!(
            "PROXY_PORT={port}\nSSL_CERTIFICATE=\"{}\"\nSSL_KEY=\"{}\"\nCERT_FOR_DATA_VERIFICATION=\"{}\"\nSSL_ONLY=True\n\
             PACKAGE_NAME=\"ovirt-engine\"\nENGINE_USR=\"/usr/share/ovirt-engine\"\n",
            pki.proxy_cert.display(),
            pki.proxy_key.display(),
            pki.engine_cert.display()
        ),
    )
    .unwrap();
    std::fs::write(confd.join("20-test.conf"), format!("PROXY_HOST=127.0.0.1\n{extra}")).unwrap();
    confd
}

fn start_relay(dir: &Path, confd: &Path, port: u16) -> Proc {
    Proc::spawn(Command::new(env!("CARGO_BIN_EXE_wsproxy")).arg("--config").arg(confd), dir.join("wsproxy.log"), port)
}

/// A relay with the engine-setup conf.d plus `extra`: its directory, PKI, process and port.
fn relay_with(extra: &str) -> (tempfile::TempDir, Pki, Proc, u16) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, extra);
    let relay = start_relay(dir.path(), &confd, port);
    (dir, pki, relay, port)
}

fn url(port: u16, ticket: &str) -> String {
    format!("wss://localhost:{port}/{ticket}")
}

#[tokio::test(flavor = "multi_thread")]
async fn rfb_handshake_through_wss_to_xvnc_and_bad_tickets_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vnc = Xvnc::start(PASSWORD, VncSecurity::VncAuth);
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, "");
    let relay = start_relay(dir.path(), &confd, port);

    // A good ticket reaches the VNC server and the RFB handshake completes.
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else {
        panic!("good ticket refused; log:\n{}", relay.log_text())
    };
    let init = rfb_handshake(&mut ws, PASSWORD).await.expect("RFB handshake through the relay");
    assert_eq!((init.width, init.height), (320, 200));
    ws.send(Message::Close(None)).await.ok();

    // Percent-encoded form of the same kind of ticket works too (noVNC may encode the path).
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    let encoded = ticket.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    assert!(matches!(connect_ws(&url(port, &encoded), Some(&pki.ca_cert)).await, WsOutcome::Open(_)));

    // Refusals, each a 403 before any upgrade.
    let (foreign_key, _) = pki.foreign_engine();
    let cases = [
        (
            "expired",
            sign_ticket(&pki.engine_key, &TicketSpec { valid_from: -120, valid_to: -60, ..TicketSpec::new("127.0.0.1", vnc.port) }),
            "expired",
        ),
        (
            "not yet valid",
            sign_ticket(&pki.engine_key, &TicketSpec { valid_from: 60, valid_to: 120, ..TicketSpec::new("127.0.0.1", vnc.port) }),
            "not yet valid",
        ),
        ("foreign key", sign_ticket(&foreign_key, &TicketSpec::new("127.0.0.1", vnc.port)), "signature"),
        (
            "digest-length salt",
            sign_ticket(&pki.engine_key, &TicketSpec { salt_len: "digest", ..TicketSpec::new("127.0.0.1", vnc.port) }),
            "signature",
        ),
        ("garbage", "bm90IGEgdGlja2V0".to_string(), "malformed"),
    ];
    for (what, ticket, expect) in cases {
        let (status, body) = raw_upgrade(port, &format!("/{ticket}"), &pki.ca_cert).await;
        assert_eq!(status, 403, "{what}: {body}");
        assert!(body.contains(expect), "{what}: {body}");
    }
    // Reusing a ticket is refused.
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    assert!(matches!(connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await, WsOutcome::Open(_)));
    assert!(matches!(connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await, WsOutcome::Refused(403, _)));

    // A valid ticket to a closed port: upgrade succeeds, then 1011 with a reason.
    let closed = free_port();
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", closed));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    let (code, reason) = close_of(&mut ws).await.expect("close frame");
    assert_eq!(code, 1011);
    assert!(reason.contains("unreachable"), "{reason}");

    let log = relay.log_text();
    assert!(log.contains("console refused") && log.contains("reason=expired"), "{log}");
    assert!(!log.contains(&ticket), "the log must never contain a ticket");
    assert!(log.contains("session closed"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vencrypt_x509vnc_target_looks_like_plain_vnc_auth_to_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let hv_cert = dir.path().join("hv.cer");
    let hv_key = dir.path().join("hv.key");
    pki.issue("hv.test", "subjectAltName=DNS:hv.test,IP:127.0.0.1", &hv_key, &hv_cert, "rsa:2048");
    let vnc = Xvnc::start(PASSWORD, VncSecurity::X509Vnc { cert: &hv_cert, key: &hv_key });
    let port = free_port();
    // The hypervisor certificate must chain to the engine CA when WSPROXY_TARGET_CA is set.
    let confd = conf_d(dir.path(), &pki, port, &format!("WSPROXY_TARGET_CA={}\n", pki.ca_cert.display()));
    let relay = start_relay(dir.path(), &confd, port);

    let ticket = sign_ticket(&pki.engine_key, &TicketSpec { ssl_target: true, ..TicketSpec::new("127.0.0.1", vnc.port) });
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else {
        panic!("refused; log:\n{}", relay.log_text())
    };
    let init = rfb_handshake(&mut ws, PASSWORD).await.unwrap_or_else(|e| panic!("{e}; log:\n{}", relay.log_text()));
    assert_eq!((init.width, init.height), (320, 200));

    // Without ssl_target the browser would see VeNCrypt (type 19) and noVNC could not use it.
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    let err = rfb_handshake(&mut ws, PASSWORD).await.unwrap_err();
    assert!(err.contains("not offered"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_over_tls_and_plain_refused_when_ssl_only() {
    let (_dir, pki, _relay, port) = relay_with("");

    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&pki.ca_cert)
        .arg(format!("https://localhost:{port}/healthz"))
        .output()
        .expect("curl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    // SSL_ONLY=True: a plain HTTP request gets no HTTP answer.
    let out = Command::new("curl").args(["-sS", "-m", "5"]).arg(format!("http://localhost:{port}/healthz")).output().unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_open_sessions_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vnc = Xvnc::start(PASSWORD, VncSecurity::VncAuth);
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, "WSPROXY_SHUTDOWN_GRACE=20\n");
    let mut relay = start_relay(dir.path(), &confd, port);

    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    relay.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The open session keeps working during the grace period...
    rfb_handshake(&mut ws, PASSWORD).await.expect("session survives SIGTERM during the grace period");
    assert!(relay.child.try_wait().unwrap().is_none(), "relay must wait for the open session");
    // ...new connections are not accepted...
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(refused.is_err(), "listener must be closed after SIGTERM");
    // ...and once the session ends the relay exits 0.
    ws.send(Message::Close(None)).await.ok();
    drop(ws);
    let status = relay
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("relay did not exit after the last session; log:\n{}", relay.log_text()));
    assert!(status.success(), "{status}: {}", relay.log_text());
}

/// The HTTP status and body curl gets for `path` over TLS.
fn curl_status(pki: &Pki, port: u16, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "5", "-w", "\n%{http_code}", "--cacert"])
        .arg(&pki.ca_cert)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

/// `wsproxy healthcheck URL` (what a container health check runs: the image has no curl).
fn healthcheck(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wsproxy")).arg("healthcheck").args(args).output().unwrap()
}

/// The relay checks a relay: verified against the CA (and refused against another), or
/// `--insecure`; /readyz turns the check red from SIGTERM on, /healthz stays green.
#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_subcommand_reads_healthz_and_readyz() {
    let (_dir, pki, relay, port) = relay_with("WSPROXY_DRAIN_NOTICE=5\n");
    let ca = pki.ca_cert.to_str().unwrap();
    let text = |o: &std::process::Output| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));

    let o = healthcheck(&["--ca", ca, &format!("https://localhost:{port}/healthz")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("200 OK"), "{}", text(&o));
    let o = healthcheck(&["--insecure", &format!("https://127.0.0.1:{port}/readyz")]);
    assert!(o.status.success(), "{}", text(&o));
    // Verified, the certificate must chain to the CA given: not to another certificate.
    let o = healthcheck(&["--ca", pki.engine_cert.to_str().unwrap(), &format!("https://localhost:{port}/healthz")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("TLS handshake"), "{}", text(&o));
    // No trust choice for HTTPS: refused, saying how to choose.
    let o = healthcheck(&[&format!("https://localhost:{port}/healthz")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--ca FILE"), "{}", text(&o));

    relay.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let o = healthcheck(&["--ca", ca, &format!("https://localhost:{port}/readyz")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("503"), "{}", text(&o));
    let o = healthcheck(&["--ca", ca, &format!("https://localhost:{port}/healthz")]);
    assert!(o.status.success(), "liveness stays green while draining: {}", text(&o));
}

/// WSPROXY_DRAIN_NOTICE: after SIGTERM the relay says it is not ready (/readyz 503) while it
/// still accepts and serves new consoles (a load balancer or Kubernetes is moving them away
/// meanwhile), liveness stays 200; when the notice ends it stops accepting and drains.
#[tokio::test(flavor = "multi_thread")]
async fn drain_notice_keeps_accepting_while_readyz_answers_503() {
    let (_dir, pki, mut relay, port) = relay_with("WSPROXY_DRAIN_NOTICE=3\nWSPROXY_SHUTDOWN_GRACE=20\n");
    let vnc = Xvnc::start(PASSWORD, VncSecurity::VncAuth);
    assert_eq!(curl_status(&pki, port, "/readyz"), ("200".into(), "ready\n".into()));

    relay.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, body) = curl_status(&pki, port, "/readyz");
    assert_eq!(code, "503", "{body}");
    assert_eq!(curl_status(&pki, port, "/healthz").0, "200", "liveness stays 200 while draining");
    // A console that arrives during the notice is served, and outlives it.
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else {
        panic!("a console arriving during the notice must be served; log:\n{}", relay.log_text())
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the listener closes when the notice ends");
    rfb_handshake(&mut ws, PASSWORD).await.expect("the session admitted during the notice is drained, not cut");
    ws.send(Message::Close(None)).await.ok();
    drop(ws);
    let status = relay.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("relay did not exit; log:\n{}", relay.log_text()));
    assert!(status.success(), "{status}: {}", relay.log_text());
}

/// When WSPROXY_SHUTDOWN_GRACE runs out, sessions still open (the client does not close)
/// are closed with 1001 "going away", and the relay exits.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_open_after_the_grace_period_are_closed_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vm = testkit::silent_target().await;
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, "WSPROXY_SHUTDOWN_GRACE=1\n");
    let mut relay = start_relay(dir.path(), &confd, port);
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    relay.signal(Signal::SIGTERM);
    let (code, reason) = testkit::close_of(&mut ws).await.expect("a close frame when the grace period ends");
    assert_eq!(code, 1001, "{reason}");
    let status = relay.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("relay did not exit; log:\n{}", relay.log_text()));
    assert!(status.success(), "{status}: {}", relay.log_text());
}

/// CERT_FOR_DATA_VERIFICATION is reloaded like the TLS files: once the engine certificate
/// file is replaced, tickets of the new engine key are accepted and the old key's refused,
/// and a session opened with the old key stays open.
#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_engine_certificate_verifies_tickets_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vm = testkit::silent_target().await;
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, "WSPROXY_CERT_RELOAD_INTERVAL=1\n");
    let _relay = start_relay(dir.path(), &confd, port);
    let old_key = dir.path().join("old-engine.key");
    std::fs::copy(&pki.engine_key, &old_key).unwrap();
    let ticket = |key: &Path| sign_ticket(key, &TicketSpec::new("127.0.0.1", vm));
    let WsOutcome::Open(mut open) = connect_ws(&url(port, &ticket(&old_key)), Some(&pki.ca_cert)).await else { panic!() };
    // A new engine key and certificate, moved over the configured file in one rename.
    let (new_key, new_cert) = (dir.path().join("engine2.key"), dir.path().join("engine2.cer"));
    pki.issue("engine2.example.test", "subjectAltName=DNS:engine2.example.test", &new_key, &new_cert, "rsa:2048");
    std::fs::rename(&new_cert, &pki.engine_cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match connect_ws(&url(port, &ticket(&new_key)), Some(&pki.ca_cert)).await {
            WsOutcome::Open(_) => break,
            WsOutcome::Refused(..) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(300)).await,
            WsOutcome::Refused(status, body) => panic!("the new engine key's ticket is still refused: {status} {body}"),
        }
    }
    let WsOutcome::Refused(status, _) = connect_ws(&url(port, &ticket(&old_key)), Some(&pki.ca_cert)).await else {
        panic!("a ticket of the replaced engine key was accepted")
    };
    assert_eq!(status, 403);
    open.send(Message::Ping(b"still here".to_vec().into())).await.expect("the old session is open");
    let pong = tokio::time::timeout(Duration::from_secs(5), futures_util::StreamExt::next(&mut open)).await.expect("an answer");
    assert!(matches!(pong, Some(Ok(Message::Pong(_)))), "{pong:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_files_are_reloaded_without_dropping_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vnc = Xvnc::start(PASSWORD, VncSecurity::VncAuth);
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, "WSPROXY_CERT_RELOAD_INTERVAL=1\n");
    let relay = start_relay(dir.path(), &confd, port);
    let serial = || served_serial(port);
    let before = serial();
    assert!(before.starts_with("serial="), "{before}");

    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };

    // Rotate: new key and certificate written over the old paths (as an operator would).
    let (new_key, new_cert) = (dir.path().join("new.key"), dir.path().join("new.cer"));
    pki.issue("localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1", &new_key, &new_cert, "rsa:2048");
    std::fs::rename(&new_key, &pki.proxy_key).unwrap();
    std::fs::rename(&new_cert, &pki.proxy_cert).unwrap();
    let mut after = before.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = serial();
        if after != before {
            break;
        }
    }
    assert_ne!(after, before, "new certificate not served; log:\n{}", relay.log_text());
    // The session opened before the rotation still works.
    rfb_handshake(&mut ws, PASSWORD).await.expect("session survives certificate rotation");

    // Garbage over the certificate: the last good one is kept, and the log says so.
    std::fs::write(&pki.proxy_cert, "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(serial(), after, "last good certificate must be kept");
    assert!(relay.log_text().contains("keeping the last good version"), "{}", relay.log_text());
}

/// The serial number of the certificate the relay on `port` serves (`serial=...`).
fn served_serial(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The nice values of a process's bulk lane threads (named `wsproxy-bulk`), from /proc.
fn bulk_lane_threads(pid: u32) -> Vec<i64> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        if head.ends_with("(wsproxy-bulk") {
            // Fields after the name start at the state (field 3); nice is field 19.
            nices.push(rest.split_whitespace().nth(16).and_then(|n| n.parse().ok()).unwrap_or(i64::MIN));
        }
    }
    nices
}

/// WSPROXY_BULK_LANE=False: no lane is built, so no session can move to one.
#[test]
fn the_bulk_lane_can_be_switched_off() {
    let (_dir, _pki, relay, _port) = relay_with("WSPROXY_BULK_LANE=False\n");
    assert_eq!(bulk_lane_threads(relay.child.id()), Vec::<i64>::new(), "no bulk lane thread: {}", relay.log_text());
}

/// A Secret volume as the kubelet writes it (its AtomicWriter): the files in a timestamped
/// directory, `..data` a symlink to it, each key a symlink through `..data`; an update writes
/// a new directory and renames a new `..data` link over the old one, then removes the old
/// directory. cert-manager renewals reach the relay this way.
struct SecretVolume {
    dir: std::path::PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(dir: &Path, files: &[(&str, &Path)]) -> SecretVolume {
        std::fs::create_dir_all(dir).unwrap();
        let mut volume = SecretVolume { dir: dir.to_path_buf(), version: 0 };
        volume.update(files);
        for (key, _) in files {
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).unwrap();
        }
        volume
    }

    fn update(&mut self, files: &[(&str, &Path)]) {
        self.version += 1;
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let name = format!("..2026_12_06_17_00_0{}.123456789", self.version);
        std::fs::create_dir(self.dir.join(&name)).unwrap();
        for (key, from) in files {
            std::fs::copy(from, self.dir.join(&name).join(key)).unwrap();
        }
        std::os::unix::fs::symlink(&name, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewal_in_a_kubelet_secret_volume_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let secret = dir.path().join("certs");
    let mut volume = SecretVolume::new(&secret, &[("tls.crt", &pki.proxy_cert), ("tls.key", &pki.proxy_key)]);
    let port = free_port();
    let extra = format!(
        "WSPROXY_CERT_RELOAD_INTERVAL=1\nSSL_CERTIFICATE={}\nSSL_KEY={}\n",
        secret.join("tls.crt").display(),
        secret.join("tls.key").display()
    );
    let relay = start_relay(dir.path(), &conf_d(dir.path(), &pki, port, &extra), port);
    let before = served_serial(port);
    assert!(before.starts_with("serial="), "{before}");

    let (new_key, new_cert) = (dir.path().join("renewed.key"), dir.path().join("renewed.cer"));
    pki.issue("localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1", &new_key, &new_cert, "rsa:2048");
    volume.update(&[("tls.crt", &new_cert), ("tls.key", &new_key)]);
    let mut after = before.clone();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = served_serial(port);
        if after != before {
            break;
        }
    }
    assert_ne!(after, before, "the renewed certificate is not served; log:\n{}", relay.log_text());
    assert!(after.starts_with("serial="), "{after}");
}

#[test]
fn refuses_to_start_with_ssl_only_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("10-setup.conf");
    std::fs::write(&conf, "SSL_ONLY=True\nSSL_CERTIFICATE=/nonexistent/websocket-proxy.cer\nSSL_KEY=/nonexistent/key\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy")).arg("--config").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/websocket-proxy.cer") && err.contains("wsproxyctl certs issue"), "{err}");

    std::fs::write(&conf, "PROXY_PORT=0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wsproxy")).arg("--config").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CERT_FOR_DATA_VERIFICATION is not set"));
}

/// A KubeVirt-style VNC websocket endpoint: TLS with a certificate from the test CA, checks the
/// bearer-token subprotocol, greets with an RFB banner and echoes binary messages.
#[allow(clippy::result_large_err)] // tungstenite's accept callback returns its ErrorResponse
async fn fake_kubevirt(pki: &Pki, dir: &Path) -> (u16, tokio::sync::mpsc::UnboundedReceiver<(String, String)>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let (key, cert) = (dir.join("kv.key"), dir.join("kv.cer"));
    pki.issue("virt-api.test", "subjectAltName=IP:127.0.0.1", &key, &cert, "rsa:2048");
    let certified = wsproxy::tls::load_certified_key(&cert, &key).unwrap();
    let config = wsproxy::tls::server_config(
        std::sync::Arc::new(wsproxy::reload::Reloadable::new(certified)),
        wsproxy::config::TlsMinVersion::Tls12,
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new((String::new(), String::new())));
        let s2 = seen.clone();
        let mut ws = tokio_tungstenite::accept_hdr_async(tls, move |req: &Request, mut resp: Response| {
            let protocols = req.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            *s2.lock().unwrap() = (req.uri().path().to_string(), protocols);
            resp.headers_mut().insert("sec-websocket-protocol", "plain.kubevirt.io".parse().unwrap());
            Ok(resp)
        })
        .await
        .unwrap();
        tx.send(seen.lock().unwrap().clone()).unwrap();
        ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into())).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Binary(b) = msg {
                ws.send(Message::Binary(b)).await.unwrap();
            }
        }
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubevirt_target_gets_the_token_as_subprotocol_and_relays_messages() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (kv_port, mut seen) = fake_kubevirt(&pki, dir.path()).await;
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, &format!("WSPROXY_TARGET_CA={}\n", pki.ca_cert.display()));
    let relay = start_relay(dir.path(), &confd, port);
    let path = "/apis/subresources.kubevirt.io/v1/namespaces/vms/virtualmachineinstances/vm1/vnc";
    let ticket =
        sign_ticket(&pki.engine_key, &TicketSpec { kubevirt: Some((path, "s3cr3t-token")), ..TicketSpec::new("127.0.0.1", kv_port) });
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    let (got_path, protocols) = seen.recv().await.unwrap();
    assert_eq!(got_path, path);
    // base64url("s3cr3t-token"), unpadded.
    assert!(protocols.contains("base64url.bearer.authorization.k8s.io.czNjcjN0LXRva2Vu"), "{protocols}");
    assert!(protocols.contains("plain.kubevirt.io"), "{protocols}");
    let mut buf = Vec::new();
    assert_eq!(testkit::read_exact(&mut ws, &mut buf, 12).await.unwrap(), b"RFB 003.008\n");
    ws.send(Message::Binary(b"ping-through".to_vec().into())).await.unwrap();
    assert_eq!(testkit::read_exact(&mut ws, &mut buf, 12).await.unwrap(), b"ping-through");
    let _ = ws.send(Message::Close(None)).await;
    assert!(!relay.log_text().contains("s3cr3t-token"), "the token must not be logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_sessions_bytes_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vnc = Xvnc::start(PASSWORD, VncSecurity::VncAuth);
    let port = free_port();
    let metrics_port = free_port();
    let confd = conf_d(dir.path(), &pki, port, &format!("WSPROXY_METRICS_LISTEN=127.0.0.1:{metrics_port}\n"));
    let _relay = start_relay(dir.path(), &confd, port);
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc.port));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    rfb_handshake(&mut ws, PASSWORD).await.unwrap();
    let expired = sign_ticket(&pki.engine_key, &TicketSpec { valid_from: -120, valid_to: -60, ..TicketSpec::new("127.0.0.1", vnc.port) });
    let _ = raw_upgrade(port, &format!("/{expired}"), &pki.ca_cert).await;
    let out = Command::new("curl").args(["-sS"]).arg(format!("http://127.0.0.1:{metrics_port}/metrics")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value =
        |line: &str| -> f64 { text.lines().find(|l| l.starts_with(line)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(-1.0) };
    assert_eq!(value("wsproxy_sessions_active "), 1.0, "{text}");
    assert_eq!(value("wsproxy_sessions_total "), 1.0, "{text}");
    assert!(value("wsproxy_bytes_total{direction=\"to_browser\"}") > 20.0, "{text}");
    assert!(value("wsproxy_bytes_total{direction=\"to_target\"}") > 20.0, "{text}");
    assert_eq!(value("wsproxy_ticket_rejections_total{reason=\"expired\"}"), 1.0, "{text}");
    assert_eq!(value("wsproxy_target_connect_seconds_count"), 1.0, "{text}");
}

/// A burst of small messages (what noVNC sends while the mouse moves, often read by the relay
/// in one go) reaches the VM complete and in order.
#[tokio::test(flavor = "multi_thread")]
async fn bursts_of_small_messages_arrive_complete_and_in_order() {
    use tokio::io::AsyncReadExt;
    let (_dir, pki, _relay, port) = relay_with("");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().port();
    let expected: Vec<u8> = (0..500u32).flat_map(|i| [6u8, 0, (i >> 8) as u8, i as u8, 1, 2]).collect();
    let want = expected.len();
    let collector = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; want];
        s.read_exact(&mut got).await.map(|_| got)
    });
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", target));
    let WsOutcome::Open(mut ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    for event in expected.chunks(6) {
        ws.feed(Message::Binary(event.to_vec().into())).await.unwrap();
    }
    ws.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), collector).await.expect("all bytes within 10 s").unwrap().unwrap();
    assert!(got == expected, "bytes reordered or lost");
}

/// The `base64` subprotocol (old clients): text messages of base64 both ways, decoded before
/// the VM and encoded for the browser, in order with each other.
#[tokio::test(flavor = "multi_thread")]
async fn base64_sessions_are_decoded_and_encoded() {
    use base64::Engine as _;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (_dir, pki, _relay, port) = relay_with("");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().port();
    let vm = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"RFB 003.008\n").await.unwrap();
        let mut got = vec![0u8; 9];
        s.read_exact(&mut got).await.unwrap();
        got
    });
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", target));
    let mut request = url(port, &ticket).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "base64".parse().unwrap());
    let connector = tokio_tungstenite::Connector::Rustls(testkit::client_tls(&pki.ca_cert));
    let (mut ws, resp) = tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector)).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "base64");
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first, Message::Text(b64.encode(b"RFB 003.008\n").into()), "target bytes arrive as base64 text");
    for part in [&b"abc"[..], b"defg", b"hi"] {
        ws.send(Message::Text(b64.encode(part).into())).await.unwrap();
    }
    let got = tokio::time::timeout(Duration::from_secs(10), vm).await.unwrap().unwrap();
    assert_eq!(got, b"abcdefghi");
}

/// Without WSPROXY_TARGET_CA the relay cannot verify a KubeVirt endpoint's certificate, so a
/// KubeVirt ticket is refused (403) before anything is sent: the bearer token never goes to
/// an unverified peer.
#[tokio::test(flavor = "multi_thread")]
async fn kubevirt_tokens_are_never_sent_to_an_unverified_peer() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (kv_port, mut seen) = fake_kubevirt(&pki, dir.path()).await;
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, "");
    let relay = start_relay(dir.path(), &confd, port);
    let path = "/apis/subresources.kubevirt.io/v1/namespaces/vms/virtualmachineinstances/vm1/vnc";
    let ticket =
        sign_ticket(&pki.engine_key, &TicketSpec { kubevirt: Some((path, "s3cr3t-token")), ..TicketSpec::new("127.0.0.1", kv_port) });
    let outcome = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await;
    let WsOutcome::Refused(status, body) = outcome else { panic!("a KubeVirt ticket without WSPROXY_TARGET_CA was accepted") };
    assert_eq!(status, 403, "{body}");
    assert!(tokio::time::timeout(std::time::Duration::from_millis(500), seen.recv()).await.is_err(), "the KubeVirt endpoint was contacted");
    assert!(relay.log_text().contains("WSPROXY_TARGET_CA"), "{}", relay.log_text());
}

/// WSPROXY_REUSE_PORT, the hand-over a podman redeploy does: a second relay listens on the
/// port before the first one stops. While the first drains, consoles keep opening (on either
/// relay, then only on the second) and not one attempt is refused or reset; the first relay's
/// open sessions go on relaying until its grace ends, then get 1001.
#[tokio::test(flavor = "multi_thread")]
async fn a_successor_on_the_same_port_takes_over_without_refusing_a_console() {
    const GRACE_SECS: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vm = testkit::echo_target().await;
    let port = free_port();
    let confd = conf_d(dir.path(), &pki, port, &format!("WSPROXY_REUSE_PORT=True\nWSPROXY_SHUTDOWN_GRACE={GRACE_SECS}\n"));
    let mut old = start_relay(dir.path(), &confd, port);
    let mut open = Vec::new();
    for _ in 0..10 {
        let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
        let WsOutcome::Open(ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!("{}", old.log_text()) };
        open.push(ws);
    }
    let successor =
        Proc::spawn(Command::new(env!("CARGO_BIN_EXE_wsproxy")).arg("--config").arg(&confd), dir.path().join("successor.log"), port);
    let ready = successor.wait_log("wsproxy ready", Duration::from_secs(10));
    assert!(ready.contains("wsproxy ready"), "the successor shares the port: {ready}");

    // Consoles keep arriving, one after another, through the whole hand-over.
    let tickets: Vec<String> = (0..400).map(|_| sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm))).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let arrivals = tokio::spawn({
        let (stop, ca) = (stop.clone(), pki.ca_cert.clone());
        async move {
            let (mut opened, mut failed) = (0, Vec::new());
            for ticket in tickets {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                match testkit::try_connect_ws(&url(port, &ticket), Some(&ca)).await {
                    Ok(WsOutcome::Open(mut ws)) => {
                        opened += 1;
                        ws.send(Message::Close(None)).await.ok();
                    }
                    Ok(WsOutcome::Refused(status, body)) => failed.push(format!("{status} {body}")),
                    Err(e) => failed.push(e),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (opened, failed)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_secs(GRACE_SECS / 2)).await;
    for ws in &mut open {
        ws.send(Message::Binary(b"still here".to_vec().into())).await.unwrap();
        let mut got = Vec::new();
        let echoed = testkit::read_exact(ws, &mut got, 10).await.expect("an open session relays while its relay drains");
        assert_eq!(echoed, b"still here");
    }
    for ws in &mut open {
        let (code, reason) = close_of(ws).await.expect("closed when the grace ends");
        assert_eq!(code, 1001, "{reason}");
    }
    let status = old.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("old relay did not exit; log:\n{}", old.log_text()));
    assert!(status.success(), "{status}: {}", old.log_text());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (opened, failed) = arrivals.await.unwrap();
    println!("hand-over: {opened} consoles opened during it, {} refused or reset", failed.len());
    assert!(failed.is_empty(), "refused or reset during the hand-over: {failed:?}");
    assert!(opened >= 100, "consoles kept arriving through the hand-over: {opened}");
}

/// One byte of a streamed pattern: values 0..=250, so 0xFE and 0xFF can mark a stream's end.
fn stream_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// A console that streams (here: as fast as the relay takes it) moves to the bulk lane, shows
/// in `wsproxy_sessions_bulk_lane`, and comes back once it is quiet; over wss, so the TLS
/// connection's socket moves with it. Not a byte is lost or reordered on the way, either
/// direction.
#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_console_moves_to_the_bulk_lane_and_back_without_losing_a_byte() {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let metrics_port = free_port();
    let (_dir, pki, relay, port) = relay_with(&format!("WSPROXY_METRICS_LISTEN=127.0.0.1:{metrics_port}\nWSPROXY_BULK_LANE_NICE=7\n"));
    // The lane's threads run at the nice value configured, the others are untouched.
    let nices = bulk_lane_threads(relay.child.id());
    assert!(!nices.is_empty() && nices.iter().all(|&n| n == 7), "bulk lane threads' nice values: {nices:?}");
    let bulk_lane = move || -> f64 {
        let out = Command::new("curl").args(["-sS"]).arg(format!("http://127.0.0.1:{metrics_port}/metrics")).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| l.strip_prefix("wsproxy_sessions_bulk_lane ")?.parse().ok()).unwrap_or(-1.0)
    };
    // The VM: streams the pattern until the browser's stream ends with 0xFE (checking every
    // byte before it), ends its own stream with 0xFF, then echoes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap().port();
    let vm = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let stop = tokio::spawn(async move {
            let mut got = 0u64;
            let mut buf = vec![0u8; 65536];
            loop {
                let n = rd.read(&mut buf).await.unwrap();
                assert!(n > 0, "the browser's side closed early");
                for &b in &buf[..n] {
                    if b == 0xFE {
                        return (rd, got);
                    }
                    assert_eq!(b, stream_byte(got), "browser->VM byte {got} wrong");
                    got += 1;
                }
            }
        });
        let mut sent = 0u64;
        let mut chunk = vec![0u8; 65536];
        while !stop.is_finished() {
            for b in chunk.iter_mut() {
                *b = stream_byte(sent);
                sent += 1;
            }
            wr.write_all(&chunk).await.unwrap();
        }
        wr.write_all(&[0xFF]).await.unwrap();
        let (mut rd, got_up) = stop.await.unwrap();
        let mut buf = [0u8; 64];
        loop {
            let n = rd.read(&mut buf).await.unwrap();
            if n == 0 {
                return (sent, got_up);
            }
            wr.write_all(&buf[..n]).await.unwrap();
        }
    });
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", target));
    let WsOutcome::Open(ws) = connect_ws(&url(port, &ticket), Some(&pki.ca_cert)).await else { panic!() };
    let (mut tx, mut rx) = ws.split();
    // Browser->VM streams too, until the bulk lane has the session.
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        while !*seen_rx.borrow_and_update() {
            let chunk: Vec<u8> = (sent..sent + 16384).map(stream_byte).collect();
            sent += chunk.len() as u64;
            tx.send(Message::Binary(chunk.into())).await.unwrap();
        }
        tx.send(Message::Binary(vec![0xFE].into())).await.unwrap();
        (tx, sent)
    });
    let watcher = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while bulk_lane() < 1.0 {
            assert!(std::time::Instant::now() < deadline, "the streaming session never reached the bulk lane");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Streaming on in the lane for 1.5 s: the session is queued afresh on the lane after
        // each 100 ms window (byte_pump's Step::Redeal), every byte kept.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(bulk_lane(), 1.0, "the streaming session left the bulk lane while it streamed");
        let _ = seen_tx.send(true);
    });
    let mut got = 0u64;
    'stream: while let Some(msg) = rx.next().await {
        let Message::Binary(data) = msg.unwrap() else { continue };
        for (at, &b) in data.iter().enumerate() {
            if b != stream_byte(got) {
                assert!(b == 0xFF && at + 1 == data.len(), "VM->browser byte {got} wrong: {b} at {at} of {}", data.len());
                break 'stream;
            }
            got += 1;
        }
    }
    watcher.await.unwrap();
    let (mut tx, sent_up) = sender.await.unwrap();
    // Quiet now: pointer-sized round trips, a window apart, bring it back, but not the first
    // two: it leaves the lane after five quiet windows in a row (byte_pump's QUIET_WINDOWS),
    // not one, so a stream that waits a moment for a peer does not bounce.
    let mut back_after = None;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tx.send(Message::Binary(format!("p{i}").into_bytes().into())).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < 2 {
            let Message::Binary(data) = rx.next().await.unwrap().unwrap() else { continue };
            echoed.extend_from_slice(&data);
        }
        assert!(echoed == format!("p{i}").into_bytes(), "echo {i}: {} bytes, not the 2 sent", echoed.len());
        if bulk_lane() == 0.0 {
            back_after = Some(i + 1);
            break;
        }
    }
    let back_after = back_after.expect("the quiet session stayed in the bulk lane");
    assert!(back_after > 2, "the session left the bulk lane after {back_after} quiet round trip(s)");
    tx.send(Message::Close(None)).await.unwrap();
    drop(tx);
    drop(rx);
    let (sent_down, got_up) = tokio::time::timeout(Duration::from_secs(10), vm).await.unwrap().unwrap();
    assert_eq!(got, sent_down, "VM->browser bytes lost");
    assert_eq!(got_up, sent_up, "browser->VM bytes lost");
    assert!(got > 1 << 20 && got_up > 1 << 20, "streamed {got} / {got_up} bytes: not a stream");
}
