//! The relay image, built by `wsproxyctl image build` and run by real podman: loadable, small,
//! reproducible, no shell, non-root, and serving /healthz with certificates from `certs issue`
//! under the same hardening the rendered units use (read-only root, no capabilities).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{ctl, podman, s, stderr};
use testkit::free_port;

/// Build the image once for all tests here (the static relay build is the slow part).
fn image_archive() -> &'static (PathBuf, String) {
    static BUILT: OnceLock<(PathBuf, String)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let tag = format!("localhost/wsproxy-test:{}", std::process::id());
        (common::image_archive(&tag), tag)
    })
}

fn archive_entries(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

#[test]
fn archive_is_small_reproducible_and_holds_only_the_relay() {
    let (archive, tag) = image_archive();
    let entries = archive_entries(archive);
    let index: serde_json::Value = serde_json::from_slice(&entries.iter().find(|(n, _)| n == "index.json").unwrap().1).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], tag.as_str());
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&entries.iter().find(|(n, _)| n.ends_with(&manifest_digest)).unwrap().1).unwrap();
    let layer_size = manifest["layers"][0]["size"].as_u64().unwrap();
    assert!(layer_size < 10 * 1024 * 1024, "compressed image {layer_size} bytes must be under 10 MiB");
    println!("compressed layer: {} KiB", layer_size / 1024);

    // The layer holds the relay binary and its directories, nothing else: no shell, no libc.
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:");
    let layer_gz = &entries.iter().find(|(n, _)| n.ends_with(layer_digest)).unwrap().1;
    let mut layer = tar::Archive::new(flate2::read::GzDecoder::new(&layer_gz[..]));
    let files: Vec<String> = layer.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
    assert_eq!(files, ["etc/", "etc/wsproxy/", "run/", "run/secrets/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/wsproxy"]);

    // Same binary, same digest.
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/x86_64-unknown-linux-gnu/release/wsproxy");
    let again = archive.with_file_name("again.tar");
    let o = ctl(&["image", "build", "--json", "--out", s(&again), "--tag", tag, "--binary", s(&binary)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["manifest_digest"].as_str().unwrap(), format!("sha256:{manifest_digest}"));

    // skopeo reads it as an OCI archive and copies it blob by blob, checking every digest, as
    // a push to a registry would.
    testkit::require_tool("skopeo");
    let o = Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}", archive.display())).output().unwrap();
    assert!(o.status.success(), "skopeo inspect: {}", stderr(&o));
    let inspected: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(inspected["Labels"]["org.opencontainers.image.title"], "ovirt-websocket-proxy");
    // The platform is the relay binary's ELF machine, which is this machine's here.
    let native = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    assert_eq!(inspected["Architecture"], native, "{inspected}");
    let copy = archive.with_file_name("copied-layout");
    let o = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("oci:{}:copied", copy.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));

    // A dynamically linked binary is refused with the command that builds a static one.
    let o = ctl(&["image", "build", "--out", s(&again), "--binary", env!("CARGO_BIN_EXE_wsproxyctl")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("crt-static"), "{}", stderr(&o));
}

#[test]
fn podman_loads_and_runs_it_non_root_without_shell_serving_healthz() {
    let (archive, tag) = image_archive();
    let o = podman().args(["load", "-i", s(archive)]).output().unwrap();
    assert!(o.status.success(), "podman load: {}", stderr(&o));

    let user = podman().args(["image", "inspect", "--format", "{{.Config.User}}", tag]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532");

    let help = podman().args(["run", "--rm", tag, "--help"]).output().unwrap();
    assert!(help.status.success(), "{}", stderr(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--cert-for-data-verification"));

    let shell = podman().args(["run", "--rm", "--entrypoint", "/bin/sh", tag, "-c", "true"]).output().unwrap();
    assert!(!shell.status.success(), "the image must hold no shell");

    // Certificates from `certs issue`, handed in as podman secrets readable by uid 65532.
    let common::EngineSide { dir: _dir, certs, .. } = common::engine_side();
    let suffix = std::process::id();
    let secrets = [
        (format!("wsproxy-test-crt-{suffix}"), certs.join("websocket-proxy.cer")),
        (format!("wsproxy-test-key-{suffix}"), certs.join("websocket-proxy.key.nopass")),
        (format!("wsproxy-test-engine-{suffix}"), certs.join("engine.cer")),
    ];
    for (name, file) in &secrets {
        let _ = podman().args(["secret", "rm", name]).output();
        let o = podman().args(["secret", "create", name, s(file)]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let port = free_port();
    let name = format!("wsproxy-test-{suffix}");
    let mut run = podman();
    // --read-only: podman bind-mounts each secret as a file under /run/secrets, which it cannot
    // create on a read-only root; a small tmpfs there is the mount point.
    run.args(["run", "-d", "--name", &name, "--read-only", "--tmpfs", "/run/secrets:size=1m,mode=0755"])
        .args(["--cap-drop", "ALL", "--security-opt", "no-new-privileges"])
        .args(["-p", &format!("127.0.0.1:{port}:6100")]);
    for (secret, _) in &secrets {
        run.arg("--secret").arg(format!("{secret},uid=65532,gid=65532,mode=0400"));
    }
    run.arg(tag).args([
        "--ssl-certificate",
        &format!("/run/secrets/{}", secrets[0].0),
        "--ssl-key",
        &format!("/run/secrets/{}", secrets[1].0),
        "--cert-for-data-verification",
        &format!("/run/secrets/{}", secrets[2].0),
    ]);
    let o = run.output().unwrap();
    let cleanup = || {
        let _ = podman().args(["rm", "-f", &name]).output();
        let _ = podman().args(["rmi", "-f", tag]).output();
        for (secret, _) in &secrets {
            let _ = podman().args(["secret", "rm", secret]).output();
        }
    };
    if !o.status.success() {
        cleanup();
        panic!("podman run: {}", stderr(&o));
    }
    let _cleanup = testkit::on_drop(cleanup);
    let last = common::wait_healthz(port, &certs.join("ca.pem"));
    let logs = podman().args(["logs", &name]).output().unwrap();
    assert_eq!(last, Ok((200, "ok\n".to_string())), "logs: {}", stderr(&logs));
    // The relay process runs as 65532 with no capabilities, no new privileges, seccomp on.
    let pid = podman().args(["inspect", "--format", "{{.State.Pid}}", &name]).output().unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(field("Uid:"), "65532");
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    // podman's default seccomp profile is in force (2 = filter mode).
    assert_eq!(field("Seccomp:"), "2");
}
