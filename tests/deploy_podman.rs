//! `deploy --target podman` to a separate host over ssh, as an engine admin runs it: sshd on a
//! loopback port is the proxy host (podman's API behind `docker system dial-stdio`), a network
//! namespace holds the VM's VNC server (real Xvnc). Deploy, verify to that VNC server, a
//! hand-made ticket through the deployed relay, redeploy (no change), rotation (restart, still
//! verifies), undeploy (nothing left), and a failed verify rolled back.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use std::time::{Duration, Instant};

use common::consoles::{self, Arrivals, Streaming};
use common::{image_archive, podman, s, stderr, stdout};
use testkit::hosts::{NetnsHost, NetnsXvnc, PodmanService, SshHost};
use testkit::{connect_ws, free_port, rfb_handshake, sign_ticket, TicketSpec, WsOutcome};

fn deploy(ssh: &SshHost, args: &[&str]) -> Output {
    let tmp = ctl_tmpdir();
    std::fs::create_dir_all(&tmp).unwrap();
    Command::new(env!("CARGO_BIN_EXE_wsproxyctl")).env("PATH", ssh.client_path()).env("TMPDIR", &tmp).args(args).output().unwrap()
}

/// wsproxyctl's TMPDIR in these tests: where its ssh connection keeps its control socket.
fn ctl_tmpdir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wsproxy-deploy-test-tmp-{}", std::process::id()))
}

/// After wsproxyctl exits, its ssh master is gone and so is the directory of its socket.
fn assert_no_ssh_left_behind() {
    let tmp = ctl_tmpdir();
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "wsproxyctl left {left:?} in its TMPDIR");
    let needle = format!("ControlPath={}", tmp.display());
    let masters: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect();
    assert!(masters.is_empty(), "an ssh master outlived wsproxyctl: {masters:?}");
    let _ = std::fs::remove_dir(&tmp);
}

/// Every container and volume of ours, whatever its name (a test's cleanup).
fn remove_managed() {
    let ids = |kind: &str| {
        let o = podman().args([kind, "ls", "-a", "-q", "--filter", "label=io.ovirt.wsproxyctl.managed=true"]).output().unwrap();
        stdout(&o).split_whitespace().map(str::to_string).collect::<Vec<_>>()
    };
    for id in ids("container") {
        let _ = podman().args(["rm", "-f", "-t", "0", &id]).output();
    }
    let o = podman().args(["volume", "ls", "-q", "--filter", "label=io.ovirt.wsproxyctl.managed=true"]).output().unwrap();
    for v in stdout(&o).split_whitespace() {
        let _ = podman().args(["volume", "rm", "-f", v]).output();
    }
}

fn managed_left() -> String {
    let c = podman().args(["ps", "-a", "-q", "--filter", "label=io.ovirt.wsproxyctl.managed=true"]).output().unwrap();
    let v = podman().args(["volume", "ls", "-q", "--filter", "label=io.ovirt.wsproxyctl.managed=true"]).output().unwrap();
    format!("{}{}", stdout(&c), stdout(&v)).trim().to_string()
}

/// The relay container deploy made runs hardened, read from the kernel's view of its process
/// (/proc/PID/status) and from podman: uid 65532, no effective capabilities, no_new_privs, a
/// seccomp filter, a read-only root.
/// The container's health check, run now by podman inside the real container (the relay's
/// own healthcheck subcommand: the image has no shell).
fn assert_healthy(name: &str) {
    let o = podman().args(["healthcheck", "run", name]).output().unwrap();
    assert!(o.status.success(), "podman healthcheck run {name}: {}{}", stdout(&o), stderr(&o));
}

/// Podman's stop timeout of container `name` (seconds, as podman prints it).
fn stop_timeout(name: &str) -> String {
    stdout(&podman().args(["inspect", "--format", "{{.Config.StopTimeout}}", name]).output().unwrap()).trim().to_string()
}

fn assert_hardened(name: &str) {
    let inspect = |format: &str| stdout(&podman().args(["inspect", "--format", format, name]).output().unwrap()).trim().to_string();
    assert_eq!(inspect("{{.HostConfig.ReadonlyRootfs}}"), "true", "read-only root");
    let pid = inspect("{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the relay's /proc status");
    let field =
        |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.split_whitespace().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(field("Uid:").first().copied(), Some("65532"), "{status}");
    assert_eq!(field("CapEff:"), ["0000000000000000"], "no effective capabilities");
    assert_eq!(field("NoNewPrivs:"), ["1"], "no-new-privileges");
    assert_eq!(field("Seccomp:"), ["2"], "a seccomp filter");
}

/// Both end-to-end tests use the container name `wsproxy` and the podman API socket: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The proxy host reached over ssh, the VM's VNC server, the engine side's PKI and the deploy
/// command line every phase starts from.
struct SshDeploy {
    ssh: SshHost,
    vnc: NetnsXvnc,
    _hv: NetnsHost,
    pki: testkit::Pki,
    certs: std::path::PathBuf,
    dir: tempfile::TempDir,
    tag: String,
    archive: std::path::PathBuf,
    port: u16,
    base: Vec<String>,
    /// Where the host's Quadlet units go, when the host runs systemd (the stand-in).
    units: Option<std::path::PathBuf>,
}

impl SshDeploy {
    fn vnc_addr(&self) -> String {
        format!("{}:{}", self.vnc.addr, self.vnc.port)
    }

    /// `wsproxyctl VERB --target podman` at this test's host (over the same ssh link) with
    /// `extra`: status, logs, undeploy.
    fn at_host(&self, verb: &str, extra: &[&str]) -> Output {
        let place = [verb, "--target", "podman", "--host", &self.ssh.uri(), "--identity", s(&self.ssh.identity)];
        deploy(&self.ssh, &[&place[..], extra].concat())
    }

    /// `deploy --target podman` over ssh with the base flags and `extra`.
    fn run(&self, extra: &[&str]) -> Output {
        let args: Vec<&str> = self.base.iter().map(String::as_str).chain(extra.iter().copied()).collect();
        deploy(&self.ssh, &args)
    }

    fn run_json(&self, extra: &[&str]) -> serde_json::Value {
        let o = self.run(&[&["--json"], extra].concat());
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// [`SshDeploy::run_json`] with another `--image`.
    fn run_json_with_image(&self, image: &str, extra: &[&str]) -> serde_json::Value {
        let mut args: Vec<&str> = self.base.iter().map(String::as_str).collect();
        let at = args.iter().position(|a| *a == "--image").unwrap() + 1;
        args[at] = image;
        let o = deploy(&self.ssh, &[&args[..], &["--json"], extra].concat());
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `n` console URLs to a new echo target on the host's loopback, through the deployed relay.
    async fn echo_console_urls(&self, n: usize) -> Vec<String> {
        self.console_urls(testkit::echo_target().await, n)
    }

    /// A console through the deployed relay, trusting the deployed CA; a refusal fails the test.
    async fn open(&self, url: &str) -> testkit::Ws {
        let WsOutcome::Open(ws) = connect_ws(url, Some(&self.certs.join("ca.pem"))).await else {
            panic!("the relay refused console {url}")
        };
        *ws
    }

    /// `n` console URLs to the deployed relay, each with a ticket of its own (valid two minutes)
    /// for a target on the host's loopback.
    fn console_urls(&self, target_port: u16, n: usize) -> Vec<String> {
        let spec = TicketSpec { valid_to: 120, ..TicketSpec::new("127.0.0.1", target_port) };
        let sign = |count: usize| -> Vec<String> {
            (0..count).map(|_| format!("wss://localhost:{}/{}", self.port, sign_ticket(&self.pki.engine_key, &spec))).collect()
        };
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..4).map(|i| scope.spawn(move || sign(n / 4 + usize::from(i < n % 4)))).collect();
            parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
        })
    }
}

