//! `wsproxyctl certs issue --client` and `wsproxyctl sessions list|kill` against a relay with its
//! admin listener on: the operator's certificate from the same CA as the proxy's, and the
//! bearer token, each let in; an open console listed and then ended (its browser sees 1008).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{ctl, ctl_async, s, stderr, stdout, InProcessRelay};
use futures_util::SinkExt;
use testkit::{close_of, connect_ws, read_exact, sign_ticket, TicketSpec, WsOutcome};
use tokio_tungstenite::tungstenite::Message;
use wsproxy::config::key;

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_with_a_client_certificate_or_the_token_lists_and_ends_consoles() {
    let common::EngineSide { dir, pki, certs } = common::engine_side();
    let o = ctl(&["certs", "issue", "--client", "alice", "--ca-cert", s(&pki.ca_cert), "--ca-key", s(&pki.ca_key), "--out", s(&certs)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (client_cert, client_key) = (certs.join("admin-alice.cer"), certs.join("admin-alice.key"));
    assert_eq!(std::fs::metadata(&client_key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(certs.join("websocket-proxy.cer").exists(), "the proxy's own files stay");
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, "9c1f0e2d3b4a59687766554433221100\n").unwrap();

    let admin_port = testkit::free_port();
    let mut settings = InProcessRelay::tls_settings(&certs);
    settings.extend([
        (key::WSPROXY_ADMIN_LISTEN, format!("127.0.0.1:{admin_port}")),
        (key::WSPROXY_ADMIN_CLIENT_CA, pki.ca_cert.display().to_string()),
        (key::WSPROXY_ADMIN_TOKEN_FILE, token_file.display().to_string()),
    ]);
    let relay = InProcessRelay::start(&settings.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    let vm = testkit::echo_target().await;
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let ca = certs.join("ca.pem");
    let WsOutcome::Open(mut ws) = connect_ws(&format!("wss://localhost:{}/{ticket}", relay.port), Some(&ca)).await else {
        panic!("console")
    };
    ws.send(Message::Binary(b"ping!".to_vec().into())).await.unwrap();
    read_exact(&mut ws, &mut Vec::new(), 5).await.unwrap();

    let admin = format!("https://localhost:{admin_port}");
    let with = |extra: &[&str]| -> Vec<String> {
        ["--admin", admin.as_str(), "--ca", s(&ca)].iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let args =
        |verb: &str, extra: &[&str]| -> Vec<String> { ["sessions".to_string(), verb.to_string()].into_iter().chain(with(extra)).collect() };

    let o = ctl_async(args("list", &["--client-cert", s(&client_cert), "--client-key", s(&client_key), "-o", "json"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listed}");
    assert_eq!(sessions[0]["target"], format!("tcp://127.0.0.1:{vm}"));
    assert_eq!(sessions[0]["to_browser"], 5);

    // What `status --admin` adds: the count, or a problem (the check fails) when it cannot be read.
    let admin_with = |token: &std::path::Path| wsproxyctl::sessions::AdminOptions {
        url: admin.clone(),
        ca: ca.clone(),
        client: None,
        token_file: Some(token.to_path_buf()),
        server_name: None,
    };
    let counted = wsproxyctl::deploy::status::Status { ok: true, ..Default::default() }.count_sessions(&admin_with(&token_file)).await;
    assert_eq!((counted.open_sessions, counted.ok), (Some(1), true));
    assert!(counted.to_string().contains("1 open session(s), from the admin listener"), "{counted}");
    let bad = dir.path().join("bad-token");
    std::fs::write(&bad, "11111111111111111111111111111111").unwrap();
    let failed = wsproxyctl::deploy::status::Status { ok: true, ..Default::default() }.count_sessions(&admin_with(&bad)).await;
    assert!(!failed.ok && failed.problems[0].contains("refused the credentials"), "{failed:?}");

    // --server-name is the name the certificate is checked for (through a port-forward the URL
    // says localhost while the certificate names the proxy): one it does not carry fails.
    let o = ctl_async(args("list", &["--token-file", s(&token_file), "--server-name", "other.example.com"])).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("TLS"), "{}", stderr(&o));

    // Text, with the token this time.
    let o = ctl_async(args("list", &["--token-file", s(&token_file)])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("tcp://127.0.0.1:{vm}")), "{}", stdout(&o));

    // No credentials, or the wrong ones: usage errors that say what to give.
    let o = ctl_async(args("list", &[])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--client-cert") && stderr(&o).contains("--token-file"), "{}", stderr(&o));
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "00000000000000000000000000000000").unwrap();
    let o = ctl_async(args("list", &["--token-file", s(&wrong)])).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("refused the credentials"), "{}", stderr(&o));
    let o = ctl_async(args("kill", &["--token-file", s(&token_file)])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--id, --target or --client"), "{}", stderr(&o));

    let o = ctl_async(args("kill", &["--token-file", s(&token_file), "--client", "127.0.0.1"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ended 1 session"), "{}", stdout(&o));
    let (code, reason) = tokio::time::timeout(Duration::from_secs(5), close_of(&mut ws)).await.unwrap().expect("close");
    assert_eq!((code, reason.as_str()), (1008, "session ended by the proxy's administrator"));
    // Gone from the list once its close is done (the relay waits for the browser's answer).
    let mut listing = String::new();
    for _ in 0..50 {
        listing = stdout(&ctl_async(args("list", &["--token-file", s(&token_file)])).await);
        if listing.contains("no open sessions") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listing.contains("no open sessions"), "{listing}");
}
