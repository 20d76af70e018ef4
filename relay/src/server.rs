//! Accept, TLS, HTTP (healthz, refusals), upgrade, relay, shutdown: the life of a connection,
//! top to bottom.
//!
//! Order matters for safety: the ticket is verified, the target allow-listed, the session
//! limits and the replay cache checked, all before the `101`; only then is the target
//! connected, so a refused browser never causes a connection into the hypervisor network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::browser::BrowserSocket;
use crate::wsframe::code;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, AdminAuth};
use crate::config::{key, Config};
use crate::http::{self, HeadError, Request};
use crate::metrics::{Metrics, Refusal};
use crate::registry::Registry;
use crate::rehome::Rehome;
use crate::reload::{self, Reloadable};
use crate::replay::{ReplayStore, Verdict};
use crate::session::{self, Encoding, EndReason, Timing};
use crate::sessions::{Full, Sessions, Slot};
use crate::start_error::StartError;
use crate::target::Connector;
use crate::ticket::{now_unix, TicketVerifier};
use crate::{audit, listener, static_files, tls};

/// Shared by every connection.
struct State {
    config: Config,
    verifier: Arc<Reloadable<TicketVerifier>>,
    tls: Option<TlsAcceptor>,
    connector: Connector,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    /// SIGTERM has arrived: `/readyz` answers 503 (the relay may still accept, for
    /// WSPROXY_DRAIN_NOTICE).
    stopping: AtomicBool,
    /// The drain is over and the remaining sessions are being closed: an upgrade still in
    /// its handshake is answered 503. (Connections accepted before the listener closed are
    /// served and drained like the rest: in a hand-over they were meant for this relay.)
    closing: AtomicBool,
    force_close: watch::Receiver<bool>,
    /// Connections in TLS or HTTP handshake now (bounded by WSPROXY_MAX_HANDSHAKES).
    handshaking: AtomicUsize,
    /// Where used tickets are recorded.
    replay: ReplayStore,
    /// The open sessions, for the admin listener.
    registry: Arc<Registry>,
}

/// The admin listener, bound at start ([`crate::admin`]).
struct AdminListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    auth: Arc<AdminAuth>,
}

/// One connection counted as in handshake until it has sent its request head (or gone).
struct Handshake(Arc<State>);

