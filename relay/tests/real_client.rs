//! The real client address behind a load balancer, with the real thing in front of the relay
//! binary: HAProxy (Debian's package) sending PROXY protocol v2 in TCP mode, nginx (Debian's
//! package) proxying the websocket with `X-Forwarded-For`. Each client connects from an
//! address of its own on the loopback network (127.0.0.2, .3, ...), so the address the relay
//! records tells who it believed: the balancer (127.0.0.1) or the client behind it. Read back
//! from the audit records, and from the per-address limit, which must count clients, not the
//! balancer.

use std::net::SocketAddr;
use std::time::Duration;

use testkit::from_address::{connect_from, upgrade, wss_upgrade_from};
use testkit::{free_port, sign_ticket, Pki, RelayProcess, TicketSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `fields` of every audit record in a JSON log.
fn records(log: &str, kind: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["fields"].clone())
        .filter(|f| f["record"] == kind)
        .collect()
}

/// The client addresses (without ports) of the relay's audit records of one kind.
fn clients(relay: &RelayProcess, kind: &str) -> Vec<String> {
    let log = relay.log_text();
    records(&log, kind).iter().map(|r| r["client"].as_str().unwrap().parse::<SocketAddr>().unwrap().ip().to_string()).collect()
}

/// Records of `kind` in the relay's log, waiting until there are `n`.
fn wait_records(relay: &RelayProcess, kind: &str, n: usize) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let got = clients(relay, kind);
        if got.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_haproxy_sending_proxy_v2_the_relay_sees_each_client_not_the_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vm = testkit::echo_target().await;
    // One session per client address: behind the balancer without the PROXY header, the
    // second client would be refused as a second session "from 127.0.0.1".
    let metrics_port = free_port();
    let relay = RelayProcess::start(
        env!("CARGO_BIN_EXE_wsproxy"),
        dir.path(),
        &pki,
        &format!(
            "WSPROXY_LOG_FORMAT=json\nWSPROXY_MAX_SESSIONS_PER_IP=1\nWSPROXY_TRUSTED_PROXIES=127.0.0.1/32\n\
             WSPROXY_PROXY_PROTOCOL=required\nWSPROXY_METRICS_LISTEN=127.0.0.1:{metrics_port}\n"
        ),
    );
    let front = free_port();
    let _haproxy = testkit::balancers::haproxy_send_proxy_v2(dir.path(), front, relay.port);
    let ticket = || sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));

    let (status, _first) = wss_upgrade_from("127.0.0.2", front, &pki.ca_cert, &ticket()).await;
    assert_eq!(status, 101, "{}", relay.log_text());
    let (status, _second) = wss_upgrade_from("127.0.0.3", front, &pki.ca_cert, &ticket()).await;
    assert_eq!(status, 101, "a second client behind the balancer is a second address: {}", relay.log_text());
    // The same client twice: its own limit, counted at its own address.
    let (status, _) = wss_upgrade_from("127.0.0.2", front, &pki.ca_cert, &ticket()).await;
    assert_eq!(status, 503, "{}", relay.log_text());
    assert_eq!(wait_records(&relay, "session_start", 2), ["127.0.0.2", "127.0.0.3"]);
    assert_eq!(wait_records(&relay, "refused", 1), ["127.0.0.2"]);

    // A client that goes around the balancer is itself, and a PROXY header it writes is never
    // read: from a peer that is not trusted it is just not TLS.
    let mut direct = connect_from("127.0.0.4", relay.port).await;
    direct.write_all(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), direct.read_to_end(&mut answer)).await;
    let log = relay.log_text();
    assert!(!log.contains("198.51.100.7"), "a header from a peer that is not trusted was believed: {log}");

    // From the balancer's own address without a header (`required`): closed unanswered, and
    // counted under its own cause.
    let refused = || async {
        let text = testkit::metrics_text(metrics_port).await;
        let line = text.lines().find(|l| l.starts_with("wsproxy_connections_refused_total{cause=\"proxy_header\"}")).map(str::to_string);
        line.and_then(|l| l.rsplit_once(' ').map(|(_, v)| v.parse::<u64>().unwrap()))
            .unwrap_or_else(|| panic!("no proxy_header label: {text}"))
    };
    let before = refused().await;
    let mut bare = connect_from("127.0.0.1", relay.port).await;
    bare.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    // Closed with the request unread: an end of stream or a reset, never an answer.
    let _ = tokio::time::timeout(Duration::from_secs(5), bare.read_to_end(&mut answer)).await.expect("closed");
    assert!(answer.is_empty(), "answered without a PROXY header: {}", String::from_utf8_lossy(&answer));
    assert_eq!(refused().await, before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_the_relay_believes_x_forwarded_for_from_nginx_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vm = testkit::echo_target().await;
    let relay = RelayProcess::start(
        env!("CARGO_BIN_EXE_wsproxy"),
        dir.path(),
        &pki,
        "WSPROXY_LOG_FORMAT=json\nWSPROXY_MAX_SESSIONS_PER_IP=1\nWSPROXY_TRUSTED_PROXIES=127.0.0.1\n",
    );
    let front = free_port();
    // TLS to the relay (re-encrypted), websocket upgrade passed on, X-Forwarded-For appended.
    let _nginx = testkit::balancers::nginx_x_forwarded_for(dir.path(), front, relay.port);
    let ticket = || sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));

    let (status, _first) = upgrade(connect_from("127.0.0.2", front).await, &ticket(), "").await;
    assert_eq!(status, 101, "{}", relay.log_text());
    // A client that writes its own X-Forwarded-For: nginx appends the address it really came
    // from, and only that right-hand end is believed.
    let (status, _second) = upgrade(connect_from("127.0.0.3", front).await, &ticket(), "X-Forwarded-For: 127.0.0.2\r\n").await;
    assert_eq!(status, 101, "the spoofed address must not count against 127.0.0.2's limit: {}", relay.log_text());
    // Straight to the relay with a made-up header: not from a trusted proxy, ignored.
    let direct = tokio_rustls::TlsConnector::from(testkit::client_tls(&pki.ca_cert))
        .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), connect_from("127.0.0.4", relay.port).await)
        .await
        .unwrap();
    let (status, _third) = upgrade(direct, &ticket(), "X-Forwarded-For: 198.51.100.7\r\n").await;
    assert_eq!(status, 101, "{}", relay.log_text());
    assert_eq!(wait_records(&relay, "session_start", 3), ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
}
