//! The podman API as a bollard custom transport: of a remote host over ssh, or of a local
//! unix socket.
//!
//! Why not bollard's own ssh transport: it hands `user@host:port` to ssh as a host name, so any
//! port but 22 fails, and it needs the Docker CLI (`docker system dial-stdio`) on the remote.
//! Here each request runs `ssh [-p PORT] [-i KEY] user@host podman system dial-stdio` through
//! a multiplexed ssh connection (ControlMaster), so only the first request pays for the
//! handshake, and the remote needs nothing but podman and sshd.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

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
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            Some(p.parse().map_err(|_| Failure::usage(format!("{uri:?}: bad port")))?),
        ),
        _ => (hostport.to_string(), None),
    };
    if host.is_empty() {
        return Err(Failure::usage(format!("{uri:?} names no host: use ssh://user@host[:port]")));
    }
    // ssh would read a destination or user beginning with '-' as an option
    // (ssh://-oProxyCommand=... runs a local command); whitespace and control characters have
    // no place in either.
    let bad = |s: &str| s.starts_with('-') || s.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad(&host) || user.as_deref().is_some_and(|u| u.is_empty() || bad(u)) {
        return Err(Failure::usage(format!(
            "{uri:?}: a host or user name may not be empty, begin with '-' or hold spaces or control characters: use ssh://user@host[:port]"
        )));
    }
    Ok(SshTarget { user, host, port })
}

/// How to reach a host over ssh: one multiplexed connection (ControlMaster) shared by the API
/// transport and the host shell ([`super::host_shell`]).
#[derive(Debug, Clone)]
pub struct SshLink {
    target: SshTarget,
    identity: Option<PathBuf>,
    control: Arc<ControlSocket>,
}

/// The ControlMaster's socket, in a directory made for it that only this user can enter: at a
/// guessable path in a shared /tmp, another local user could plant a socket there and ssh
/// would send our commands through it. When the last clone of the link goes, the master is
/// told to exit and the directory is removed: nothing lingers after wsproxyctl.
#[derive(Debug)]
struct ControlSocket {
    dir: tempfile::TempDir,
    dest: String,
}

