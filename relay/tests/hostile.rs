//! Hostile input, tried as an attacker would against the relay binary over wss: truncated TLS,
//! huge and non-HTTP heads, requests that are not websocket upgrades, frames a server must
//! refuse, frames after the close, and tickets that point outside WSPROXY_TARGET_ALLOW. After
//! each, the relay still serves a good session.

use std::time::Duration;

use futures_util::SinkExt;
use testkit::{client_tls, close_of, connect_ws, free_port, raw_upgrade, sign_ticket, Pki, Proc, RelayProcess, TicketSpec, WsOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn start(dir: &std::path::Path, pki: &Pki, extra: &str) -> (Proc, u16) {
    let relay = RelayProcess::start(env!("CARGO_BIN_EXE_wsproxy"), dir, pki, &format!("WSPROXY_HANDSHAKE_TIMEOUT=2\n{extra}"));
    (relay.proc, relay.port)
}

/// A TLS connection trusting the test CA, for writing arbitrary bytes after the handshake.
async fn tls(port: u16, pki: &Pki) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(client_tls(&pki.ca_cert)).connect(name, tcp).await.unwrap()
}

/// Write `bytes`, then read the answer until the relay closes (bounded).
async fn answer_to(port: u16, pki: &Pki, bytes: &[u8]) -> String {
    let mut s = tls(port, pki).await;
    let _ = s.write_all(bytes).await;
    let _ = s.flush().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A websocket frame as a client would send it; `masked: false` breaks RFC 6455 on purpose.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask = [0x11, 0x22, 0x33, 0x44];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Upgrade by hand (raw TLS) and return the stream after the 101.
async fn upgraded(port: u16, pki: &Pki, ticket: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    upgraded_with(port, pki, ticket, &[]).await
}

/// [`upgraded`], with `early` bytes sent right behind the request, before the 101 arrives.
async fn upgraded_with(port: u16, pki: &Pki, ticket: &str, early: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut s = tls(port, pki).await;
    let mut req = format!(
        "GET /{ticket} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(early);
    s.write_all(&req).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed before the 101");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

/// The first server frame's close code and reason, skipping data frames.
async fn server_close(s: &mut tokio_rustls::client::TlsStream<TcpStream>) -> Option<(u16, String)> {
    loop {
        let mut h = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut h)).await.ok()?.ok()?;
        let mut len = (h[1] & 0x7f) as usize;
        if len == 126 {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.ok()?;
            len = u16::from_be_bytes(l) as usize;
        }
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        if h[0] & 0x0f == 0x8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
        }
    }
}

async fn still_serves(port: u16, pki: &Pki, target: u16) {
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", target));
    assert!(
        matches!(connect_ws(&format!("wss://localhost:{port}/{t}"), Some(&pki.ca_cert)).await, WsOutcome::Open(_)),
        "the relay stopped serving good sessions"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_refuses_hostile_input_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (relay, port) = start(dir.path(), &pki, "");
    let vm = testkit::silent_target().await;

    // Truncated TLS: half a ClientHello, then the connection closes; and one that stalls.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).await.unwrap();
    drop(s);
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(6), stalled.read(&mut b)).await.expect("stalled TLS dropped by the handshake timeout");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    still_serves(port, &pki, vm).await;

    // Huge head: 431, not a buffer without bound.
    let huge = format!("GET /x HTTP/1.1\r\nHost: localhost\r\nX-Fill: {}\r\n\r\n", "a".repeat(64 * 1024));
    assert!(answer_to(port, &pki, huge.as_bytes()).await.starts_with("HTTP/1.1 431"));
    // Not HTTP at all: 400.
    assert!(answer_to(port, &pki, b"\x00\x01\x02 binary junk\r\n\r\n").await.starts_with("HTTP/1.1 400"));
    // Not a websocket upgrade: a good ticket without the upgrade headers gets 426; POST 405.
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let plain = answer_to(port, &pki, format!("GET /{t} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await;
    assert!(plain.starts_with("HTTP/1.1 426"), "{plain}");
    let post = answer_to(port, &pki, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    still_serves(port, &pki, vm).await;

    // Frames a server must refuse: unmasked data, a 126-byte ping. Each closes with 1002.
    for (what, bad) in [("unmasked", frame(0x2, b"hello", false)), ("long ping", frame(0x9, &[0u8; 126], true))] {
        let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
        let mut s = upgraded(port, &pki, &t).await;
        s.write_all(&bad).await.unwrap();
        let (code, reason) = server_close(&mut s).await.unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(code, 1002, "{what}: {reason}");
    }

    // Frames after the close: the relay answers the close and reads nothing more.
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let mut s = upgraded(port, &pki, &t).await;
    let mut burst = frame(0x8, &[0x03, 0xe8], true);
    for _ in 0..50 {
        burst.extend(frame(0x2, &[0xab; 1000], true));
    }
    let _ = s.write_all(&burst).await;
    let (code, _) = server_close(&mut s).await.expect("the close is answered");
    assert_eq!(code, 1000);
    let log = relay.wait_log("reason=browser closed", Duration::from_secs(5));
    assert!(log.contains("to_target=0"), "nothing after the close reached the target:\n{log}");
    still_serves(port, &pki, vm).await;
    assert!(!relay.log_text().contains("panicked"), "{}", relay.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_for_targets_outside_the_allow_list_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // Only a documentation network may be reached; loopback is not allowed.
    let (_relay, port) = start(dir.path(), &pki, "WSPROXY_TARGET_ALLOW=192.0.2.0/24\n");
    let vm = testkit::silent_target().await;

    // An address outside the list: refused before the upgrade, nothing connected.
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let (status, body) = raw_upgrade(port, &format!("/{t}"), &pki.ca_cert).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("WSPROXY_TARGET_ALLOW"), "{body}");

    // A name that resolves outside the list: resolved after the upgrade, then refused (1011)
    // without connecting, so DNS cannot be used to reach around the list.
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("localhost", vm));
    let WsOutcome::Open(mut ws) = connect_ws(&format!("wss://localhost:{port}/{t}"), Some(&pki.ca_cert)).await else {
        panic!("names are resolved after the upgrade")
    };
    let (code, reason) = close_of(&mut ws).await.expect("a close frame");
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("WSPROXY_TARGET_ALLOW"), "{reason}");
    let _ = ws.send(Message::Close(None)).await;
}

/// A client may send frames right behind its upgrade request, before the 101 arrives: they
/// must be handled like any other (here a ping, answered with its payload).
#[tokio::test(flavor = "multi_thread")]
async fn frames_sent_with_the_upgrade_request_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (_relay, port) = start(dir.path(), &pki, "");
    let vm = testkit::silent_target().await;
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let mut s = upgraded_with(port, &pki, &t, &frame(0x9, b"early", true)).await;
    let mut h = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut h)).await.expect("an answer to the early ping").unwrap();
    let mut payload = vec![0u8; (h[1] & 0x7f) as usize];
    s.read_exact(&mut payload).await.unwrap();
    assert_eq!((h[0] & 0x0f, payload.as_slice()), (0xA, &b"early"[..]), "a pong with the ping's payload");
}

