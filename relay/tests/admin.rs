//! The admin listener of the real relay binary: sessions listed and ended, by an operator who
//! proves who they are with a client certificate from the CA (mutual TLS) or a bearer token,
//! and nobody else. The browser of an ended session sees close 1008 with the reason; the
//! session's audit record and metric say `killed`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use testkit::{close_of, connect_ws, free_port, read_exact, sign_ticket, Pki, RelayProcess, TicketSpec, WsOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "5f2b9c0e7a1d4e3f8b6a2c9d0e1f3a4b";

/// TLS to the admin listener trusting the test CA, with a client certificate or without.
fn admin_tls(ca: &Path, client: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    })
}

/// One request to the admin listener: the status and the body, or why there was none.
async fn admin(port: u16, tls: Arc<rustls::ClientConfig>, method: &str, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut io = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    io.write_all(format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    io.read_to_end(&mut answer).await.map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))?;
    Ok((status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_lists_and_ends_sessions_with_a_client_certificate_or_a_token_and_nobody_else_can() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (client_cert, client_key) = (dir.path().join("admin.cer"), dir.path().join("admin.key"));
    pki.issue_client("operator", &client_key, &client_cert);
    let (foreign_key, foreign_cert) = pki.foreign_engine();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (admin_port, metrics_port) = (free_port(), free_port());
    let vm = testkit::echo_target().await;
    let relay = RelayProcess::start(
        env!("CARGO_BIN_EXE_wsproxy"),
        dir.path(),
        &pki,
        &format!(
            "WSPROXY_LOG_FORMAT=json\nWSPROXY_ADMIN_LISTEN=127.0.0.1:{admin_port}\nWSPROXY_ADMIN_CLIENT_CA={}\n\
             WSPROXY_ADMIN_TOKEN_FILE={}\nWSPROXY_METRICS_LISTEN=127.0.0.1:{metrics_port}\n",
            pki.ca_cert.display(),
            token_file.display()
        ),
    );
    testkit::wait_port(admin_port, Duration::from_secs(10));
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let WsOutcome::Open(mut ws) = connect_ws(&relay.url(&ticket), Some(&pki.ca_cert)).await else { panic!("{}", relay.log_text()) };
    ws.send(Message::Binary(b"hello".to_vec().into())).await.unwrap();
    assert_eq!(read_exact(&mut ws, &mut Vec::new(), 5).await.unwrap(), b"hello");

    // Nobody else: no credentials, a wrong token, a certificate the CA did not sign.
    let plain = admin_tls(&pki.ca_cert, None);
    assert_eq!(admin(admin_port, plain.clone(), "GET", "/sessions", None).await.unwrap().0, 401);
    assert_eq!(admin(admin_port, plain.clone(), "GET", "/sessions", Some("not-the-token-at-all-0000")).await.unwrap().0, 401);
    let foreign = admin_tls(&pki.ca_cert, Some((&foreign_cert, &foreign_key)));
    let refused = admin(admin_port, foreign, "GET", "/sessions", None).await;
    assert!(refused.is_err(), "a certificate from another CA was let in: {refused:?}");
    assert_eq!(admin(admin_port, plain.clone(), "POST", "/sessions/kill?client=127.0.0.1", None).await.unwrap().0, 401);

    // The token: the session, with what it relayed so far.
    let (status, body) = admin(admin_port, plain.clone(), "GET", "/sessions", Some(TOKEN)).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    let session = &listed[0];
    assert!(session["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{session}");
    assert_eq!(session["target"], format!("tcp://127.0.0.1:{vm}"));
    assert_eq!((session["to_target"].as_u64(), session["to_browser"].as_u64()), (Some(5), Some(5)), "{session}");
    assert_eq!(session["ticket"].as_str().unwrap().len(), 64, "a fingerprint, never the ticket: {session}");
    assert!(!body.contains(&ticket[..40]));

    // The client certificate: end it by id.
    let operator = admin_tls(&pki.ca_cert, Some((&client_cert, &client_key)));
    let id = session["id"].as_str().unwrap();
    let (status, body) = admin(admin_port, operator.clone(), "POST", &format!("/sessions/kill?id={id}"), None).await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"ended":1}"#));
    let (code, reason) = tokio::time::timeout(Duration::from_secs(5), close_of(&mut ws)).await.unwrap().expect("a close frame");
    assert_eq!(code, 1008);
    assert!(reason.contains("administrator"), "{reason}");
    let log = relay.wait_log("\"end\":\"killed\"", Duration::from_secs(5));
    assert!(log.contains("\"end\":\"killed\""), "{log}");
    let (_, body) = admin(admin_port, operator.clone(), "GET", "/sessions", None).await.unwrap();
    assert_eq!(body, "[]");
    let metrics = testkit::metrics_text(metrics_port).await;
    assert!(metrics.contains("wsproxy_sessions_ended_total{reason=\"killed\"} 1"), "{metrics}");

    // A kill must say which sessions.
    let (status, body) = admin(admin_port, operator, "POST", "/sessions/kill", None).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(!relay.log_text().contains(TOKEN), "the token was logged");

    // Connections that never authenticate hold at most 16 places; beyond, closed at once, and
    // the listener serves again when they go.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(tokio::net::TcpStream::connect(("127.0.0.1", admin_port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(admin(admin_port, plain.clone(), "GET", "/sessions", Some(TOKEN)).await.is_err(), "a 17th connection was served");
    drop(idle);
    let mut served = Err(String::new());
    for _ in 0..50 {
        served = admin(admin_port, plain.clone(), "GET", "/sessions", Some(TOKEN)).await;
        if served.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served.unwrap().0, 200);
}

#[test]
fn the_admin_listener_needs_a_way_to_tell_who_asks() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("admin.conf");
    std::fs::write(&conf, "PROXY_HOST=127.0.0.1\nSSL_CERTIFICATE=/x.pem\nSSL_KEY=/x.key\nWSPROXY_ADMIN_LISTEN=127.0.0.1:6101\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wsproxy")).arg("--config").arg(&conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("WSPROXY_ADMIN_CLIENT_CA") && stderr.contains("WSPROXY_ADMIN_TOKEN_FILE"), "{stderr}");
}
