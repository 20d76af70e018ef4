//! The relay killed with SIGKILL inside its deployed container is restarted by podman (the
//! container's restart policy is on-failure, as the Quadlet unit's Restart=on-failure), and
//! new sessions work again within seconds.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{image_archive, podman, s, stderr, stdout};
use testkit::free_port;
use testkit::hosts::PodmanService;

#[test]
fn killed_relay_is_restarted_by_podman() {
    let common::EngineSide { dir, certs, .. } = common::engine_side();
    let tag = format!("localhost/wsproxy-restart-test:{}", std::process::id());
    let archive = image_archive(&tag);
    let socket = dir.path().join("podman.sock");
    let _api = PodmanService::start(&socket);
    let host = format!("unix://{}", socket.display());
    let port = free_port();
    let o = common::ctl(&[
        "deploy",
        "--target",
        "podman",
        "--host",
        &host,
        "--proxy-fqdn",
        "localhost",
        "--port",
        &port.to_string(),
        "--certs",
        s(&certs),
        "--image",
        &tag,
        "--image-archive",
        s(&archive),
    ]);
    let cleanup = || {
        let _ = Command::new(env!("CARGO_BIN_EXE_wsproxyctl")).args(["undeploy", "--target", "podman", "--host", &host]).output();
        let _ = podman().args(["rmi", "-f", &tag]).output();
    };
    if !o.status.success() {
        cleanup();
        panic!("deploy: {}{}", stdout(&o), stderr(&o));
    }
    let _cleanup = testkit::on_drop(cleanup);
    let pid = |name: &str| -> String {
        let o = podman().args(["inspect", "--format", "{{.State.Pid}}", name]).output().unwrap();
        stdout(&o).trim().to_string()
    };
    let before = pid("wsproxy");
    assert!(before.parse::<u32>().unwrap_or(0) > 0, "relay pid {before:?}");
    Command::new("kill").args(["-KILL", &before]).status().unwrap();
    let killed_at = Instant::now();
    // Podman notices the exit and restarts the container; the relay answers again.
    let mut last = Err(String::new());
    while killed_at.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        let now = pid("wsproxy");
        if now != before && now != "0" && !now.is_empty() {
            last = common::wait_healthz(port, &certs.join("ca.pem"));
            if matches!(last, Ok((200, _))) {
                break;
            }
        }
    }
    assert_eq!(last, Ok((200, "ok\n".to_string())), "not restarted: {}", stdout(&podman().args(["ps", "-a"]).output().unwrap()));
    let took = killed_at.elapsed();
    eprintln!("relay restarted and serving {:.1} s after SIGKILL", took.as_secs_f64());
    assert!(took < Duration::from_secs(30));
}
