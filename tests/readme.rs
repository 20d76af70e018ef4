//! The README's commands stay true: every `wsproxyctl ...` line in its shell blocks must parse
//! with the real CLI definitions (flags, values, verbs), and the two set-up commands must be
//! the ones CI runs. What the commands do is covered by the other tests (deploy, verify,
//! certs, render, demo); this one catches a README that drifted from the CLI.

use clap::Parser;

fn shell_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        let t = line.trim_start();
        if t.starts_with("```sh") {
            current = Some(String::new());
        } else if t.starts_with("```") {
            if let Some(b) = current.take() {
                blocks.push(b);
            }
        } else if let Some(b) = current.as_mut() {
            b.push_str(t);
            b.push('\n');
        }
    }
    blocks
}

/// Split a command line into words: whitespace, single and double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '#') if cur.is_empty() => break,
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}

#[test]
fn every_wsproxyctl_command_in_the_readme_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut checked = 0;
    for block in shell_blocks(&readme) {
        let joined = block.replace("\\\n", " ");
        for line in joined.lines() {
            let w = words(line);
            let args: Vec<String> = match w.first().map(String::as_str) {
                Some("wsproxyctl") => w.clone(),
                Some("cargo") if w.iter().any(|a| a == "--") => {
                    let rest = w.iter().skip_while(|a| *a != "--").skip(1).cloned();
                    std::iter::once("wsproxyctl".to_string()).chain(rest).collect()
                }
                _ => continue,
            };
            if let Err(e) = wsproxyctl::cli::Cli::try_parse_from(&args) {
                panic!("README command does not parse: {line}\n{e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} commands found in the README");
}

#[test]
fn the_two_setup_commands_are_what_ci_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- demo"));
    assert!(readme.contains("bash scripts/test.sh"));
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(ci.contains("bash scripts/test.sh"), ".ci/run must run the README's test command");
}

/// Every metric label the README lists is one the relay exposes (its /metrics text lists
/// every label, zeros included), and every label the relay exposes is in the README.
#[test]
fn the_readme_lists_exactly_the_metric_labels_the_relay_exposes() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("- Metrics (`WSPROXY_METRICS_LISTEN`)").expect("the metrics paragraph");
    let paragraph = &readme[start..start + readme[start..].find("\n\n").unwrap()];
    let exposed = wsproxy::metrics::Metrics::default().render();
    let exposed_labels: std::collections::BTreeSet<String> = exposed
        .lines()
        .filter(|l| !l.contains("le=\""))
        .filter_map(|l| l.split_once("=\"").map(|(_, rest)| rest.split('"').next().unwrap().to_string()))
        .collect();
    // In the README: `name{label}` (`a`, `b`, ...): the lists in parentheses whose every item
    // is in backticks. Prose in parentheses is not a list and is skipped.
    let mut listed = std::collections::BTreeSet::new();
    for group in paragraph.split('(').skip(1) {
        let group = group.split(')').next().unwrap();
        let items: Vec<&str> = group.split(',').map(str::trim).filter(|w| !w.is_empty()).collect();
        let is_label_list = !items.is_empty() && items.iter().all(|w| w.len() > 2 && w.starts_with('`') && w.ends_with('`'));
        if !is_label_list || group.contains("WSPROXY") {
            continue;
        }
        listed.extend(items.iter().map(|w| w.trim_matches('`').to_string()));
    }
    let directions: std::collections::BTreeSet<String> = ["to_target", "to_browser"].map(String::from).into();
    let missing_in_readme: Vec<_> = exposed_labels.difference(&listed).filter(|l| !directions.contains(*l)).collect();
    let missing_in_relay: Vec<_> = listed.difference(&exposed_labels).collect();
    assert!(missing_in_relay.is_empty(), "the README lists labels the relay does not expose: {missing_in_relay:?}");
    assert!(missing_in_readme.is_empty(), "the relay exposes labels the README does not list: {missing_in_readme:?}");
}

/// The README's configuration table lists exactly the relay's keys (wsproxy::config::KEYS, the
/// one definition), each default as the key table has it.
#[test]
fn the_readme_key_table_is_the_relays_key_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("| key | default | meaning |").expect("the key table");
    let table = &readme[start..start + readme[start..].find("\n\n").unwrap()];
    let mut listed = std::collections::BTreeMap::new();
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        for name in cells[0].split(',') {
            listed.insert(name.trim().trim_matches('`').to_string(), cells[1].trim_matches('`').to_string());
        }
    }
    let known: std::collections::BTreeSet<String> = wsproxy::config::KEYS.iter().map(|k| k.name.to_string()).collect();
    let in_readme: std::collections::BTreeSet<String> = listed.keys().cloned().collect();
    assert_eq!(in_readme, known, "README key table vs wsproxy::config::KEYS");
    for key in wsproxy::config::KEYS {
        if let Some(default) = key.default {
            assert!(
                listed[key.name].eq_ignore_ascii_case(default),
                "README says {} defaults to {:?}, the key table says {default:?}",
                key.name,
                listed[key.name]
            );
        }
    }
}
