//! Faults, each with real processes: the VNC server killed mid-session, a browser that
//! vanishes without a close, a target that accepts but never speaks. The relay must close the
//! right side with the right code and keep serving everyone else.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{close_of, connect_ws, rfb_handshake, sign_ticket, Pki, Proc, RelayProcess, TicketSpec, VncSecurity, WsOutcome, Xvnc};

fn start(dir: &Path, pki: &Pki, extra: &str) -> (Proc, u16) {
    let relay = RelayProcess::start(env!("CARGO_BIN_EXE_wsproxy"), dir, pki, extra);
    (relay.proc, relay.port)
}

fn url(port: u16, t: &str) -> String {
    format!("wss://localhost:{port}/{t}")
}

#[tokio::test(flavor = "multi_thread")]
async fn target_killed_mid_session_closes_1011_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut doomed = Xvnc::start("pw", VncSecurity::VncAuth);
    let healthy = Xvnc::start("pw", VncSecurity::VncAuth);
    let (relay, port) = start(dir.path(), &pki, "");
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", doomed.port));
    let WsOutcome::Open(mut a) = connect_ws(&url(port, &t), Some(&pki.ca_cert)).await else { panic!() };
    rfb_handshake(&mut a, "pw").await.unwrap();
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", healthy.port));
    let WsOutcome::Open(mut b) = connect_ws(&url(port, &t), Some(&pki.ca_cert)).await else { panic!() };

    doomed.kill();
    let (code, reason) = close_of(&mut a).await.expect("a close frame after the target died");
    // A VNC server that dies closes its socket: that is "target closed" (1000) or, when the
    // kernel resets it, "connection lost" (1011). Either way the browser is told, not left hanging.
    assert!(code == 1000 || code == 1011, "{code} {reason}");
    assert!(reason.contains("target"), "{reason}");
    // The other session and new sessions still work.
    rfb_handshake(&mut b, "pw").await.expect("other session unaffected");
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", healthy.port));
    let WsOutcome::Open(mut c) = connect_ws(&url(port, &t), Some(&pki.ca_cert)).await else { panic!() };
    rfb_handshake(&mut c, "pw").await.expect("new session after the fault");
    let log = relay.wait_log("reason=target", Duration::from_secs(5));
    assert!(log.contains("reason=target"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vanished_browser_is_detected_by_pings_and_the_target_side_closed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // A target that records when its connection is closed.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_port = target.local_addr().unwrap().port();
    let closed = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut s, _) = target.accept().await.unwrap();
        let mut buf = [0u8; 64];
        while s.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
        Instant::now()
    });
    let (relay, port) = start(dir.path(), &pki, "WSPROXY_PING_INTERVAL=1\n");
    // A "browser" that completes the upgrade and then stops reading and answering entirely:
    // its process is frozen (SIGSTOP), so the kernel still holds the socket open.
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", target_port));
    let mut client = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'GET /{t} HTTP/1.1\\r\\nHost: localhost\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\
             Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n'; sleep 60"
        ))
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // openssl s_client carries the bytes over TLS.
    let mut tls = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
        .stdin(client.stdout.take().unwrap())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    nix_stop(tls.id());
    let start = Instant::now();
    let when = tokio::time::timeout(Duration::from_secs(15), closed).await.expect("target side closed within the ping bound").unwrap();
    let waited = when.duration_since(start);
    let _ = tls.kill();
    let _ = tls.wait();
    let _ = client.kill();
    let _ = client.wait();
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    assert!(relay.log_text().contains("browser stopped answering pings"), "{}", relay.log_text());
}

fn nix_stop(pid: u32) {
    Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_target_does_not_block_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let healthy = Xvnc::start("pw", VncSecurity::VncAuth);
    let (_relay, port) = start(dir.path(), &pki, "WSPROXY_IDLE_TIMEOUT=2\nWSPROXY_PING_INTERVAL=0\n");
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", silent_port));
    let WsOutcome::Open(mut quiet) = connect_ws(&url(port, &t), Some(&pki.ca_cert)).await else { panic!() };
    // Others are served meanwhile.
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", healthy.port));
    let WsOutcome::Open(mut b) = connect_ws(&url(port, &t), Some(&pki.ca_cert)).await else { panic!() };
    rfb_handshake(&mut b, "pw").await.unwrap();
    // The silent session ends at the idle timeout with a reason.
    let (code, reason) = close_of(&mut quiet).await.expect("closed at the idle timeout");
    assert_eq!(code, 1000);
    assert!(reason.contains("idle"), "{reason}");
}
