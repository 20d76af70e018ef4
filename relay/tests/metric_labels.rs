//! Every metric label the README lists is read back from /metrics after the relay binary met
//! the case it counts (the labels of the limits are in limits.rs, `handshake_limit` in
//! hostile.rs, `replay_store_unavailable` in replay_store.rs). `shutdown` is counted as the
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
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text.lines()
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

#[tokio::test(flavor = "multi_thread")]
async fn every_listed_label_is_counted_when_its_case_happens() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let bin = env!("CARGO_BIN_EXE_wsproxy");
    let m = free_port();
    let mut relay = RelayProcess::start(
        bin,
        dir.path(),
        &pki,
        &format!("WSPROXY_METRICS_LISTEN=127.0.0.1:{m}\nWSPROXY_PING_INTERVAL=1\nWSPROXY_SHUTDOWN_GRACE=1\n"),
    );
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

    // Session ends.
    let mut ws = open(&relay, &good(), &pki).await;
    ws.send(Message::Close(None)).await.unwrap();
    let _ = close_of(&mut ws).await;
    let ws = open(&relay, &good(), &pki).await;
    drop(ws); // browser_gone: the TCP connection goes without a close frame
    let closing = target(drop).await; // target_closed
    let mut ws = open(&relay, &sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", closing)), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1000));
    let resetting = target(|s| {
        // A reset instead of an orderly close: target_error.
        // Deprecated for blocking on drop with a non-zero linger; zero never blocks.
        #[allow(deprecated)]
        let _ = s.set_linger(Some(Duration::ZERO));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(s);
        });
    })
    .await;
    let mut ws = open(&relay, &sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", resetting)), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1011));
    let mut ws = open(&relay, &good(), &pki).await;
    ws.send(Message::Text("text on a binary session".into())).await.unwrap(); // protocol_error
    let _ = close_of(&mut ws).await;
    let silent = open(&relay, &good(), &pki).await; // never reads: its pings go unanswered
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(silent);

    // Target connections that fail: nothing listening; VeNCrypt asked of a non-VNC target.
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

    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = metrics(m).await;
    let count = |name: &str| got.get(name).copied().unwrap_or(-1.0);
    for (label, _) in &tickets {
        assert!(count(&format!("wsproxy_ticket_rejections_total{{reason=\"{label}\"}}")) >= 1.0, "{label}: {got:?}");
    }
    for cause in ["tls_failed", "bad_request"] {
        assert!(count(&format!("wsproxy_connections_refused_total{{cause=\"{cause}\"}}")) >= 1.0, "{cause}: {got:?}");
    }
    for reason in ["browser_closed", "browser_gone", "target_closed", "target_error", "protocol_error", "ping_timeout"] {
        assert!(count(&format!("wsproxy_sessions_ended_total{{reason=\"{reason}\"}}")) >= 1.0, "{reason}: {got:?}");
    }
    for cause in ["unreachable", "negotiation"] {
        assert!(count(&format!("wsproxy_target_connect_failures_total{{cause=\"{cause}\"}}")) >= 1.0, "{cause}: {got:?}");
    }

    // Outside WSPROXY_TARGET_ALLOW: an address refused before the upgrade (target_not_allowed),
    // a name resolving outside it refused on connect (not_allowed).
    let m2 = free_port();
    let fenced =
        RelayProcess::start(bin, dir.path(), &pki, &format!("WSPROXY_METRICS_LISTEN=127.0.0.1:{m2}\nWSPROXY_TARGET_ALLOW=192.0.2.0/24\n"));
    let (status, _) = raw_upgrade(fenced.port, &format!("/{}", good()), &pki.ca_cert).await;
    assert_eq!(status, 403);
    let mut ws = open(&fenced, &sign_ticket(&pki.engine_key, &TicketSpec::new("localhost", echo)), &pki).await;
    assert_eq!(close_of(&mut ws).await.map(|c| c.0), Some(1011));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = metrics(m2).await;
    assert!(got.get("wsproxy_ticket_rejections_total{reason=\"target_not_allowed\"}").copied().unwrap_or(0.0) >= 1.0, "{got:?}");
    assert!(got.get("wsproxy_target_connect_failures_total{cause=\"not_allowed\"}").copied().unwrap_or(0.0) >= 1.0, "{got:?}");

    // shutdown: a session still open when the grace ends is closed with 1001; its log line
    // carries the label the metric counts.
    let mut open_at_stop = open(&relay, &good(), &pki).await;
    relay.proc.signal(Signal::SIGTERM);
    assert_eq!(close_of(&mut open_at_stop).await.map(|c| c.0), Some(1001));
    let log = relay.proc.wait_log("proxy shutdown", Duration::from_secs(5));
    assert!(log.contains("\"end\":\"shutdown\"") || log.contains("end=\"shutdown\"") || log.contains("end=shutdown"), "{log}");
    let _ = relay.proc.wait_exit(Duration::from_secs(5));
}
