//! `wsproxyctl demo`, the README's first command: it must work on a bare machine (built-in VNC
//! test pattern) and with Xvnc, and say so with a passing verify.

mod common;

use common::{args, ctl_async, stderr, stdout, InProcessRelay};
use futures_util::SinkExt;
use testkit::{connect_ws, read_exact, rfb_handshake, sign_ticket, TicketSpec, WsOutcome};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread")]
async fn demo_once_with_builtin_vnc_and_with_xvnc() {
    for extra in [&["--builtin-vnc"][..], &[][..]] {
        let mut a = args(&["demo", "--once", "--port", "0", "--json"]);
        a.extend(args(extra));
        let o = ctl_async(a).await;
        assert!(o.status.success(), "{extra:?}: {}{}", stdout(&o), stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["verify"]["ok"], true, "{v}");
        assert!(v["ticket_url"].as_str().unwrap().starts_with("wss://localhost:"));
        assert!(stderr(&o).is_empty(), "--json prints no progress lines: {}", stderr(&o));
        let dir = v["dir"].as_str().unwrap();
        assert!(!std::path::Path::new(dir).exists(), "the temporary directory is removed at the end");
        if let Some(display) = v["x_display"].as_u64() {
            // Xvnc was stopped so that it cleaned up after itself.
            let lock = format!("/tmp/.X{display}-lock");
            assert!(!std::path::Path::new(&lock).exists(), "Xvnc left {lock} behind");
        }
    }
}

/// `demo --podman`: the same demo with the relay in a container on the local podman (the
/// hardened container deploy creates, on the host network), removed again at the end.
#[tokio::test(flavor = "multi_thread")]
async fn demo_with_podman_runs_the_relay_in_a_container_and_removes_it() {
    let tag = format!("localhost/wsproxy-demo-test:{}", std::process::id());
    let archive = common::image_archive(&tag);
    let o = ctl_async(args(&["demo", "--once", "--podman", "--image-archive", common::s(&archive), "--builtin-vnc", "--port", "0"])).await;
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("relay running in podman container wsproxy-demo"), "{}", stderr(&o));
    assert!(stdout(&o).contains("[ok] engine ticket accepted"), "{}", stdout(&o));
    let left = common::podman().args(["ps", "-a", "-q", "--filter", "name=wsproxy-demo"]).output().unwrap();
    let volumes = common::podman().args(["volume", "ls", "-q", "--filter", "name=wsproxy-demo"]).output().unwrap();
    let _ = common::podman().args(["rmi", "-f", &tag]).output();
    assert_eq!(stdout(&left).trim(), "", "the demo container is removed");
    assert_eq!(stdout(&volumes).trim(), "", "the demo volume is removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_keeps_a_given_directory_and_rejects_a_wrong_novnc_dir() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    let o = ctl_async(args(&["demo", "--once", "--builtin-vnc", "--port", "0", "--dir", keep.to_str().unwrap()])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(keep.join("engine-pki/ca.pem").is_file() && keep.join("proxy-certs/websocket-proxy.cer").is_file());
    let steps = stderr(&o);
    assert!(steps.contains("throwaway engine CA") && steps.contains("verifying as a browser would"), "{steps}");
    assert!(stdout(&o).contains("[ok] engine ticket accepted"), "{}", stdout(&o));
    let o = ctl_async(args(&["demo", "--once", "--novnc", "/nonexistent"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("apt-get install novnc"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn builtin_vnc_server_shows_the_test_pattern_through_the_relay() {
    let common::EngineSide { dir: _dir, pki, certs } = common::engine_side();
    let relay = InProcessRelay::start_tls(&certs).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vnc_port = listener.local_addr().unwrap().port();
    tokio::spawn(wsproxyctl::demo::rfb_server::serve(listener, "pattern".into()));

    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc_port));
    let WsOutcome::Open(mut ws) = connect_ws(&format!("wss://localhost:{}/{ticket}", relay.port), Some(&certs.join("ca.pem"))).await else {
        panic!("refused")
    };
    let init = rfb_handshake(&mut ws, "pattern").await.unwrap();
    assert_eq!((init.width, init.height), (640, 400));
    // Ask for the whole screen in the server's pixel format (32 bpp little endian, RGB shifts 16/8/0).
    let mut req = vec![3u8, 0];
    for v in [0u16, 0, 640, 400] {
        req.extend_from_slice(&v.to_be_bytes());
    }
    ws.send(Message::Binary(req.into())).await.unwrap();
    let mut buf = Vec::new();
    let head = read_exact(&mut ws, &mut buf, 16).await.unwrap();
    assert_eq!(head[0], 0, "FramebufferUpdate");
    let pixels = read_exact(&mut ws, &mut buf, 640 * 400 * 4).await.unwrap();
    let px = |x: usize, y: usize| {
        let i = (y * 640 + x) * 4;
        [pixels[i + 2], pixels[i + 1], pixels[i]]
    };
    assert_eq!(px(10, 10), [0x3c, 0x8d, 0x2f], "top half is oVirt green");
    assert_eq!(px(5, 399), [255, 255, 255], "first bar is white");
    assert_eq!(px(635, 399), [0, 0, 0], "last bar is black");

    // A wrong password is refused by the built-in server, as a real one would.
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new("127.0.0.1", vnc_port));
    let WsOutcome::Open(mut ws) = connect_ws(&format!("wss://localhost:{}/{ticket}", relay.port), Some(&certs.join("ca.pem"))).await else {
        panic!("refused")
    };
    assert!(rfb_handshake(&mut ws, "wrong").await.is_err());
}