/// The certificates volume a dry-run plan names (`volume wsproxy-certs-<checksum>`).
fn volume_object(plan: &serde_json::Value) -> String {
    let actions = plan["actions"].as_array().unwrap();
    let found = actions.iter().filter_map(|a| a["object"].as_str()).find(|o| o.starts_with("volume wsproxy-certs-"));
    found.unwrap_or_else(|| panic!("no certificates volume in {plan}")).to_string()
}

/// What a dry-run plan says it would do to `object`.
fn action_of(plan: &serde_json::Value, object: &str) -> String {
    plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["object"] == object)
        .map(|a| a["action"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {object} in {plan}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_over_ssh_verify_redeploy_rotate_undeploy() {
    let _serial = SERIAL.lock().await;
    let common::EngineSide { dir, pki, certs } = common::engine_side();
    let tag = format!("localhost/wsproxy-deploy-test:{}", std::process::id());
    let archive = image_archive(&tag);
    let hv = NetnsHost::new("d");
    let vnc = NetnsXvnc::start(&hv, "vmpass", None);
    let _api = PodmanService::start(Path::new("/run/podman/podman.sock"));
    let ssh = SshHost::start();
    let port = free_port();
    let base = ["deploy", "--target", "podman", "--host", &ssh.uri(), "--identity", s(&ssh.identity), "--proxy-fqdn", "localhost"]
        .iter()
        .map(|x| x.to_string())
        .chain(["--port".into(), port.to_string(), "--certs".into(), s(&certs).into(), "--image".into(), tag.clone()])
        .collect();
    let f = SshDeploy { ssh, vnc, _hv: hv, pki, certs, dir, tag, archive, port, base, units: None };
    let _cleanup = testkit::on_drop(|| {
        remove_managed();
        let _ = podman().args(["rmi", "-f", &f.tag, &format!("{}-next", f.tag)]).output();
    });
    a_dry_run_changes_nothing(&f);
    the_first_deploy_verifies_to_the_vnc_server(&f).await;
    the_same_inputs_change_nothing(&f);
    logs_show_the_relay_where_it_runs(&f);
    status_says_it_runs_and_how_long_its_certificate_lasts(&f);
    configure_engine_points_the_engine_once(&f);
    quadlet_without_systemd_is_refused(&f);
    a_new_certificate_is_served_after_a_redeploy(&f);
    day_two_behind_haproxy_sessions_and_audit_on_the_host(&f).await;
    a_new_relay_that_cannot_start_leaves_the_old_one_serving(&f).await;
    redeploys_under_streaming_consoles_drop_nothing(&f).await;
    undeploy_and_a_rolled_back_deploy_leave_nothing(&f).await;
}

/// `wsproxyctl status` over the same ssh link: running in container mode (this host has no
/// systemd), the image and its version label, the certificate read from the relay itself.
fn status_says_it_runs_and_how_long_its_certificate_lasts(f: &SshDeploy) {
    let o = f.at_host("status", &["--json"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["running"].as_bool(), v["mode"].as_str(), v["ok"].as_bool()), (Some(true), Some("container"), Some(true)), "{v}");
    assert_eq!(v["image"], f.tag.as_str(), "{v}");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{v}");
    assert_eq!(v["certificate_from"], format!("127.0.0.1:{}", f.port), "{v}");
    let served = v["certificate_days_left"].as_i64().unwrap();
    let issued = wsproxyctl::pki::inspect::run(&f.certs);
    let file = issued.certificates.iter().find(|c| c.file.ends_with("websocket-proxy.cer")).map(|c| c.days_left);
    assert_eq!(Some(served), file, "the served certificate is the deployed one: {v}");
}

/// `wsproxyctl logs` reads the relay's log over the same ssh link as deploy: its start line is
/// there; `--since` bounds it (nothing in the last second before a quiet moment).
fn logs_show_the_relay_where_it_runs(f: &SshDeploy) {
    let o = f.at_host("logs", &["--since", "1h"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("wsproxy ready"), "{}", stdout(&o));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let o = f.at_host("logs", &["--since", "1s"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("wsproxy ready"), "--since 1s still shows the start: {}", stdout(&o));
}

/// The plan says the image would be loaded, container and volume created; afterwards neither
/// the image nor anything of ours is there.
fn a_dry_run_changes_nothing(f: &SshDeploy) {
    let plan = f.run_json(&["--dry-run", "--image-archive", s(&f.archive)]);
    assert_eq!(action_of(&plan, &format!("image {}", f.tag)), "load", "{plan}");
    assert_eq!(action_of(&plan, "container wsproxy"), "create", "{plan}");
    assert_eq!(action_of(&plan, &volume_object(&plan)), "create", "{plan}");
    assert_eq!(managed_left(), "", "a dry run must create nothing");
    assert!(!podman().args(["image", "exists", &f.tag]).status().unwrap().success(), "a dry run must not load the image");
}

/// Created, verified all the way to the VNC server's banner; an independent client with a
/// ticket signed by openssl does the RFB handshake with the VM's password.
async fn the_first_deploy_verifies_to_the_vnc_server(f: &SshDeploy) {
    let o = f.run(&["--image-archive", s(&f.archive), "--verify-engine-key", s(&f.pki.engine_key), "--verify-vnc", &f.vnc_addr()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("[ok] engine ticket accepted") && text.contains("RFB 003.008"), "{text}");
    assert!(text.contains("engine-config -s WebSocketProxy=localhost:"), "{text}");
    assert!(stderr(&o).contains("created and started"), "{}", stderr(&o));
    assert_no_ssh_left_behind();
    assert_hardened("wsproxy");
    assert_eq!(
        stop_timeout("wsproxy"),
        "3610",
        "podman's stop timeout bounds the relay's drain (an hour by default), not its 10 s default"
    );
    assert_healthy("wsproxy");
    let ticket = sign_ticket(&f.pki.engine_key, &TicketSpec::new(&f.vnc.addr, f.vnc.port));
    let url = format!("wss://localhost:{}/{ticket}", f.port);
    let WsOutcome::Open(mut ws) = connect_ws(&url, Some(&f.certs.join("ca.pem"))).await else {
        panic!("the deployed relay refused a good ticket")
    };
    let init = rfb_handshake(&mut ws, "vmpass").await.expect("RFB through the deployed relay");
    assert_eq!((init.width, init.height), (640, 400));
}

/// Same inputs again: nothing changes, and both the deploy and a dry run say so.
fn the_same_inputs_change_nothing(f: &SshDeploy) {
    let v = f.run_json(&["--no-verify"]);
    assert_eq!(v["change"], "Unchanged", "{v}");
    assert_eq!(v["mode"], "container", "no systemd on this host: the container is started directly");
    let plan = f.run_json(&["--dry-run"]);
    assert_eq!(action_of(&plan, "container wsproxy"), "keep", "{plan}");
    assert_eq!(action_of(&plan, &format!("image {}", f.tag)), "keep", "{plan}");
}

/// --configure-engine on "the engine host": engine-config and systemctl stand-ins that keep
/// the engine's value in a file, as the engine keeps it in its database.
fn configure_engine_points_the_engine_once(f: &SshDeploy) {
    let engine_bin = f.dir.path().join("engine-bin");
    std::fs::create_dir_all(&engine_bin).unwrap();
    let state = engine_bin.join("engine.state");
    std::fs::write(&state, "engine.example.com:6100\n").unwrap();
    std::fs::write(
        engine_bin.join("engine-config"),
        "#!/bin/sh\nstate=\"$(dirname \"$0\")/engine.state\"\ncase \"$1\" in\n  -g) echo \"WebSocketProxy: $(cat \"$state\") version: general\" ;;\n  -s) echo \"${2#WebSocketProxy=}\" > \"$state\" ;;\n  *) exit 1 ;;\nesac\n",
    )
    .unwrap();
    std::fs::write(engine_bin.join("systemctl"), "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/restarts\"\n").unwrap();
    for file in ["engine-config", "systemctl"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(engine_bin.join(file), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let on_engine = || {
        Command::new(env!("CARGO_BIN_EXE_wsproxyctl"))
            .env("PATH", format!("{}:{}", engine_bin.display(), f.ssh.client_path()))
            .args(&f.base)
            .args(["--no-verify", "--configure-engine"])
            .output()
            .unwrap()
    };
    let o = on_engine();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let wanted = format!("localhost:{}", f.port);
    assert!(stdout(&o).contains(&format!("the engine pointed to engine.example.com:6100; now to {wanted}")), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), wanted);
    assert_eq!(std::fs::read_to_string(engine_bin.join("restarts")).unwrap().trim(), "restart ovirt-engine");
    let o = on_engine();
    assert!(stdout(&o).contains("already sends consoles"), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(engine_bin.join("restarts")).unwrap().lines().count(), 1, "no second restart");
}

/// --quadlet where systemd is not running: refused up front, nothing touched.
fn quadlet_without_systemd_is_refused(f: &SshDeploy) {
    let o = f.run(&["--quadlet", "--no-verify"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not run systemd") && stderr(&o).contains("drop --quadlet"), "{}", stderr(&o));
}

/// Rotation: a new certificate, replaced and restarted, still verifies, the new serial served.
fn a_new_certificate_is_served_after_a_redeploy(f: &SshDeploy) {
    let serial = || -> String {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial",
                f.port
            ))
            .output()
            .unwrap();
        stdout(&o)
    };
    let before = serial();
    let (pki, certs) = (&f.pki, &f.certs);
    common::issue_localhost(pki, certs);
    let plan = f.run_json(&["--dry-run"]);
    assert_eq!(action_of(&plan, "container wsproxy"), "replace", "{plan}");
    assert!(plan.to_string().contains("hand-over"), "{plan}");
    let v = f.run_json(&["--verify-engine-key", s(&pki.engine_key), "--verify-vnc", &f.vnc_addr()]);
    assert_eq!(v["change"], "HandedOver", "{v}");
    assert_eq!(v["verify"]["ok"], true);
    assert_ne!(serial(), before, "the new certificate is served");
}

/// How long the day-two scenario's consoles may last (`maxSessionSeconds`).
const LIFETIME_SECS: u64 = 25;

/// The start and end audit records of `session`, read through `wsproxyctl logs` where the relay
/// runs (waiting up to 10 s for the end).
fn audit_records(f: &SshDeploy, session: &str) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for _ in 0..50 {
        let o = f.at_host("logs", &["--since", "5m"]);
        records = stdout(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["fields"].clone())
            .filter(|r| r["session"].as_str() == Some(session) && r["record"].is_string())
            .collect();
        if records.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    records
}

/// Day two on the deployed relay, end to end: HAProxy in front of it sends PROXY protocol v2,
/// nginx beside it `X-Forwarded-For` (`trustedProxies`, `proxyProtocol` in deploy.yaml); a
/// browser behind each connects from an address of its own. The admin listener (`admin:`) is
/// named by `status`; an operator with a client certificate from the engine CA lists both
/// consoles under their browsers' addresses (not the balancers'); one with the token (shipped as
/// a podman secret) ends one by its address and its browser gets 1008; no credentials, no
/// answer. `logs` holds the audit records of both ends of that session; the second console is
/// ended by its target; a third, left alone, ends when `maxSessionSeconds` runs out (1008,
/// `max_lifetime` in its audit record). A redeploy then hands the admin port over like the
/// browsers' one.
async fn day_two_behind_haproxy_sessions_and_audit_on_the_host(f: &SshDeploy) {
    testkit::require_tool("haproxy");
    let admin_port = free_port();
    let token = f.dir.path().join("admin-token");
    std::fs::write(&token, "7e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b\n").unwrap();
    let spec = f.dir.path().join("day-two.yaml");
    std::fs::write(
        &spec,
        format!(
            "admin: {{port: {admin_port}, tokenFile: admin-token}}\ntrustedProxies: [127.0.0.1/32]\nproxyProtocol: optional\n\
             maxSessionSeconds: {LIFETIME_SECS}\n"
        ),
    )
    .unwrap();
    let v = f.run_json(&["-f", s(&spec), "--no-verify"]);
    assert_eq!(v["change"], "HandedOver", "{v}");
    let o = f.at_host("status", &[]);
    assert!(stdout(&o).contains(&format!("pass --admin https://127.0.0.1:{admin_port}")), "{}{}", stdout(&o), stderr(&o));

    let (haproxy_port, nginx_port) = (free_port(), free_port());
    let _haproxy = testkit::balancers::haproxy_send_proxy_v2(f.dir.path(), haproxy_port, f.port);
    let _nginx = testkit::balancers::nginx_x_forwarded_for(f.dir.path(), nginx_port, f.port);
    let vm = testkit::echo_target().await;
    let ca = f.certs.join("ca.pem");
    let ticket = sign_ticket(&f.pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let (status, mut browser) = testkit::from_address::wss_upgrade_from("127.0.0.9", haproxy_port, &ca, &ticket).await;
    assert_eq!(status, 101);
    let ticket = sign_ticket(&f.pki.engine_key, &TicketSpec::new("127.0.0.1", vm));
    let from_nginx = testkit::from_address::connect_from("127.0.0.10", nginx_port).await;
    let (status, behind_nginx) = testkit::from_address::upgrade(from_nginx, &ticket, "").await;
    assert_eq!(status, 101);
    // A third console, straight to the relay and to a VM of its own, is left to its lifetime.
    let other_vm = testkit::echo_target().await;
    let ticket = sign_ticket(&f.pki.engine_key, &TicketSpec::new("127.0.0.1", other_vm));
    let (status, mut left_alone) = testkit::from_address::wss_upgrade_from("127.0.0.11", f.port, &ca, &ticket).await;
    assert_eq!(status, 101);

    let o = common::ctl(&[
        "certs",
        "issue",
        "--client",
        "ops",
        "--ca-cert",
        s(&f.pki.ca_cert),
        "--ca-key",
        s(&f.pki.ca_key),
        "--out",
        s(&f.certs),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let admin = format!("https://localhost:{admin_port}");
    let [cert, key] = ["admin-ops.cer", "admin-ops.key"].map(|file| f.certs.join(file));
    let sessions = |verb: &str, how: &[&str]| {
        let args = [&["sessions", verb, "--admin", &admin, "--ca", s(&ca)][..], how].concat();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move { common::ctl_async(args).await }
    };
    let o = sessions("list", &["--client-cert", s(&cert), "--client-key", s(&key), "-o", "json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut open: Vec<&serde_json::Value> = listed["sessions"].as_array().unwrap().iter().collect();
    open.sort_by_key(|s| s["client"].as_str().unwrap().split(':').next().unwrap().to_string());
    let clients: Vec<&str> = open.iter().map(|s| s["client"].as_str().unwrap().split(':').next().unwrap()).collect();
    assert_eq!(clients, ["127.0.0.10", "127.0.0.11", "127.0.0.9"], "the browsers, not HAProxy or nginx: {listed}");
    let (haproxy_session, lifetime_session) = (open[2]["id"].as_str().unwrap(), open[1]["id"].as_str().unwrap());
    let o = sessions("list", &[]).await;
    assert_eq!(o.status.code(), Some(2), "no credentials: {}", stderr(&o));
    let o = sessions("kill", &["--token-file", s(&token), "--client", "127.0.0.9"]).await;
    assert!(o.status.success() && stdout(&o).contains("ended 1 session"), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(testkit::from_address::close_code(&mut browser, Duration::from_secs(5)).await, Some(1008));
    drop(browser);

    // The audit records, read where the relay runs.
    let records = audit_records(f, haproxy_session);
    let kinds: Vec<_> = records.iter().map(|r| (r["record"].as_str(), r["client"].as_str().map(|c| c.starts_with("127.0.0.9:")))).collect();
    assert_eq!(kinds, [(Some("session_start"), Some(true)), (Some("session_end"), Some(true))], "{records:?}");
    assert_eq!(records[1]["end"], "killed", "{records:?}");

    // The other console, by its target (with the certificate this time).
    let target = format!("tcp://127.0.0.1:{vm}");
    let o = sessions("kill", &["--client-cert", s(&cert), "--client-key", s(&key), "--target", &target]).await;
    assert!(o.status.success() && stdout(&o).contains("ended 1 session"), "{}{}", stdout(&o), stderr(&o));
    drop(behind_nginx);

    // The third ends when its lifetime (maxSessionSeconds) runs out, with its own end reason.
    let closed = testkit::from_address::close_code(&mut left_alone, Duration::from_secs(LIFETIME_SECS + 10)).await;
    assert_eq!(closed, Some(1008), "maxSessionSeconds ends the console");
    drop(left_alone);
    let records = audit_records(f, lifetime_session);
    assert_eq!(records.get(1).map(|r| &r["end"]), Some(&serde_json::json!("max_lifetime")), "{records:?}");

    // A redeploy (new certificates) hands the admin port over like the browsers' one.
    common::issue_localhost(&f.pki, &f.certs);
    std::fs::write(&spec, format!("admin: {{port: {admin_port}, tokenFile: admin-token}}\n")).unwrap();
    let v = f.run_json(&["-f", s(&spec), "--no-verify"]);
    assert_eq!(v["change"], "HandedOver", "{v}");
    let o = sessions("list", &["--token-file", s(&token)]).await;
    assert!(o.status.success() && stdout(&o).contains("no open sessions"), "{}{}", stdout(&o), stderr(&o));
}

/// `text` sent through an open console and read back from the echoing VM.
async fn echo(ws: &mut testkit::Ws, text: &str) -> Vec<u8> {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(text.as_bytes().to_vec().into())).await.unwrap();
    testkit::read_exact(ws, &mut Vec::new(), text.len()).await.unwrap()
}

/// The hand-over's way back, with real podman: the new relay cannot start (its admin port is
/// taken by another program on the host), so deploy fails with the relay's own reason, removes
/// it, and gives the running relay its name back; that relay never stopped, and a console open
/// on it goes on.
async fn a_new_relay_that_cannot_start_leaves_the_old_one_serving(f: &SshDeploy) {
    let id =
        |name: &str| stdout(&podman().args(["container", "inspect", "--format", "{{.Id}} {{.State.Running}}", name]).output().unwrap());
    let before = id("wsproxy");
    let mut ws = f.open(&f.echo_console_urls(1).await[0]).await;
    assert_eq!(echo(&mut ws, "before").await, b"before");

    let taken = std::net::TcpListener::bind("[::]:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let spec = f.dir.path().join("taken.yaml");
    std::fs::write(&spec, format!("admin: {{port: {port}}}\n")).unwrap();
    let installed = f.units.as_deref().map(unit_files);
    let o = f.run(&["-f", s(&spec), "--no-verify"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    let said = stderr(&o);
    // A unit's container is removed as it exits, often before its log can be read: the
    // message then names the journal.
    assert!((said.contains("WSPROXY_ADMIN_LISTEN") || said.contains("journalctl")) && said.contains("left serving"), "{said}");
    assert_eq!(id("wsproxy"), before, "the same relay, still running, under its own name");
    assert_eq!(f.units.as_deref().map(unit_files), installed, "the new unit removed, the running relay's unit back");
    let draining = podman().args(["ps", "-q", "--filter", "name=wsproxy-draining"]).output().unwrap();
    assert_eq!(stdout(&draining).trim(), "", "no relay left running under another name");
    assert_eq!(echo(&mut ws, "after").await, b"after", "its console never noticed");
    drop(taken);
}

/// The hand-over measured with real podman: 200 consoles stream through the deployed relay
/// while it is redeployed with new certificates, and again with a new image, and new consoles
/// keep arriving (no retries) all the while. Not one arrival may be refused or reset, not one
/// open console cut before its relay's drain ends; after it they get 1001. The figures are
/// printed (run with --nocapture to see them).
async fn redeploys_under_streaming_consoles_drop_nothing(f: &SshDeploy) {
    const CONSOLES: usize = 200;
    const DRAIN_SECS: u64 = 20;
    let drain = f.dir.path().join("drain.yaml");
    std::fs::write(&drain, format!("drainSeconds: {DRAIN_SECS}\n")).unwrap();
    let v = f.run_json(&["-f", s(&drain), "--no-verify"]);
    assert_eq!(v["change"], "HandedOver", "{v}");
    let next = format!("{}-next", f.tag);
    let o = podman().args(["tag", &f.tag, &next]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let target = consoles::streaming_target().await;
    let ca = f.certs.join("ca.pem");

    for round in ["new certificates", "a new image"] {
        let urls = f.console_urls(target, CONSOLES + 800);
        let (streams, arrivals) = urls.split_at(CONSOLES);
        let mut open = Vec::new();
        for url in streams {
            open.push(Streaming::open(url, &ca).await);
        }
        let arrivals = Arrivals::start(arrivals.to_vec(), ca.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let redeploy = Instant::now();
        let v = if round == "new certificates" {
            common::issue_localhost(&f.pki, &f.certs);
            f.run_json(&["-f", s(&drain), "--no-verify"])
        } else {
            f.run_json_with_image(&next, &["-f", s(&drain), "--no-verify"])
        };
        let took = redeploy.elapsed();
        assert_eq!(v["change"], "HandedOver", "{v}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (arrived, failed) = arrivals.stop().await;
        // The old relay's consoles go on streaming while it drains.
        let before: Vec<u64> = open.iter().map(Streaming::bytes).collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let streaming = open.iter().zip(&before).filter(|(c, b)| c.is_open() && c.bytes() > **b).count();
        let drain_end = redeploy + Duration::from_secs(DRAIN_SECS);
        let (mut early, mut going_away, mut other) = (0, 0, Vec::new());
        for console in open {
            match console.ended(Duration::from_secs(DRAIN_SECS + 30)).await {
                Some(e) if e.at < drain_end => early += 1,
                Some(e) if e.code == Some(1001) => going_away += 1,
                ended => other.push(format!("{ended:?}")),
            }
        }
        println!(
            "redeploy with {round} under {CONSOLES} streaming consoles: took {:.1} s; {arrived} new consoles opened during it, \
             {} refused or reset; {streaming} of {CONSOLES} still streaming 2 s after it; {early} closed before the {DRAIN_SECS} s \
             drain ended, {going_away} closed with 1001 after it",
            took.as_secs_f64(),
            failed.len()
        );
        assert!(failed.is_empty(), "new consoles refused or reset during the redeploy with {round}: {failed:?}");
        assert!(arrived >= 50, "consoles kept arriving through the redeploy: {arrived}");
        assert_eq!(streaming, CONSOLES, "open consoles stream on while their relay drains");
        assert_eq!((early, going_away), (0, CONSOLES), "cut before the drain ended, or not with 1001: {other:?}");
    }
    let _ = podman().args(["rmi", &next]).output();
}

/// Undeploy leaves nothing of ours, and does so at once with a console still open on a relay
/// that would drain it for ten minutes (podman's forced removal stops a container with its
/// stop timeout, the drain and then some); a deploy whose verification fails is rolled back
/// when asked: after a hand-over only the new relay goes (the old one's console streams on),
/// on a first deploy everything.
async fn undeploy_and_a_rolled_back_deploy_leave_nothing(f: &SshDeploy) {
    let drain = f.dir.path().join("drain-long.yaml");
    std::fs::write(&drain, "drainSeconds: 600\n").unwrap();
    let v = f.run_json(&["-f", s(&drain), "--no-verify"]);
    assert_eq!(v["change"], "HandedOver", "{v}");
    let target = consoles::streaming_target().await;
    let console = Streaming::open(&f.console_urls(target, 1)[0], &f.certs.join("ca.pem")).await;

    // A redeploy (new settings: a hand-over) whose verification fails, rolled back: only the new
    // relay goes; the old one, told to drain when the new one took the port, keeps its console.
    let closed = format!("{}:5999", f.vnc.addr);
    std::fs::write(&drain, "drainSeconds: 599\n").unwrap();
    let o = f.run(&["-f", s(&drain), "--verify-engine-key", s(&f.pki.engine_key), "--verify-vnc", &closed, "--rollback-on-failure"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("rolled back the new relay") && stderr(&o).contains("takes no new ones"), "{}", stderr(&o));
    let exists = podman().args(["container", "exists", "wsproxy"]).status().unwrap();
    assert!(!exists.success(), "the new relay is gone");
    let draining = podman().args(["ps", "-q", "--filter", "name=wsproxy-draining"]).output().unwrap();
    assert_ne!(stdout(&draining).trim(), "", "the old relay still runs, draining");
    let before = console.bytes();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(console.is_open() && console.bytes() > before, "the old relay's console streams on");

    let started = Instant::now();
    let o = f.at_host("undeploy", &[]);
    let took = started.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed container wsproxy"), "{}", stdout(&o));
    println!("undeploy with a console open on a relay that drains for 600 s: {:.1} s", took.as_secs_f64());
    assert!(took < Duration::from_secs(120), "undeploy waited for the open console's drain: {took:?}");
    assert!(console.ended(Duration::from_secs(10)).await.is_some(), "the console outlived its relay");
    assert_eq!(managed_left(), "", "undeploy must leave nothing");
    let o = f.at_host("status", &[]);
    assert_eq!(o.status.code(), Some(1), "status after undeploy: {}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("not deployed"), "{}", stdout(&o));
    let o = f.run(&["--verify-engine-key", s(&f.pki.engine_key), "--verify-vnc", &closed, "--rollback-on-failure"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("rolled back"), "{}", stderr(&o));
    assert_eq!(managed_left(), "", "rollback must leave nothing");
    assert_no_ssh_left_behind();
}

fn secrets_left() -> String {
    let o = podman().args(["secret", "ls", "--format", "{{.Name}}"]).output().unwrap();
    stdout(&o).lines().filter(|l| l.starts_with("wsproxy-")).collect::<Vec<_>>().join(" ")
}

/// The unit files in `dir`, sorted.
fn unit_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".container")).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A label of container `name`.
fn label_of(name: &str, label: &str) -> String {
    let format = format!("{{{{index .Config.Labels \"{label}\"}}}}");
    stdout(&podman().args(["inspect", "--format", &format, name]).output().unwrap()).trim().to_string()
}

/// Names of the relays draining after a hand-over.
fn draining() -> String {
    stdout(&podman().args(["ps", "--format", "{{.Names}}", "--filter", "name=wsproxy-draining"]).output().unwrap()).trim().to_string()
}

/// Wait (up to `secs`) until no relay drains any more.
async fn until_none_drains(secs: u64) {
    for _ in 0..secs * 4 {
        if draining().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("still draining after {secs} s: {}", draining());
}

/// A host whose init is systemd gets a Quadlet unit. systemd cannot run here (PID 1 is not
/// systemd), so the ssh host's `systemctl` is tests/podman/systemd-standin/systemctl: the real
/// quadlet generator makes the services, and their ExecStart/ExecStop lines run with the real
/// podman. Redeploys hand the port over from unit to unit, measured as in container mode.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_as_a_quadlet_unit_where_the_host_runs_systemd() {
    let _serial = SERIAL.lock().await;
    let common::EngineSide { dir, pki, certs } = common::engine_side();
    let tag = format!("localhost/wsproxy-quadlet-test:{}", std::process::id());
    let archive = image_archive(&tag);
    let hv = NetnsHost::new("q");
    let vnc = NetnsXvnc::start(&hv, "vmpass", None);
    let _api = PodmanService::start(Path::new("/run/podman/podman.sock"));
    let units = dir.path().join("units");
    let state = dir.path().join("standin");
    let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/podman/systemd-standin");
    let ssh = SshHost::start_with_env(&[
        ("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", standin.display())),
        ("QUADLET", common::tool("quadlet").display().to_string()),
        ("QUADLET_UNIT_DIRS", units.display().to_string()),
        ("STANDIN_STATE", state.display().to_string()),
    ]);
    let port = free_port();
    let base = ["deploy", "--target", "podman", "--host", &ssh.uri(), "--identity", s(&ssh.identity), "--quadlet-dir", s(&units)]
        .iter()
        .map(|x| x.to_string())
        .chain(["--proxy-fqdn".into(), "localhost".into(), "--port".into(), port.to_string()])
        .chain(["--certs".into(), s(&certs).into(), "--image".into(), tag.clone()])
        .collect();
    let f = SshDeploy { ssh, vnc, _hv: hv, pki, certs, dir, tag, archive, port, base, units: Some(units.clone()) };
    let _cleanup = testkit::on_drop(|| {
        remove_managed();
        for name in wsproxyctl::render::podman::secret_names() {
            let _ = podman().args(["secret", "rm", &name]).output();
        }
        let _ = podman().args(["rmi", "-f", &f.tag, &format!("{}-next", f.tag)]).output();
    });
    without_the_quadlet_generator_the_container_is_used(&f, &standin, &state);
    the_first_unit_verifies_to_the_vnc_server(&f).await;
    a_redeploy_hands_the_port_to_the_next_unit(&f).await;
    a_new_relay_that_cannot_start_leaves_the_old_one_serving(&f).await;
    switching_modes_hands_the_port_over_both_ways(&f).await;
    redeploys_under_streaming_consoles_drop_nothing(&f).await;
    undeploy_and_a_rolled_back_deploy_leave_nothing(&f).await;
    assert_eq!(unit_files(&units), Vec::<String>::new(), "undeploy removes every unit");
    assert_eq!(secrets_left(), "", "undeploy must remove the secrets of every unit");
}

/// systemd, but a podman without the Quadlet generator (before 4.4): the container through
/// the API, the report saying why; --quadlet is refused with the reason.
fn without_the_quadlet_generator_the_container_is_used(f: &SshDeploy, standin: &Path, state: &Path) {
    let systemctl_only = f.dir.path().join("systemctl-only");
    std::fs::create_dir_all(&systemctl_only).unwrap();
    std::os::unix::fs::symlink(standin.join("systemctl"), systemctl_only.join("systemctl")).unwrap();
    let old_podman = SshHost::start_with_env(&[
        ("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", systemctl_only.display())),
        ("STANDIN_STATE", state.display().to_string()),
    ]);
    let place = ["--target", "podman", "--host", &old_podman.uri(), "--identity", s(&old_podman.identity)];
    let dry = |extra: &[&str]| {
        let spec = ["--proxy-fqdn", "localhost", "--certs", s(&f.certs), "--image", &f.tag, "--json", "--dry-run"];
        let args = [&["deploy"][..], &place, &spec, &["--image-archive", s(&f.archive)], extra].concat();
        deploy(&old_podman, &args)
    };
    let o = dry(&[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["mode"], "container", "{plan}");
    assert!(plan["steps"].to_string().contains("no Quadlet generator (podman 4.4 or later ships it)"), "{plan}");
    let o = dry(&["--quadlet"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("has no Quadlet generator"), "{}", stderr(&o));
}

/// The first deploy installs wsproxy.container (the rendered unit, accepted by the real
/// generator), verifies to the VNC server; the same inputs again change nothing.
async fn the_first_unit_verifies_to_the_vnc_server(f: &SshDeploy) {
    let units = f.units.as_deref().unwrap();
    let v = f.run_json(&["--image-archive", s(&f.archive), "--verify-engine-key", s(&f.pki.engine_key), "--verify-vnc", &f.vnc_addr()]);
    assert_eq!(v["mode"], "quadlet", "{v}");
    assert!(v["steps"].to_string().contains("Quadlet at "), "{v}");
    assert!(v["steps"].to_string().contains("wsproxy.container: created and started wsproxy.service"), "{v}");
    assert_eq!(v["change"], "Created", "{v}");
    assert_eq!(v["verify"]["ok"], true, "{v}");
    assert!(v["verify"].to_string().contains("RFB 003.008"), "{v}");
    assert_hardened("wsproxy");
    let unit = std::fs::read_to_string(units.join("wsproxy.container")).expect("unit installed");
    assert!(unit.contains("Secret=wsproxy-tls-key,uid=65532,gid=65532,mode=0400"), "{unit}");
    let o = Command::new(common::tool("quadlet")).arg("-dryrun").env("QUADLET_UNIT_DIRS", units).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(secrets_left().contains("wsproxy-tls-key"), "{}", secrets_left());
    assert_eq!(stop_timeout("wsproxy"), "3610", "the unit's PodmanArgs reach the container: the drain is honoured");
    assert_healthy("wsproxy");

    let v = f.run_json(&["--no-verify"]);
    assert_eq!(v["change"], "Unchanged", "{v}");
    let plan = f.run_json(&["--dry-run"]);
    assert_eq!(plan["mode"], "quadlet", "{plan}");
    assert_eq!(action_of(&plan, &format!("unit {}/wsproxy.container", units.display())), "keep", "{plan}");
}

/// A redeploy with new settings: a dry run says what would happen; then the new relay starts
/// from wsproxy-b.container beside the running one, which drains on (its unit file gone) and
/// keeps its console; a new console reaches the new relay. Once its console closes, the old
/// relay ends.
async fn a_redeploy_hands_the_port_to_the_next_unit(f: &SshDeploy) {
    let units = f.units.as_deref().unwrap();
    let urls = f.echo_console_urls(2).await;
    let mut old = f.open(&urls[0]).await;
    assert_eq!(echo(&mut old, "before").await, b"before");
    let spec = f.dir.path().join("handover.yaml");
    std::fs::write(&spec, "drainSeconds: 300\n").unwrap();

    let plan = f.run_json(&["-f", s(&spec), "--dry-run"]);
    let unit = |file: &str| format!("unit {}/{file}", units.display());
    assert_eq!(action_of(&plan, &unit("wsproxy-b.container")), "create", "{plan}");
    assert!(plan.to_string().contains("hand-over"), "{plan}");
    assert_eq!(action_of(&plan, &unit("wsproxy.container")), "remove", "{plan}");
    assert_eq!(action_of(&plan, "secret wsproxy-b-tls-key"), "create", "{plan}");

    let v = f.run_json(&["-f", s(&spec), "--no-verify"]);
    assert_eq!(v["change"], "HandedOver", "{v}");
    assert!(
        v["steps"].to_string().contains("wsproxy-b.container: certificates or settings changed: the new wsproxy-b.service took port"),
        "{v}"
    );
    assert_eq!(unit_files(units), ["wsproxy-b.container"], "the old unit file is gone: its relay cannot come back");
    assert_eq!(label_of("wsproxy", "io.ovirt.wsproxyctl.quadlet-unit"), "wsproxy-b.container");
    assert_eq!(stop_timeout("wsproxy"), "310", "the new relay's drain");
    assert!(secrets_left().contains("wsproxy-b-tls-key"), "the new unit's own secrets: {}", secrets_left());
    assert!(draining().starts_with("wsproxy-draining-"), "the old relay drains: {}", draining());
    assert_eq!(echo(&mut old, "during").await, b"during", "its console goes on");
    let mut new = f.open(&urls[1]).await;
    assert_eq!(echo(&mut new, "new").await, b"new");
    let o = f.at_host("status", &[]);
    let said = stdout(&o);
    assert!(said.contains("running, quadlet (wsproxy-b.service)"), "{said}{}", stderr(&o));
    assert!(said.contains("draining after a redeploy: wsproxy-draining-"), "{said}");
    let v = f.run_json(&["-f", s(&spec), "--no-verify"]);
    assert_eq!(v["change"], "Unchanged", "the new unit is the current one: {v}");
    drop((old, new));
    until_none_drains(15).await;
}

/// --no-quadlet: the container through the API takes the port from the unit's relay, whose
/// unit file goes; a deploy with Quadlet again takes it back into a unit. Both hand over.
async fn switching_modes_hands_the_port_over_both_ways(f: &SshDeploy) {
    let units = f.units.as_deref().unwrap();
    let urls = f.echo_console_urls(2).await;
    let mut first = f.open(&urls[0]).await;
    let v = f.run_json(&["--no-quadlet", "--no-verify"]);
    assert_eq!((&v["mode"], &v["change"]), (&"container".into(), &"HandedOver".into()), "{v}");
    assert_eq!(unit_files(units), Vec::<String>::new(), "the unit does not bring its relay back");
    assert_eq!(label_of("wsproxy", "io.ovirt.wsproxyctl.quadlet-unit"), "", "a container through the API");
    assert_eq!(echo(&mut first, "unit relay").await, b"unit relay", "the unit's relay drains on");
    let mut second = f.open(&urls[1]).await;
    drop(first);
    let v = f.run_json(&["--no-verify"]);
    assert_eq!((&v["mode"], &v["change"]), (&"quadlet".into(), &"HandedOver".into()), "{v}");
    assert_eq!(unit_files(units).len(), 1, "{:?}", unit_files(units));
    assert_eq!(echo(&mut second, "api relay").await, b"api relay", "the API container's relay drains on");
    drop(second);
    until_none_drains(15).await;
}

/// A registry reference instead of an archive: deploy pulls it (from a registry on loopback,
/// Debian's docker-registry, with the image pushed by skopeo) and the relay answers.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_pulls_a_registry_image() {
    let _serial = SERIAL.lock().await;
    let common::EngineSide { dir, certs, .. } = common::engine_side();
    let local = format!("localhost/wsproxy-registry-test:{}", std::process::id());
    let archive = image_archive(&local);
    let registry = testkit::hosts::Registry::start();
    let remote = format!("127.0.0.1:{}/ovirt/wsproxy:{}", registry.port, std::process::id());
    let o = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{remote}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo copy: {}", stderr(&o));
    let socket = dir.path().join("podman.sock");
    let _api = PodmanService::start_with_env(&socket, &[("CONTAINERS_REGISTRIES_CONF", registry.registries_conf.as_path())]);
    let host = format!("unix://{}", socket.display());
    let port = free_port().to_string();
    let o = common::ctl(&[
        "deploy",
        "--target",
        "podman",
        "--host",
        &host,
        "--proxy-fqdn",
        "localhost",
        "--port",
        &port,
        "--certs",
        s(&certs),
        "--image",
        &remote,
    ]);
    let undeploy = common::ctl(&["undeploy", "--target", "podman", "--host", &host]);
    let _ = podman().args(["rmi", "-f", &remote, &local]).output();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("pulled {remote}")), "{}", stderr(&o));
    assert!(stdout(&o).contains("[ok] healthz"), "{}", stdout(&o));
    assert!(undeploy.status.success(), "{}", stderr(&undeploy));
}

/// A container named like the relay that deploy did not create is not replaced: deploy says
/// so and leaves it alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_container_of_the_same_name_is_left_alone() {
    let _serial = SERIAL.lock().await;
    let common::EngineSide { dir, certs, .. } = common::engine_side();
    let tag = format!("localhost/wsproxy-foreign-test:{}", std::process::id());
    let archive = image_archive(&tag);
    let socket = dir.path().join("podman.sock");
    let _api = PodmanService::start(&socket);
    let load = podman().args(["load", "-q", "-i", s(&archive)]).output().unwrap();
    assert!(load.status.success(), "{}", stderr(&load));
    let foreign = podman().args(["create", "--name", "wsproxy", &tag, "--version"]).output().unwrap();
    assert!(foreign.status.success(), "{}", stderr(&foreign));
    let id = stdout(&foreign).trim().to_string();
    let port = free_port().to_string();
    let o = common::ctl(&[
        "deploy",
        "--target",
        "podman",
        "--host",
        &format!("unix://{}", socket.display()),
        "--proxy-fqdn",
        "localhost",
        "--port",
        &port,
        "--certs",
        s(&certs),
        "--image",
        &tag,
        "--no-verify",
    ]);
    let still = podman().args(["inspect", "--format", "{{.Id}}", "wsproxy"]).output().unwrap();
    let _ = podman().args(["rm", "-f", "wsproxy"]).output();
    let _ = podman().args(["rmi", "-f", &tag]).output();
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("not created by wsproxyctl: remove or rename it first"), "{}", stderr(&o));
    assert_eq!(stdout(&still).trim(), id, "the foreign container is untouched");
    assert_eq!(managed_left(), "", "nothing of ours was created");
}

#[test]
fn unreachable_hosts_say_what_to_do() {
    let common::EngineSide { dir: _dir, pki, certs } = common::engine_side();
    let o = common::ctl(&[
        "deploy",
        "--target",
        "podman",
        "--host",
        "unix:///nonexistent/podman.sock",
        "--proxy-fqdn",
        "localhost",
        "--certs",
        s(&certs),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("podman.socket"), "{}", stderr(&o));
    let o = common::ctl(&["deploy", "--target", "podman", "--host", "tcp://x:1", "--proxy-fqdn", "localhost", "--certs", s(&certs)]);
    assert_eq!(o.status.code(), Some(2));
    // A certificate directory holding the CA key as the proxy key is refused before anything happens.
    std::fs::copy(&pki.ca_key, certs.join("websocket-proxy.key.nopass")).unwrap();
    let o = common::ctl(&["deploy", "--target", "podman", "--proxy-fqdn", "localhost", "--certs", s(&certs)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("check certificates") && stderr(&o).contains("must never leave the engine"), "{}", stderr(&o));
}

/// Two proxy hosts behind one name in one command: `deploy --host A --host B` deploys and
/// verifies A, then B, each at its own address (B is a second podman with a store of its own in
/// a network namespace, with its own sshd). Both relays record used tickets in one real
/// redis-server over TLS with a password (`rediss://`, `replayStore.passwordFile` and
/// `caFile` copied into podman secrets), so a ticket opened on A is refused on B. A second host that cannot be reached
/// stops the command there, naming what was done; `undeploy --host A --host B` leaves nothing on
/// either.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_in_turn_share_one_replay_store() {
    let _serial = SERIAL.lock().await;
    let common::EngineSide { dir, pki, certs } = common::engine_side();
    let tag = format!("localhost/wsproxy-two-hosts-test:{}", std::process::id());
    let archive = image_archive(&tag);
    let _api_a = PodmanService::start(Path::new("/run/podman/podman.sock"));
    let ssh_a = SshHost::start();
    let net_b = NetnsHost::new("b");
    let api_b = PodmanService::start_in(&net_b);
    let ssh_b = SshHost::start_in(&net_b, &[("CONTAINER_HOST", format!("unix://{}", api_b.socket.display()))]);
    ssh_b.authorize(&ssh_a);
    let (store_key, store_cert) = (dir.path().join("store.key"), dir.path().join("store.crt"));
    pki.issue("store", &format!("subjectAltName=IP:{}", net_b.host_ip), &store_key, &store_cert, "rsa:2048");
    let tls = testkit::RedisTls { cert: &store_cert, key: &store_key, ca: &pki.ca_cert };
    let store = testkit::RedisServer::start_reachable_from(dir.path(), &net_b, Some("store-pass"), Some(tls));
    std::fs::write(dir.path().join("store-password"), "store-pass\n").unwrap();
    let store_spec = dir.path().join("deploy.yaml");
    std::fs::write(
        &store_spec,
        format!(
            "replayStore:\n  url: rediss://{}:{}\n  passwordFile: store-password\n  caFile: {}\n",
            net_b.host_ip,
            store.port,
            pki.ca_cert.display()
        ),
    )
    .unwrap();
    let _cleanup = testkit::on_drop(|| {
        remove_managed();
        let _ = podman().args(["rmi", "-f", &tag]).output();
    });
    // A console both hosts can reach: on this machine's side of B's link.
    let vm = tokio::net::TcpListener::bind((net_b.host_ip.as_str(), 0)).await.unwrap();
    let vm_port = vm.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = vm.accept().await {
            held.push(s);
        }
    });

    let port = free_port().to_string();
    let (a, b) = (ssh_a.uri(), ssh_b.uri());
    let spec = ["-f", s(&store_spec), "--proxy-fqdn", "localhost", "--port", &port, "--certs", s(&certs), "--image", &tag];
    let run = |hosts: &[&str], extra: &[&str]| {
        let mut args = vec!["deploy", "--target", "podman", "--identity", s(&ssh_a.identity)];
        hosts.iter().for_each(|h| args.extend(["--host", h]));
        deploy(&ssh_a, &[&args[..], &spec, extra].concat())
    };

    let o = run(&[&a, &b], &["--json", "--image-archive", s(&archive)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{v}");
    for (report, address) in hosts.iter().zip(["127.0.0.1", net_b.ns_ip.as_str()]) {
        assert_eq!(report["change"], "Created", "{report}");
        assert_eq!(report["verify"]["ok"], true, "{report}");
        let dns = &report["verify"]["steps"][0]["detail"];
        assert!(dns.as_str().unwrap().contains(&format!("-> {address}")), "each host verified at its own address: {report}");
    }
    let on_b = api_b.cli().args(["ps", "--format", "{{.Names}}", "--filter", "label=io.ovirt.wsproxyctl.managed=true"]).output().unwrap();
    assert_eq!(stdout(&on_b).trim(), "wsproxy", "B's relay runs in B's podman");

    // The same hosts from deploy.yaml (podman.hosts) instead of --host flags: a dry run plans
    // both, in order, and finds nothing to change.
    let listed = dir.path().join("hosts.yaml");
    std::fs::write(&listed, format!("{}\npodman: {{hosts: ['{a}', '{b}']}}\n", std::fs::read_to_string(&store_spec).unwrap())).unwrap();
    let o = deploy(
        &ssh_a,
        &["deploy", "--target", "podman", "--identity", s(&ssh_a.identity), "-f", s(&listed), "--proxy-fqdn", "localhost", "--port", &port]
            .into_iter()
            .chain(["--certs", s(&certs), "--image", &tag, "--dry-run", "--json"])
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let plans: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let planned: Vec<&str> = plans.as_array().unwrap().iter().map(|p| p["host"].as_str().unwrap()).collect();
    assert_eq!(planned, [a.as_str(), b.as_str()], "{plans}");

    // One store: a ticket opened on A is used up on B too.
    let ca = certs.join("ca.pem");
    let url = |ticket: &str| format!("wss://localhost:{port}/{ticket}");
    let at = |addr: &str| -> std::net::SocketAddr { format!("{addr}:{port}").parse().unwrap() };
    let ticket = sign_ticket(&pki.engine_key, &TicketSpec::new(&net_b.host_ip, vm_port));
    let on_a = testkit::connect_ws_at(at("127.0.0.1"), &url(&ticket), &ca).await;
    assert!(matches!(on_a, WsOutcome::Open(_)), "A refused a good ticket: {on_a:?}");
    match testkit::connect_ws_at(at(&net_b.ns_ip), &url(&ticket), &ca).await {
        WsOutcome::Refused(403, body) => assert!(body.contains("already used"), "{body}"),
        other => panic!("B must refuse a ticket used on A: {other:?}"),
    }
    let fresh = sign_ticket(&pki.engine_key, &TicketSpec::new(&net_b.host_ip, vm_port));
    assert!(matches!(testkit::connect_ws_at(at(&net_b.ns_ip), &url(&fresh), &ca).await, WsOutcome::Open(_)), "B serves a fresh ticket");

    // A second host nobody answers at: A is deployed (unchanged) and verified, then it stops.
    let nowhere = format!("ssh://root@127.0.0.1:{}", free_port());
    let o = run(&[&a, &nowhere], &[]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("host {nowhere} (2 of 2) failed")) && err.contains(&format!("deployed and verified before it: {a}")),
        "{err}"
    );

    let o = deploy(&ssh_a, &["undeploy", "--target", "podman", "--host", &a, "--host", &b, "--identity", s(&ssh_a.identity)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("removed container wsproxy on {b}")), "{}", stdout(&o));
    assert_eq!(managed_left(), "", "nothing of ours left on A");
    let left_b = api_b.cli().args(["ps", "-a", "-q", "--filter", "label=io.ovirt.wsproxyctl.managed=true"]).output().unwrap();
    assert_eq!(stdout(&left_b).trim(), "", "nothing of ours left on B");
    assert_no_ssh_left_behind();
}
