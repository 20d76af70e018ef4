//! Every error a user can reach from the command line, in one table: the exit code, a part of
//! the message that names the cause, and a part that names the next step. A new error path
//! belongs here; a message that does not say what to do fails this test.
//! (Errors that need a live remote host are tested where that host exists: deploy_podman.rs,
//! deploy_k8s.rs, pki.rs for `certs fetch` against an https server.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{issue_localhost, s, stderr, stdout};
use testkit::Pki;

struct Case {
    what: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    exit: i32,
    cause: &'static str,
    next: &'static str,
}

fn case(what: &'static str, args: &[&str], exit: i32, cause: &'static str, next: &'static str) -> Case {
    Case { what, args: args.iter().map(|a| a.to_string()).collect(), env: Vec::new(), exit, cause, next }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    pki: Pki,
    certs: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let pki = Pki::new(&root);
    let certs = root.join("certs");
    issue_localhost(&pki, &certs);
    std::fs::write(root.join("garbage.pem"), "not a certificate\n").unwrap();
    std::fs::write(root.join("bad.yaml"), "proxyFqdn: proxy.example.com\nport: [1, 2]\n").unwrap();
    std::fs::write(root.join("unknown.yaml"), "proxyFqdn: proxy.example.com\nprot: 6100\n").unwrap();
    std::fs::write(root.join("not-elf"), "#!/bin/sh\n").unwrap();
    // A certificate directory missing its key.
    let partial = root.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    for f in ["ca.pem", "websocket-proxy.cer", "engine.cer"] {
        std::fs::copy(certs.join(f), partial.join(f)).unwrap();
    }
    // A certificate directory whose proxy key is the CA key.
    let leaked = root.join("leaked");
    std::fs::create_dir_all(&leaked).unwrap();
    for f in ["ca.pem", "websocket-proxy.cer", "engine.cer"] {
        std::fs::copy(certs.join(f), leaked.join(f)).unwrap();
    }
    std::fs::copy(&pki.ca_key, leaked.join("websocket-proxy.key.nopass")).unwrap();
    Fixture { _dir: dir, root, pki, certs }
}

fn p(path: &Path) -> String {
    s(path).to_string()
}

