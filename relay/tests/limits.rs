//! Every limit, as an attacker or an unlucky user would meet it, against the relay binary over
//! wss: it refuses or closes as documented, and the refusal shows in its own metric.
//! Limits: WSPROXY_MAX_SESSIONS, WSPROXY_MAX_SESSIONS_PER_IP, WSPROXY_HANDSHAKE_TIMEOUT,
//! WSPROXY_IDLE_TIMEOUT, WSPROXY_MAX_SESSION_SECONDS, WSPROXY_MAX_MESSAGE_SIZE, WSPROXY_CONNECT_TIMEOUT.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use testkit::{client_tls, close_of, free_port, sign_ticket, Pki, RelayProcess, TicketSpec, Ws};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Open a wss session from a chosen loopback source address (per-IP limits see it).
async fn open_from(source: [u8; 4], port: u16, ticket: &str, pki: &Pki) -> Result<Box<Ws>, (u16, String)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let tcp = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    let mut request = format!("wss://localhost:{port}/{ticket}").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
    let connector = tokio_tungstenite::Connector::Rustls(client_tls(&pki.ca_cert));
    match tokio_tungstenite::client_async_tls_with_config(request, tcp, None, Some(connector)).await {
        Ok((ws, _)) => Ok(Box::new(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).to_string()).unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("wss connection failed: {e}"),
    }
}

fn metric(port: u16, line: &str) -> f64 {
    let out = Command::new("curl").args(["-sS"]).arg(format!("http://127.0.0.1:{port}/metrics")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{line} not in the metrics:\n{text}"))
}

/// A port whose SYNs go unanswered: a listener with a backlog of one that never accepts,
/// filled by two connections. New connections then hang in SYN_SENT (loopback only).
async fn unanswering_target() -> (u16, Vec<tokio::net::TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(300), tokio::net::TcpStream::connect(addr)).await {
            fillers.push(s);
        }
    }
    std::mem::forget(listener);
    (addr.port(), fillers)
}