impl Handshake {
    /// None when WSPROXY_MAX_HANDSHAKES connections are already in handshake.
    fn enter(state: &Arc<State>) -> Option<Handshake> {
        let now = state.handshaking.fetch_add(1, Ordering::AcqRel);
        let guard = Handshake(state.clone());
        (now < state.config.max_handshakes).then_some(guard)
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0.handshaking.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A bound, ready relay. [`Relay::serve`] runs it until the stop future completes.
pub struct Relay {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    admin: Option<AdminListener>,
    state: Arc<State>,
    force_close_tx: watch::Sender<bool>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

fn load_verifier(path: &PathBuf, config: &Config) -> Result<TicketVerifier, StartError> {
    let pem = std::fs::read(path).map_err(|source| StartError::ReadEngineCert { path: path.clone(), source })?;
    TicketVerifier::from_certificate_pem(&pem, config.allow_legacy_sha1, config.ticket_skew.as_secs() as i64)
        .map_err(|e| StartError::BadEngineCert { path: path.clone(), why: e.to_string() })
}

impl AdminListener {
    /// The admin listener, when configured: its token, its TLS (the proxy's certificate, client
    /// certificates from WSPROXY_ADMIN_CLIENT_CA) and its socket.
    fn bind(config: &Config, proxy_cert: Option<Arc<Reloadable<rustls::sign::CertifiedKey>>>) -> Result<Option<AdminListener>, StartError> {
        let (a, cert) = match (&config.admin, proxy_cert) {
            (None, _) => return Ok(None),
            (Some(_), None) => return Err(StartError::Admin("the admin listener speaks TLS only: set SSL_CERTIFICATE and SSL_KEY".into())),
            (Some(a), Some(cert)) => (a, cert),
        };
        let auth = AdminAuth::load(a.token_file.as_deref()).map_err(StartError::Admin)?;
        let server = tls::admin_server_config(cert, a.client_ca.as_deref(), a.token_file.is_some())
            .map_err(|e| StartError::Admin(format!("WSPROXY_ADMIN_CLIENT_CA: {e}")))?;
        // Shared like the browsers' port where a redeploy hands over: the draining relay keeps
        // answering for its own consoles until they end.
        let listener = listener::bind(a.listen, config.reuse_port).map_err(|source| StartError::Listen {
            keys: key::WSPROXY_ADMIN_LISTEN.name,
            addr: a.listen,
            source,
        })?;
        Ok(Some(AdminListener { listener, acceptor: TlsAcceptor::from(Arc::new(server)), auth: Arc::new(auth) }))
    }
}

impl Relay {
    /// Check the configured files, load certificates, bind the listeners, start the
    /// certificate watchers.
    pub async fn bind(config: Config) -> Result<Relay, StartError> {
        config.check_files()?;
        let engine_cert = config.engine_cert.clone().ok_or(StartError::NoEngineCert)?;
        let verifier = Arc::new(Reloadable::new(load_verifier(&engine_cert, &config)?));
        let mut watchers = Vec::new();
        if let Some(interval) = config.cert_reload_interval {
            let cfg = config.clone();
            let path = engine_cert.clone();
            watchers.push(reload::watch(verifier.clone(), vec![engine_cert.clone()], interval, "engine certificate", move || {
                load_verifier(&path, &cfg).map_err(|e| e.to_string())
            }));
        }

        let (tls, proxy_cert) = match &config.tls {
            None => (None, None),
            Some(files) => {
                let certified = tls::load_certified_key(&files.certificate, &files.key).map_err(StartError::ProxyCert)?;
                let current = Arc::new(Reloadable::new(certified));
                if let Some(interval) = config.cert_reload_interval {
                    let (c, k) = (files.certificate.clone(), files.key.clone());
                    watchers.push(reload::watch(current.clone(), vec![c.clone(), k.clone()], interval, "proxy certificate", move || {
                        tls::load_certified_key(&c, &k)
                    }));
                }
                let acceptor =
                    TlsAcceptor::from(Arc::new(tls::server_config(current.clone(), files.min_version).map_err(StartError::Tls)?));
                (Some(acceptor), Some(current))
            }
        };
        let admin = AdminListener::bind(&config, proxy_cert)?;

        let listener = listener::bind(config.listen, config.reuse_port).map_err(|source| StartError::Listen {
            keys: "PROXY_HOST/PROXY_PORT",
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics_listen {
            None => None,
            Some(addr) => Some(listener::bind(addr, config.reuse_port).map_err(|source| StartError::Listen {
                keys: key::WSPROXY_METRICS_LISTEN.name,
                addr,
                source,
            })?),
        };

        let replay = ReplayStore::open(config.replay_store.as_ref()).map_err(StartError::ReplayStore)?;
        tracing::info!(replay_store = %replay.describe(), "single-use tickets recorded");
        let metrics = Arc::new(Metrics::default());
        let connector = Connector {
            allow: config.target_allow.clone(),
            tls: tls::target_client_config(config.target_ca.as_deref()).map_err(StartError::TargetCa)?,
            timeout: config.connect_timeout,
            kubevirt_tokens: config.target_ca.is_some() || config.kubevirt_unverified_tls,
        };
        let (force_close_tx, force_close) = watch::channel(false);
        let state = Arc::new(State {
            sessions: Sessions::new(config.max_sessions, config.max_sessions_per_ip, metrics.clone()),
            config,
            verifier,
            tls,
            connector,
            metrics,
            stopping: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            force_close,
            handshaking: AtomicUsize::new(0),
            replay,
            registry: Arc::new(Registry::default()),
        });
        Ok(Relay { listener, metrics_listener, admin, state, force_close_tx, watchers })
    }

    /// The address the relay listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The metrics listener's address, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serve until `stop` completes, then give notice (WSPROXY_DRAIN_NOTICE: still accepting,
    /// `/readyz` 503, so load balancers and Kubernetes move new consoles away first), then
    /// drain: no new connections, open sessions get the shutdown grace to finish, then are
    /// closed with 1001.
    pub async fn serve(self, stop: impl std::future::Future<Output = ()>) {
        let Relay { listener, metrics_listener, admin, state, force_close_tx, watchers } = self;
        let metrics_task = metrics_listener.map(|l| tokio::spawn(serve_metrics(l, state.metrics.clone())));
        let admin_task = admin.map(|a| tokio::spawn(admin::serve(a.listener, a.acceptor, a.auth, state.registry.clone())));
        accept_until(&listener, &state, stop).await;
        state.stopping.store(true, Ordering::SeqCst);
        let notice = state.config.drain_notice;
        if !notice.is_zero() {
            tracing::info!(notice_secs = notice.as_secs(), "stopping: /readyz answers 503, still accepting during the notice");
            accept_until(&listener, &state, tokio::time::sleep(notice)).await;
        }
        for (tcp, peer) in listener::close_after_sweep(listener) {
            let handshake = Handshake::enter(&state);
            tokio::spawn(handle(tcp, peer, state.clone(), handshake));
        }
        let grace = state.config.shutdown_grace;
        let open = state.sessions.active();
        tracing::info!(open_sessions = open, grace_secs = grace.as_secs(), "stopping: no new connections, draining sessions");
        let deadline = tokio::time::Instant::now() + grace;
        wait_sessions_closed(&state.sessions, deadline).await;
        let left = state.sessions.active();
        if left > 0 {
            tracing::info!(open_sessions = left, "grace period over, closing the remaining sessions");
            state.closing.store(true, Ordering::SeqCst);
            let _ = force_close_tx.send(true);
            wait_sessions_closed(&state.sessions, tokio::time::Instant::now() + Duration::from_secs(5)).await;
        }
        for w in watchers {
            w.abort();
        }
        for t in metrics_task.into_iter().chain(admin_task) {
            t.abort();
        }
        tracing::info!("stopped");
    }
}

/// Wait until no session is open, or the deadline passes.
async fn wait_sessions_closed(sessions: &Sessions, deadline: tokio::time::Instant) {
    loop {
        // Register interest before checking, so a release in between is not missed.
        let released = sessions.released.notified();
        if sessions.active() == 0 || tokio::time::timeout_at(deadline, released).await.is_err() {
            return;
        }
    }
}

async fn handle(mut tcp: TcpStream, peer: SocketAddr, state: Arc<State>, handshake: Option<Handshake>) {
    let Some(handshake) = handshake else {
        // Unauthenticated connections cost memory and CPU: beyond the cap, closed at once.
        state.metrics.refuse(Refusal::HandshakeLimit);
        tracing::debug!(client = %peer, "WSPROXY_MAX_HANDSHAKES connections already in handshake; closed");
        return;
    };
    let _ = tcp.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + state.config.handshake_timeout;
    // Behind a trusted balancer, the client it names in a PROXY protocol header. Boxed (see
    // below): its buffer is not kept in the task for the session's life.
    let trust = &state.config.client_trust;
    let peer = match trust.reads_header_from(peer.ip()) {
        false => peer,
        true => match Box::pin(trust.proxy_header(&mut tcp, peer, deadline)).await {
            Ok(client) => client,
            Err(why) => {
                state.metrics.refuse(Refusal::ProxyHeader);
                tracing::debug!(client = %peer, error = %why, "closed at the PROXY protocol header");
                return;
            }
        },
    };
    // Everything before the 101 runs boxed (`Box::pin`): a task's future is as large as its
    // largest state for the task's whole life, and the handshake, the request head and the
    // admission checks together are larger than the session that follows. Boxed, their memory
    // is freed when the session starts, and an idle session holds only what relaying needs.
    let Some(acceptor) = state.tls.clone() else {
        return serve_then_relay(tcp, peer, PLAIN, state, deadline, handshake).await;
    };
    let ssl_only = state.config.tls.as_ref().is_some_and(|t| t.ssl_only);
    if !ssl_only {
        // Like websockify: a first byte of 0x16 (TLS handshake record) means TLS.
        let mut first = [0u8; 1];
        match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] != 0x16 => return serve_then_relay(tcp, peer, PLAIN, state, deadline, handshake).await,
            Ok(Ok(1)) => {}
            Ok(_) => return,
            Err(_) => return state.metrics.refuse(Refusal::HandshakeTimeout),
        }
    }
    match Box::pin(tokio::time::timeout_at(deadline, acceptor.accept(tcp))).await {
        Ok(Ok(tls)) => {
            let version = tls_version(tls.get_ref().1.protocol_version());
            serve_then_relay(tls, peer, version, state, deadline, handshake).await
        }
        Ok(Err(e)) => {
            state.metrics.refuse(Refusal::TlsFailed);
            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            state.metrics.refuse(Refusal::HandshakeTimeout);
            tracing::debug!(client = %peer, "TLS handshake timed out");
        }
    }
}

/// A connection that got its 101: what [`relay_session`] needs.
struct Upgraded<S> {
    ws: BrowserSocket<S>,
    client: Client,
    admitted: Admitted,
    encoding: Encoding,
}

/// The request (boxed, see [`handle`]), then the session when it got its 101, boxed too: the
/// task then holds two pointers, and each box is as large as its own stream type needs (the
/// task's type holds the plain and the TLS variant, and would otherwise be as large as the
/// larger for every session). The browser socket is boxed once more on its way to the pump,
/// which owns it (to move it between runtime lanes, `crate::runtime`), so that no future on
/// the way keeps a copy: idle sessions 11.3 KiB (ws) / 19.9 KiB (wss) at 24242dc (the admin
/// listener's registry entry included), docs/BENCHMARKS.md.
async fn serve_then_relay<S: AsyncRead + AsyncWrite + Unpin + Send + Rehome + 'static>(
    stream: S,
    peer: SocketAddr,
    tls: &'static str,
    state: Arc<State>,
    deadline: tokio::time::Instant,
    handshake: Handshake,
) {
    let upgraded = Box::pin(serve_http(stream, peer, tls, state.clone(), deadline, handshake)).await;
    if let Some(Upgraded { ws, client, admitted, encoding }) = upgraded {
        Box::pin(relay_session(Box::new(ws), client, &state, admitted, encoding)).await;
    }
}

/// What a plain (not TLS) websocket connection records as its TLS version.
const PLAIN: &str = "none";

/// The negotiated TLS version as audit records name it.
fn tls_version(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    }
}

/// Accept connections, each served by a task of its own, until `stop` completes.
async fn accept_until(listener: &TcpListener, state: &Arc<State>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener::accept(listener) => if let Some((tcp, peer)) = accepted {
                // Counted here, in accept order, not in the spawned task: under load the
                // tasks may run in any order and the cap must hold all the same.
                let handshake = Handshake::enter(state);
                let state = state.clone();
                tokio::spawn(async move { handle(tcp, peer, state, handshake).await });
            }
        }
    }
}

