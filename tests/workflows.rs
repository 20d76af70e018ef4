//! The GitHub workflows lint clean with actionlint (an outdated action runtime or a broken
//! expression there would only show on GitHub, where nobody runs the kind suite by hand).

mod common;

use std::process::Command;

#[test]
fn workflows_pass_actionlint() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workflows: Vec<_> = std::fs::read_dir(root.join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    assert!(!workflows.is_empty(), "no workflow found under .github/workflows");
    let out = Command::new(common::tool("venv/bin/actionlint")).arg("-no-color").args(&workflows).current_dir(root).output().unwrap();
    assert!(
        out.status.success(),
        "actionlint found problems in .github/workflows:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        common::stderr(&out)
    );
}
