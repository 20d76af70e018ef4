//! How results reach the user: text for people, `-o json` (or `--json`) and `-o yaml` for
//! machines, `--quiet` for scripts, `-v` for what happens underneath. Errors always go to stderr, as `error: ...` (or a JSON
//! object with --json). Colours and the progress spinner only when stderr is a terminal, and
//! no colours when NO_COLOR is set (https://no-color.org).

use std::io::IsTerminal;

use serde::Serialize;

use crate::error::Failure;

/// How a result is printed (`-o`, as kubectl's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Yaml,
}

pub struct Output {
    format: Format,
    /// Machine-readable output (JSON or YAML): no progress lines, warnings and errors as JSON
    /// lines on stderr (JSON is YAML too).
    json: bool,
    quiet: bool,
    verbose: bool,
    terminal: bool,
    colour: bool,
}

/// What a coloured piece of text means.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Bad,
    Dim,
}

impl Output {
    pub fn new(format: Format, quiet: bool, verbose: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output { format, json: format != Format::Text, quiet, verbose, terminal, colour: terminal && !no_colour }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Whether stderr gets colours (a terminal, and NO_COLOR unset).
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// Whether progress may be animated (a terminal, and progress lines are shown at all).
    pub fn animate(&self) -> bool {
        self.terminal && !self.quiet && !self.json
    }

    /// `text` in the tone's colour when colours are on.
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        if !self.colour {
            return text.to_string();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Bad => "1;31",
            Tone::Dim => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Print a result: `value` as JSON or YAML, or the text `human` builds.
    pub fn report<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        match self.format {
            Format::Json => println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into())),
            Format::Yaml => print!("{}", serde_yaml::to_string(value).unwrap_or_else(|_| "{}\n".into())),
            Format::Text if !self.quiet => print!("{}", human()),
            Format::Text => {}
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

    /// Something the operator should know: on stderr always (also under --json and --quiet,
    /// as a JSON line under --json), never on stdout, so it cannot corrupt a report.
    pub fn warn(&self, text: &str) {
        if self.json {
            eprintln!("{}", serde_json::json!({ "warning": text }));
        } else {
            eprintln!("{} {text}", self.paint(Tone::Bad, "warning:"));
        }
    }

    pub fn error(&self, failure: &Failure) {
        if self.json {
            eprintln!("{}", serde_json::json!({ "error": failure.to_string(), "exit_code": failure.exit_code() }));
        } else {
            eprintln!("{} {failure}", self.paint(Tone::Bad, "error:"));
        }
    }
}
