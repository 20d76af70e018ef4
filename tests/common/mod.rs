//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use wsproxy::config::{key, Key};

pub mod consoles;

/// The relay running in this process, stopped on drop.
pub struct InProcessRelay {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcessRelay {
    /// Start a relay on 127.0.0.1 with the given oVirt-style settings (plus port 0).
    pub async fn start(settings: &[(Key, &str)]) -> InProcessRelay {
        let mut s = wsproxy::config::Settings::default();
        s.set(key::PROXY_HOST, "127.0.0.1", wsproxy::config::Origin::Flag);
        s.set(key::PROXY_PORT, "0", wsproxy::config::Origin::Flag);
        for (k, v) in settings {
            s.set(*k, *v, wsproxy::config::Origin::Flag);
        }
        let relay = wsproxy::Relay::bind(wsproxy::Config::from_settings(&s).unwrap()).await.unwrap();
        let port = relay.local_addr().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(relay.serve(async move {
            let _ = rx.await;
        }));
        InProcessRelay { port, stop: Some(tx) }
    }

    /// TLS settings from a certificate directory made by `certs issue`.
    pub fn tls_settings(dir: &Path) -> Vec<(Key, String)> {
        vec![
            (key::SSL_CERTIFICATE, dir.join("websocket-proxy.cer").display().to_string()),
            (key::SSL_KEY, dir.join("websocket-proxy.key.nopass").display().to_string()),
            (key::CERT_FOR_DATA_VERIFICATION, dir.join("engine.cer").display().to_string()),
        ]
    }
}

impl Drop for InProcessRelay {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Run the wsproxyctl binary.
pub fn ctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsproxyctl")).args(args).output().expect("run wsproxyctl")
}

/// Run the wsproxyctl binary off the async runtime.
pub async fn ctl_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_wsproxyctl")).args(&args).output().unwrap()).await.unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What most tests start from: a throwaway engine PKI and the proxy's certificates for
/// localhost issued from it by `certs issue` (in `certs`), all under `dir`.
pub struct EngineSide {
    pub dir: tempfile::TempDir,
    pub pki: testkit::Pki,
    pub certs: std::path::PathBuf,
}

pub fn engine_side() -> EngineSide {
    let dir = tempfile::tempdir().unwrap();
    let pki = testkit::Pki::new(dir.path());
    let certs = dir.path().join("certs");
    issue_localhost(&pki, &certs);
    EngineSide { dir, pki, certs }
}

/// `certs issue` for localhost/127.0.0.1 from a testkit PKI into `out` (replacing what is there:
/// a rotation).
pub fn issue_localhost(pki: &testkit::Pki, out: &Path) {
    let o = ctl(&[
        "certs",
        "issue",
        "--force",
        "--ca-cert",
        s(&pki.ca_cert),
        "--ca-key",
        s(&pki.ca_key),
        "--fqdn",
        "localhost",
        "--san",
        "127.0.0.1",
        "--engine-cert",
        s(&pki.engine_cert),
        "--out",
        s(out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Podman with the project's containers.conf (runc, cgroupfs, ulimits this host allows).
pub fn podman() -> Command {
    testkit::require_tool("podman");
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/podman/containers.conf"));
    c
}

/// Build the relay image archive once per tag (the static relay build is the slow part).
/// Archives live under target/tmp, one directory per test binary, emptied at its first use
/// in a run: test runs leave nothing in /tmp and do not pile archives up.
pub fn image_archive(tag: &str) -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let binary = exe.file_stem().unwrap().to_string_lossy().split('-').next().unwrap_or("tests").to_string();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("images-{binary}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    let out = dir.join(format!("{}.tar", tag.replace(['/', ':'], "_")));
    if out.is_file() {
        return out;
    }
    let o = Command::new(env!("CARGO_BIN_EXE_wsproxyctl"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["image", "build", "-q", "--out", s(&out), "--tag", tag])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

/// Owned argument list for `ctl_async`.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

/// Poll https://localhost:PORT/healthz (trusting `ca`) until it answers 200 or ~10 s pass;
/// returns the last answer. For relays started in containers.
pub fn wait_healthz(port: u16, ca: &Path) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut last = Err(String::new());
    for _ in 0..100 {
        last = rt.block_on(testkit::raw_get(port, "localhost", "/healthz", ca));
        if matches!(&last, Ok((200, _))) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last
}

impl InProcessRelay {
    /// A TLS relay on the files of a `certs issue` directory.
    pub async fn start_tls(certs: &Path) -> InProcessRelay {
        let settings = Self::tls_settings(certs);
        Self::start(&settings.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await
    }
}

/// A helper tool scripts/test.sh installs under target/tools (quadlet, helm).
#[allow(dead_code)]
pub fn tool(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("WSPROXY_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools"));
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run `bash scripts/test.sh`, which installs it", path.display());
    path
}
