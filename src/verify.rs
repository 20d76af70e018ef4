//! `wsproxyctl verify`: could a browser reach a VM console through this proxy? Checked the way a
//! browser would, step by step, each with its time: DNS, TCP, TLS (chain to the engine CA, the
//! name, days left), /healthz, and with the engine key a freshly signed ticket: accepted (RFB
//! banner from `--vnc`, or "target unreachable" 1011 for a closed port), while a ticket from a
//! throwaway key must get 403.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::error::{Failure, Result};
use crate::steps::{StepReport, Steps};
use crate::ticket_sign::{self, Console};

/// What to verify.
pub struct VerifyOptions {
    pub proxy: String,
    /// Connect here instead of where the proxy's name resolves (one host of several behind a
    /// shared name); the certificate is still checked for the name.
    pub connect_to: Option<String>,
    pub ca: Option<PathBuf>,
    pub engine_cert: Option<PathBuf>,
    pub engine_key: Option<PathBuf>,
    pub vnc: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub proxy: String,
    pub steps: Vec<StepReport>,
    pub ok: bool,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The human text verify prints.
        let mut out = format!("verify {}\n", self.proxy);
        for s in &self.steps {
            out.push_str(&format!("  [{}] {:<22} {:>5} ms  {}\n", if s.ok { "ok" } else { "FAIL" }, s.name, s.millis, s.detail));
        }
        out.push_str(if self.ok { "a browser can open consoles through this proxy\n" } else { "verification failed\n" });
        f.write_str(&out)
    }
}

/// `wss://host:port` or `ws://host:port` -> (tls, host, port).
pub fn parse_proxy_url(url: &str) -> Result<(bool, String, u16)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(Failure::usage(format!("--proxy {url:?} must look like wss://HOST:PORT")));
    };
    let authority = rest.trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().map_err(|_| Failure::usage(format!("--proxy {url:?}: bad port")))?,
        ),
        _ => (authority.to_string(), 6100),
    };
    if host.is_empty() {
        return Err(Failure::usage(format!("--proxy {url:?} names no host")));
    }
    Ok((tls, host, port))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Target {
    tls: Option<Arc<rustls::ClientConfig>>,
    host: String,
    addr: SocketAddr,
}

impl Target {
    async fn connect(&self) -> std::result::Result<Box<dyn Io>, String> {
        let tcp = TcpStream::connect(self.addr).await.map_err(|e| format!("TCP {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(cfg) => {
                let name = wsproxy::tls::server_name(&self.host)?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
                Ok(Box::new(tls))
            }
        }
    }

    fn ws_url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}:{}/{path}", crate::https_get::bracketed(&self.host), self.addr.port())
    }

    /// Open a websocket with a ticket; Ok(first data or close) or Err(HTTP status, body).
    async fn try_ticket(&self, ticket: &str) -> std::result::Result<TicketAnswer, String> {
        let stream = self.connect().await?;
        let mut request = self.ws_url(ticket).into_client_request().map_err(|e| e.to_string())?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
        match tokio_tungstenite::client_async(request, stream).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Ok(TicketAnswer::Refused(resp.status().as_u16())),
            Err(e) => Err(format!("websocket: {e}")),
            Ok((mut ws, _)) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => return Ok(TicketAnswer::Data(b.to_vec())),
                    Some(Ok(Message::Close(Some(f)))) => return Ok(TicketAnswer::Closed(u16::from(f.code), f.reason.to_string())),
                    Some(Ok(Message::Close(None))) | None => return Ok(TicketAnswer::Closed(1005, String::new())),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(format!("websocket: {e}")),
                }
            },
        }
    }
}

enum TicketAnswer {
    Refused(u16),
    Data(Vec<u8>),
    Closed(u16, String),
}

fn ca_roots(path: &Path) -> Result<rustls::RootCertStore> {
    wsproxy::tls::roots_from(path).map_err(|e| Failure::usage(format!("--ca: {e}")))
}

/// What `verify` needs, checked before any connection is made.
struct Prepared {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    engine_key: Option<rsa::RsaPrivateKey>,
    vnc: Option<(String, u16)>,
}

