//! Connecting the hypervisor side: plain TCP, VeNCrypt-TLS, or a KubeVirt websocket.
//!
//! Everything here happens after the browser's upgrade, bounded by the connect timeout; every
//! failure becomes a [`ConnectError`] whose text ends up in the 1011 close reason and the log.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

use crate::allow::TargetAllowList;
use crate::ticket::Target;
use crate::vencrypt;

/// Largest chunk read from a target in one go (one websocket message).
pub const CHUNK: usize = 64 * 1024;

/// Why the target could not be reached. Shown to the browser as the 1011 close reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Not in WSPROXY_TARGET_ALLOW.
    NotAllowed(String),
    /// A KubeVirt target while its TLS peer would not be verified (no WSPROXY_TARGET_CA): its
    /// bearer token is never sent to an unverified peer.
    UnverifiedKubeVirt(String),
    Unreachable(String),
    /// No answer within WSPROXY_CONNECT_TIMEOUT.
    TimedOut(String),
    Negotiation(String),
}

impl ConnectError {
    /// The metric label ([`crate::metrics::CONNECT_FAILURES`]).
    pub fn cause(&self) -> &'static str {
        match self {
            ConnectError::NotAllowed(_) | ConnectError::UnverifiedKubeVirt(_) => "not_allowed",
            ConnectError::Unreachable(_) => "unreachable",
            ConnectError::TimedOut(_) => "timeout",
            ConnectError::Negotiation(_) => "negotiation",
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::NotAllowed(t) => write!(f, "target {t} is not in WSPROXY_TARGET_ALLOW"),
            ConnectError::UnverifiedKubeVirt(t) => write!(
                f,
                "KubeVirt target {t}: its bearer token is sent only to a verified peer: set WSPROXY_TARGET_CA \
                 (or WSPROXY_KUBEVIRT_UNVERIFIED_TLS=true, which sends it to whoever answers)"
            ),
            ConnectError::Unreachable(why) | ConnectError::TimedOut(why) => {
                write!(f, "target unreachable: {why}")
            }
            ConnectError::Negotiation(why) => write!(f, "target negotiation failed: {why}"),
        }
    }
}

/// A plain or TLS byte stream to a VNC server.
pub enum ByteStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncWrite for ByteStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ByteStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ByteStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ByteStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for ByteStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ByteStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

/// A connected target.
pub enum Connected {
    /// Relay bytes as they are.
    Plain(ByteStream),
    /// VeNCrypt was terminated here: greet the browser with plain RFB security first.
    VeNCrypt { stream: ByteStream, browser_security: u8 },
    /// A KubeVirt VNC websocket: relay messages.
    KubeVirt(Box<WebSocketStream<ByteStream>>),
}

/// What a connector needs besides the ticket's target.
pub struct Connector {
    pub allow: TargetAllowList,
    pub tls: Arc<ClientConfig>,
    pub timeout: Duration,
    /// Whether KubeVirt bearer tokens may be sent: only when `tls` verifies the peer
    /// (WSPROXY_TARGET_CA), or when the operator opted out of that explicitly.
    pub kubevirt_tokens: bool,
}

impl Connector {
    /// Whether a ticket's target may be tried at all (decided before the upgrade when the
    /// answer does not depend on name resolution).
    pub fn precheck(&self, target: &Target) -> Result<(), ConnectError> {
        if target.kubevirt.is_some() && !self.kubevirt_tokens {
            return Err(ConnectError::UnverifiedKubeVirt(target.to_string()));
        }
        // An address is decided now, before any upgrade; a name that may resolve into an
        // allowed network is decided after resolution.
        let may_resolve_in = crate::allow::address(&target.host).is_none() && self.allow.has_networks();
        let allowed = self.allow.allows_name(&target.host) || may_resolve_in;
        if allowed {
            Ok(())
        } else {
            Err(ConnectError::NotAllowed(target.to_string()))
        }
    }

    /// Connect and negotiate, within the connect timeout.
    pub async fn connect(&self, target: &Target) -> Result<Connected, ConnectError> {
        match tokio::time::timeout(self.timeout, self.connect_inner(target)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::TimedOut(format!(
                "no answer from {target} within {} s (WSPROXY_CONNECT_TIMEOUT)",
                self.timeout.as_secs()
            ))),
        }
    }

    async fn connect_inner(&self, target: &Target) -> Result<Connected, ConnectError> {
        let tcp = self.connect_tcp(target).await?;
        if let Some(kubevirt) = &target.kubevirt {
            let tls = self.start_tls(tcp, &target.host).await?;
            let url = format!("wss://{}:{}{}", bracket(&target.host), target.port, kubevirt.path);
            let mut request = url.into_client_request().map_err(|e| ConnectError::Negotiation(format!("bad KubeVirt URL: {e}")))?;
            let protocols =
                format!("base64url.bearer.authorization.k8s.io.{}, plain.kubevirt.io", URL_SAFE_NO_PAD.encode(kubevirt.token.as_bytes()));
            let value =
                HeaderValue::from_str(&protocols).map_err(|_| ConnectError::Negotiation("token is not a valid header value".into()))?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", value);
            let (ws, _) = tokio_tungstenite::client_async(request, ByteStream::Tls(Box::new(tls)))
                .await
                .map_err(|e| ConnectError::Negotiation(format!("KubeVirt websocket: {e}")))?;
            return Ok(Connected::KubeVirt(Box::new(ws)));
        }
        if target.ssl_target {
            let mut tcp = tcp;
            let negotiated = vencrypt::negotiate(&mut tcp).await.map_err(ConnectError::Negotiation)?;
            let tls = self.start_tls(tcp, &target.host).await?;
            return Ok(Connected::VeNCrypt { stream: ByteStream::Tls(Box::new(tls)), browser_security: negotiated.browser_security });
        }
        Ok(Connected::Plain(ByteStream::Tcp(tcp)))
    }

    async fn connect_tcp(&self, target: &Target) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| ConnectError::Unreachable(format!("cannot resolve {}: {e}", target.host)))?
            .collect();
        let name_allowed = self.allow.allows_name(&target.host);
        let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| name_allowed || self.allow.allows_addr(a.ip())).collect();
        if allowed.is_empty() {
            return Err(ConnectError::NotAllowed(target.to_string()));
        }
        let mut last = None;
        for addr in allowed {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(ConnectError::Unreachable(last.unwrap_or_else(|| "no address".into())))
    }

    async fn start_tls(&self, tcp: TcpStream, host: &str) -> Result<TlsStream<TcpStream>, ConnectError> {
        let name = crate::tls::server_name(host).map_err(ConnectError::Negotiation)?;
        TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectError::Negotiation(format!("TLS with {host}: {e}")))
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
