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