/// The ticket part of a request path, kept in the path's own buffer (it is decoded there):
/// everything after the first `/`, without a query.
fn ticket_of(path: String) -> Vec<u8> {
    let mut ticket = path.into_bytes();
    if let Some(query) = ticket.iter().position(|&b| b == b'?') {
        ticket.truncate(query);
    }
    if ticket.first() == Some(&b'/') {
        ticket.remove(0);
    }
    ticket
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    tls: &'static str,
    state: Arc<State>,
    deadline: tokio::time::Instant,
    handshake: Handshake,
) -> Option<Upgraded<S>> {
    let head = tokio::time::timeout_at(deadline, http::read_head(&mut stream)).await;
    drop(handshake);
    let (req, leftover) = match head {
        Err(_) => {
            state.metrics.refuse(Refusal::HandshakeTimeout);
            tracing::debug!(client = %peer, "request head not complete within WSPROXY_HANDSHAKE_TIMEOUT");
            return None;
        }
        Ok(Err(HeadError::Closed)) => return None,
        Ok(Err(HeadError::TooLarge)) => {
            state.metrics.refuse(Refusal::BadRequest);
            let _ = http::respond(&mut stream, 431, "request head too large\n").await;
            return None;
        }
        Ok(Err(HeadError::Invalid(why))) => {
            state.metrics.refuse(Refusal::BadRequest);
            tracing::debug!(client = %peer, error = %why, "not an HTTP request");
            let _ = http::respond(&mut stream, 400, "not an HTTP/1.1 request\n").await;
            return None;
        }
        Ok(Ok(parsed)) => parsed,
    };

    let path_only = req.path.split('?').next().unwrap_or("");
    if path_only == "/healthz" {
        let _ = http::respond(&mut stream, 200, "ok\n").await;
        return None;
    }
    // Readiness: whether new consoles should come here. Liveness (/healthz) stays 200 while
    // the relay drains, so nothing restarts it mid-drain.
    if path_only == "/readyz" {
        let _ = match state.stopping.load(Ordering::SeqCst) {
            true => http::respond(&mut stream, 503, "stopping: send new consoles elsewhere\n").await,
            false => http::respond(&mut stream, 200, "ready\n").await,
        };
        return None;
    }
    if let Some(dir) = &state.config.novnc_dir {
        if path_only == "/novnc" || path_only.starts_with("/novnc/") {
            let _ = static_files::serve(&mut stream, dir, path_only.trim_start_matches("/novnc")).await;
            return None;
        }
    }
    if req.method != "GET" {
        let _ = http::respond(&mut stream, 405, "only GET is served\n").await;
        return None;
    }
    // Behind a trusted HTTP proxy, the client it names (Forwarded, X-Forwarded-For).
    let addr = state.config.client_trust.forwarded_client(peer, &req.forwarded, &req.x_forwarded_for);
    upgrade(stream, Client { addr, tls }, state, req, leftover).await
}

