//! The README followed line by line, as a new user would, on one machine: every shell block is
//! either run here (with the engine's /etc/pki/ovirt-engine played by an openssl-made PKI, the
//! proxy and engine hosts by two directories, proxy.example.com by localhost, the hypervisor
//! by Xvnc) or listed below with the test that runs it instead. A new README block that is
//! neither fails this test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::s;
use testkit::{free_port, Pki, VncSecurity, Xvnc};

/// Blocks not run here, by their first command, and why.
const ELSEWHERE: &[(&str, &str)] = &[
    ("cargo run --release -- demo", "the set-up commands: demo is tests/demo.rs and tests/browser.rs, test.sh is this suite"),
    ("wsproxyctl deploy --target podman", "tests/deploy_podman.rs runs this deploy over ssh with the same flags"),
    ("wsproxyctl deploy --target k8s", "needs a cluster: tests/deploy_k8s.rs against a scripted API server, tests/kind.rs on kind"),
    ("engine-config -s", "needs an engine: tests/deploy_podman.rs runs --configure-engine against engine-config stand-ins"),
    ("wsproxyctl sessions", "needs a relay with its admin listener on: tests/sessions.rs runs list and kill against one"),
];

/// Lines not run inside blocks that are run, and why.
const LINES_ELSEWHERE: &[(&str, &str)] = &[
    ("wsproxyctl certs fetch", "needs the engine's https server: tests/pki.rs runs fetch against one"),
    ("wsproxy --config", "started in the background by this test (it runs until stopped)"),
    ("kubectl create namespace", "needs a cluster; helm's objects are checked by tests/helm.rs"),
    ("kubectl label namespace", "needs a cluster"),
    ("kubectl -n consoles create secret", "needs a cluster; the chart's existingSecret path is tests/helm.rs's"),
    ("helm test", "needs a cluster: the test pod's command and labels are checked by tests/helm.rs"),
    ("kubectl apply -f ./k8s/namespace.yaml", "needs a cluster; the file is checked by tests/render.rs"),
    ("kubectl apply -k", "needs a cluster: the kind suite (tests/kind.rs, WSPROXY_E2E_KIND=1); render's output is checked below"),
];

struct World {
    _dir: tempfile::TempDir,
    engine_root: PathBuf,
    engine_host: PathBuf,
    proxy_host: PathBuf,
    wsproxy_dir: PathBuf,
    bin: PathBuf,
    port: u16,
    vnc_port: u16,
}

