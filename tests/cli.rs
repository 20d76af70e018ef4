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
    cmd.args(["-qec", &format!("{} {args}", env!("CARGO_BIN_EXE_wsproxyctl"), ), "/dev/null"]);
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
