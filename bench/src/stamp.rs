//! What a figure was measured on: the commit, the relay's build profile, the cores and the
//! kernel, printed with every table and kept in `--json`, so a document figure can always be
//! traced to the code and machine it came from.

use std::path::Path;

/// The stamp of one run.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `git describe --always --dirty` of the checkout, or "unknown" outside one.
    pub commit: String,
    /// "release" or "debug", from the relay binary's path (target/<profile>/wsproxy).
    pub relay_profile: String,
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
}

impl Stamp {
    pub fn now(relay: &Path) -> Stamp {
        let run = |cmd: &str, args: &[&str]| {
            std::process::Command::new(cmd)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        let profile =
            relay.parent().and_then(Path::file_name).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|| "unknown".into());
        Stamp {
            commit: run("git", &["describe", "--always", "--dirty"]),
            relay_profile: profile,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "commit": self.commit, "relay_profile": self.relay_profile, "cores": self.cores, "kernel": self.kernel })
    }

    /// One line for the top of a table.
    pub fn line(&self) -> String {
        format!("commit {}, relay build {}, {} cores, kernel {}", self.commit, self.relay_profile, self.cores, self.kernel)
    }
}
