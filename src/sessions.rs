//! `wsproxyctl sessions list|kill`: the relay's open sessions, through its admin listener
//! (`WSPROXY_ADMIN_LISTEN`). The operator proves who they are with a client certificate from
//! `certs issue --client NAME` or the bearer token in the relay's `WSPROXY_ADMIN_TOKEN_FILE`;
//! the relay is trusted through the CA given, never by default.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Failure, Result};
use crate::https_get;

/// Where the admin listener is and how to prove who we are.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// `https://HOST:PORT`.
    pub url: String,
    /// The CA the relay's certificate chains to.
    pub ca: PathBuf,
    /// Client certificate and key (mutual TLS).
    pub client: Option<(PathBuf, PathBuf)>,
    /// A file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// The name the relay's certificate carries, when the URL names another (`localhost`
    /// through `kubectl port-forward`).
    pub server_name: Option<String>,
}

/// One open session, as the relay lists it.
pub use wsproxy::registry::SessionView as Session;

/// What `sessions list` prints.
#[derive(Debug, serde::Serialize)]
pub struct Listing {
    pub sessions: Vec<Session>,
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sessions.is_empty() {
            return writeln!(f, "no open sessions");
        }
        writeln!(f, "{:<14} {:<24} {:<32} {:<21} {:>12} {:>12}", "ID", "CLIENT", "TARGET", "STARTED", "TO VM", "TO BROWSER")?;
        for s in &self.sessions {
            let started = s.started.split('.').next().unwrap_or(&s.started);
            writeln!(f, "{:<14} {:<24} {:<32} {:<21} {:>12} {:>12}", s.id, s.client, s.target, started, s.to_target, s.to_browser)?;
        }
        Ok(())
    }
}

/// Which sessions `sessions kill` ends: any that matches one of these (the relay's own
/// selector, sent as the query it parses).
pub use wsproxy::registry::Selector as KillSelector;

/// What `sessions kill` prints.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    pub ended: u64,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ended {} session{} (the browsers see: session ended by the proxy's administrator)",
            self.ended,
            if self.ended == 1 { "" } else { "s" }
        )
    }
}

pub async fn list(o: &AdminOptions) -> Result<Listing> {
    let body = call(o, "GET", "/sessions").await?;
    let sessions = serde_json::from_slice(&body).map_err(|e| Failure::environment(format!("{}: not a session list: {e}", o.url)))?;
    Ok(Listing { sessions })
}

pub async fn kill(o: &AdminOptions, which: &KillSelector) -> Result<Ended> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(id) = &which.id {
        query.append_pair("id", id);
    }
    if let Some(target) = &which.target {
        query.append_pair("target", target);
    }
    if let Some(client) = &which.client {
        query.append_pair("client", &client.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        return Err(Failure::usage("say which sessions to end: --id, --target or --client"));
    }
    let body = call(o, "POST", &format!("/sessions/kill?{query}")).await?;
    serde_json::from_slice(&body).map_err(|e| Failure::environment(format!("{}: unexpected answer: {e}", o.url)))
}

/// One request; the body of a 200, or an error that says what to do.
async fn call(o: &AdminOptions, method: &str, path: &str) -> Result<Vec<u8>> {
    let (host, port) = https_get::parse_https_url(&o.url).map_err(Failure::usage)?;
    let token = match &o.token_file {
        None => None,
        Some(file) => Some(
            std::fs::read_to_string(file).map_err(|e| Failure::usage(format!("--token-file {}: {e}", file.display())))?.trim().to_string(),
        ),
    };
    if token.is_none() && o.client.is_none() {
        return Err(Failure::usage(
            "the admin listener admits a client certificate (--client-cert/--client-key, from `certs issue --client NAME`) \
             or its bearer token (--token-file): give one",
        ));
    }
    let headers: Vec<(&str, String)> = token.iter().map(|t| ("authorization", format!("Bearer {t}"))).collect();
    let name = o.server_name.as_deref().unwrap_or(&host);
    let (status, body) = https_get::request(method, &host, port, name, path, &headers, tls(o)?)
        .await
        .map_err(|e| Failure::environment(format!("{}: {e}", o.url)))?;
    match status {
        200 => Ok(body),
        401 => Err(Failure::usage(format!(
            "{} refused the credentials: a client certificate the relay's WSPROXY_ADMIN_CLIENT_CA signed, or the token in its \
             WSPROXY_ADMIN_TOKEN_FILE",
            o.url
        ))),
        _ => Err(Failure::environment(format!("{} answered {status}: {}", o.url, String::from_utf8_lossy(&body).trim()))),
    }
}

fn tls(o: &AdminOptions) -> Result<Arc<rustls::ClientConfig>> {
    let roots = wsproxy::tls::roots_from(&o.ca).map_err(|e| Failure::usage(format!("--ca: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Failure::environment(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &o.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect())
                .map_err(|e| Failure::usage(format!("--client-cert {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Failure::usage(format!("--client-key {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| Failure::usage(format!("--client-cert/--client-key: {e}")))?
        }
    };
    Ok(Arc::new(config))
}
