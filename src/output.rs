//! How results reach the user: text for people, `--json` for machines, `--quiet` for scripts.
//! Errors always go to stderr, as `error: ...` (or a JSON object with --json).

use serde::Serialize;

use crate::error::Failure;

pub struct Output {
    json: bool,
    quiet: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Self {
        Output { json, quiet }
    }

    /// Print a result: `value` as JSON, or the text `human` builds.
    pub fn report<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into()));
        } else if !self.quiet {
            print!("{}", human());
        }
    }

    /// A progress line (suppressed by --quiet and --json).
    pub fn step(&self, line: &str) {
        if !self.quiet && !self.json {
            eprintln!("{line}");
        }
    }

    /// Text for people only (nothing under --json or --quiet).
    pub fn report_text(&self, text: &str) {
        if !self.json && !self.quiet {
            print!("{text}");
        }
    }

    pub fn error(&self, failure: &Failure) {
        if self.json {
            eprintln!("{}", serde_json::json!({ "error": failure.message, "exit_code": failure.exit_code() }));
        } else {
            eprintln!("error: {failure}");
        }
    }
}