fn cases(f: &Fixture) -> Vec<Case> {
    let root = &f.root;
    let (ca, ca_key, engine) = (p(&f.pki.ca_cert), p(&f.pki.ca_key), p(&f.pki.engine_cert));
    let (foreign_key, _) = f.pki.foreign_engine();
    let out = p(&root.join("out"));
    let certs = p(&f.certs);
    let issue = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            ["certs", "issue", "--ca-cert", &ca, "--ca-key", &ca_key, "--engine-cert", &engine].iter().map(|x| x.to_string()).collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let owned = |v: Vec<String>| v;
    let mut list = vec![
        // certs issue
        Case {
            args: owned(vec![
                "certs".into(),
                "issue".into(),
                "--ca-cert".into(),
                ca.clone(),
                "--ca-key".into(),
                p(&foreign_key),
                "--fqdn".into(),
                "proxy.example.com".into(),
                "--out".into(),
                out.clone(),
            ]),
            ..case("CA key of another CA", &[], 2, "does not match the CA certificate", "/etc/pki/ovirt-engine/private/ca.pem")
        },
        Case {
            args: owned(vec![
                "certs".into(),
                "issue".into(),
                "--ca-cert".into(),
                p(&root.join("missing.pem")),
                "--ca-key".into(),
                ca_key.clone(),
                "--fqdn".into(),
                "proxy.example.com".into(),
                "--out".into(),
                out.clone(),
            ]),
            ..case("missing CA certificate", &[], 2, "missing.pem", "/etc/pki/ovirt-engine/ca.pem")
        },
        Case {
            args: owned(vec![
                "certs".into(),
                "issue".into(),
                "--ca-cert".into(),
                p(&root.join("garbage.pem")),
                "--ca-key".into(),
                ca_key.clone(),
                "--fqdn".into(),
                "proxy.example.com".into(),
                "--out".into(),
                out.clone(),
            ]),
            ..case("CA certificate is not PEM", &[], 2, "garbage.pem", "/etc/pki/ovirt-engine/ca.pem")
        },
        Case { args: issue(&["--fqdn", "not a name", "--out", &out]), ..case("bad FQDN", &[], 2, "not a name", "fully qualified") },
        Case {
            args: issue(&["--fqdn", "*.example.com", "--out", &out]),
            ..case("wildcard FQDN", &[], 2, "wildcard", "the proxy's own name")
        },
        Case { args: issue(&["--fqdn", "192.0.2.1", "--out", &out]), ..case("IP address as FQDN", &[], 2, "IP address", "--san") },
        Case {
            args: issue(&["--fqdn", "proxy.example.com", "--out", &out, "--days", "1000"]),
            ..case("validity too long", &[], 2, "398", "--days")
        },
        Case { args: issue(&["--fqdn", "localhost", "--out", &certs]), ..case("key exists", &[], 2, "already exists", "--force") },
        // certs sign / request
        Case {
            args: owned(vec![
                "certs".into(),
                "sign".into(),
                "--ca-cert".into(),
                ca.clone(),
                "--ca-key".into(),
                ca_key.clone(),
                "--csr".into(),
                p(&root.join("garbage.pem")),
                "--fqdn".into(),
                "proxy.example.com".into(),
                "--out".into(),
                p(&root.join("x.cer")),
            ]),
            ..case("CSR is not a CSR", &[], 2, "garbage.pem", "wsproxyctl certs request")
        },
        case("request without a name", &["certs", "request", "--out", "/tmp/x"], 2, "--fqdn", "Usage"),
        // certs fetch: no pin (the engine is not contacted without one being given? it is: refused)
        case(
            "fetch from an unreachable engine",
            &["certs", "fetch", "--engine", "https://127.0.0.1:1", "--ca-fingerprint", "sha256:00", "--out", "/tmp/wsproxy-unused"],
            3,
            "127.0.0.1:1",
            "reachable from here",
        ),
        // certs inspect
        Case {
            args: owned(vec!["certs".into(), "inspect".into(), p(&root.join("nowhere"))]),
            ..case("inspect a missing directory", &[], 1, "nowhere", "certs issue")
        },
        // verify
        case(
            "verify with an http URL",
            &["verify", "--proxy", "https://proxy.example.com"],
            2,
            "https://proxy.example.com",
            "wss://HOST:PORT",
        ),
        case(
            "verify --vnc without the engine key",
            &["verify", "--proxy", "wss://localhost:1", "--vnc", "h:5900"],
            2,
            "--engine-key",
            "Usage",
        ),
        Case {
            args: owned(vec!["verify".into(), "--proxy".into(), "wss://127.0.0.1:1".into(), "--ca".into(), ca.clone()]),
            ..case("nothing listens", &[], 1, "Connection refused", "is the proxy running")
        },
        Case {
            args: owned(vec![
                "verify".into(),
                "--proxy".into(),
                "wss://127.0.0.1:1".into(),
                "--ca".into(),
                p(&root.join("missing-ca.pem")),
            ]),
            ..case("verify with a missing CA file", &[], 2, "missing-ca.pem", "--ca")
        },
        // deploy / undeploy
        Case {
            args: owned(vec![
                "deploy".into(),
                "--target".into(),
                "podman".into(),
                "--host".into(),
                "unix:///nonexistent/podman.sock".into(),
                "--proxy-fqdn".into(),
                "localhost".into(),
                "--certs".into(),
                certs.clone(),
            ]),
            ..case("no podman socket", &[], 3, "no podman API socket", "systemctl enable --now podman.socket")
        },
        Case {
            args: owned(vec![
                "deploy".into(),
                "--target".into(),
                "podman".into(),
                "--host".into(),
                "tcp://x:1".into(),
                "--proxy-fqdn".into(),
                "localhost".into(),
                "--certs".into(),
                certs.clone(),
            ]),
            ..case("unknown host scheme", &[], 2, "tcp://x:1", "ssh://user@host")
        },
        Case {
            args: owned(vec![
                "deploy".into(),
                "--target".into(),
                "podman".into(),
                "--host".into(),
                "ssh://root@".into(),
                "--proxy-fqdn".into(),
                "localhost".into(),
                "--certs".into(),
                certs.clone(),
            ]),
            ..case("ssh URI without a host", &[], 2, "names no host", "ssh://user@host")
        },
        Case {
            args: owned(vec![
                "deploy".into(),
                "--target".into(),
                "podman".into(),
                "--proxy-fqdn".into(),
                "localhost".into(),
                "--certs".into(),
                p(&root.join("partial")),
            ]),
            ..case("certificate directory incomplete", &[], 2, "websocket-proxy.key.nopass", "wsproxyctl certs issue")
        },
        Case {
            args: owned(vec![
                "deploy".into(),
                "--target".into(),
                "podman".into(),
                "--proxy-fqdn".into(),
                "localhost".into(),
                "--certs".into(),
                p(&root.join("leaked")),
            ]),
            ..case("CA key among the proxy's files", &[], 2, "must never leave the engine", "certs issue")
        },
        Case {
            args: owned(vec![
                "deploy".into(),
                "--target".into(),
                "k8s".into(),
                "--proxy-fqdn".into(),
                "localhost".into(),
                "--certs".into(),
                certs.clone(),
                "--load-into-kind".into(),
                "c".into(),
            ]),
            ..case("kind load without an archive", &[], 2, "--load-into-kind", "--image-archive")
        },
        Case {
            args: owned(vec![
                "deploy".into(),
                "--target".into(),
                "k8s".into(),
                "--proxy-fqdn".into(),
                "localhost".into(),
                "--certs".into(),
                certs.clone(),
            ]),
            env: vec![("KUBECONFIG", p(&root.join("no-kubeconfig"))), ("HOME", p(root))],
            ..case("no kubeconfig", &[], 3, "no kubeconfig", "set KUBECONFIG")
        },
        Case {
            args: owned(vec!["undeploy".into(), "--target".into(), "k8s".into()]),
            env: vec![("KUBECONFIG", p(&root.join("no-kubeconfig"))), ("HOME", p(root))],
            ..case("undeploy without a kubeconfig", &[], 3, "no kubeconfig", "set KUBECONFIG")
        },
        case("deploy without a proxy name", &["deploy", "--target", "podman"], 2, "proxy", "--proxy-fqdn"),
        // spec files
        Case {
            args: owned(vec![
                "render".into(),
                "--target".into(),
                "k8s".into(),
                "-f".into(),
                p(&root.join("bad.yaml")),
                "--certs".into(),
                certs.clone(),
                "--out".into(),
                out.clone(),
            ]),
            ..case("spec with a wrong type", &[], 2, "port", "line")
        },
        Case {
            args: owned(vec![
                "render".into(),
                "--target".into(),
                "k8s".into(),
                "-f".into(),
                p(&root.join("unknown.yaml")),
                "--certs".into(),
                certs.clone(),
                "--out".into(),
                out.clone(),
            ]),
            ..case("spec with an unknown field", &[], 2, "prot", "expected one of")
        },
        Case {
            args: owned(vec![
                "render".into(),
                "--target".into(),
                "k8s".into(),
                "-f".into(),
                p(&root.join("absent.yaml")),
                "--out".into(),
                out.clone(),
            ]),
            ..case("missing spec file", &[], 2, "absent.yaml", "config init")
        },
        // image
        Case {
            args: owned(vec![
                "image".into(),
                "build".into(),
                "--binary".into(),
                p(&root.join("not-elf")),
                "--out".into(),
                p(&root.join("i.tar")),
            ]),
            ..case("image from a non-ELF file", &[], 2, "not an ELF executable", "statically linked wsproxy")
        },
        Case {
            args: owned(vec!["image".into(), "build".into(), "--binary".into(), "/bin/ls".into(), "--out".into(), p(&root.join("i.tar"))]),
            ..case("image from a dynamic binary", &[], 2, "dynamically linked", "crt-static")
        },
        // demo
        Case {
            args: owned(vec!["demo".into(), "--once".into(), "--novnc".into(), p(root)]),
            ..case("demo with a wrong noVNC directory", &[], 2, "core/rfb.js", "apt-get install novnc")
        },
        case("demo --image-archive without --podman", &["demo", "--image-archive", "x.tar"], 2, "--podman", "Usage"),
        // A machine without podman: no podman on PATH and no API socket (CONTAINER_HOST points
        // at none, so a socket this machine happens to have is not used).
        Case {
            args: owned(vec!["demo".into(), "--once".into(), "--podman".into(), "--builtin-vnc".into(), "--port".into(), "0".into()]),
            env: vec![
                ("PATH", p(&root.join("empty-path"))),
                ("XDG_RUNTIME_DIR", p(&root.join("no-runtime-dir"))),
                ("CONTAINER_HOST", "unix:///nonexistent/podman.sock".into()),
            ],
            ..case("demo --podman without podman", &[], 3, "cannot run podman", "apt-get install podman")
        },
    ];
    list.retain(|c| !c.what.is_empty());
    list
}

#[test]
fn every_user_error_names_its_cause_and_the_next_step() {
    let f = fixture();
    let mut failures = Vec::new();
    for c in cases(&f) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsproxyctl"));
        cmd.args(&c.args).env("NO_COLOR", "1");
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        let text = format!("{}{}", stdout(&o), stderr(&o));
        let code = o.status.code();
        if code != Some(c.exit) || !text.contains(c.cause) || !text.contains(c.next) {
            failures.push(format!(
                "{}: wanted exit {} naming {:?} and {:?}; got {:?}:\n{}",
                c.what,
                c.exit,
                c.cause,
                c.next,
                code,
                text.trim()
            ));
        }
        assert!(!text.contains("panicked"), "{}: {text}", c.what);
    }
    assert!(failures.is_empty(), "{} of the table's errors fall short:\n\n{}", failures.len(), failures.join("\n\n"));
}
