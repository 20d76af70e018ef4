//! Audit records from the real relay binary, read back as the JSON lines an operator's log
//! pipeline would parse: one record when a session starts, one when it ends, one per refusal,
//! with the fields docs/AUDIT.md lists, and never a ticket.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::SinkExt;
use sha2::Digest;
use testkit::{close_of, connect_ws, read_exact, sign_ticket, Pki, RelayProcess, TicketSpec, WsOutcome};
use tokio_tungstenite::tungstenite::Message;

/// The `fields` of every audit record in a JSON log.
fn records(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["fields"].clone())
        .filter(|f| f.get("record").is_some())
        .collect()
}

/// What the audit records call a ticket: the SHA-256 of its signature bytes, in hex.
fn fingerprint(ticket: &str) -> String {
    let json: serde_json::Value = serde_json::from_slice(&STANDARD.decode(ticket).unwrap()).unwrap();
    let signature = STANDARD.decode(json["v2_signature"].as_str().unwrap()).unwrap();
    sha2::Sha256::digest(signature).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_and_refusals_leave_one_record_each_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vm = testkit::echo_target().await;
    let relay = RelayProcess::start(env!("CARGO_BIN_EXE_wsproxy"), dir.path(), &pki, "WSPROXY_LOG_FORMAT=json\nWSPROXY_MAX_SESSIONS=1\n");
    let ticket = |key: &std::path::Path| sign_ticket(key, &TicketSpec::new("127.0.0.1", vm));
    let (first, second) = (ticket(&pki.engine_key), ticket(&pki.engine_key));
    let (foreign_key, _) = pki.foreign_engine();
    let forged = ticket(&foreign_key);

    let WsOutcome::Open(mut ws) = connect_ws(&relay.url(&first), Some(&pki.ca_cert)).await else { panic!("{}", relay.log_text()) };
    ws.send(Message::Binary(b"hello".to_vec().into())).await.unwrap();
    assert_eq!(read_exact(&mut ws, &mut Vec::new(), 5).await.unwrap(), b"hello");
    // WSPROXY_MAX_SESSIONS=1: a second console is refused with 503 while the first is open.
    let WsOutcome::Refused(503, _) = connect_ws(&relay.url(&second), Some(&pki.ca_cert)).await else { panic!("capacity") };
    ws.send(Message::Close(None)).await.unwrap();
    let _ = close_of(&mut ws).await;
    let log = relay.wait_log("session closed", std::time::Duration::from_secs(10));
    let WsOutcome::Refused(403, _) = connect_ws(&relay.url(&first), Some(&pki.ca_cert)).await else { panic!("reuse") };
    let WsOutcome::Refused(403, _) = connect_ws(&relay.url(&forged), Some(&pki.ca_cert)).await else { panic!("forged") };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = format!("{log}{}", &relay.log_text()[log.len()..]);

    let all = records(&log);
    let kind = |k: &str| all.iter().filter(|r| r["record"] == k).cloned().collect::<Vec<_>>();
    let (starts, ends, refusals) = (kind("session_start"), kind("session_end"), kind("refused"));
    assert_eq!((starts.len(), ends.len(), refusals.len()), (1, 1, 3), "{log}");
    let (start, end) = (&starts[0], &ends[0]);
    assert_eq!(start["session"], end["session"], "one id from start to end");
    assert_eq!(start["ticket"], fingerprint(&first));
    assert!(start["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{start}");
    assert_eq!(start["target"], format!("tcp://127.0.0.1:{vm}"));
    assert_eq!(start["tls"], "TLSv1.3");
    assert_eq!((end["to_target"].as_u64(), end["to_browser"].as_u64()), (Some(5), Some(5)), "{end}");
    assert_eq!(end["end"], "browser_closed");
    assert!(end["duration_ms"].as_u64().is_some(), "{end}");

    let by_reason = |reason: &str| refusals.iter().find(|r| r["reason"] == reason).unwrap_or_else(|| panic!("no {reason}: {log}")).clone();
    let capacity = by_reason("capacity");
    assert_eq!((capacity["status"].as_u64(), &capacity["ticket"]), (Some(503), &serde_json::json!(fingerprint(&second))));
    let reused = by_reason("reused");
    assert_eq!(
        (reused["status"].as_u64(), &reused["ticket"]),
        (Some(403), &start["ticket"]),
        "a reuse names the ticket's first session's fingerprint"
    );
    let forged_record = refusals.iter().find(|r| r["reason"] != "capacity" && r["reason"] != "reused").unwrap();
    assert_eq!(forged_record["status"].as_u64(), Some(403));
    assert!(forged_record.get("ticket").is_none(), "no fingerprint for a ticket whose signature did not check out: {forged_record}");

    for secret in [&first, &second, &forged] {
        let json: serde_json::Value = serde_json::from_slice(&STANDARD.decode(secret).unwrap()).unwrap();
        assert!(
            !log.contains(secret.as_str()) && !log.contains(json["v2_signature"].as_str().unwrap()),
            "a ticket or its signature in the log"
        );
    }
}

/// `PROXY_HOST=*` listens dual stack by default: a console over IPv4 and one over IPv6 both
/// open, and each record names its client as written, the IPv4 one without `::ffff:`.
#[tokio::test(flavor = "multi_thread")]
async fn the_wildcard_takes_ipv4_and_ipv6_browsers_and_records_each_address_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let vm = testkit::echo_target().await;
    let relay = RelayProcess::start(env!("CARGO_BIN_EXE_wsproxy"), dir.path(), &pki, "WSPROXY_LOG_FORMAT=json\nPROXY_HOST=*\n");
    for client in ["127.0.0.1", "::1"] {
        let ip: std::net::IpAddr = client.parse().unwrap();
        let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
        let at = std::net::SocketAddr::new(ip, relay.port);
        let WsOutcome::Open(mut ws) = testkit::connect_ws_at(at, &relay.url(&ticket), &pki.ca_cert).await else {
            panic!("{client}: {}", relay.log_text())
        };
        ws.send(Message::Binary(b"hi".to_vec().into())).await.unwrap();
        assert_eq!(read_exact(&mut ws, &mut Vec::new(), 2).await.unwrap(), b"hi");
        ws.send(Message::Close(None)).await.unwrap();
        let _ = close_of(&mut ws).await;
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let clients: Vec<String> = records(&relay.log_text())
        .iter()
        .filter(|r| r["record"] == "session_start")
        .map(|r| r["client"].as_str().unwrap().rsplit_once(':').unwrap().0.to_string())
        .collect();
    assert_eq!(clients, ["127.0.0.1", "[::1]"], "{}", relay.log_text());
}