/// Who asks for a console: the address and how it came (for audit records).
#[derive(Clone, Copy)]
struct Client {
    addr: SocketAddr,
    tls: &'static str,
}

/// Answer 403 with the reason, and an audit record; `None`, so an admission check can
/// `return` it. `ticket`: the fingerprint, once the signature has checked out.
async fn refuse_ticket<S: AsyncWrite + Unpin, T>(
    stream: &mut S,
    state: &State,
    client: Client,
    label: &str,
    why: &str,
    ticket: Option<&[u8; 32]>,
) -> Option<T> {
    state.metrics.reject_ticket(label);
    audit::refused(client.addr, client.tls, 403, label, why, ticket);
    let _ = http::respond(stream, 403, &format!("forbidden: {why}\n")).await;
    None
}

/// Answer 503 with the reason (a capacity or availability limit on a good ticket), and an audit
/// record.
async fn refuse_unavailable<S: AsyncWrite + Unpin, T>(
    stream: &mut S,
    client: Client,
    label: &str,
    why: &str,
    ticket: &[u8; 32],
) -> Option<T> {
    audit::refused(client.addr, client.tls, 503, label, why.trim_end(), Some(ticket));
    let _ = http::respond(stream, 503, why).await;
    None
}

/// A request that passed every check before the 101: its target, its websocket key, the
/// session slot it holds and the ticket's fingerprint.
struct Admitted {
    target: crate::ticket::Target,
    key: String,
    slot: Slot,
    ticket: [u8; 32],
}

