//! Single use across relays, on a real redis-server (Debian's package, started by the test):
//! a ticket used on one relay is refused on the other; with the store gone new sessions get
//! 503 with the reason while open ones keep relaying; when it returns, new sessions work again
//! without a restart; `rediss://` is verified against the CA; fail-open is a choice.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use testkit::{connect_ws, free_port, read_exact, sign_ticket, Pki, RedisServer, RedisTls, RelayProcess, TicketSpec, WsOutcome};
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "replay-store-test-password";

fn relay(dir: &Path, pki: &Pki, store: &str, metrics: u16) -> RelayProcess {
    RelayProcess::start(env!("CARGO_BIN_EXE_wsproxy"), dir, pki, &format!("{store}WSPROXY_METRICS_LISTEN=127.0.0.1:{metrics}\n"))
}

use testkit::metrics_text as metrics;

/// Open a session with a fresh ticket for `target` on `relay`.
async fn open(relay: &RelayProcess, pki: &Pki, target: u16) -> WsOutcome {
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", target));
    connect_ws(&relay.url(&ticket), Some(&pki.ca_cert)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_relays_share_single_use_and_a_store_outage_refuses_only_new_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut redis = RedisServer::start(dir.path(), Some(PASSWORD), None);
    let password_file = dir.path().join("store-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let store =
        format!("WSPROXY_REPLAY_STORE=redis://127.0.0.1:{}\nWSPROXY_REPLAY_STORE_PASSWORD_FILE={}\n", redis.port, password_file.display());
    let (metrics_a, metrics_b) = (free_port(), free_port());
    let a = relay(dir.path(), &pki, &store, metrics_a);
    let b = relay(dir.path(), &pki, &store, metrics_b);
    let echo = testkit::echo_target().await;

    // A ticket used on relay A is refused on relay B, and again on A.
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", echo));
    let WsOutcome::Open(mut first) = connect_ws(&a.url(&ticket), Some(&pki.ca_cert)).await else { panic!("A refused a fresh ticket") };
    for other in [&b, &a] {
        match connect_ws(&other.url(&ticket), Some(&pki.ca_cert)).await {
            WsOutcome::Refused(403, body) => assert!(body.contains("already used"), "{body}"),
            WsOutcome::Refused(status, body) => panic!("a reused ticket got {status}: {body}"),
            WsOutcome::Open(_) => panic!("a ticket used on relay A opened a second console"),
        }
    }
    assert!(metrics(metrics_b).await.contains("wsproxy_ticket_rejections_total{reason=\"reused\"} 1"));

    // The store goes away: a new session gets 503 with the reason; the open one keeps relaying.
    redis.stop();
    match open(&b, &pki, echo).await {
        WsOutcome::Refused(503, body) => assert!(body.contains("single-use check unavailable"), "{body}"),
        WsOutcome::Refused(status, body) => panic!("store down: expected 503, got {status}: {body}"),
        WsOutcome::Open(_) => panic!("store down: a session opened without the single-use check"),
    }
    first.send(Message::Binary(b"still here".to_vec().into())).await.unwrap();
    let mut buf = Vec::new();
    let echoed = read_exact(&mut first, &mut buf, 10).await.expect("the open session keeps relaying while the store is down");
    assert_eq!(echoed, b"still here");
    let text = metrics(metrics_b).await;
    assert!(text.contains("wsproxy_connections_refused_total{cause=\"replay_store_unavailable\"} 1"), "{text}");
    assert!(text.contains("wsproxy_replay_store_errors_total 1"), "{text}");

    // The store returns: new sessions open again on both relays, no restart.
    redis.resume();
    let back = Instant::now();
    let reopened = loop {
        match open(&b, &pki, echo).await {
            WsOutcome::Open(_) => break back.elapsed(),
            WsOutcome::Refused(503, _) if back.elapsed() < Duration::from_secs(10) => tokio::time::sleep(Duration::from_millis(200)).await,
            WsOutcome::Refused(status, body) => panic!("store back: still refused with {status}: {body}"),
        }
    };
    eprintln!("store back: relay B opened a new session {} ms after the store returned", reopened.as_millis());
    assert!(matches!(open(&a, &pki, echo).await, WsOutcome::Open(_)), "relay A did not recover");
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_is_verified_against_the_ca_and_fail_open_is_a_choice() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // The store's certificate is the test CA's localhost certificate.
    let redis = RedisServer::start(dir.path(), None, Some(RedisTls { cert: &pki.proxy_cert, key: &pki.proxy_key, ca: &pki.ca_cert }));
    let echo = testkit::echo_target().await;
    let tls_store = format!("WSPROXY_REPLAY_STORE=rediss://localhost:{}\nWSPROXY_REPLAY_STORE_CA={}\n", redis.port, pki.ca_cert.display());
    let a = relay(dir.path(), &pki, &tls_store, free_port());
    let b = relay(dir.path(), &pki, &tls_store, free_port());
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", echo));
    assert!(matches!(connect_ws(&a.url(&ticket), Some(&pki.ca_cert)).await, WsOutcome::Open(_)), "rediss: a fresh ticket refused");
    assert!(
        matches!(connect_ws(&b.url(&ticket), Some(&pki.ca_cert)).await, WsOutcome::Refused(403, _)),
        "rediss: the reused ticket was not refused on the other relay"
    );

    // Without the CA the store's certificate is not trusted: fail closed, 503.
    let untrusted = relay(dir.path(), &pki, &format!("WSPROXY_REPLAY_STORE=rediss://localhost:{}\n", redis.port), free_port());
    match open(&untrusted, &pki, echo).await {
        WsOutcome::Refused(503, body) => assert!(body.contains("single-use check unavailable"), "{body}"),
        other => panic!("an untrusted store certificate was accepted: {}", matches!(other, WsOutcome::Open(_))),
    }

    // Fail open, chosen explicitly: a store nobody listens on, the session opens anyway.
    let closed = free_port();
    let open_relay = relay(
        dir.path(),
        &pki,
        &format!("WSPROXY_REPLAY_STORE=redis://127.0.0.1:{closed}\nWSPROXY_REPLAY_STORE_FAIL_OPEN=True\n"),
        free_port(),
    );
    assert!(matches!(open(&open_relay, &pki, echo).await, WsOutcome::Open(_)), "fail open: the session was refused");
    let log = open_relay.wait_log("WITHOUT the single-use check", Duration::from_secs(5));
    assert!(log.contains("WITHOUT the single-use check"), "{log}");
}

#[test]
fn bad_store_settings_stop_the_relay_with_the_key_and_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let run = |conf: &str| {
        let path = dir.path().join("bad.conf");
        std::fs::write(&path, conf).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsproxy")).arg("--config").arg(&path).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run("WSPROXY_REPLAY_STORE=redis://:secret@127.0.0.1:6379\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("WSPROXY_REPLAY_STORE_PASSWORD_FILE") && !err.contains("secret@"), "{err}");
    let (code, err) = run("WSPROXY_REPLAY_STORE=http://127.0.0.1:6379\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("redis://HOST:PORT"), "{err}");
    let (code, err) = run("WSPROXY_REPLAY_STORE_PASSWORD_FILE=/etc/pw\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("without WSPROXY_REPLAY_STORE"), "{err}");
}