/// The relay's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc readable");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Pongs go through the same bounded output as data: a client that floods pings and never
/// reads is no longer read either (its writes stall), and the relay does not grow. Before
/// the fix, 64 MiB of pings from such a client grew the relay by 54 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn a_ping_flood_from_a_client_that_never_reads_is_slowed_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (relay, port) = start(dir.path(), &pki, "");
    let vm = testkit::silent_target().await;
    let t = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let mut s = upgraded(port, &pki, &t).await;
    let pid = relay.child.id();
    let before = rss_kib(pid);
    let batch: Vec<u8> = (0..512).flat_map(|_| frame(0x9, &[7u8; 125], true)).collect();
    let mut sent = 0usize;
    while sent < 64 << 20 {
        // A write that cannot finish for 3 s means the relay stopped reading: backpressure.
        match tokio::time::timeout(Duration::from_secs(3), s.write_all(&batch)).await {
            Ok(Ok(())) => sent += batch.len(),
            Ok(Err(e)) => panic!("the relay closed the flood instead of slowing it: {e}"),
            Err(_) => break,
        }
    }
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(sent < 32 << 20, "the relay kept reading a client that never reads: {} MiB of pings taken", sent >> 20);
    assert!(grown < 8 * 1024, "the relay grew by {grown} KiB while {} MiB of pings were sent", sent >> 20);
    eprintln!("ping flood: {} KiB sent before the relay stopped reading; relay grew {grown} KiB", sent >> 10);
    drop(s);
    still_serves(port, &pki, vm).await;
}

/// Connections that never finish their handshake are capped (WSPROXY_MAX_HANDSHAKES): beyond
/// the cap a new connection is closed at once and counted as `handshake_limit`; once they
/// go, good sessions open again.
#[tokio::test(flavor = "multi_thread")]
async fn connections_stuck_in_handshake_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let metrics = free_port();
    let (_relay, port) = start(
        dir.path(),
        &pki,
        &format!("WSPROXY_MAX_HANDSHAKES=2\nWSPROXY_METRICS_LISTEN=127.0.0.1:{metrics}\nWSPROXY_HANDSHAKE_TIMEOUT=30\n"),
    );
    // Two connections, silent: each TLS handshake waits for a ClientHello that never comes. One
    // closed at once was refused because an earlier connection (the fixture's start-up probe)
    // was still counted: counted, and replaced.
    let mut idle = Vec::new();
    let mut closed_early = 0;
    while idle.len() < 2 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut b)).await {
            Err(_) => idle.push(s),
            Ok(_) => closed_early += 1,
        }
        assert!(closed_early < 5, "connections under the cap keep being closed");
    }
    let mut third = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut b)).await.expect("closed at once").unwrap_or(0);
    assert_eq!(n, 0, "the third connection in handshake must be closed");
    let text = testkit::metrics_text(metrics).await;
    let limited = format!("wsproxy_connections_refused_total{{cause=\"handshake_limit\"}} {}", closed_early + 1);
    assert!(text.contains(&limited), "{text}");
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_serves(port, &pki, testkit::silent_target().await).await;
}
