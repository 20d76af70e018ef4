//! Real peers for integration tests, independent of the code under test.
//!
//! - [`Pki`]: a CA, a proxy certificate and an engine signing key made by the `openssl` CLI.
//! - [`sign_ticket`]: an engine-style ticket whose RSA-PSS signature is made by `openssl dgst`,
//!   not by the relay's RSA library.
//! - [`Xvnc`]: a real TigerVNC server (VNC password or VeNCrypt X509Vnc).
//! - [`connect_ws`] and [`rfb_handshake`]: a websocket client that trusts only the test CA and
//!   completes an RFB 3.8 handshake with VNC authentication, as noVNC does.
//!
//! Missing tools are reported by name with the command that installs them.

pub mod balancers;
pub mod from_address;
pub mod hosts;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use des::cipher::{BlockEncrypt, KeyInit};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream as TokioTcp;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Fail clearly when a tool the tests need is not installed.
pub fn require_tool(tool: &str) {
    assert!(
        on_path(tool),
        "`{tool}` is not installed: run `bash scripts/test.sh` (the README's test command), which installs \
         the Debian packages the integration tests use"
    );
}

/// Run a command, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A free TCP port on 127.0.0.1, taken from below the kernel's ephemeral range. A port the
/// kernel hands out for `bind(0)` is one it also hands to outgoing connections, so another
/// test's connection could take it between this call and the bind of whatever the port is
/// for (a fresh-clone run failed on it: a relay's metrics port "already in use"). Below the
/// range only listeners compete, and each call here takes the next port of this process's
/// own sequence. Where the range starts too low for that, `bind(0)` as before.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(0);
    if low >= SPAN + 4096 {
        // Test binaries run one after another, but the servers of an earlier one (podman,
        // sshd) may still hold ports: start each process somewhere else in the span.
        let start = std::process::id().wrapping_mul(2654435761) % SPAN;
        for _ in 0..SPAN {
            let port = low - SPAN + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
            if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                return port as u16;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait until something accepts TCP connections on the port.
pub fn wait_port(port: u16, within: Duration) {
    wait_addr("127.0.0.1", port, within)
}

/// Wait until something accepts TCP connections at `addr:port`.
pub fn wait_addr(addr: &str, port: u16, within: Duration) {
    let start = Instant::now();
    while TcpStream::connect((addr, port)).is_err() {
        assert!(start.elapsed() < within, "nothing listens on {addr}:{port} after {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Test PKI made with the openssl CLI.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub proxy_cert: PathBuf,
    pub proxy_key: PathBuf,
    pub engine_cert: PathBuf,
    pub engine_key: PathBuf,
}

impl Pki {
    /// An RSA-2048 CA, a proxy certificate for `localhost`/127.0.0.1, and an engine key and
    /// certificate, all signed by the CA.
    pub fn new(dir: &Path) -> Pki {
        require_tool("openssl");
        let p = |name: &str| dir.join(name);
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=Test Engine CA"])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca_cert: p("ca.pem"),
            ca_key: p("ca.key"),
            proxy_cert: p("websocket-proxy.cer"),
            proxy_key: p("websocket-proxy.key.nopass"),
            engine_cert: p("engine.cer"),
            engine_key: p("engine_id_rsa"),
        };
        pki.issue("localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1", &pki.proxy_key, &pki.proxy_cert, "rsa:2048");
        pki.issue("engine.test", "subjectAltName=DNS:engine.test", &pki.engine_key, &pki.engine_cert, "rsa:2048");
        pki
    }

    /// Issue a leaf certificate signed by the CA (used for rotation tests too).
    pub fn issue(&self, cn: &str, ext: &str, key: &Path, cert: &Path, newkey: &str) {
        self.issue_for(cn, &format!("{ext}\nextendedKeyUsage=serverAuth\n"), key, cert, newkey);
    }

    /// A client certificate signed by the CA (TLS client authentication).
    pub fn issue_client(&self, cn: &str, key: &Path, cert: &Path) {
        self.issue_for(cn, "extendedKeyUsage=clientAuth\n", key, cert, "rsa:2048");
    }

    fn issue_for(&self, cn: &str, extensions: &str, key: &Path, cert: &Path, newkey: &str) {
        let csr = self.dir.join(format!("{cn}.csr"));
        run(Command::new("openssl")
            .args(["req", "-new", "-newkey", newkey, "-nodes", "-subj"])
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(&csr));
        let extfile = self.dir.join(format!("{cn}.ext"));
        std::fs::write(&extfile, extensions).unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&self.ca_cert)
            .arg("-CAkey")
            .arg(&self.ca_key)
            .arg("-extfile")
            .arg(&extfile)
            .arg("-out")
            .arg(cert));
    }

    /// A key and self-signed certificate nobody trusts (a "foreign engine").
    pub fn foreign_engine(&self) -> (PathBuf, PathBuf) {
        let key = self.dir.join("foreign.key");
        let cert = self.dir.join("foreign.cer");
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=Foreign"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        (key, cert)
    }
}

fn engine_time(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
    format!("{:04}{:02}{:02}{:02}{:02}{:02}", t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// What to put in a ticket.
pub struct TicketSpec<'a> {
    pub host: &'a str,
    pub port: u16,
    pub ssl_target: bool,
    /// Validity window relative to now, seconds.
    pub valid_from: i64,
    pub valid_to: i64,
    /// `max` as the engine does; `digest` to make a ticket the engine would not.
    pub salt_len: &'a str,
    /// KubeVirt console: (path, token).
    pub kubevirt: Option<(&'a str, &'a str)>,
}

impl<'a> TicketSpec<'a> {
    pub fn new(host: &'a str, port: u16) -> Self {
        TicketSpec { host, port, ssl_target: false, valid_from: -5, valid_to: 30, salt_len: "max", kubevirt: None }
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Make an engine-style ticket, signed with `openssl dgst` (RSA-PSS, SHA-256, MGF1-SHA-256).
pub fn sign_ticket(engine_key: &Path, spec: &TicketSpec) -> String {
    require_tool("openssl");
    let salt = STANDARD.encode(std::array::from_fn::<u8, 8, _>(|i| (now() as u8).wrapping_add(i as u8 * 31)));
    let mut fields = serde_json::json!({"host": spec.host, "port": spec.port.to_string(), "ssl_target": spec.ssl_target});
    if let Some((path, token)) = spec.kubevirt {
        fields["path"] = path.into();
        fields["token"] = token.into();
    }
    let data = url_encode(&fields.to_string());
    let valid_from = engine_time(now() + spec.valid_from);
    let valid_to = engine_time(now() + spec.valid_to);
    let message = format!("{salt}{valid_from}{valid_to}{data}");
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg");
    std::fs::write(&msg, message).unwrap();
    let sig = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt"])
        .arg(format!("rsa_pss_saltlen:{}", spec.salt_len))
        .args(["-sigopt", "rsa_mgf1_md:sha256", "-sign"])
        .arg(engine_key)
        .arg(&msg));
    let cert = "-----BEGIN CERTIFICATE-----\nnot trusted by the proxy\n-----END CERTIFICATE-----\n";
    let ticket = serde_json::json!({
        "salt": salt,
        "validFrom": valid_from,
        "validTo": valid_to,
        "data": data,
        "signedFields": "salt,validFrom,validTo,data",
        "v2_signature": STANDARD.encode(sig),
        "certificate": cert,
    });
    STANDARD.encode(ticket.to_string())
}

/// A running Xvnc; killed on drop.
pub struct Xvnc {
    pub port: u16,
    pub display: u32,
    child: Child,
    _dir: tempfile::TempDir,
}

/// How the VNC server secures connections.
pub enum VncSecurity<'a> {
    VncAuth,
    X509Vnc { cert: &'a Path, key: &'a Path },
}

impl Xvnc {
    pub fn start(password: &str, security: VncSecurity) -> Xvnc {
        require_tool("Xvnc");
        require_tool("vncpasswd");
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let mut child = Command::new("vncpasswd").arg("-f").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(format!("{password}\n{password}\n").as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        std::fs::write(&passwd, out.stdout).unwrap();
        let port = free_port();
        let display = 100 + (port as u32 % 800);
        let mut cmd = Command::new("Xvnc");
        cmd.arg(format!(":{display}"))
            .args(["-rfbport", &port.to_string(), "-interface", "127.0.0.1", "-geometry", "320x200", "-depth", "24"])
            .arg("-PasswordFile")
            .arg(&passwd)
            .args(["-nolisten", "tcp", "-AlwaysShared"]);
        match security {
            VncSecurity::VncAuth => {
                cmd.args(["-SecurityTypes", "VncAuth"]);
            }
            VncSecurity::X509Vnc { cert, key } => {
                cmd.args(["-SecurityTypes", "X509Vnc"]).arg("-X509Cert").arg(cert).arg("-X509Key").arg(key);
            }
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start Xvnc");
        wait_port(port, Duration::from_secs(10));
        Xvnc { port, display, child, _dir: dir }
    }

    /// Fill the root window with a colour (needs `xsetroot`).
    pub fn solid(&self, colour: &str) {
        require_tool("xsetroot");
        run(Command::new("xsetroot").env("DISPLAY", format!(":{}", self.display)).args(["-solid", colour]));
    }

    /// Stop the server now (see [`stop_x_server`]).
    pub fn kill(&mut self) {
        stop_x_server(&mut self.child);
    }
}

impl Drop for Xvnc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Stop an X server with SIGTERM so it removes its /tmp/.X<n>-lock and socket (SIGKILL leaves
/// them behind, run after run); SIGKILL only if it has not exited within 2 s.
pub fn stop_x_server(child: &mut Child) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    for _ in 0..100 {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A client TLS config trusting only `ca`.
pub fn client_tls(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub type Ws = WebSocketStream<MaybeTlsStream<TokioTcp>>;

/// Result of a websocket connection attempt.
#[derive(Debug)]
pub enum WsOutcome {
    Open(Box<Ws>),
    /// HTTP status and body of a refused upgrade.
    Refused(u16, String),
}

/// Connect to `url` (ws:// or wss://, `ca` required for wss) offering the `binary` subprotocol.
pub async fn connect_ws(url: &str, ca: Option<&Path>) -> WsOutcome {
    try_connect_ws(url, ca).await.unwrap_or_else(|e| panic!("{e}"))
}

/// [`connect_ws`] over TCP to `addr` instead of where the URL's host resolves (the certificate
/// is still checked for the URL's host): one relay of several behind one name.
pub async fn connect_ws_at(addr: SocketAddr, url: &str, ca: &Path) -> WsOutcome {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
    let tcp = TokioTcp::connect(addr).await.unwrap_or_else(|e| panic!("{addr}: {e}"));
    let connector = tokio_tungstenite::Connector::Rustls(client_tls(ca));
    match tokio_tungstenite::client_async_tls_with_config(request, tcp, None, Some(connector)).await {
        Ok((ws, _)) => WsOutcome::Open(Box::new(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).to_string()).unwrap_or_default();
            WsOutcome::Refused(resp.status().as_u16(), body)
        }
        Err(e) => panic!("websocket connection to {url} at {addr} failed: {e}"),
    }
}

/// [`connect_ws`], with a connection that fails below HTTP (refused, reset, TLS) as an error
/// instead of a panic: for tests that count such failures.
pub async fn try_connect_ws(url: &str, ca: Option<&Path>) -> Result<WsOutcome, String> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("binary"));
    let connector = ca.map(|ca| tokio_tungstenite::Connector::Rustls(client_tls(ca)));
    match tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector).await {
        Ok((ws, _)) => Ok(WsOutcome::Open(Box::new(ws))),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).to_string()).unwrap_or_default();
            Ok(WsOutcome::Refused(resp.status().as_u16(), body))
        }
        Err(e) => Err(format!("websocket connection to {url} failed: {e}")),
    }
}