async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    client: Client,
    state: Arc<State>,
    mut req: Request,
    leftover: Vec<u8>,
) -> Option<Upgraded<S>> {
    let admitted = admit(&mut stream, client, &state, &mut req).await?;
    let (encoding, protocol) = if req.ws_protocols.iter().any(|p| p == "binary") {
        (Encoding::Binary, Some("binary"))
    } else if req.ws_protocols.iter().any(|p| p == "base64") {
        (Encoding::Base64, Some("base64"))
    } else {
        (Encoding::Binary, None)
    };
    let response = http::switching_protocols(&http::accept_key(&admitted.key), protocol);
    if stream.write_all(response.as_bytes()).await.is_err() || stream.flush().await.is_err() {
        return None;
    }
    let ws = BrowserSocket::new(stream, leftover, state.config.max_message_size);
    Some(Upgraded { ws, client, admitted, encoding })
}

/// Every check before the 101, in order of cost: the ticket's signature and validity, the
/// target allow list, the websocket headers, closing, capacity, single use. Each refusal
/// answers with its status and reason and counts under its metric label. The path is taken
/// from `req`: the ticket is decoded in its buffer.
async fn admit<S: AsyncWrite + Unpin>(stream: &mut S, client: Client, state: &State, req: &mut Request) -> Option<Admitted> {
    let now = now_unix();
    let ticket = match state.verifier.get().verify_in_place(ticket_of(std::mem::take(&mut req.path)), now) {
        Ok(t) => t,
        Err(e) => return refuse_ticket(stream, state, client, e.reason(), &e.to_string(), None).await,
    };
    if let Err(e) = state.connector.precheck(&ticket.target) {
        return refuse_ticket(stream, state, client, "target_not_allowed", &e.to_string(), Some(&ticket.id)).await;
    }
    if !(req.upgrade_websocket && req.connection_upgrade) {
        let _ = http::respond(stream, 426, "this URL is a websocket endpoint: connect with noVNC\n").await;
        return None;
    }
    let key = match (&req.ws_version, &req.ws_key) {
        (Some(v), Some(k)) if v == "13" && !k.is_empty() => k.clone(),
        _ => {
            state.metrics.refuse(Refusal::BadRequest);
            let _ = http::respond(stream, 400, "websocket version 13 with a Sec-WebSocket-Key is required\n").await;
            return None;
        }
    };
    if state.closing.load(Ordering::SeqCst) {
        return refuse_unavailable(stream, client, "shutting_down", "proxy is shutting down\n", &ticket.id).await;
    }
    let slot = match state.sessions.acquire(client.addr.ip()) {
        Ok(slot) => slot,
        Err(full) => {
            let (refusal, msg) = match full {
                Full::Global => (Refusal::Capacity, "too many sessions (WSPROXY_MAX_SESSIONS)\n"),
                Full::PerIp => (Refusal::PerIpLimit, "too many sessions from this address (WSPROXY_MAX_SESSIONS_PER_IP)\n"),
            };
            state.metrics.refuse(refusal);
            return refuse_unavailable(stream, client, refusal.as_str(), msg, &ticket.id).await;
        }
    };
    if !state.config.allow_ticket_reuse {
        let keep_until = ticket.valid_to + state.config.ticket_skew.as_secs() as i64;
        match state.replay.first_use(ticket.id, keep_until, now).await {
            Verdict::First => {}
            Verdict::Reused => {
                let why = "ticket already used (open the console again for a new one)";
                return refuse_ticket(stream, state, client, "reused", why, Some(&ticket.id)).await;
            }
            Verdict::Unavailable(why) => {
                state.metrics.replay_store_error();
                let fail_open = state.config.replay_store.as_ref().is_some_and(|r| r.fail_open);
                if !fail_open {
                    state.metrics.refuse(Refusal::ReplayStoreUnavailable);
                    let msg = format!("single-use check unavailable ({why}); try again shortly\n");
                    return refuse_unavailable(stream, client, Refusal::ReplayStoreUnavailable.as_str(), &msg, &ticket.id).await;
                }
                tracing::warn!(client = %client.addr, reason = %why, "accepted WITHOUT the single-use check (WSPROXY_REPLAY_STORE_FAIL_OPEN)");
            }
        }
    }
    Some(Admitted { target: ticket.target, key, slot, ticket: ticket.id })
}

