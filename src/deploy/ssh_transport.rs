//! The podman API of a remote host over ssh, as a bollard custom transport.
//!
//! Why not bollard's own ssh transport: it hands `user@host:port` to ssh as a host name, so any
//! port but 22 fails, and it needs the Docker CLI (`docker system dial-stdio`) on the remote.
//! Here each request runs `ssh [-p PORT] [-i KEY] user@host podman system dial-stdio` through
//! a multiplexed ssh connection (ControlMaster), so only the first request pays for the
//! handshake, and the remote needs nothing but podman and sshd.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bollard::{BollardRequest, ClientVersion, Docker};
use hyper_util::rt::TokioIo;
use tokio::process::Command;

use crate::error::{Failure, Result};

/// A parsed `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

pub fn parse(uri: &str) -> Result<SshTarget> {
    let rest = uri.strip_prefix("ssh://").ok_or_else(|| Failure::usage(format!("{uri:?} is not ssh://user@host[:port]")))?;
    let rest = rest.trim_end_matches('/');
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            (h.trim_start_matches('[').trim_end_matches(']').to_string(), Some(p.parse().map_err(|_| Failure::usage(format!("{uri:?}: bad port")))?))
        }
        _ => (hostport.to_string(), None),
    };
    if host.is_empty() {
        return Err(Failure::usage(format!("{uri:?} names no host")));
    }
    Ok(SshTarget { user, host, port })
}

struct Transport {
    target: SshTarget,
    identity: Option<PathBuf>,
    control: PathBuf,
}

impl Transport {
    fn command(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=60"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()));
        if let Some(port) = self.target.port {
            c.arg("-p").arg(port.to_string());
        }
        if let Some(id) = &self.identity {
            c.arg("-i").arg(id).args(["-o", "IdentitiesOnly=yes"]);
        }
        let dest = match &self.target.user {
            Some(u) => format!("{u}@{}", self.target.host),
            None => self.target.host.clone(),
        };
        c.arg(dest).args(["podman", "system", "dial-stdio"]);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        c
    }

    async fn request(&self, mut req: BollardRequest) -> std::result::Result<hyper::Response<hyper::body::Incoming>, bollard::errors::Error> {
        let io_err = |e: std::io::Error| bollard::errors::Error::IOError { err: e };
        let mut child = self.command().spawn().map_err(io_err)?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take();
        let stream = tokio::io::join(stdout, stdin);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| {
            bollard::errors::Error::IOError { err: std::io::Error::other(format!("ssh to {}: {e}", self.target.host)) }
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = child.wait().await;
        });
        // HTTP/1.1 origin form: path and query only, with a Host header.
        let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        *req.uri_mut() = path.parse().expect("path parses");
        req.headers_mut().insert(hyper::header::HOST, hyper::header::HeaderValue::from_static("podman"));
        match sender.send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                let mut detail = String::new();
                if let Some(mut err) = stderr {
                    use tokio::io::AsyncReadExt;
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), err.read_to_string(&mut detail)).await;
                }
                Err(bollard::errors::Error::IOError {
                    err: std::io::Error::other(format!("ssh to {}: {e} {}", self.target.host, detail.trim())),
                })
            }
        }
    }
}

/// A bollard client whose requests travel over ssh to the remote podman.
pub fn connect(uri: &str, identity: Option<&Path>, version: &ClientVersion) -> Result<Docker> {
    let target = parse(uri)?;
    let control = std::env::temp_dir().join(format!("wsproxyctl-ssh-{}-%C", std::process::id()));
    let transport = std::sync::Arc::new(Transport { target, identity: identity.map(Path::to_path_buf), control });
    let t = transport.clone();
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let t = t.clone();
            async move { t.request(req).await }
        },
        Some("http://podman"),
        120,
        version,
    )
    .map_err(|e| Failure::environment(format!("cannot set up the ssh transport: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(parse("ssh://root@proxy.example:2222").unwrap(), SshTarget { user: Some("root".into()), host: "proxy.example".into(), port: Some(2222) });
        assert_eq!(parse("ssh://proxy.example").unwrap(), SshTarget { user: None, host: "proxy.example".into(), port: None });
        assert_eq!(parse("ssh://admin@[2001:db8::1]:22").unwrap().host, "2001:db8::1");
        assert!(parse("ssh://root@").is_err());
        assert!(parse("ssh://h:port").is_err());
    }
}