impl World {
    fn substitute(&self, text: &str) -> String {
        text.replace("/etc/pki/ovirt-engine/", &format!("{}/", self.engine_root.display()))
            .replace("/etc/wsproxy", s(&self.wsproxy_dir))
            .replace("proxy.example.com:6100", &format!("localhost:{}", self.port))
            .replace("PROXY_PORT=6100", &format!("PROXY_PORT={}", self.port))
            .replace("scp root@proxy.example.com:", &format!("cp {}/", self.proxy_host.display()))
            .replace("root@proxy.example.com:", &format!("{}/", self.proxy_host.display()))
            .replace("scp ", "cp ")
            .replace("proxy.example.com", "localhost")
            .replace("hypervisor1.example.com:5900", &format!("127.0.0.1:{}", self.vnc_port))
            .replace("charts/ovirt-websocket-proxy", s(&Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/ovirt-websocket-proxy")))
            // No cluster here: what helm would install is rendered instead.
            .replace("helm install", "helm template")
    }

    /// Run one command (continuations joined) on the host a comment named last.
    fn run(&self, line: &str, host: &Path) {
        let mut line = self.substitute(line);
        let mut cwd = host.to_path_buf();
        if line.contains("wsproxyctl image build") {
            // "from this checkout": the image is built where the sources are.
            cwd = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            line = line.replace("--out wsproxy.oci.tar", &format!("--out {}/wsproxy.oci.tar", host.display()));
        }
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools");
        let o = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &line])
            .current_dir(&cwd)
            .env("PATH", format!("{}:{}:{}", self.bin.display(), tools.display(), std::env::var("PATH").unwrap_or_default()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "README line failed: {line}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The README's shell blocks, indentation removed.
fn blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    for line in readme.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("```sh") {
            current = Some((String::new(), indent));
        } else if line.trim_start().starts_with("```") {
            if let Some((b, _)) = current.take() {
                out.push(b);
            }
        } else if let Some((b, strip)) = current.as_mut() {
            b.push_str(line.get(*strip..).unwrap_or(line.trim_start()));
            b.push('\n');
        }
    }
    out
}

/// Split a block into commands: continuations joined, heredocs kept whole, comments separate.
fn commands(block: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut lines = block.lines();
    while let Some(line) = lines.next() {
        let mut cmd = line.to_string();
        while cmd.ends_with('\\') {
            cmd.pop();
            cmd.push_str(lines.next().unwrap_or("").trim_start());
        }
        if let Some(tag) = cmd.split("<<'").nth(1).and_then(|t| t.split('\'').next()).map(str::to_string) {
            for body in lines.by_ref() {
                cmd.push('\n');
                cmd.push_str(body);
                if body.trim() == tag {
                    break;
                }
            }
        }
        if !cmd.trim().is_empty() {
            out.push(cmd);
        }
    }
    out
}

struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_runs_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("openssl")).unwrap();
    let pki = Pki::new(&dir.path().join("openssl"));
    // The engine's PKI where engine-setup puts it.
    let engine_root = dir.path().join("etc-pki-ovirt-engine");
    for (from, to) in [
        (&pki.ca_cert, "ca.pem"),
        (&pki.ca_key, "private/ca.pem"),
        (&pki.engine_cert, "certs/engine.cer"),
        (&pki.engine_key, "keys/engine_id_rsa"),
    ] {
        let to = engine_root.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    let vnc = Xvnc::start("vmpass", VncSecurity::VncAuth);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_wsproxyctl")).parent().unwrap().to_path_buf();
    let world = World {
        engine_host: dir.path().join("engine-host"),
        proxy_host: dir.path().join("proxy-host"),
        wsproxy_dir: dir.path().join("etc-wsproxy"),
        engine_root,
        bin,
        port: free_port(),
        vnc_port: vnc.port,
        _dir: dir,
    };
    for d in [&world.engine_host, &world.proxy_host, &world.wsproxy_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    assert!(world.bin.join("wsproxy").is_file(), "the relay binary is built with the workspace's tests");

    let mut relay: Option<Background> = None;
    let mut ran = 0;
    for block in blocks() {
        let first = commands(&block).into_iter().find(|c| !c.trim_start().starts_with('#')).unwrap_or_default();
        if let Some((_, why)) = ELSEWHERE.iter().find(|(prefix, _)| first.starts_with(prefix)) {
            eprintln!("not here: {first:.60}... ({why})");
            continue;
        }
        // Commands run on the engine host unless a comment says the proxy host.
        let mut host = world.engine_host.clone();
        for cmd in commands(&block) {
            let trimmed = cmd.trim_start();
            if trimmed.starts_with('#') {
                if trimmed.contains("on the proxy host") {
                    host = world.proxy_host.clone();
                } else if trimmed.contains("on the engine") {
                    host = world.engine_host.clone();
                }
                continue;
            }
            if let Some((_, why)) = LINES_ELSEWHERE.iter().find(|(prefix, _)| trimmed.starts_with(prefix)) {
                if trimmed.starts_with("wsproxy --config") {
                    // The relay as the README runs it, with the certificates the README issued.
                    let certs = world.wsproxy_dir.join("certs");
                    std::fs::create_dir_all(&certs).unwrap();
                    for f in ["websocket-proxy.cer", "websocket-proxy.key.nopass", "engine.cer"] {
                        std::fs::copy(world.engine_host.join("proxy-certs").join(f), certs.join(f)).unwrap();
                    }
                    let line = world.substitute(trimmed);
                    let words: Vec<&str> = line.split_whitespace().collect();
                    relay = Some(Background(
                        Command::new(world.bin.join(words[0]))
                            .args(&words[1..])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap(),
                    ));
                    testkit::wait_port(world.port, std::time::Duration::from_secs(10));
                } else {
                    eprintln!("not here: {trimmed:.60}... ({why})");
                }
                continue;
            }
            world.run(&cmd, &host);
            ran += 1;
        }
    }
    assert!(relay.is_some(), "the README's relay block was not found");
    // What the run left behind is what the README says it leaves.
    let issued = world.engine_host.join("proxy-certs");
    for f in ["ca.pem", "websocket-proxy.cer", "websocket-proxy.key.nopass", "engine.cer"] {
        assert!(issued.join(f).is_file(), "certs issue did not write {f}");
    }
    assert!(world.proxy_host.join("proxy-certs/websocket-proxy.cer").is_file(), "the signed certificate reached the proxy host");
    assert!(world.engine_host.join("k8s/kustomization.yaml").is_file(), "render wrote the kustomize base");
    assert!(world.engine_host.join("wsproxy.oci.tar").is_file(), "image build wrote the archive");
    assert!(ran >= 9, "only {ran} README commands ran");
}