/// A VNC-like target on loopback that accepts and then says nothing, holding every
/// connection (sessions to it stay idle). Returns its port.
pub async fn silent_target() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    port
}

/// Send a websocket upgrade request for `path` over TLS (trusting only `ca`) and read the
/// whole answer: status code and body. For checking refusals, whose body explains them.
pub async fn raw_upgrade(port: u16, path: &str, ca: &Path) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = TokioTcp::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client_tls(ca)).connect(name, tcp).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// HTTPS GET of `path` on 127.0.0.1:`port`, presenting and checking `server_name`, trusting
/// only `ca`. Returns status and body, or the TLS error.
pub async fn raw_get(port: u16, server_name: &str, path: &str, ca: &Path) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = TokioTcp::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(client_tls(ca)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Read from the websocket until `n` bytes are buffered.
pub async fn read_exact(ws: &mut Ws, buf: &mut Vec<u8>, n: usize) -> Result<Vec<u8>, String> {
    while buf.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Err(_) => return Err("timed out waiting for RFB data".into()),
            Ok(Some(Ok(Message::Binary(b)))) => buf.extend_from_slice(&b),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(format!("closed: {:?}", frame.map(|f| (u16::from(f.code), f.reason.to_string()))))
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("stream ended".into()),
        }
    }
    Ok(buf.drain(..n).collect())
}

