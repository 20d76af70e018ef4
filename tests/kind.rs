//! The kind suite: a real cluster, created from kind-config.yaml. Runs only with
//! WSPROXY_E2E_KIND=1 on a machine with Docker and kind (see .github/workflows/kind.yml and
//! docs/KIND.md); these machines cannot run an API server, so here it reports that and passes.
//!
//! Flow: create the cluster, `image build` + `kind load image-archive`, build and load the VNC
//! test image, `deploy --target k8s` (NodePort 30610 -> localhost:6100 via kind-config.yaml),
//! `verify --vnc` to the VNC pod through the relay, undeploy, delete the cluster.

mod common;

use std::process::Command;

use common::{s, stderr, stdout};

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

#[test]
fn kind_deploy_verify_undeploy() {
    if std::env::var("WSPROXY_E2E_KIND").as_deref() != Ok("1") {
        eprintln!("kind suite skipped: set WSPROXY_E2E_KIND=1 on a machine with Docker and kind (docs/KIND.md)");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cluster = "wsproxy";
    let _ = Command::new("kind").args(["delete", "cluster", "--name", cluster]).output();
    run(Command::new("kind").args(["create", "cluster", "--name", cluster, "--config"]).arg(root.join("kind-config.yaml")));
    let dir = tempfile::tempdir().unwrap();
    let pki = testkit::Pki::new(dir.path());
    let certs = dir.path().join("certs");
    common::issue_localhost(&pki, &certs);
    let archive = common::image_archive("localhost/ovirt-websocket-proxy:kind");
    run(Command::new("docker")
        .args(["build", "-t", "localhost/wsproxy-test-vnc:latest", "-f"])
        .arg(root.join("tests/kind/vnc.Containerfile"))
        .arg(root.join("tests/kind")));
    run(Command::new("kind").args(["load", "docker-image", "localhost/wsproxy-test-vnc:latest", "--name", cluster]));
    run(Command::new("kubectl").args(["apply", "-f"]).arg(root.join("tests/kind/vnc.yaml")));
    run(Command::new("kubectl").args(["-n", "wsproxy-vnc", "wait", "--for=condition=Ready", "pod/vnc", "--timeout=120s"]));

    let spec = dir.path().join("deploy.yaml");
    std::fs::write(&spec, format!(
        "proxyFqdn: localhost\ncerts: {}\nimage: localhost/ovirt-websocket-proxy:kind\nreplicas: 1\nservice:\n  type: NodePort\n  nodePort: 30610\n",
        certs.display()
    )).unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_wsproxyctl")).args([
        "deploy",
        "--target",
        "k8s",
        "-f",
        s(&spec),
        "--context",
        "kind-wsproxy",
        "--load-into-kind",
        cluster,
        "--image-archive",
        s(&archive),
        "--verify-engine-key",
        s(&pki.engine_key),
        "--verify-vnc",
        "vnc.wsproxy-vnc.svc.cluster.local:5900",
    ]));
    assert!(out.contains("RFB 003.008"), "{out}");
    let out = run(Command::new(env!("CARGO_BIN_EXE_wsproxyctl")).args(["undeploy", "--target", "k8s", "--context", "kind-wsproxy"]));
    assert!(out.contains("Deployment/wsproxy"), "{out}");
    run(Command::new("kind").args(["delete", "cluster", "--name", cluster]));
}
