//! Every metric label the README lists is read back from /metrics after the relay binary met
//! the case it counts (the labels of the limits are in limits.rs, `handshake_limit` in
//! hostile.rs, `replay_store_unavailable` in replay_store.rs, `proxy_header` in real_client.rs). `shutdown` is counted as the
//! process exits, so it is read from the session's log line, which carries the same label.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::SinkExt;
use testkit::{close_of, connect_ws, free_port, raw_upgrade, sign_ticket, Pki, RelayProcess, Signal, TicketSpec, WsOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

async fn metrics(port: u16) -> HashMap<String, f64> {
    testkit::metrics_text(port)
        .await
        .lines()
        .filter(|l| l.starts_with("wsproxy_"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect()
}

/// A target that accepts and does `then` with the connection.
async fn target(then: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            then(s);
        }
    });
    port
}

/// Re-encode a ticket after changing its JSON (for tickets the engine would never make).
fn altered(ticket: &str, change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let mut json: serde_json::Value = serde_json::from_slice(&STANDARD.decode(ticket).unwrap()).unwrap();
    change(json.as_object_mut().unwrap());
    STANDARD.encode(json.to_string())
}

async fn open(relay: &RelayProcess, ticket: &str, pki: &Pki) -> Box<testkit::Ws> {
    match connect_ws(&relay.url(ticket), Some(&pki.ca_cert)).await {
        WsOutcome::Open(ws) => ws,
        WsOutcome::Refused(status, body) => panic!("refused {status}: {body}"),
    }
}

/// A relay with metrics on, pings every second and a 1 s shutdown grace; its metrics port.
fn start_relay(dir: &std::path::Path, pki: &Pki, extra: &str) -> (RelayProcess, u16) {
    let m = free_port();
    let conf = format!("WSPROXY_METRICS_LISTEN=127.0.0.1:{m}\nWSPROXY_PING_INTERVAL=1\nWSPROXY_SHUTDOWN_GRACE=1\n{extra}");
    (RelayProcess::start(env!("CARGO_BIN_EXE_wsproxy"), dir, pki, &conf), m)
}