/// Refuse bad input before anything is tried: the URL, the CA, a key that does not belong to
/// the engine certificate, a malformed --vnc.
fn prepare(args: &VerifyOptions) -> Result<Prepared> {
    let (tls, host, port) = parse_proxy_url(&args.proxy)?;
    let tls = match (tls, &args.ca) {
        (true, Some(ca)) => Some(wsproxy::tls::client_config_trusting(ca_roots(ca)?).map_err(Failure::environment)?),
        (true, None) => return Err(Failure::usage("--ca ca.pem is required for wss:// (the engine CA the proxy certificate chains to)")),
        (false, _) => None,
    };
    let engine_key = match &args.engine_key {
        Some(path) => Some(ticket_sign::load_engine_key(path)?),
        None => None,
    };
    if let (Some(key), Some(cert)) = (&engine_key, &args.engine_cert) {
        let pem = crate::pki::input::read(cert, crate::pki::input::Input::EngineCert)?;
        let verifier = wsproxy::ticket::TicketVerifier::from_certificate_pem(&pem, false, 5)
            .map_err(|e| Failure::usage(format!("--engine-cert: {e}")))?;
        let probe = ticket_sign::sign(key, &Console { host: "probe", port: 1, ssl_target: false }, wsproxy::ticket::now_unix(), 30);
        if verifier.verify(&probe, wsproxy::ticket::now_unix()).is_err() {
            return Err(Failure::usage("--engine-key does not belong to --engine-cert: pass the engine's key pair"));
        }
    }
    let vnc = match &args.vnc {
        None => None,
        Some(v) => {
            let (h, p) = v.rsplit_once(':').ok_or_else(|| Failure::usage(format!("--vnc {v:?} must be HOST:PORT")))?;
            Some((
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse::<u16>().map_err(|_| Failure::usage(format!("--vnc {v:?}: bad port")))?,
            ))
        }
    };
    Ok(Prepared { host, port, tls, engine_key, vnc })
}

/// Run every check through the step runner deploy uses; a failed check skips the ones that
/// depend on it.
pub async fn run(args: VerifyOptions) -> Result<Report> {
    let p = prepare(&args)?;
    let limit = args.timeout;
    let mut steps = Steps::silent();
    let report = |steps: Steps<'_>| Ok(Report { proxy: args.proxy.clone(), ok: steps.all_ok(), steps: steps.done });

    let dial = args.connect_to.as_deref().unwrap_or(&p.host);
    let Some(addr) = steps.check("dns", resolve(dial, p.port, limit)).await else { return report(steps) };
    if steps.check("tcp", tcp(addr, limit)).await.is_none() {
        return report(steps);
    }
    if let Some(cfg) = &p.tls {
        if steps.check("tls", tls_handshake(cfg.clone(), &p.host, addr, limit)).await.is_none() {
            return report(steps);
        }
    }
    let target = Target { tls: p.tls.clone(), host: p.host.clone(), addr };
    steps.check("healthz", healthz(&target, limit)).await;
    if let Some(key) = &p.engine_key {
        steps.check("engine ticket accepted", engine_ticket(&target, key, p.vnc.as_ref(), limit)).await;
        let throwaway = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map_err(|e| Failure::environment(format!("cannot make a throwaway key: {e}")))?;
        steps.check("foreign ticket refused", foreign_ticket(&target, &throwaway, limit)).await;
    }
    report(steps)
}

type Check<T> = std::result::Result<(T, String), String>;

/// The name browsers use for the proxy resolves.
async fn resolve(host: &str, port: u16, limit: Duration) -> Check<SocketAddr> {
    let resolved = tokio::time::timeout(limit, tokio::net::lookup_host((host, port))).await;
    match resolved {
        Ok(Ok(mut addrs)) => addrs.next(),
        _ => None,
    }
    .map(|addr| (addr, format!("{host} -> {}", addr.ip())))
    .ok_or_else(|| format!("cannot resolve {host}: check the name browsers use for the proxy"))
}

/// The port is open.
async fn tcp(addr: SocketAddr, limit: Duration) -> Check<()> {
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(((), format!("connected to {addr}"))),
        Ok(Err(e)) => Err(format!("{addr}: {e}: is the proxy running and the port open in the firewall?")),
        Err(_) => Err(format!("{addr}: no answer within {limit:?}: firewall?")),
    }
}

/// The certificate chains to the CA, carries the name, and has days left.
async fn tls_handshake(cfg: Arc<rustls::ClientConfig>, host: &str, addr: SocketAddr, limit: Duration) -> Check<()> {
    tokio::time::timeout(limit, async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = wsproxy::tls::server_name(host)?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{e}: the proxy certificate must chain to --ca and carry the name {host:?} (wsproxyctl certs inspect)"))?;
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
        let days = conn.peer_certificates().and_then(|c| c.first()).map(days_left).unwrap_or(-1);
        if days < 0 {
            return Err("the proxy certificate has expired".to_string());
        }
        Ok(((), format!("{version}, certificate for {host} chains to the CA, {days} days left")))
    })
    .await
    .unwrap_or_else(|_| Err("TLS handshake timed out".into()))
}