impl ControlSocket {
    fn path(&self) -> PathBuf {
        self.dir.path().join("master")
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if self.path().exists() {
            let _ = std::process::Command::new("ssh")
                .arg("-o")
                .arg(format!("ControlPath={}", self.path().display()))
                .args(["-O", "exit", "--", &self.dest])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl SshLink {
    pub fn new(uri: &str, identity: Option<&Path>) -> Result<SshLink> {
        let target = parse(uri)?;
        let dir = tempfile::Builder::new().prefix("wsproxyctl-ssh-").tempdir().map_err(|e| {
            Failure::environment(format!(
                "cannot make a private directory for the ssh connection in {}: {e}",
                std::env::temp_dir().display()
            ))
        })?;
        let dest = match &target.user {
            Some(u) => format!("{u}@{}", target.host),
            None => target.host.clone(),
        };
        Ok(SshLink { target, identity: identity.map(Path::to_path_buf), control: Arc::new(ControlSocket { dir, dest }) })
    }

    pub fn host(&self) -> &str {
        &self.target.host
    }

    /// `ssh [options] user@host <remote...>`, stdio piped.
    pub fn command(&self, remote: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=60"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.path().display()));
        if let Some(port) = self.target.port {
            c.arg("-p").arg(port.to_string());
        }
        if let Some(id) = &self.identity {
            c.arg("-i").arg(id).args(["-o", "IdentitiesOnly=yes"]);
        }
        // `--`: whatever the destination holds, ssh reads it as the destination.
        c.arg("--").arg(&self.control.dest).args(remote);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        c
    }
}

/// Where the API is: a remote podman over ssh, or a local socket.
enum Dial {
    Ssh(SshLink),
    Unix(PathBuf),
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

struct Transport {
    dial: Dial,
    /// `/v1.41`: bollard drops the version from request paths (it joins an absolute path onto
    /// the versioned base), and podman serves some routes only versioned (DELETE /secrets/ID).
    prefix: String,
}

impl Transport {
    fn describe(&self) -> String {
        match &self.dial {
            Dial::Ssh(link) => format!("ssh to {}", link.host()),
            Dial::Unix(path) => format!("podman socket {}", path.display()),
        }
    }

    async fn request(
        &self,
        mut req: BollardRequest,
    ) -> std::result::Result<hyper::Response<hyper::body::Incoming>, bollard::errors::Error> {
        let io_err = |e: std::io::Error| bollard::errors::Error::IOError { err: e };
        let (stream, child, stderr): (Box<dyn Io>, _, _) = match &self.dial {
            Dial::Ssh(link) => {
                let mut child = link.command(&["podman", "system", "dial-stdio"]).spawn().map_err(io_err)?;
                let stdin = child.stdin.take().expect("piped");
                let stdout = child.stdout.take().expect("piped");
                let stderr = child.stderr.take();
                (Box::new(tokio::io::join(stdout, stdin)), Some(child), stderr)
            }
            Dial::Unix(path) => (Box::new(tokio::net::UnixStream::connect(path).await.map_err(io_err)?), None, None),
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| bollard::errors::Error::IOError { err: std::io::Error::other(format!("{}: {e}", self.describe())) })?;
        tokio::spawn(async move {
            let _ = conn.await;
            if let Some(mut child) = child {
                let _ = child.wait().await;
            }
        });
        // HTTP/1.1 origin form: the versioned path and query, with a Host header.
        let mut path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        if !path.starts_with("/v1.") {
            path = format!("{}{path}", self.prefix);
        }
        tracing::debug!("podman API: {} {path} ({})", req.method(), self.describe());
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
                Err(bollard::errors::Error::IOError { err: std::io::Error::other(format!("{}: {e} {}", self.describe(), detail.trim())) })
            }
        }
    }
}

fn client(dial: Dial, version: &ClientVersion) -> Result<Docker> {
    let prefix = format!("/v{}.{}", version.major_version, version.minor_version);
    let transport = Arc::new(Transport { dial, prefix });
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let t = transport.clone();
            async move { t.request(req).await }
        },
        Some("http://podman"),
        120,
        version,
    )
    .map_err(|e| Failure::environment(format!("cannot set up the podman API transport: {e}")))
}

/// A bollard client whose requests travel over ssh to the remote podman.
pub fn connect(link: &SshLink, version: &ClientVersion) -> Result<Docker> {
    client(Dial::Ssh(link.clone()), version)
}

/// A bollard client for a local podman socket (same transport, so requests carry the version).
pub fn connect_unix(path: &Path, version: &ClientVersion) -> Result<Docker> {
    client(Dial::Unix(path.to_path_buf()), version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            parse("ssh://root@proxy.example:2222").unwrap(),
            SshTarget { user: Some("root".into()), host: "proxy.example".into(), port: Some(2222) }
        );
        assert_eq!(parse("ssh://proxy.example").unwrap(), SshTarget { user: None, host: "proxy.example".into(), port: None });
        assert_eq!(parse("ssh://admin@[2001:db8::1]:22").unwrap().host, "2001:db8::1");
        assert!(parse("ssh://root@").is_err());
        // Option injection through the destination or the user name.
        for uri in [
            "ssh://-oProxyCommand=touch${IFS}/tmp/pwned",
            "ssh://-oProxyCommand=x@host",
            "ssh://root@-p22",
            "ssh://ro ot@host",
            "ssh://@host",
            "ssh://root@ho\nst",
        ] {
            let e = parse(uri).unwrap_err();
            assert!(e.message.contains("may not") || e.message.contains("bad port"), "{uri}: {}", e.message);
        }
        assert!(parse("ssh://h:port").is_err());
    }
}