/// What the RFB server said in ServerInit.
#[derive(Debug)]
pub struct ServerInit {
    pub width: u16,
    pub height: u16,
    pub name: String,
}

/// The VNC authentication response: DES with the password's bits reversed per byte.
pub fn vnc_auth_response(password: &str, challenge: &[u8]) -> Vec<u8> {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = des::Des::new_from_slice(&key).unwrap();
    let mut out = challenge.to_vec();
    for block in out.chunks_mut(8) {
        cipher.encrypt_block(block.into());
    }
    out
}

/// Complete an RFB 3.8 handshake with VNC authentication over the websocket.
pub async fn rfb_handshake(ws: &mut Ws, password: &str) -> Result<ServerInit, String> {
    let mut buf = Vec::new();
    let version = read_exact(ws, &mut buf, 12).await?;
    if &version[..4] != b"RFB " {
        return Err(format!("not an RFB banner: {:?}", String::from_utf8_lossy(&version)));
    }
    let send = |data: Vec<u8>| Message::Binary(data.into());
    ws.send(send(b"RFB 003.008\n".to_vec())).await.map_err(|e| e.to_string())?;
    let count = read_exact(ws, &mut buf, 1).await?[0] as usize;
    if count == 0 {
        return Err("server refused".into());
    }
    let types = read_exact(ws, &mut buf, count).await?;
    if !types.contains(&2) {
        return Err(format!("VNC authentication not offered: {types:?}"));
    }
    ws.send(send(vec![2])).await.map_err(|e| e.to_string())?;
    let challenge = read_exact(ws, &mut buf, 16).await?;
    ws.send(send(vnc_auth_response(password, &challenge))).await.map_err(|e| e.to_string())?;
    let result = read_exact(ws, &mut buf, 4).await?;
    if result != [0, 0, 0, 0] {
        return Err("VNC authentication failed".into());
    }
    ws.send(send(vec![1])).await.map_err(|e| e.to_string())?;
    let init = read_exact(ws, &mut buf, 24).await?;
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    let name = read_exact(ws, &mut buf, name_len).await?;
    Ok(ServerInit {
        width: u16::from_be_bytes([init[0], init[1]]),
        height: u16::from_be_bytes([init[2], init[3]]),
        name: String::from_utf8_lossy(&name).to_string(),
    })
}

