//! `wsproxyctl verify` against a real relay and a real Xvnc: it passes when a browser could
//! open a console, and fails, naming the step, when it could not.

mod common;

use common::{args, ctl_async, s, stderr, stdout, InProcessRelay};
use testkit::{Pki, VncSecurity, Xvnc};

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_through_a_working_proxy_and_names_failures() {
    let common::EngineSide { dir, pki, certs } = common::engine_side();
    let settings = InProcessRelay::tls_settings(&certs);
    let relay = InProcessRelay::start_tls(&certs).await;
    let vnc = Xvnc::start("pw", VncSecurity::VncAuth);
    let proxy = format!("wss://localhost:{}", relay.port);
    let ca = certs.join("ca.pem");
    let vnc_addr = format!("127.0.0.1:{}", vnc.port);

    // Full check with the VNC server: RFB banner through the relay.
    let o = ctl_async(args(&[
        "verify",
        "--proxy",
        &proxy,
        "--ca",
        s(&ca),
        "--engine-cert",
        s(&pki.engine_cert),
        "--engine-key",
        s(&pki.engine_key),
        "--vnc",
        &vnc_addr,
    ]))
    .await;
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    for step in ["dns", "tcp", "tls", "healthz", "engine ticket accepted", "foreign ticket refused"] {
        assert!(text.contains(&format!("[ok] {step}")), "{step} missing:\n{text}");
    }
    assert!(text.contains("RFB 003.008"), "{text}");

    // Without a VNC server: a closed port must come back 1011; JSON output for machines.
    let o = ctl_async(args(&["verify", "--json", "--proxy", &proxy, "--ca", s(&ca), "--engine-key", s(&pki.engine_key)])).await;
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["steps"].as_array().unwrap().iter().any(|s| s["detail"].as_str().unwrap().contains("1011")));

    // The wrong CA: the TLS step fails and says what to check.
    let (_, foreign) = pki.foreign_engine();
    let o = ctl_async(args(&["verify", "--proxy", &proxy, "--ca", s(&foreign)])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("[FAIL] tls"), "{}", stdout(&o));

    // A key that is not the engine's: refused before anything is sent.
    let (foreign_key, _) = pki.foreign_engine();
    let o = ctl_async(args(&[
        "verify",
        "--proxy",
        &proxy,
        "--ca",
        s(&ca),
        "--engine-cert",
        s(&pki.engine_cert),
        "--engine-key",
        s(&foreign_key),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not belong to --engine-cert"), "{}", stderr(&o));

    // A relay that trusts another engine refuses our tickets: the ticket step says why.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other_pki = Pki::new(&other);
    let mut settings2 = settings.clone();
    settings2[2].1 = other_pki.engine_cert.display().to_string();
    let relay2 = InProcessRelay::start(&settings2.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await;
    let o = ctl_async(args(&[
        "verify",
        "--proxy",
        &format!("wss://localhost:{}", relay2.port),
        "--ca",
        s(&ca),
        "--engine-key",
        s(&pki.engine_key),
    ]))
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("CERT_FOR_DATA_VERIFICATION"), "{}", stdout(&o));

    // Nothing listening.
    drop(relay);
    drop(relay2);
    let port = testkit::free_port();
    let o = ctl_async(args(&["verify", "--proxy", &format!("wss://localhost:{port}"), "--ca", s(&ca)])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("[FAIL] tcp"), "{}", stdout(&o));
}