/// After the 101: connect the target, relay until either side ends, log the session.
async fn relay_session<S: AsyncRead + AsyncWrite + Unpin + Send + Rehome + 'static>(
    mut ws: Box<BrowserSocket<S>>,
    client: Client,
    state: &State,
    admitted: Admitted,
    encoding: Encoding,
) {
    let Admitted { target, slot, ticket, .. } = admitted;
    state.metrics.sessions_total.fetch_add(1, Ordering::Relaxed);
    let id = audit::SessionId::next();
    let record = audit::Session { id, ticket: &ticket, client: client.addr, target: &target, tls: client.tls };
    audit::session_start(&record);
    let started = Instant::now();
    let connected = match state.connector.connect(&target).await {
        Ok(c) => {
            state.metrics.observe_connect(started.elapsed());
            c
        }
        Err(e) => {
            state.metrics.connect_failed(e.cause());
            if matches!(e, crate::target::ConnectError::NotAllowed(_)) {
                state.metrics.reject_ticket("target_not_allowed");
            }
            let reason = e.to_string();
            ws.close(code::ERROR, &reason).await;
            let outcome =
                session::Outcome { reason: format!("target not reached: {reason}"), label: EndReason::TargetError, ..Default::default() };
            audit::session_end(&record, &outcome, started.elapsed());
            drop(slot);
            return;
        }
    };
    let timing = Timing {
        ping_interval: state.config.ping_interval,
        idle_timeout: state.config.idle_timeout,
        max_lifetime: state.config.max_session,
    };
    let registered = state.registry.register(id.to_string(), client.addr, target.to_string(), audit::Fingerprint(&ticket).to_string());
    let stops = session::Stops { shutdown: state.force_close.clone(), control: registered.control.clone() };
    let outcome = session::run(ws, connected, encoding, timing, state.metrics.clone(), stops).await;
    drop(registered);
    state.metrics.session_ended(outcome.label);
    audit::session_end(&record, &outcome, started.elapsed());
    drop(slot);
}

async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Some((mut tcp, _)) = listener::accept(&listener).await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let head = tokio::time::timeout(Duration::from_secs(5), http::read_head(&mut tcp)).await;
            if let Ok(Ok((req, _))) = head {
                if req.path == "/metrics" {
                    let body = metrics.render();
                    let _ = http::respond_with(&mut tcp, 200, "text/plain; version=0.0.4", body.as_bytes()).await;
                } else {
                    let _ = http::respond(&mut tcp, 404, "metrics are at /metrics\n").await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::ticket_of;

    #[test]
    fn ticket_path() {
        assert_eq!(ticket_of("/abc/def+==".into()), b"abc/def+==");
        assert_eq!(ticket_of("/abc?x=1".into()), b"abc");
        assert_eq!(ticket_of("/".into()), b"");
    }
}