/// Each `name{label}` is at least 1 in the relay's metrics.
async fn assert_counted(metrics_port: u16, names: &[String]) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = metrics(metrics_port).await;
    for name in names {
        assert!(got.get(name).copied().unwrap_or(0.0) >= 1.0, "{name} not counted: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ticket_rejections_and_refusals_before_a_session_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (relay, m) = start_relay(dir.path(), &pki, "");
    let echo = testkit::echo_target().await;
    let good = || sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", echo));

    // Ticket rejections, each refused with 403 before the upgrade.
    let (foreign_key, _) = pki.foreign_engine();
    let reused = good();
    let _first = open(&relay, &reused, &pki).await;
    let tickets = [
        ("malformed", "not-a-ticket".to_string()),
        ("unsigned_fields", altered(&good(), |t| drop(t.insert("signedFields".into(), "validFrom,validTo".into())))),
        ("bad_signature", sign_ticket(&foreign_key, &TicketSpec::new("127.0.0.1", echo))),
        (
            "legacy_sha1_disabled",
            altered(&good(), |t| {
                let sig = t.remove("v2_signature").unwrap();
                t.insert("signature".into(), sig);
            }),
        ),
        ("expired", sign_ticket(&pki.engine_key, &TicketSpec { valid_from: -120, valid_to: -60, ..TicketSpec::new("127.0.0.1", echo) })),
        (
            "not_yet_valid",
            sign_ticket(&pki.engine_key, &TicketSpec { valid_from: 60, valid_to: 120, ..TicketSpec::new("127.0.0.1", echo) }),
        ),
        ("bad_data", sign_ticket(&pki.engine_key, &TicketSpec::new("", echo))),
        ("reused", reused.clone()),
    ];
    for (label, ticket) in &tickets {
        let (status, body) = raw_upgrade(relay.port, &format!("/{ticket}"), &pki.ca_cert).await;
        assert_eq!(status, 403, "{label}: {body}");
    }

    // Refused before a session: not TLS at all; an upgrade without a websocket key.
    let mut plain = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut [0u8; 64])).await;
    let tcp = TcpStream::connect(("127.0.0.1", relay.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(testkit::client_tls(&pki.ca_cert)).connect(name, tcp).await.unwrap();
    let request = format!("GET /{} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", good());
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let mut names: Vec<String> = tickets.iter().map(|(l, _)| format!("wsproxy_ticket_rejections_total{{reason=\"{l}\"}}")).collect();
    names.extend(["tls_failed", "bad_request"].map(|c| format!("wsproxy_connections_refused_total{{cause=\"{c}\"}}")));
    assert_counted(m, &names).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_way_a_session_ends_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (relay, m) = start_relay(dir.path(), &pki, "");
    let echo = testkit::echo_target().await;
    let to = |port: u16| sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", port));

    let mut ws = open(&relay, &to(echo), &pki).await;
    ws.send(Message::Close(None)).await.unwrap(); // browser_closed
    let _ = close_of(&mut ws).await;
    drop(open(&relay, &to(echo), &pki).await); // browser_gone: the TCP connection goes without a close frame
    let closing = target(drop).await; // target_closed
    let mut ws = open(&relay, &to(closing), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1000));
    let resetting = target(|s| {
        // A reset instead of an orderly close (SO_LINGER 0, then close), once the session is
        // up: target_error. (A reset at once can beat the relay's connect and count as a
        // failed connection instead, as it did on a new machine.)
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Deprecated for blocking on drop with a non-zero linger; zero never blocks.
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        });
    })
    .await;
    let mut ws = open(&relay, &to(resetting), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1011));
    let mut ws = open(&relay, &to(echo), &pki).await;
    ws.send(Message::Text("text on a binary session".into())).await.unwrap(); // protocol_error
    let _ = close_of(&mut ws).await;
    let silent = open(&relay, &to(echo), &pki).await; // never reads: its pings go unanswered
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(silent);

    let reasons = ["browser_closed", "browser_gone", "target_closed", "target_error", "protocol_error", "ping_timeout"];
    assert_counted(m, &reasons.map(|r| format!("wsproxy_sessions_ended_total{{reason=\"{r}\"}}"))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn target_connections_that_fail_are_counted_by_cause() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (relay, m) = start_relay(dir.path(), &pki, "");
    // Nothing listening; VeNCrypt asked of a target that is no VNC server.
    let closed = free_port();
    let mut ws = open(&relay, &sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", closed)), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1011));
    let chatty = target(|mut s| {
        tokio::spawn(async move {
            let _ = s.write_all(b"HELLO, I am not a VNC server\n").await;
        });
    })
    .await;
    let vencrypt = TicketSpec { ssl_target: true, ..TicketSpec::new("127.0.0.1", chatty) };
    let mut ws = open(&relay, &sign_ticket(&pki.engine_key, &vencrypt), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1011));
    assert_counted(m, &["unreachable", "negotiation"].map(|c| format!("wsproxy_target_connect_failures_total{{cause=\"{c}\"}}"))).await;

    // Outside WSPROXY_TARGET_ALLOW: an address refused before the upgrade (target_not_allowed),
    // a name resolving outside it refused on connect (not_allowed).
    let (fenced, m2) = start_relay(dir.path(), &pki, "WSPROXY_TARGET_ALLOW=192.0.2.0/24\n");
    let echo = testkit::echo_target().await;
    let (status, _) =
        raw_upgrade(fenced.port, &format!("/{}", sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", echo))), &pki.ca_cert).await;
    assert_eq!(status, 403);
    let mut ws = open(&fenced, &sign_ticket(&pki.engine_key, &TicketSpec::new("localhost", echo)), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1011));
    let names = [
        "wsproxy_ticket_rejections_total{reason=\"target_not_allowed\"}".to_string(),
        "wsproxy_target_connect_failures_total{cause=\"not_allowed\"}".to_string(),
    ];
    assert_counted(m2, &names).await;
}

/// `shutdown`: a session still open when the grace ends is closed with 1001; the metric is
/// counted as the process exits, so the session's log line, which carries the same label, is
/// read instead.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_open_at_the_end_of_the_grace_ends_as_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (mut relay, _) = start_relay(dir.path(), &pki, "");
    let echo = testkit::echo_target().await;
    let mut open_at_stop = open(&relay, &sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", echo)), &pki).await;
    relay.proc.signal(Signal::SIGTERM);
    assert_eq!(close_of(&mut open_at_stop).await.map(|c| c.0), Some(1001));
    let log = relay.proc.wait_log("proxy shutdown", Duration::from_secs(5));
    assert!(log.contains("\"end\":\"shutdown\"") || log.contains("end=\"shutdown\"") || log.contains("end=shutdown"), "{log}");
    let _ = relay.proc.wait_exit(Duration::from_secs(5));
}