/// Wait for the close frame (or end) of a session, returning its code and reason.
pub async fn close_of(ws: &mut Ws) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await.ok()? {
            Some(Ok(Message::Close(Some(f)))) => return Some((u16::from(f.code), f.reason.to_string())),
            Some(Ok(Message::Close(None))) | None => return None,
            Some(Ok(_)) => continue,
            Some(Err(_)) => return None,
        }
    }
}

/// A running process (the relay binary), killed on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Spawn with stderr sent to a log file; waits for `port` to listen.
    pub fn spawn(cmd: &mut Command, log: PathBuf, port: u16) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut proc = Proc { child, log };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!("{cmd:?} exited with {status}: {}", proc.log_text());
            }
            assert!(start.elapsed() < Duration::from_secs(10), "not listening on {port}: {}", proc.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        proc
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once it contains `needle` (a session's line is written when its close
    /// handshake ends), or the log as it is after `within`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.log_text();
            if text.contains(needle) || start.elapsed() > within {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Wait for exit within a bound.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address 127.0.0.1:port.
pub use nix::sys::signal::Signal;

/// The address 127.0.0.1:port (alias kept short for tests).
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The relay binary serving wss on 127.0.0.1 with the test PKI: one fixture for every test that
/// runs the real process. `extra` is more `KEY=VALUE` lines; the process stops on drop.
pub struct RelayProcess {
    pub proc: Proc,
    pub port: u16,
    pub conf: PathBuf,
}

impl RelayProcess {
    /// Start `binary` (the caller's `env!("CARGO_BIN_EXE_wsproxy")`) with a configuration file
    /// written under `dir`.
    pub fn start(binary: &str, dir: &Path, pki: &Pki, extra: &str) -> RelayProcess {
        let port = free_port();
        let conf = dir.join(format!("wsproxy-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "PROXY_HOST=127.0.0.1\nPROXY_PORT={port}\nSSL_CERTIFICATE={}\nSSL_KEY={}\nCERT_FOR_DATA_VERIFICATION={}\n{extra}",
                pki.proxy_cert.display(),
                pki.proxy_key.display(),
                pki.engine_cert.display()
            ),
        )
        .unwrap();
        let proc = Proc::spawn(Command::new(binary).arg("--config").arg(&conf), dir.join(format!("wsproxy-{port}.log")), port);
        RelayProcess { proc, port, conf }
    }

    /// `wss://localhost:PORT/TICKET`.
    pub fn url(&self, ticket: &str) -> String {
        format!("wss://localhost:{}/{ticket}", self.port)
    }
}

impl std::ops::Deref for RelayProcess {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

/// Runs its closure when dropped, also while a failed assertion unwinds: a test's cleanup
/// (containers, images, secrets) without catch_unwind. `let _cleanup = testkit::on_drop(|| ...);`
pub struct OnDrop<F: FnOnce()>(Option<F>);

pub fn on_drop<F: FnOnce()>(cleanup: F) -> OnDrop<F> {
    OnDrop(Some(cleanup))
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(cleanup) = self.0.take() {
            cleanup();
        }
    }
}

/// A TCP target that echoes what it gets: an open session's relay still works when this
/// comes back. Returns its port.
pub async fn echo_target() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// TLS for [`RedisServer`]: its certificate, key and the CA clients are told to trust.
pub struct RedisTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
}

/// A real redis-server (Debian's package) on 127.0.0.1, no persistence, stopped on drop; it can
/// be stopped and started again on the same port (a store outage and its return).
pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    log: PathBuf,
    proc: Option<Proc>,
}

impl RedisServer {
    /// `password`: `requirepass`; `tls`: serve TLS only (rediss://) on the port.
    pub fn start(dir: &Path, password: Option<&str>, tls: Option<RedisTls<'_>>) -> RedisServer {
        RedisServer::start_bound(dir, "127.0.0.1", password, tls)
    }

    /// Listening on loopback and on this machine's side of `host`'s link (`host.host_ip`):
    /// reachable from this machine and from inside the namespace (protected mode off: a
    /// test network).
    pub fn start_reachable_from(dir: &Path, host: &hosts::NetnsHost, password: Option<&str>, tls: Option<RedisTls<'_>>) -> RedisServer {
        let mut server = RedisServer::start_bound(dir, &format!("127.0.0.1 {}", host.host_ip), password, tls);
        // Without a password Redis answers only loopback clients unless told otherwise.
        server.proc = None;
        server.args.extend(["--protected-mode".into(), "no".into()]);
        server.resume();
        server
    }

    fn start_bound(dir: &Path, bind: &str, password: Option<&str>, tls: Option<RedisTls<'_>>) -> RedisServer {
        require_tool("redis-server");
        let port = free_port();
        let mut args: Vec<String> = ["--bind", bind, "--save", "", "--appendonly", "no", "--dir"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.display().to_string()])
            .collect();
        match &tls {
            Some(t) => args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                t.cert.display().to_string(),
                "--tls-key-file".into(),
                t.key.display().to_string(),
                "--tls-ca-cert-file".into(),
                t.ca.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]),
            None => args.extend(["--port".into(), port.to_string()]),
        }
        if let Some(p) = password {
            args.extend(["--requirepass".into(), p.into()]);
        }
        let mut server = RedisServer { port, args, log: dir.join(format!("redis-{port}.log")), proc: None };
        server.resume();
        server
    }

    /// Stop the server (the store is unreachable until [`RedisServer::resume`]).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Start it again on the same port.
    pub fn resume(&mut self) {
        self.proc = Some(Proc::spawn(Command::new("redis-server").args(&self.args), self.log.clone(), self.port));
    }
}

/// Whether a program is on PATH (for optional peers: a row or step is skipped without it).
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file())).unwrap_or(false)
}

/// The relay's /metrics text from a `WSPROXY_METRICS_LISTEN` port on 127.0.0.1.
pub async fn metrics_text(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TokioTcp::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text
}
