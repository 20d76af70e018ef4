//! `wsproxyctl demo`: the whole path on one machine, with nothing else installed. A throwaway
//! engine PKI, the proxy certificate issued from it, a VNC "VM console" (Xvnc when installed,
//! else a built-in test pattern), the relay in-process over wss, `verify` against it, and URLs
//! a browser can open. Ctrl-C stops everything it started. With `--podman` the relay runs in a
//! container on the local podman instead ([`in_podman`]).

pub mod engine_pki;
pub mod in_podman;
pub mod rfb_server;
pub mod xvnc;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Failure, Result};
use crate::output::Output;
use crate::pki::{self, KeyType};
use crate::ticket_sign::{self, Console};
use crate::verify;

/// Options of `demo`.
pub struct DemoOptions {
    /// Where to put the PKI; a new temporary directory (removed at the end) when None.
    pub dir: Option<PathBuf>,
    /// Port for the relay (0: any free port).
    pub port: u16,
    /// A noVNC directory to serve at /novnc/.
    pub novnc: Option<PathBuf>,
    /// Use the built-in VNC server even when Xvnc is installed.
    pub builtin_vnc: bool,
    /// Exit after verify instead of waiting for Ctrl-C.
    pub once: bool,
    /// Run the relay in a podman container instead of in-process.
    pub podman: bool,
    /// With `podman`: the image archive (default: built from this checkout).
    pub image_archive: Option<PathBuf>,
}

/// The demo's relay, wherever it runs.
enum RelayHandle {
    InProcess { stop: tokio::sync::oneshot::Sender<()>, task: tokio::task::JoinHandle<()> },
    Podman(in_podman::PodmanRelay),
}

impl RelayHandle {
    async fn stop(self) {
        match self {
            RelayHandle::InProcess { stop, task } => {
                let _ = stop.send(());
                let _ = task.await;
            }
            RelayHandle::Podman(relay) => relay.stop().await,
        }
    }
}

/// `port` if it is free on loopback, else any free port.
fn free_or_any(port: u16) -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(port)
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub dir: PathBuf,
    pub proxy: String,
    pub vnc: String,
    pub vnc_password: String,
    /// Xvnc's X display, when Xvnc is the VM console.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_display: Option<u16>,
    pub verify: verify::Report,
    pub ticket_url: String,
    pub novnc_url: Option<String>,
}

/// Run the demo. Returns the report once verify has run; with `once` false, keeps everything
/// running until Ctrl-C before returning.
pub async fn run(args: DemoOptions, out: &Output) -> Result<DemoReport> {
    let (dir, _temp) = work_dir(&args)?;
    out.step(&format!("==> working in {}", dir.display()));
    // The console page and noVNC's client, as the relay will serve them at /novnc/.
    let web = match &args.novnc {
        Some(novnc) => Some(console_site(novnc, &dir.join("web"))?),
        None => None,
    };
    let (engine, certs) = demo_pki(&dir, out)?;
    let password: String = (0..8).map(|_| char::from(b'a' + rand::random::<u8>() % 26)).collect();
    let vnc = start_vnc(&args, &dir, &password, out).await?;

    let (handle, port) = if args.podman {
        let port = free_or_any(args.port);
        let relay = in_podman::start(&dir, &certs, port, web.as_deref(), args.image_archive.as_deref(), out).await?;
        (RelayHandle::Podman(relay), port)
    } else {
        start_in_process(&args, &certs, web.as_deref(), out).await?
    };
    let proxy = format!("wss://localhost:{port}");
    out.step(&format!("==> relay listening on {proxy} (TLS, tickets verified with the demo engine certificate)"));

    // Whatever happens from here on, the relay is stopped (and a container removed).
    let result = async {
        out.step("==> verifying as a browser would");
        let report = verify::run(verify::VerifyOptions {
            proxy: proxy.clone(),
            connect_to: None,
            ca: Some(certs.join(pki::CA_FILE)),
            engine_cert: Some(engine.engine_cert.clone()),
            engine_key: Some(engine.engine_key.clone()),
            vnc: Some(format!("127.0.0.1:{}", vnc.port)),
            timeout: Duration::from_secs(10),
        })
        .await?;
        let key = ticket_sign::load_engine_key(&engine.engine_key)?;
        let ticket =
            ticket_sign::sign(&key, &Console { host: "127.0.0.1", port: vnc.port, ssl_target: false }, wsproxy::ticket::now_unix(), 600);
        let novnc_url = web.as_ref().map(|_| {
            let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
            format!("https://localhost:{port}/novnc/console.html#path={}&password={}", enc(&ticket), enc(&password))
        });
        let demo = DemoReport {
            dir: dir.clone(),
            vnc: format!("127.0.0.1:{}", vnc.port),
            vnc_password: password.clone(),
            x_display: vnc.xvnc.as_ref().map(|x| x.display),
            verify: report,
            ticket_url: format!("{proxy}/{ticket}"),
            proxy,
            novnc_url,
        };
        if !args.once {
            out.report(&demo, || demo.to_string());
            out.step("==> running; press Ctrl-C to stop and clean up");
            let _ = tokio::signal::ctrl_c().await;
            out.step("==> stopping");
        }
        Ok(demo)
    }
    .await;
    handle.stop().await;
    result
}