/// `/healthz` answers 200.
async fn healthz(target: &Target, limit: Duration) -> Check<()> {
    tokio::time::timeout(limit, async {
        let mut s = target.connect().await?;
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", target.host).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp).await;
        let text = String::from_utf8_lossy(&resp);
        if text.starts_with("HTTP/1.1 200") {
            Ok(((), "200 ok".to_string()))
        } else {
            Err(format!("unexpected answer: {:?}", text.lines().next().unwrap_or("")))
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer".into()))
}

const REFUSED_ENGINE_TICKET: &str =
    "the proxy refused an engine-signed ticket (403): is its CERT_FOR_DATA_VERIFICATION this engine's certificate? are the clocks in sync?";

/// A ticket signed with the engine's key is accepted: the VNC server's banner comes back
/// through the proxy, or without --vnc a closed port on the proxy's own loopback answers 1011
/// (accepted, without touching any VM).
async fn engine_ticket(target: &Target, key: &rsa::RsaPrivateKey, vnc: Option<&(String, u16)>, limit: Duration) -> Check<()> {
    let (host, port) = vnc.map(|(h, p)| (h.as_str(), *p)).unwrap_or(("127.0.0.1", 1));
    let ticket = ticket_sign::sign(key, &Console { host, port, ssl_target: false }, wsproxy::ticket::now_unix(), 30);
    let answer = tokio::time::timeout(limit, target.try_ticket(&ticket)).await;
    let detail = match (vnc.is_some(), answer) {
        (_, Err(_)) if vnc.is_some() => return Err("no RFB banner within the timeout".into()),
        (_, Err(_)) => return Err("no answer within the timeout".into()),
        (_, Ok(Err(e))) => return Err(e),
        (_, Ok(Ok(TicketAnswer::Refused(403)))) => return Err(REFUSED_ENGINE_TICKET.into()),
        (_, Ok(Ok(TicketAnswer::Refused(s)))) => return Err(format!("the proxy answered HTTP {s}")),
        (true, Ok(Ok(TicketAnswer::Data(d)))) if d.starts_with(b"RFB ") => {
            format!("ticket accepted, VNC server answered {:?}", String::from_utf8_lossy(&d[..d.len().min(12)]).trim())
        }
        (true, Ok(Ok(TicketAnswer::Data(d)))) => {
            return Err(format!("{host}:{port} is not a VNC server (sent {:?})", String::from_utf8_lossy(&d[..d.len().min(12)])))
        }
        (true, Ok(Ok(TicketAnswer::Closed(code, reason)))) => {
            return Err(format!("closed {code}: {reason}: can the proxy host reach {host}:{port}?"))
        }
        (false, Ok(Ok(TicketAnswer::Closed(1011, reason)))) => format!("ticket accepted (closed port answered 1011: {reason})"),
        (false, Ok(Ok(TicketAnswer::Closed(code, reason)))) => return Err(format!("expected close 1011, got {code}: {reason}")),
        (false, Ok(Ok(TicketAnswer::Data(_)))) => return Err("something answered on 127.0.0.1:1 of the proxy host".into()),
    };
    Ok(((), detail))
}

/// A ticket from a key the engine does not have is refused with 403.
async fn foreign_ticket(target: &Target, throwaway: &rsa::RsaPrivateKey, limit: Duration) -> Check<()> {
    let ticket = ticket_sign::sign(throwaway, &Console { host: "127.0.0.1", port: 1, ssl_target: false }, wsproxy::ticket::now_unix(), 30);
    match tokio::time::timeout(limit, target.try_ticket(&ticket)).await {
        Ok(Ok(TicketAnswer::Refused(403))) => Ok(((), "a ticket from a foreign key got 403".to_string())),
        Ok(Ok(_)) => Err("DANGER: the proxy accepted a ticket signed by a key that is not the engine's".to_string()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer within the timeout".into()),
    }
}

fn days_left(cert: &CertificateDer<'_>) -> i64 {
    use x509_parser::prelude::*;
    X509Certificate::from_der(cert.as_ref()).map(|(_, c)| crate::pki::days_left(&c)).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        assert_eq!(parse_proxy_url("wss://proxy.example:6100").unwrap(), (true, "proxy.example".into(), 6100));
        assert_eq!(parse_proxy_url("ws://[::1]:7000/").unwrap(), (false, "::1".into(), 7000));
        assert_eq!(parse_proxy_url("wss://proxy.example").unwrap().2, 6100);
        assert!(parse_proxy_url("https://proxy").is_err());
    }
}
