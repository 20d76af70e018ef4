//! Commands on the podman host itself, for what its API cannot do: Quadlet units are files,
//! and systemd starts them. Locally through `sh`, remotely through the same multiplexed ssh
//! connection as the API. Scripts travel on stdin (`sh -s`), so nothing is quoted through two
//! shells, and file contents travel base64-encoded inside them.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::ssh_transport::SshLink;
use crate::error::{Failure, Result};

/// What a script printed and how it ended.
#[derive(Debug, Clone)]
pub struct ShellOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub enum HostShell {
    Local,
    Ssh(SshLink),
}

impl HostShell {
    /// The shell of the host whose podman API is at `uri` (unix:// is this machine).
    pub fn for_host(uri: &str, identity: Option<&Path>) -> Result<HostShell> {
        if uri.starts_with("ssh://") {
            Ok(HostShell::Ssh(SshLink::new(uri, identity)?))
        } else {
            Ok(HostShell::Local)
        }
    }

    /// Run a POSIX shell script there (bounded: two minutes).
    pub async fn run(&self, script: &str) -> Result<ShellOutput> {
        let mut cmd = match self {
            HostShell::Local => {
                let mut c = Command::new("sh");
                c.arg("-s")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true);
                c
            }
            HostShell::Ssh(link) => link.command(&["sh", "-s"]),
        };
        let where_ = match self {
            HostShell::Local => "this host".to_string(),
            HostShell::Ssh(link) => link.host().to_string(),
        };
        tracing::debug!("shell on {where_}:\n{}", script.trim_end());
        let mut child = cmd.spawn().map_err(|e| Failure::environment(format!("cannot run a shell on {where_}: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(script.as_bytes()).await.map_err(|e| Failure::environment(format!("shell on {where_}: {e}")))?;
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .map_err(|_| Failure::environment(format!("a command on {where_} did not finish within 2 minutes")))?
            .map_err(|e| Failure::environment(format!("shell on {where_}: {e}")))?;
        tracing::debug!("shell on {where_}: exit {:?}", out.status.code());
        Ok(ShellOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Quote a value for a POSIX shell (single quotes).
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_scripts_run_and_quote_safely() {
        let tricky = "it's $HOME `x` \"y\"";
        let out = HostShell::Local.run(&format!("printf '%s' {}; echo oops >&2; exit 3", quote(tricky))).await.unwrap();
        assert!(!out.ok);
        assert_eq!(out.stdout, tricky);
        assert_eq!(out.stderr.trim(), "oops");
    }
}