/// Where the demo works: `--dir`, or a temporary directory removed when the guard drops. A bad
/// `--novnc` is refused before anything is made.
fn work_dir(args: &DemoOptions) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(novnc) = &args.novnc {
        if !novnc.join("core/rfb.js").is_file() {
            return Err(Failure::usage(format!(
                "--novnc {}: no core/rfb.js there; on Debian: apt-get install novnc, then --novnc /usr/share/novnc",
                novnc.display()
            )));
        }
    }
    match &args.dir {
        Some(d) => {
            crate::fsutil::ensure_dir(d)?;
            Ok((d.clone(), None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("wsproxyctl-demo-")
                .tempdir()
                .map_err(|e| Failure::environment(format!("cannot create a temporary directory: {e}")))?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// A throwaway engine CA and signing key, and the proxy certificate issued from it.
fn demo_pki(dir: &Path, out: &Output) -> Result<(engine_pki::EnginePki, PathBuf)> {
    let engine_dir = dir.join("engine-pki");
    let engine = engine_pki::create(&engine_dir)?;
    out.step(&format!("==> created a throwaway engine CA and engine signing key in {}", engine_dir.display()));
    let certs = dir.join("proxy-certs");
    pki::issue::run(&pki::issue::IssueOptions {
        ca_cert: engine.ca_cert.clone(),
        ca_key: engine.ca_key.clone(),
        fqdn: "localhost".into(),
        sans: vec!["127.0.0.1".into()],
        out: certs.clone(),
        engine_cert: Some(engine.engine_cert.clone()),
        days: 30,
        key_type: KeyType::EcdsaP256,
        force: true,
        client: None,
    })?;
    out.step(&format!("==> issued the proxy certificate for localhost into {}", certs.display()));
    Ok((engine, certs))
}

/// The VM console the demo shows: Xvnc when installed (and not --builtin-vnc), else the
/// built-in test pattern. Stopped when dropped.
struct Vnc {
    port: u16,
    xvnc: Option<xvnc::Xvnc>,
    _builtin: Option<AbortOnDrop>,
}

async fn start_vnc(args: &DemoOptions, dir: &Path, password: &str, out: &Output) -> Result<Vnc> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Failure::environment(format!("cannot listen for the VNC server: {e}")))?;
    let port = listener.local_addr().map_err(|e| Failure::environment(e.to_string()))?.port();
    if !args.builtin_vnc && xvnc::on_path("Xvnc") {
        drop(listener);
        let server = xvnc::start(dir, port, password).await?;
        out.step(&format!("==> started Xvnc on 127.0.0.1:{port} (X display :{}, password authentication)", server.display));
        return Ok(Vnc { port, xvnc: Some(server), _builtin: None });
    }
    let builtin = AbortOnDrop(tokio::spawn(rfb_server::serve(listener, password.to_string())));
    out.step(&format!("==> started the built-in VNC test pattern on 127.0.0.1:{port} (Xvnc not used)"));
    Ok(Vnc { port, xvnc: None, _builtin: Some(builtin) })
}

/// The relay in this process (the default).
async fn start_in_process(
    args: &DemoOptions,
    certs: &std::path::Path,
    web: Option<&std::path::Path>,
    out: &Output,
) -> Result<(RelayHandle, u16)> {
    let mut settings = wsproxy::config::Settings::default();
    let flag = wsproxy::config::Origin::Flag;
    let path_of = |p: &std::path::Path| p.display().to_string();
    settings.set(wsproxy::config::key::PROXY_HOST, "127.0.0.1", flag.clone());
    settings.set(wsproxy::config::key::SSL_CERTIFICATE, path_of(&certs.join(pki::CERT_FILE)), flag.clone());
    settings.set(wsproxy::config::key::SSL_KEY, path_of(&certs.join(pki::KEY_FILE)), flag.clone());
    settings.set(wsproxy::config::key::CERT_FOR_DATA_VERIFICATION, path_of(&certs.join(pki::ENGINE_FILE)), flag.clone());
    settings.set(wsproxy::config::key::SSL_ONLY, "True", flag.clone());
    settings.set(wsproxy::config::key::WSPROXY_SHUTDOWN_GRACE, "1", flag.clone());
    if let Some(web) = web {
        settings.set(wsproxy::config::key::WSPROXY_NOVNC_DIR, path_of(web), flag.clone());
    }
    let config = |port: u16| {
        let mut s = settings.clone();
        s.set(wsproxy::config::key::PROXY_PORT, port.to_string(), wsproxy::config::Origin::Flag);
        wsproxy::Config::from_settings(&s).map_err(|e| Failure::usage(e.0))
    };
    let relay = match wsproxy::Relay::bind(config(args.port)?).await {
        Ok(r) => r,
        Err(wsproxy::StartError::Listen { source, .. }) if args.port != 0 && source.kind() == std::io::ErrorKind::AddrInUse => {
            out.step(&format!("    port {} is busy, using a free port instead", args.port));
            wsproxy::Relay::bind(config(0)?).await.map_err(|e| Failure::environment(e.to_string()))?
        }
        Err(e) => return Err(Failure::environment(e.to_string())),
    };
    let port = relay.local_addr().port();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay.serve(async move {
        let _ = stop_rx.await;
    }));
    Ok((RelayHandle::InProcess { stop, task }, port))
}

/// The human summary.
impl std::fmt::Display for DemoReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self;
        let mut s = d.verify.to_string();
        s.push_str(&format!(
            "\nproxy:        {}\nVNC target:   {} (password {})\nengine CA:    {}\n",
            d.proxy,
            d.vnc,
            d.vnc_password,
            d.dir.join("engine-pki/ca.pem").display()
        ));
        s.push_str(&format!("ticket URL (single use, 10 minutes):\n  {}\n", d.ticket_url));
        match &d.novnc_url {
            Some(u) => s.push_str(&format!(
                "open in a browser (trust the demo CA first, or accept the warning for this throwaway certificate):\n  {u}\n"
            )),
            None => s.push_str("add --novnc /usr/share/novnc (Debian package novnc) for a URL a browser can open\n"),
        }
        f.write_str(&s)
    }
}

/// The demo's console page.
const CONSOLE_HTML: &str = include_str!("console.html");

/// Make `web`: the console page next to copies of noVNC's `core` and `vendor` (the page
/// imports `./core/rfb.js`). Copies, not links, so a container can mount the directory.
fn console_site(novnc: &std::path::Path, web: &std::path::Path) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(web);
    for part in ["core", "vendor"] {
        let from = novnc.join(part);
        if from.is_dir() {
            copy_tree(&from, &web.join(part))
                .map_err(|e| Failure::environment(format!("copying noVNC's {part} from {} to {}: {e}", novnc.display(), web.display())))?;
        }
    }
    crate::fsutil::write_atomic(&web.join("console.html"), CONSOLE_HTML.as_bytes(), 0o644)?;
    Ok(web.to_path_buf())
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Stops a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
