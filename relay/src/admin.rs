//! The admin listener: who is connected to which VM, and ending a session. Off unless
//! `WSPROXY_ADMIN_LISTEN` is set, on a port of its own (never the browsers'), TLS 1.3 only, and
//! every request authenticated: a client certificate that chains to `WSPROXY_ADMIN_CLIENT_CA`
//! (mutual TLS), or `Authorization: Bearer` with the token in `WSPROXY_ADMIN_TOKEN_FILE`.
//!
//! - `GET /sessions`: the open sessions as JSON ([`crate::registry::SessionView`]).
//! - `POST /sessions/kill?id=..|target=..|client=..`: end the sessions that match (close 1008
//!   with a reason noVNC shows); answers `{"ended": N}`.
//!
//! Plain HTTP/1.1 on the relay's own head parser, one request per connection: a handful of
//! operator requests, nothing that needs a framework.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::http;
use crate::registry::{Registry, Selector};

/// What the admin listener admits besides a verified client certificate.
pub struct AdminAuth {
    /// SHA-256 of the bearer token: compared digest to digest, so the comparison's time says
    /// nothing about the token.
    token_digest: Option<[u8; 32]>,
}

impl AdminAuth {
    /// Read the token file (trimmed; an empty one is refused: it would let anyone in).
    pub fn load(token_file: Option<&Path>) -> Result<AdminAuth, String> {
        let token_digest = match token_file {
            None => None,
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("cannot read WSPROXY_ADMIN_TOKEN_FILE {}: {e}", path.display()))?;
                let token = text.trim();
                if token.len() < 16 {
                    return Err(format!(
                        "WSPROXY_ADMIN_TOKEN_FILE {} holds fewer than 16 characters: write a long random token \
                         (e.g. `openssl rand -hex 32 > {}`)",
                        path.display(),
                        path.display()
                    ));
                }
                Some(Sha256::digest(token.as_bytes()).into())
            }
        };
        Ok(AdminAuth { token_digest })
    }

    fn token_matches(&self, authorization: Option<&str>) -> bool {
        let (Some(expected), Some(given)) = (self.token_digest, authorization.and_then(|a| a.strip_prefix("Bearer "))) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        // Every byte compared, whatever the first difference.
        given.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Admin connections served at once; more are closed unanswered. Before it is authenticated a
/// connection costs a TLS handshake and a bounded head (at most 10 s): an operator needs a
/// handful, and nobody gets to make the relay hold thousands.
pub const MAX_ADMIN_CONNECTIONS: usize = 16;

/// Serve the admin listener until the task is aborted.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, auth: Arc<AdminAuth>, registry: Arc<Registry>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let Some((tcp, peer)) = crate::listener::accept(&listener).await else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(client = %peer, "admin listener: {MAX_ADMIN_CONNECTIONS} connections already open; closed");
            continue;
        };
        let (acceptor, auth, registry) = (acceptor.clone(), auth.clone(), registry.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if tokio::time::timeout(Duration::from_secs(10), one_request(tcp, peer, acceptor, &auth, &registry)).await.is_err() {
                tracing::debug!(client = %peer, "admin request not complete within 10 s; closed");
            }
        });
    }
}

async fn one_request(tcp: tokio::net::TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, auth: &AdminAuth, registry: &Registry) {
    let mut tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::info!(client = %peer, error = %e, "admin listener: TLS refused (a client certificate the CA did not sign?)");
            return;
        }
    };
    let Ok((req, _)) = http::read_head(&mut tls).await else {
        return;
    };
    let certified = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
    if !certified && !auth.token_matches(req.authorization.as_deref()) {
        tracing::warn!(client = %peer, path = %req.path.split('?').next().unwrap_or(""), "admin listener: request without a valid client certificate or token refused");
        let body = r#"{"error":"authenticate with a client certificate from the admin CA or Authorization: Bearer TOKEN"}"#;
        let _ = http::respond_with(&mut tls, 401, "application/json", body.as_bytes()).await;
        return;
    }
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let (status, body) = match (req.method.as_str(), path) {
        ("GET", "/sessions") => (200, serde_json::to_string(&registry.list()).unwrap_or_default()),
        ("POST", "/sessions/kill") => match selector(query) {
            Ok(selector) => {
                let ended = registry.kill(&selector);
                tracing::info!(client = %peer, ended, "admin listener: sessions ended on request");
                (200, serde_json::json!({ "ended": ended }).to_string())
            }
            Err(why) => (400, serde_json::json!({ "error": why }).to_string()),
        },
        _ => (404, r#"{"error":"GET /sessions or POST /sessions/kill?id=|target=|client="}"#.to_string()),
    };
    let _ = http::respond_with(&mut tls, status, "application/json", body.as_bytes()).await;
}

/// `id=`, `target=`, `client=` (an address) from a query; at least one.
fn selector(query: &str) -> Result<Selector, String> {
    let mut selector = Selector::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "id" => selector.id = Some(value.into_owned()),
            "target" => selector.target = Some(value.into_owned()),
            "client" => selector.client = Some(value.parse::<IpAddr>().map_err(|_| format!("client={value:?} is not an IP address"))?),
            other => return Err(format!("unknown parameter {other:?}: use id, target or client")),
        }
    }
    if selector.is_empty() {
        return Err("say which sessions to end: id=, target= or client=".into());
    }
    Ok(selector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself_and_short_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
        let auth = AdminAuth::load(Some(&file)).unwrap();
        assert!(auth.token_matches(Some("Bearer 0123456789abcdef0123")));
        assert!(!auth.token_matches(Some("Bearer 0123456789abcdef0124")));
        assert!(!auth.token_matches(Some("0123456789abcdef0123")));
        assert!(!auth.token_matches(None));
        assert!(!AdminAuth::load(None).unwrap().token_matches(Some("Bearer ")));
        std::fs::write(&file, "short\n").unwrap();
        assert!(AdminAuth::load(Some(&file)).err().unwrap().contains("fewer than 16"));
    }

    #[test]
    fn a_kill_names_its_sessions() {
        assert_eq!(selector("id=p-1").unwrap().id.as_deref(), Some("p-1"));
        assert_eq!(selector("target=tcp%3A%2F%2F10.0.0.1%3A5900").unwrap().target.as_deref(), Some("tcp://10.0.0.1:5900"));
        assert!(selector("client=nope").unwrap_err().contains("not an IP"));
        assert!(selector("").unwrap_err().contains("say which"));
        assert!(selector("all=1").unwrap_err().contains("unknown parameter"));
    }
}
