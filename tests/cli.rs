//! The CLI's manners: every verb's help carries an example, usage errors exit 2, completions
//! and man pages are generated from the same definitions.

mod common;

use clap::CommandFactory;
use common::{ctl, s, stderr, stdout};

fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    let subs: Vec<_> = cmd.get_subcommands().filter(|c| c.get_name() != "help").collect();
    if subs.is_empty() {
        out.push((path.clone(), cmd.clone()));
    }
    for sub in subs {
        leaves(sub, format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_verb_has_help_with_an_example() {
    let mut all = Vec::new();
    leaves(&wsproxyctl::cli::Cli::command(), "wsproxyctl".into(), &mut all);
    assert!(all.len() >= 14, "{}", all.len());
    for (path, cmd) in all {
        let after = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(after.contains("Example"), "`{path} --help` has no example");
        assert!(cmd.get_about().is_some(), "`{path}` has no description");
    }
    let o = ctl(&["deploy", "--help"]);
    assert!(o.status.success() && stdout(&o).contains("Examples:"));
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let o = ctl(&["certs", "issue", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--no-such-flag"), "{}", stderr(&o));
    let o = ctl(&["verify", "--proxy", "https://x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wss://HOST:PORT"), "{}", stderr(&o));
    let o = ctl(&["verify", "--json", "--proxy", "https://x"]);
    let v: serde_json::Value = serde_json::from_str(stderr(&o).trim()).expect("errors are JSON with --json");
    assert_eq!(v["exit_code"], 2);
}

#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let o = ctl(&["completions", shell]);
        assert!(o.status.success() && stdout(&o).contains("deploy"), "{shell}");
    }
    let bash = ctl(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.bash");
    std::fs::write(&f, &bash.stdout).unwrap();
    assert!(std::process::Command::new("bash").arg("-n").arg(&f).status().unwrap().success());
    let o = ctl(&["manpage", "--out", s(dir.path())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(dir.path().join("wsproxyctl-deploy.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("rollback"), "the deploy page documents its flags");
}

/// Run wsproxyctl on a pseudo-terminal (util-linux `script`), as a person at a terminal would.
fn on_terminal(args: &str, no_color: bool) -> String {
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{} {args}", env!("CARGO_BIN_EXE_wsproxyctl"),), "/dev/null"]);
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
}

#[test]
fn colours_and_the_spinner_only_on_a_terminal_and_never_with_no_color() {
    // Red "error:" on a terminal; plain with NO_COLOR; plain when not a terminal.
    let tty = on_terminal("verify --proxy https://x", false);
    assert!(tty.contains("\x1b[1;31merror:\x1b[0m"), "{tty:?}");
    let plain = on_terminal("verify --proxy https://x", true);
    assert!(plain.contains("error:") && !plain.contains('\x1b'), "{plain:?}");
    let piped = ctl(&["verify", "--proxy", "https://x"]);
    assert!(!stderr(&piped).contains('\x1b'), "{}", stderr(&piped));

    // Deploy steps turn a spinner on a terminal, then leave the plain step line.
    let dir = tempfile::tempdir().unwrap();
    let pki = testkit::Pki::new(dir.path());
    let certs = dir.path().join("certs");
    common::issue_localhost(&pki, &certs);
    let args = format!("deploy --target podman --host unix:///nonexistent.sock --proxy-fqdn localhost --certs {}", s(&certs));
    let tty = on_terminal(&args, true);
    assert!(tty.contains("⠋ check certificates ...") && tty.contains("\r\x1b[2K==> check certificates ..."), "{tty:?}");
    assert!(!tty.contains("\x1b[3") && !tty.contains("\x1b[1;"), "NO_COLOR: no colours, only the line clearing: {tty:?}");
    let piped = ctl(&args.split(' ').collect::<Vec<_>>());
    assert!(!stderr(&piped).contains('⠋') && stderr(&piped).contains("==> check certificates ..."), "{}", stderr(&piped));
}

#[test]
fn verbose_shows_what_happens_underneath() {
    let dir = tempfile::tempdir().unwrap();
    let o = ctl(&["-v", "demo", "--once", "--builtin-vnc", "--port", "0", "--dir", s(dir.path())]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The in-process relay's own log lines (it logs each session at close).
    assert!(stderr(&o).contains("session closed"), "{}", stderr(&o));
    let quiet = ctl(&["demo", "--once", "--builtin-vnc", "--port", "0", "--dir", s(dir.path())]);
    assert!(!stderr(&quiet).contains("session closed"), "{}", stderr(&quiet));
    let both = ctl(&["-v", "-q", "demo", "--once"]);
    assert_eq!(both.status.code(), Some(2), "-v and -q contradict each other");
}

/// Which target a deploy/undeploy flag acts on.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Acts {
    Both,
    Podman,
    K8s,
}

/// Every deploy and undeploy flag, and the target(s) it acts on. A flag missing here fails
/// the test, so a new flag must say where it acts.
fn flag_table(verb: &str) -> Vec<(&'static str, Acts, Vec<&'static str>)> {
    let mut t = vec![
        ("target", Acts::Both, vec![]),
        ("host", Acts::Podman, vec!["--host", "unix:///nonexistent/podman.sock"]),
        ("identity", Acts::Podman, vec!["--identity", "/nonexistent/id"]),
        ("quadlet_dir", Acts::Podman, vec!["--quadlet-dir", "/nonexistent/units"]),
        ("context", Acts::K8s, vec!["--context", "nowhere"]),
        ("kubeconfig", Acts::K8s, vec!["--kubeconfig", "/nonexistent/kubeconfig"]),
    ];
    if verb == "undeploy" {
        t.push(("namespace", Acts::K8s, vec!["--namespace", "consoles"]));
        return t;
    }
    t.extend([
        ("file", Acts::Both, vec!["--file", "/nonexistent/deploy.yaml"]),
        ("proxy_fqdn", Acts::Both, vec!["--proxy-fqdn", "proxy.example.com"]),
        ("engine_fqdn", Acts::Both, vec!["--engine-fqdn", "engine.example.com"]),
        ("certs", Acts::Both, vec!["--certs", "/nonexistent/certs"]),
        ("port", Acts::Both, vec!["--port", "6100"]),
        ("image", Acts::Both, vec!["--image", "localhost/x:1"]),
        ("namespace", Acts::K8s, vec!["--namespace", "consoles"]),
        ("replicas", Acts::K8s, vec!["--replicas", "2"]),
        ("service_type", Acts::K8s, vec!["--service-type", "node-port"]),
        ("replay_store", Acts::Both, vec!["--replay-store", "redis://valkey.example.com:6379"]),
        ("image_archive", Acts::Both, vec!["--image-archive", "/nonexistent/x.tar"]),
        ("no_verify", Acts::Both, vec!["--no-verify"]),
        ("verify_engine_key", Acts::Both, vec!["--verify-engine-key", "/nonexistent/key"]),
        ("verify_vnc", Acts::Both, vec!["--verify-vnc", "vnc:5900", "--verify-engine-key", "/nonexistent/key"]),
        ("rollback_on_failure", Acts::Both, vec!["--rollback-on-failure"]),
        ("quadlet", Acts::Podman, vec!["--quadlet"]),
        ("no_quadlet", Acts::Podman, vec!["--no-quadlet"]),
        ("configure_engine", Acts::Both, vec!["--configure-engine"]),
        ("dry_run", Acts::Both, vec!["--dry-run"]),
        ("load_into_kind", Acts::K8s, vec!["--load-into-kind", "kind"]),
        ("timeout", Acts::K8s, vec!["--timeout", "5m"]),
    ]);
    t
}

#[test]
fn every_deploy_and_undeploy_flag_acts_on_its_target_or_is_refused_naming_it() {
    let root = wsproxyctl::cli::Cli::command();
    let home = tempfile::tempdir().unwrap();
    for verb in ["deploy", "undeploy"] {
        let table = flag_table(verb);
        let cmd = root.find_subcommand(verb).unwrap();
        for arg in cmd
            .get_arguments()
            .filter(|a| !a.is_global_set() && !matches!(a.get_id().as_str(), "help" | "json" | "output" | "quiet" | "verbose"))
        {
            assert!(table.iter().any(|(id, ..)| *id == arg.get_id().as_str()), "{verb} --{}: not in the flag table", arg.get_id());
        }
        for (id, acts, args) in table.iter().filter(|(id, ..)| *id != "target") {
            for target in ["podman", "k8s"] {
                // Later steps fail at once, harmlessly: no such spec file, podman socket or kubeconfig.
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wsproxyctl"));
                cmd.args([verb, "--target", target]).args(args).env("HOME", home.path()).env("KUBECONFIG", "/nonexistent/kubeconfig");
                if verb == "deploy" && *id != "file" {
                    cmd.args(["--file", "/nonexistent/deploy.yaml"]);
                }
                if target == "podman" && *id != "host" {
                    cmd.args(["--host", "unix:///nonexistent/podman.sock"]);
                }
                if target == "k8s" && *id == "image_archive" {
                    cmd.args(["--load-into-kind", "kind"]);
                }
                let o = cmd.output().unwrap();
                let err = stderr(&o);
                let foreign = match acts {
                    Acts::Both => None,
                    Acts::Podman => Some("podman"),
                    Acts::K8s => Some("k8s"),
                }
                .filter(|owner| *owner != target);
                match foreign {
                    Some(owner) => {
                        assert_eq!(o.status.code(), Some(2), "{verb} --target {target} {args:?}: {err}");
                        assert!(err.contains(&format!("to --target {owner} only")), "{verb} --target {target} {args:?}: {err}");
                    }
                    None => {
                        assert!(!err.contains("would do nothing"), "{verb} --target {target} {args:?} was refused: {err}");
                        assert!(!o.status.success(), "{verb} --target {target} {args:?} should fail later: {err}");
                    }
                }
            }
        }
    }
    // --image-archive alone does nothing for k8s (only --load-into-kind reads it): refused.
    let o = ctl(&["deploy", "--target", "k8s", "--image-archive", "/x.tar", "--file", "/nonexistent/deploy.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--load-into-kind"), "{}", stderr(&o));
    // --engine-fqdn acts: --configure-engine refuses to run engine-config on another machine.
    let o = ctl(&[
        "deploy",
        "--target",
        "podman",
        "--proxy-fqdn",
        "proxy.example.com",
        "--engine-fqdn",
        "elsewhere.example.com",
        "--configure-engine",
        "--host",
        "unix:///nonexistent/podman.sock",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("engineFqdn says the engine is elsewhere.example.com"), "{}", stderr(&o));
    // Flags another flag makes idle are refused too.
    for args in [
        &["--no-verify", "--rollback-on-failure"][..],
        &["--no-verify", "--verify-engine-key", "/x.key"],
        &["--dry-run", "--configure-engine"],
        &["--dry-run", "--rollback-on-failure"],
    ] {
        let mut all = vec!["deploy", "--target", "k8s", "--file", "/nonexistent/deploy.yaml"];
        all.extend_from_slice(args);
        let o = ctl(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("drop"), "{args:?}: {}", stderr(&o));
    }
    // --dry-run with podman is a read-only plan (tests/deploy_podman.rs runs it on a real
    // host): with podman too, it refuses the flags it would make idle.
    let o = ctl(&["deploy", "--target", "podman", "--dry-run", "--configure-engine", "--file", "/nonexistent/deploy.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--dry-run changes and verifies nothing"), "{}", stderr(&o));
}

/// An ssh destination that ssh would read as an option (ProxyCommand runs a local command)
/// is refused before ssh runs.
#[test]
fn ssh_option_injection_through_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let host = format!("ssh://-oProxyCommand=touch {}", marker.display());
    let o = ctl(&["undeploy", "--target", "podman", "--host", &host]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("may not be empty, begin with '-'"), "{}", stderr(&o));
    assert!(!marker.exists(), "ssh ran the injected ProxyCommand");
}

/// kubectl's habits: `-n`, `--kubeconfig`, durations such as `5m`, `-o json|yaml`.
#[test]
fn kubectl_habits_namespace_kubeconfig_durations_and_output_formats() {
    let dir = tempfile::tempdir().unwrap();
    // -n: the objects go to that namespace.
    let out = dir.path().join("k8s");
    let o = ctl(&["render", "--target", "k8s", "--without-secret", "--proxy-fqdn", "p.example.com", "-n", "consoles", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dep: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(out.join("10-deployment.yaml")).unwrap()).unwrap();
    assert_eq!(dep["metadata"]["namespace"], "consoles");

    // -o yaml and -o json print the same report; --json is -o json; text is the default.
    let render = |fmt: &[&str]| {
        let mut args = vec!["render", "--target", "k8s", "--without-secret", "--proxy-fqdn", "p.example.com", "--out", s(&out)];
        args.extend_from_slice(fmt);
        let o = ctl(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let yaml: serde_json::Value = serde_yaml::from_str(&render(&["-o", "yaml"])).unwrap();
    let json: serde_json::Value = serde_json::from_str(&render(&["-o", "json"])).unwrap();
    assert_eq!(yaml, json);
    assert_eq!(json, serde_json::from_str::<serde_json::Value>(&render(&["--json"])).unwrap());
    assert!(serde_json::from_str::<serde_json::Value>(&render(&[])).is_err(), "text by default");
    let o = ctl(&["render", "--target", "k8s", "--json", "-o", "yaml"]);
    assert_eq!(o.status.code(), Some(2), "--json and -o yaml contradict each other");

    // Durations: 5m and plain seconds taken, anything else refused naming the form.
    for good in ["5m", "90s", "1h30m", "180"] {
        assert!(wsproxyctl::cli::duration(good).is_ok(), "{good}");
    }
    assert_eq!(wsproxyctl::cli::duration("5m").unwrap(), std::time::Duration::from_secs(300));
    let o = ctl(&["verify", "--proxy", "wss://p.example.com:6100", "--timeout", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("90s, 5m or 1h"), "{}", stderr(&o));

    // --kubeconfig is read (a missing file is named, exit 2), not ignored for $KUBECONFIG.
    let missing = dir.path().join("no-such-kubeconfig");
    let o = ctl(&["undeploy", "--target", "k8s", "--kubeconfig", s(&missing)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--kubeconfig") && stderr(&o).contains("no-such-kubeconfig"), "{}", stderr(&o));
}

/// status and logs read one deployment: the other target's flags, --quadlet-dir and several
/// --host are refused with exit 2, naming the flag.
#[test]
fn status_and_logs_refuse_flags_that_would_do_nothing() {
    for verb in ["status", "logs"] {
        for (args, needle) in [
            (vec!["--target", "podman", "--namespace", "consoles"], "--namespace"),
            (vec!["--target", "k8s", "--host", "ssh://root@a"], "--host"),
            (vec!["--target", "podman", "--quadlet-dir", "/etc/containers/systemd"], "--quadlet-dir"),
            (vec!["--target", "podman", "--host", "ssh://root@a", "--host", "ssh://root@b"], "--host once"),
        ] {
            let o = ctl(&[&[verb][..], &args].concat());
            assert_eq!(o.status.code(), Some(2), "{verb} {args:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(needle), "{verb} {args:?}: {}", stderr(&o));
        }
    }
}