/// The relay binary with `extra` settings and its metrics on a port of their own: its
/// directory, PKI, process and metrics port.
fn relay_with_metrics(extra: &str) -> (tempfile::TempDir, Pki, RelayProcess, u16) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let metrics_port = free_port();
    let conf = format!("WSPROXY_METRICS_LISTEN=127.0.0.1:{metrics_port}\n{extra}");
    let relay = RelayProcess::start(env!("CARGO_BIN_EXE_wsproxy"), dir.path(), &pki, &conf);
    (dir, pki, relay, metrics_port)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_limit_refuses_or_closes_and_counts_in_its_metric() {
    let (_dir, pki, relay, metrics_port) = relay_with_metrics(
        "WSPROXY_MAX_SESSIONS=2\nWSPROXY_MAX_SESSIONS_PER_IP=1\nWSPROXY_HANDSHAKE_TIMEOUT=1\nWSPROXY_IDLE_TIMEOUT=2\n\
         WSPROXY_PING_INTERVAL=0\nWSPROXY_MAX_MESSAGE_SIZE=1024\nWSPROXY_CONNECT_TIMEOUT=1\n",
    );
    let port = relay.port;
    let target = testkit::silent_target().await;
    let ticket = || sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", target));

    // Per client address: the second session from 127.0.0.1 gets 503 before any upgrade.
    let mut a = open_from([127, 0, 0, 1], port, &ticket(), &pki).await.expect("first session");
    let Err((status, body)) = open_from([127, 0, 0, 1], port, &ticket(), &pki).await else { panic!("second from one address not refused") };
    assert_eq!(status, 503);
    assert!(body.contains("WSPROXY_MAX_SESSIONS_PER_IP"), "{body}");
    assert_eq!(metric(metrics_port, "wsproxy_connections_refused_total{cause=\"per_ip_limit\"}"), 1.0);

    // Overall: two sessions are the maximum; a third, from yet another address, gets 503.
    let mut b = open_from([127, 0, 0, 2], port, &ticket(), &pki).await.expect("second session");
    let Err((status, body)) = open_from([127, 0, 0, 3], port, &ticket(), &pki).await else { panic!("third session not refused") };
    assert_eq!(status, 503);
    assert!(body.contains("WSPROXY_MAX_SESSIONS"), "{body}");
    assert_eq!(metric(metrics_port, "wsproxy_connections_refused_total{cause=\"capacity\"}"), 1.0);

    // Message size: a 2000-byte message against a 1024-byte limit closes with 1009.
    a.send(Message::Binary(vec![0u8; 2000].into())).await.unwrap();
    let (code, reason) = close_of(&mut a).await.expect("close after an oversized message");
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("WSPROXY_MAX_MESSAGE_SIZE"), "{reason}");

    // Idle: session b moves nothing and is closed with 1000 after about 2 s.
    let started = Instant::now();
    let (code, reason) = close_of(&mut b).await.expect("idle session closed");
    assert_eq!(code, 1000, "{reason}");
    assert!(reason.contains("WSPROXY_IDLE_TIMEOUT"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    relay.wait_log("idle timeout", Duration::from_secs(5));
    assert_eq!(metric(metrics_port, "wsproxy_sessions_ended_total{reason=\"message_too_big\"}"), 1.0);
    assert_eq!(metric(metrics_port, "wsproxy_sessions_ended_total{reason=\"idle_timeout\"}"), 1.0);

    // Handshake (slowloris): a connection that sends nothing is dropped after about 1 s.
    let mut lazy = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), lazy.read(&mut buf)).await.expect("dropped within the bound");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(metric(metrics_port, "wsproxy_connections_refused_total{cause=\"handshake_timeout\"}"), 1.0);

    // Connect timeout: a target that never answers the SYN; the browser gets 1011 after ~1 s.
    let (dead, _fillers) = unanswering_target().await;
    let mut c = open_from([127, 0, 0, 4], port, &sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", dead)), &pki)
        .await
        .expect("upgraded before the target is tried");
    let (code, reason) = close_of(&mut c).await.expect("close when the target does not answer");
    assert_eq!(code, 1011, "{reason}");
    assert!(reason.contains("WSPROXY_CONNECT_TIMEOUT"), "{reason}");
    assert_eq!(metric(metrics_port, "wsproxy_target_connect_failures_total{cause=\"timeout\"}"), 1.0);
}

/// WSPROXY_MAX_SESSION_SECONDS: a busy session (bytes flowing all the time, so no idle timeout)
/// is closed when its lifetime is over, with 1008 and the reason, counted under its own label.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_past_its_lifetime_is_closed_with_1008_whatever_it_does() {
    let (_dir, pki, relay, metrics_port) = relay_with_metrics("WSPROXY_MAX_SESSION_SECONDS=2\nWSPROXY_IDLE_TIMEOUT=1\n");
    let vm = testkit::echo_target().await;
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let mut ws = open_from([127, 0, 0, 1], relay.port, &ticket, &pki).await.expect("session");
    let started = Instant::now();
    let (code, reason) = loop {
        // Keep it busy: an echo every 200 ms, well inside the 1 s idle timeout.
        ws.send(Message::Binary(b"busy".to_vec().into())).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(200), close_of(&mut ws)).await {
            Ok(closed) => break closed.expect("a close frame"),
            Err(_) => assert!(started.elapsed() < Duration::from_secs(6), "not closed at its lifetime"),
        }
    };
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("WSPROXY_MAX_SESSION_SECONDS"), "{reason}");
    assert!(started.elapsed() >= Duration::from_millis(1800), "closed before its lifetime: {:?}", started.elapsed());
    relay.wait_log("max_lifetime", Duration::from_secs(5));
    assert_eq!(metric(metrics_port, "wsproxy_sessions_ended_total{reason=\"max_lifetime\"}"), 1.0);
    assert_eq!(metric(metrics_port, "wsproxy_sessions_ended_total{reason=\"idle_timeout\"}"), 0.0);
}
