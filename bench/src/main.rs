//! wsproxy-bench: the relay measured side by side with direct TCP, a socat relay and
//! websockify, on this machine, in one run. Prints a table; `--json FILE` keeps the figures.
//!
//!   bash scripts/bench.sh            # full run (>= 1 GiB per direction per system, 3 runs)
//!   wsproxy-bench --smoke ...        # tiny sizes, for the test suite
//!
//! The client here is written for the harness (ws_client.rs); tickets are signed like the
//! engine's (RSA-PSS SHA-256, maximum salt) with an RSA-2048 engine key made here.

mod load;
mod pki;
mod sink;
mod soak;
mod stamp;
mod ws_client;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use sink::Mode;

/// Sizes of one run.
#[derive(Clone, Copy)]
struct Sizes {
    bulk_bytes: u64,
    runs: usize,
    round_trips: usize,
    setups: usize,
    idle_sessions: usize,
    /// Latency under load: sessions streaming VM->browser and browser->VM, probe round trips.
    load_down: usize,
    load_up: usize,
    load_round_trips: usize,
}

const FULL: Sizes = Sizes {
    bulk_bytes: 1 << 30,
    runs: 3,
    round_trips: 10_000,
    setups: 3000,
    idle_sessions: 8000,
    load_down: 100,
    load_up: 20,
    load_round_trips: 5000,
};
const SMOKE: Sizes =
    Sizes { bulk_bytes: 4 << 20, runs: 1, round_trips: 200, setups: 20, idle_sessions: 50, load_down: 4, load_up: 2, load_round_trips: 50 };
const MSG: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One way of reaching the sinks.
#[derive(Clone)]
enum System {
    Direct,
    Socat { ports: Ports },
    Relay { port: u16, tls: Option<Arc<rustls::ClientConfig>>, tickets: Arc<pki::Tickets> },
    Websockify { ports: Ports },
}

/// A listener per sink mode (for relays whose target is fixed).
#[derive(Clone, Copy)]
struct Ports {
    discard: u16,
    source: u16,
    echo: u16,
    hello: u16,
}

impl Ports {
    fn of(&self, m: Mode) -> u16 {
        match m {
            Mode::Discard => self.discard,
            Mode::Source => self.source,
            Mode::Echo => self.echo,
            Mode::Hello => self.hello,
        }
    }
}

/// A connected client: raw bytes, or websocket frames.
struct Conn {
    io: Box<dyn Io>,
    ws: bool,
    rbuf: Vec<u8>,
    pending: Vec<u8>,
}

impl Conn {
    /// Send and flush: over TLS, a write may leave records inside rustls when the socket is
    /// full, and only a flush pushes them out. (Without it, a bulk send that ends in a read
    /// could wait forever for its own last bytes: the "stalled wss session" of earlier runs.)
    async fn send(&mut self, data: &[u8], framed: Option<&[u8]>) -> std::io::Result<()> {
        self.write(data, framed).await?;
        self.io.flush().await
    }

    async fn write(&mut self, data: &[u8], framed: Option<&[u8]>) -> std::io::Result<()> {
        if self.ws {
            match framed {
                Some(f) => self.io.write_all(f).await,
                None => {
                    let mut f = Vec::with_capacity(data.len() + 14);
                    ws_client::frame(data, rand::random(), &mut f);
                    self.io.write_all(&f).await
                }
            }
        } else {
            self.io.write_all(data).await
        }
    }

    /// Receive exactly `n` bytes of payload and return them.
    async fn recv_into(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        if !self.ws {
            out.resize(n, 0);
            self.io.read_exact(&mut out).await?;
            return Ok(out);
        }
        let take = self.pending.len().min(n);
        out.extend(self.pending.drain(..take));
        while out.len() < n {
            let op = ws_client::read_frame(&mut self.io, &mut self.rbuf).await?;
            match op {
                0x8 => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by relay")),
                0x9 | 0xA => continue,
                _ => {}
            }
            let k = self.rbuf.len().min(n - out.len());
            out.extend_from_slice(&self.rbuf[..k]);
            if k < self.rbuf.len() {
                self.pending.extend_from_slice(&self.rbuf[k..]);
            }
        }
        Ok(out)
    }

    /// Receive exactly `n` bytes of payload.
    async fn recv(&mut self, mut n: usize) -> std::io::Result<()> {
        if !self.ws {
            let mut buf = vec![0u8; n.min(256 * 1024)];
            while n > 0 {
                let want = n.min(buf.len());
                let k = self.io.read(&mut buf[..want]).await?;
                if k == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
                }
                n -= k;
            }
            return Ok(());
        }
        let take = self.pending.len().min(n);
        self.pending.drain(..take);
        n -= take;
        while n > 0 {
            let op = ws_client::read_frame(&mut self.io, &mut self.rbuf).await?;
            match op {
                0x8 => {
                    let code = if self.rbuf.len() >= 2 { u16::from_be_bytes([self.rbuf[0], self.rbuf[1]]) } else { 1005 };
                    let reason = String::from_utf8_lossy(self.rbuf.get(2..).unwrap_or_default()).to_string();
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("closed by relay: {code} {reason}")));
                }
                0x9 | 0xA => continue,
                _ => {}
            }
            let k = self.rbuf.len().min(n);
            n -= k;
            if k < self.rbuf.len() {
                self.pending.extend_from_slice(&self.rbuf[k..]);
            }
        }
        Ok(())
    }
}

impl System {
    fn name(&self) -> String {
        match self {
            System::Direct => "direct TCP".into(),
            System::Socat { .. } => "socat relay".into(),
            System::Relay { tls: None, .. } => "wsproxy ws".into(),
            System::Relay { tls: Some(_), .. } => "wsproxy wss".into(),
            System::Websockify { .. } => "websockify ws".into(),
        }
    }

    async fn connect(&self, sinks: &Ports, mode: Mode) -> std::io::Result<Conn> {
        let raw = |io: Box<dyn Io>| Conn { io, ws: false, rbuf: Vec::new(), pending: Vec::new() };
        match self {
            System::Direct => Ok(raw(Box::new(tcp(sinks.of(mode)).await?))),
            System::Socat { ports } => Ok(raw(Box::new(tcp(ports.of(mode)).await?))),
            System::Websockify { ports } => {
                let mut s = tcp(ports.of(mode)).await?;
                let code = ws_client::handshake(&mut s, "localhost", "").await?;
                if code != 101 {
                    return Err(std::io::Error::other(format!("websockify answered {code}")));
                }
                Ok(Conn { io: Box::new(s), ws: true, rbuf: Vec::new(), pending: Vec::new() })
            }
            System::Relay { port, tls, tickets } => {
                let ticket = tickets.next(sinks.of(mode));
                let s = tcp(*port).await?;
                let mut io: Box<dyn Io> = match tls {
                    None => Box::new(s),
                    Some(cfg) => {
                        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                        Box::new(tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, s).await?)
                    }
                };
                let code = ws_client::handshake(&mut io, "localhost", &ticket).await?;
                if code != 101 {
                    return Err(std::io::Error::other(format!("relay answered {code}")));
                }
                Ok(Conn { io, ws: true, rbuf: Vec::new(), pending: Vec::new() })
            }
        }
    }
}

async fn tcp(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// The log of the relay being measured, printed when a measurement fails.
static RELAY_LOG: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

fn fail(what: &str, e: std::io::Error) -> ! {
    if let Some(path) = RELAY_LOG.lock().unwrap().clone() {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("relay log (last lines):\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    panic!("{what}: {e}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// MB/s browser->VM.
async fn bulk_send(sys: &System, sinks: &Ports, bytes: u64) -> std::io::Result<f64> {
    let mut c = sys.connect(sinks, Mode::Discard).await?;
    let payload = vec![0x5au8; MSG];
    let mut framed = Vec::with_capacity(MSG + 14);
    ws_client::frame(&payload, [1, 2, 3, 4], &mut framed);
    let start = Instant::now();
    c.send(&bytes.to_be_bytes(), None).await?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(MSG as u64) as usize;
        if n == MSG {
            c.send(&payload, Some(&framed)).await?;
        } else {
            c.send(&payload[..n], None).await?;
        }
        left -= n as u64;
    }
    c.recv(1).await?;
    Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// MB/s VM->browser.
async fn bulk_recv(sys: &System, sinks: &Ports, bytes: u64) -> std::io::Result<f64> {
    let mut c = sys.connect(sinks, Mode::Source).await?;
    let start = Instant::now();
    c.send(&bytes.to_be_bytes(), None).await?;
    c.recv(bytes as usize).await?;
    Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Round-trip times of 10-byte messages, microseconds: (p50, p99) per system. The systems
/// take turns in rounds of 1/10 of the round trips each, so a noisy minute on this shared
/// machine falls on all of them alike instead of on whichever was measured then.
async fn latency_interleaved(systems: &[&System], sinks: &Ports, n: usize) -> std::io::Result<Vec<(f64, f64)>> {
    let msg = [9u8; 10];
    let mut framed = Vec::new();
    ws_client::frame(&msg, [5, 6, 7, 8], &mut framed);
    let mut conns = Vec::new();
    for sys in systems {
        let mut c = sys.connect(sinks, Mode::Echo).await?;
        for _ in 0..100 {
            c.send(&msg, Some(&framed)).await?;
            c.recv(10).await?;
        }
        conns.push(c);
    }
    let rounds = 10;
    let per_round = n.div_ceil(rounds);
    let mut rtts: Vec<Vec<f64>> = vec![Vec::with_capacity(n); systems.len()];
    for _ in 0..rounds {
        for (c, samples) in conns.iter_mut().zip(rtts.iter_mut()) {
            for _ in 0..per_round {
                let t = Instant::now();
                c.send(&msg, Some(&framed)).await?;
                c.recv(10).await?;
                samples.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    Ok(rtts
        .into_iter()
        .map(|mut v| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (v[v.len() / 2], v[v.len() * 99 / 100])
        })
        .collect())
}

/// Sessions per second: connect (+TLS +ticket) until the target's first byte arrives.
async fn setup_rate(sys: &System, sinks: &Ports, n: usize) -> std::io::Result<f64> {
    let conc = std::env::var("BENCH_CONC").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        let sys = sys.clone();
        let sinks = *sinks;
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                let mut c = tokio::time::timeout(Duration::from_secs(10), sys.connect(&sinks, Mode::Hello))
                    .await
                    .map_err(|_| std::io::Error::other("connect timed out"))??;
                tokio::time::timeout(Duration::from_secs(10), c.recv(1))
                    .await
                    .map_err(|_| std::io::Error::other("no first byte from the target"))??;
                i += conc;
            }
            Ok::<_, std::io::Error>(())
        }));
    }
    for t in tasks {
        t.await.unwrap()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024
}

/// Relay RSS growth per idle session with `n` sessions open.
async fn idle_memory(sys: &System, sinks: &Ports, pid: u32, n: usize) -> std::io::Result<(u64, f64)> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes(pid);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = sys.connect(sinks, Mode::Hello).await?;
        c.recv(1).await?;
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(pid);
    drop(conns);
    Ok((after, after.saturating_sub(before) as f64 / n as f64))
}

/// `--pin-relay CPU`: the relay under test (wsproxy, socat, websockify alike) runs on that CPU
/// and the harness (client and sinks) on the others, so the systems compete with the harness
/// rather than share a core with it. Off by default.
static PIN_RELAY: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

/// A command for a relay under test, pinned when asked.
fn peer_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    match PIN_RELAY.get().copied().flatten() {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Keep this process (and the threads it starts) off `cpu`.
fn avoid_cpu(cpu: usize) {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for other in (0..n).filter(|c| *c != cpu) {
            libc::CPU_SET(other, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

struct Spawned(Child);
impl Drop for Spawned {
    /// SIGTERM first (the relay drains and exits, and a profiler wrapping it can write its
    /// data), SIGKILL after two seconds.
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        for _ in 0..200 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_listening(port: u16) -> bool {
    for _ in 0..500 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn spawn(cmd: &mut Command) -> Option<Spawned> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok().map(Spawned)
}

async fn socat(sinks: &Ports) -> Option<(Vec<Spawned>, Ports)> {
    let mut children = Vec::new();
    let mut ports = [0u16; 4];
    for (i, target) in [sinks.discard, sinks.source, sinks.echo, sinks.hello].iter().enumerate() {
        let p = testkit::free_port();
        children.push(spawn(
            peer_command("socat")
                .args(["-b", "65536"])
                .arg(format!("TCP-LISTEN:{p},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=1024"))
                .arg(format!("TCP:127.0.0.1:{target},nodelay")),
        )?);
        wait_listening(p).await;
        ports[i] = p;
    }
    Some((children, Ports { discard: ports[0], source: ports[1], echo: ports[2], hello: ports[3] }))
}

async fn websockify(sinks: &Ports) -> Option<(Vec<Spawned>, Ports)> {
    let mut children = Vec::new();
    let mut ports = [0u16; 4];
    for (i, target) in [sinks.discard, sinks.source, sinks.echo, sinks.hello].iter().enumerate() {
        let p = testkit::free_port();
        children.push(spawn(peer_command("websockify").arg(format!("127.0.0.1:{p}")).arg(format!("127.0.0.1:{target}")))?);
        if !wait_listening(p).await {
            return None;
        }
        ports[i] = p;
    }
    Some((children, Ports { discard: ports[0], source: ports[1], echo: ports[2], hello: ports[3] }))
}

/// Start the relay; returns the process, port and cold start time to /healthz ready.
async fn relay(bin: &Path, dir: &Path, tls: bool, key: &str, extra: &[String]) -> (Spawned, u16, Duration) {
    let port = testkit::free_port();
    let mut cmd = peer_command(bin);
    cmd.args(["--proxy-host", "127.0.0.1", "--proxy-port", &port.to_string()])
        .arg("--cert-for-data-verification")
        .arg(dir.join("engine.cer"))
        .args(["--wsproxy-max-sessions-per-ip", "0", "--wsproxy-max-sessions", "20000", "--wsproxy-cert-reload-interval", "0"]);
    cmd.args(extra);
    if tls {
        cmd.arg("--ssl-certificate").arg(dir.join(format!("proxy-{key}.cer"))).arg("--ssl-key").arg(dir.join(format!("proxy-{key}.key")));
    }
    let log = dir.join(format!("relay-{port}.log"));
    cmd.stderr(std::fs::File::create(&log).expect("relay log"));
    *RELAY_LOG.lock().unwrap() = Some(log);
    let start = Instant::now();
    let child = Spawned(cmd.stdout(Stdio::null()).spawn().expect("start wsproxy"));
    // Ready = /healthz answers (plain GET; over TLS the connect alone shows the listener).
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            if tls {
                break;
            }
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let mut b = [0u8; 12];
            if s.read_exact(&mut b).await.is_ok() && &b[9..12] == b"200" {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "wsproxy did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (child, port, start.elapsed())
}

#[derive(Default, Clone)]
struct Row {
    name: String,
    send: Option<f64>,
    recv: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    setups: Option<f64>,
    idle: Option<(u64, f64)>,
    load: Option<load::Load>,
    /// The relay process's own CPU seconds per GB relayed, browser->VM and VM->browser.
    cpu_per_gb: Option<(f64, f64)>,
    /// The relay's peak RSS while it carried the load scenario, bytes.
    rss_under_load: Option<u64>,
    /// The relay process's own CPU seconds per session set up (wsproxy's rows).
    cpu_per_setup: Option<f64>,
    /// The forged-ticket budget (wss row).
    budget: Option<Budget>,
}

/// What refusing forged tickets costs the relay against what good setups cost it (issue 14),
/// measured interleaved: medians over [`BUDGET_ROUNDS`] rounds of each.
#[derive(Clone, Copy)]
struct Budget {
    setups_per_s: f64,
    refusals_per_s: f64,
    /// The relay process's own CPU seconds per good setup and per refusal.
    cpu_per_setup: Option<f64>,
    cpu_per_refusal: Option<f64>,
    /// CPU per refusal over CPU per setup, the median of the rounds' own ratios: each round's
    /// pair ran back to back, so a slower stretch of the machine cancels out.
    cpu_ratio: Option<f64>,
    /// Peak RSS growth of the refusing relay divided by the refusals in flight, bytes.
    bytes_in_flight: f64,
}

impl Row {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "system": self.name, "send_mb_s": self.send, "recv_mb_s": self.recv,
            "rtt_p50_us": self.p50, "rtt_p99_us": self.p99, "setups_per_s": self.setups,
            "idle_rss_bytes": self.idle.map(|i| i.0), "idle_bytes_per_session": self.idle.map(|i| i.1),
            "relay_cpu_s_per_setup": self.cpu_per_setup,
            "budget": self.budget.map(|b| serde_json::json!({
                "setups_per_s": b.setups_per_s, "forged_refusals_per_s": b.refusals_per_s,
                "relay_cpu_s_per_setup": b.cpu_per_setup, "relay_cpu_s_per_forged_refusal": b.cpu_per_refusal,
                "relay_cpu_refusal_over_setup": b.cpu_ratio,
                "forged_bytes_per_refusal_in_flight": b.bytes_in_flight,
            })),
            "relay_cpu_s_per_gb_to_vm": self.cpu_per_gb.map(|c| c.0), "relay_cpu_s_per_gb_to_browser": self.cpu_per_gb.map(|c| c.1),
            "load": self.load.map(|l| serde_json::json!({
                "rtt_p50_us": l.p50_us, "rtt_p99_us": l.p99_us, "rtt_p999_us": l.p999_us,
                "fairness_jain": l.fairness, "slowest_share_of_mean": l.slowest_share, "down_mb_s": l.down_mb_s,
                "relay_peak_rss_bytes": self.rss_under_load,
            })),
        })
    }
}

/// A process's CPU seconds so far (user + system), with those of its children that have
/// exited and been waited for, from /proc/PID/stat. socat and websockify fork a process per
/// connection; its time reaches the parent's count when the connection has ended.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3:
    // utime, stime, cutime, cstime are fields 14-17.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks_used: f64 = fields.get(11..15)?.iter().map(|f| f.parse::<f64>().ok()).sum::<Option<f64>>()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks_used / ticks)
}

/// The CPU seconds of a system's processes together; `None` when there are none to read.
/// A forking relay's (socat's, websockify's) children count once they are waited for, just
/// after their connections close: for those the reading waits a moment first.
async fn cpu_of(pids: &[u32], forking: bool) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    if forking {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

fn fmt(v: Option<f64>, prec: usize) -> String {
    v.map(|v| format!("{v:.prec$}")).unwrap_or_else(|| "-".into())
}

/// Bulk both ways, setups and (for wsproxy, `relay_pid`) idle memory; the CPU per GB of the
/// processes in `cpu_pids` (the relay, or a forking relay's parents).
async fn measure(sys: &System, sinks: &Ports, sizes: Sizes, relay_pid: Option<u32>, cpu_pids: &[u32], row: &mut Row) {
    eprintln!("measuring {} ...", row.name);
    let mut sends = Vec::new();
    let mut recvs = Vec::new();
    // The relay's CPU time (utime + stime, and its exited children's) around each direction.
    let (mut cpu_send, mut cpu_recv) = (0.0, 0.0);
    // wsproxy (the row with a relay_pid) relays in its own process; the peers fork.
    let forking = relay_pid.is_none();
    for _ in 0..sizes.runs {
        let before = cpu_of(cpu_pids, forking).await;
        sends.push(bulk_send(sys, sinks, sizes.bulk_bytes).await.unwrap_or_else(|e| fail("bulk send", e)));
        let between = cpu_of(cpu_pids, forking).await;
        recvs.push(bulk_recv(sys, sinks, sizes.bulk_bytes).await.unwrap_or_else(|e| fail("bulk recv", e)));
        let after = cpu_of(cpu_pids, forking).await;
        if let (Some(b), Some(m), Some(a)) = (before, between, after) {
            cpu_send += m - b;
            cpu_recv += a - m;
        }
    }
    // Below 50 ms of CPU (5 clock ticks) the figure would be noise: left out (smoke runs).
    if !cpu_pids.is_empty() && cpu_send.min(cpu_recv) >= 0.05 {
        let gb = (sizes.bulk_bytes * sizes.runs as u64) as f64 / 1e9;
        row.cpu_per_gb = Some((cpu_send / gb, cpu_recv / gb));
    }
    row.send = Some(median(sends));
    row.recv = Some(median(recvs));
    eprintln!("  bulk done");
    let before = relay_pid.and_then(cpu_seconds);
    row.setups = Some(setup_rate(sys, sinks, sizes.setups).await.unwrap_or_else(|e| fail("setup rate", e)));
    row.cpu_per_setup = per_op(before, relay_pid.and_then(cpu_seconds), sizes.setups);
    if let Some(pid) = relay_pid {
        row.idle = Some(idle_memory(sys, sinks, pid, sizes.idle_sessions).await.unwrap_or_else(|e| fail("idle sessions", e)));
    }
}

/// What the harness takes: switches, flags with a number, flags with a path.
const SWITCHES: [&str; 4] = ["--smoke", "--soak", "--load-only", "--budget"];
const NUMBERS: [&str; 9] = [
    "--pin-relay",
    "--soak-seconds",
    "--soak-sessions",
    "--bulk-mib",
    "--round-trips",
    "--setups",
    "--load-down",
    "--load-up",
    "--load-round-trips",
];
const PATHS: [&str; 2] = ["--relay", "--json"];

const USAGE: &str = "usage: wsproxy-bench [--relay BIN] [--json FILE] [--smoke] [--pin-relay CPU]
                     [--bulk-mib N] [--round-trips N] [--setups N]
                     [--load-down N] [--load-up N] [--load-round-trips N]
                     [--load-only | --budget | --soak [--soak-seconds N] [--soak-sessions N]]
(docs/BENCHMARKS.md says what each measures; bash scripts/bench.sh runs the full table)";

/// Every argument known and every number a number: a misspelt flag must not quietly start
/// a ten-minute full run.
fn check_args(args: &[String]) -> Result<(), String> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let arg = arg.as_str();
        if SWITCHES.contains(&arg) {
            continue;
        }
        let takes_number = NUMBERS.contains(&arg);
        if !takes_number && !PATHS.contains(&arg) {
            return Err(format!("unknown argument {arg:?}"));
        }
        match rest.next() {
            None => return Err(format!("{arg} needs a value")),
            Some(v) if takes_number && v.parse::<u64>().is_err() => return Err(format!("{arg} takes a whole number, not {v:?}")),
            Some(_) => {}
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    if let Err(why) = check_args(&args[1..]) {
        eprintln!("wsproxy-bench: {why}\n{USAGE}");
        std::process::exit(2);
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let relay_bin = PathBuf::from(value("--relay").unwrap_or_else(|| "target/release/wsproxy".into()));
    if !relay_bin.is_file() {
        eprintln!(
            "wsproxy-bench: no relay binary at {} (build it: cargo build --release -p wsproxy, or pass --relay)",
            relay_bin.display()
        );
        std::process::exit(3);
    }
    let sizes = sizes_from_args(smoke, &value);
    let pin = value("--pin-relay").and_then(|v| v.parse::<usize>().ok());
    let _ = PIN_RELAY.set(pin);
    if let Some(cpu) = pin {
        avoid_cpu(cpu);
        eprintln!("relays pinned to CPU {cpu}, the harness to the others");
    }
    wsproxy::fd_limit::raise_fd_limit();
    // The harness's own runtime, whichever part of the benchmark runs on it.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if args.iter().any(|a| a == "--soak") {
        let seconds: u64 = value("--soak-seconds").and_then(|v| v.parse().ok()).unwrap_or(60);
        let sessions: usize = value("--soak-sessions").and_then(|v| v.parse().ok()).unwrap_or(500);
        let ok = rt.block_on(soak_main(&relay_bin, seconds, sessions));
        std::process::exit(if ok { 0 } else { 1 });
    }
    if args.iter().any(|a| a == "--load-only") {
        rt.block_on(load_only_main(&relay_bin, sizes));
        return;
    }
    if args.iter().any(|a| a == "--budget") {
        rt.block_on(budget_main(&relay_bin, sizes));
        return;
    }
    rt.block_on(async move {
        let dir = tempfile_dir();
        let (rows, cold) = measure_all(&relay_bin, &dir, sizes).await;
        let stamp = print_tables(&rows, &cold, sizes, &relay_bin);
        if let Some(path) = value("--json") {
            let doc = serde_json::json!({ "stamp": stamp.json(), "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
                "cold_start_ms": cold.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>() });
            std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// The run's sizes: full or smoke, then the flags that change one of them.
fn sizes_from_args(smoke: bool, value: &dyn Fn(&str) -> Option<String>) -> Sizes {
    let mut sizes = if smoke { SMOKE } else { FULL };
    // For profiling runs (docs/BENCHMARKS.md): a chosen bulk size, e.g. `--bulk-mib 256`.
    if let Some(mib) = value("--bulk-mib").and_then(|v| v.parse::<u64>().ok()) {
        sizes.bulk_bytes = mib << 20;
    }
    if let Some(n) = value("--round-trips").and_then(|v| v.parse::<usize>().ok()) {
        sizes.round_trips = n;
    }
    if let Some(n) = value("--setups").and_then(|v| v.parse::<usize>().ok()) {
        sizes.setups = n;
    }
    // The load scenario's sizes, e.g. a smoke run with the full load: `--smoke --load-down 100`.
    for (flag, field) in
        [("--load-down", &mut sizes.load_down), ("--load-up", &mut sizes.load_up), ("--load-round-trips", &mut sizes.load_round_trips)]
    {
        if let Some(n) = value(flag).and_then(|v| v.parse::<usize>().ok()) {
            *field = n;
        }
    }
    sizes
}

/// Every system measured; the rows in table order and the relays' cold starts.
async fn measure_all(relay_bin: &Path, dir: &Path, sizes: Sizes) -> (Vec<Row>, Vec<Duration>) {
    let (sinks, tickets) = sinks_and_tickets(dir, sizes).await;
    // Every system stays up for the whole run, so the round trips can be measured
    // interleaved at the end (see `latency_interleaved`). `relay_pids`: the rows of relays.
    let mut rows = Vec::new();
    let mut systems: Vec<(usize, System)> = Vec::new();
    let mut keep: Vec<Spawned> = Vec::new();
    let mut relay_pids: HashMap<usize, u32> = HashMap::new();

    let mut row = Row { name: "direct TCP".into(), ..Default::default() };
    measure(&System::Direct, &sinks, Sizes { idle_sessions: 0, ..sizes }, None, &[], &mut row).await;
    systems.push((rows.len(), System::Direct));
    rows.push(row);

    match socat(&sinks).await {
        Some((children, ports)) => {
            let pids: Vec<u32> = children.iter().map(|c| c.0.id()).collect();
            keep.extend(children);
            let sys = System::Socat { ports };
            let mut row = Row { name: sys.name(), ..Default::default() };
            measure(&sys, &sinks, sizes, None, &pids, &mut row).await;
            systems.push((rows.len(), sys));
            rows.push(row);
        }
        None => eprintln!("socat not installed (apt-get install socat): row skipped"),
    }

    let mut cold = Vec::new();
    for (tls, key) in [(false, "ecdsa"), (true, "ecdsa"), (true, "rsa")] {
        let (child, port, started) = relay(relay_bin, dir, tls, key, &[]).await;
        cold.push(started);
        let client_tls = tls.then(|| pki::client_config(dir));
        let sys = System::Relay { port, tls: client_tls, tickets: tickets.clone() };
        let mut row = Row { name: format!("{}{}", sys.name(), if key == "rsa" { " (RSA-2048 cert)" } else { "" }), ..Default::default() };
        if key == "rsa" {
            row.setups = Some(setup_rate(&sys, &sinks, sizes.setups).await.unwrap_or_else(|e| fail("setup rate", e)));
            drop(child);
        } else {
            measure(&sys, &sinks, sizes, Some(child.0.id()), &[child.0.id()], &mut row).await;
            if tls {
                row.budget = Some(budget(relay_bin, dir, &sinks, &tickets, sizes.setups).await);
            }
            relay_pids.insert(rows.len(), child.0.id());
            systems.push((rows.len(), sys));
            keep.push(child);
        }
        rows.push(row);
    }
    rows.extend(replay_store_row(relay_bin, dir, &sinks, &tickets, sizes).await);

    match websockify(&sinks).await {
        Some((children, ports)) => {
            let pids: Vec<u32> = children.iter().map(|c| c.0.id()).collect();
            keep.extend(children);
            let sys = System::Websockify { ports };
            let mut row = Row { name: sys.name(), ..Default::default() };
            measure(&sys, &sinks, Sizes { idle_sessions: 0, setups: sizes.setups.min(500), ..sizes }, None, &pids, &mut row).await;
            systems.push((rows.len(), sys));
            rows.push(row);
        }
        None => eprintln!("websockify not installed (pip install websockify): row skipped"),
    }
    latencies(&mut rows, &systems, &relay_pids, &sinks, sizes).await;
    drop(keep);
    (rows, cold)
}

/// The target sinks, and tickets signed ahead for every session the run opens.
async fn sinks_and_tickets(dir: &Path, sizes: Sizes) -> (Ports, Arc<pki::Tickets>) {
    eprintln!("making certificates and signing tickets ...");
    let engine = pki::write_all(dir);
    let sinks = Ports {
        discard: sink::start(Mode::Discard).await,
        source: sink::start(Mode::Source).await,
        echo: sink::start_on_own_thread(Mode::Echo),
        hello: sink::start(Mode::Hello).await,
    };
    let tickets = Arc::new(pki::Tickets::new(
        &engine,
        &[
            // Setups: ws, wss, wss with an RSA certificate, wss with the replay store, the
            // forged-ticket budget's good setups.
            (sinks.hello, 5 * sizes.setups + 2 * sizes.idle_sessions + 10),
            (sinks.discard, 2 * sizes.runs + 2 + 2 * sizes.load_up),
            (sinks.source, 2 * sizes.runs + 2 + 2 * sizes.load_down),
            (sinks.echo, 4 + 2),
        ],
    ));
    (sinks, tickets)
}

/// Single use shared through a real redis-server: the setup rate with it (skipped without
/// redis-server).
async fn replay_store_row(relay_bin: &Path, dir: &Path, sinks: &Ports, tickets: &Arc<pki::Tickets>, sizes: Sizes) -> Option<Row> {
    if !testkit::on_path("redis-server") {
        eprintln!("redis-server not installed (apt-get install redis-server): replay store row skipped");
        return None;
    }
    let redis = testkit::RedisServer::start(dir, None, None);
    let store = ["--wsproxy-replay-store".to_string(), format!("redis://127.0.0.1:{}", redis.port)];
    let (child, port, _) = relay(relay_bin, dir, true, "ecdsa", &store).await;
    let sys = System::Relay { port, tls: Some(pki::client_config(dir)), tickets: tickets.clone() };
    let mut row = Row { name: "wsproxy wss + replay store (redis)".into(), ..Default::default() };
    row.setups = Some(setup_rate(&sys, sinks, sizes.setups).await.unwrap_or_else(|e| fail("setup rate", e)));
    drop(child);
    Some(row)
}

/// `--load-only`: only latency under load, through socat and wsproxy ws and wss, for profiling
/// the relay's scheduling (one line per system, with the streams' shares of the mean: the
/// slowest, the 10th, 50th and 90th percentiles, the fastest).
async fn load_only_main(relay_bin: &Path, sizes: Sizes) {
    let dir = tempfile_dir();
    let (sinks, tickets) = sinks_and_tickets(&dir, sizes).await;
    let mut keep = Vec::new();
    let mut systems = Vec::new();
    if let Some((children, ports)) = socat(&sinks).await {
        keep.extend(children);
        systems.push(System::Socat { ports });
    }
    for tls in [false, true] {
        let (child, port, _) = relay(relay_bin, &dir, tls, "ecdsa", &[]).await;
        keep.push(child);
        systems.push(System::Relay { port, tls: tls.then(|| pki::client_config(&dir)), tickets: tickets.clone() });
    }
    for sys in &systems {
        let got = load::under_load(sys, &sinks, sizes.load_down, sizes.load_up, sizes.load_round_trips).await;
        let got = got.unwrap_or_else(|e| fail("latency under load", e));
        println!(
            "{:<16} p50 {:>7.0} us  p99 {:>7.0} us  p99.9 {:>7.0} us  fairness {:.3}  slowest {:.0}%  down {:.0} MB/s  shares {}",
            sys.name(),
            got.p50_us,
            got.p99_us,
            got.p999_us,
            got.fairness,
            got.slowest_share * 100.0,
            got.down_mb_s,
            got.shares.map(|s| format!("{:.0}%", s * 100.0)).join(" / ")
        );
    }
    drop(keep);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--budget`: only the forged-ticket budget, for profiling the work before authentication
/// (e.g. under `perf record`).
async fn budget_main(relay_bin: &Path, sizes: Sizes) {
    let dir = tempfile_dir();
    let (sinks, tickets) = sinks_and_tickets(&dir, sizes).await;
    let b = budget(relay_bin, &dir, &sinks, &tickets, sizes.setups).await;
    println!(
        "wss setups/s {:.0}, forged refusals/s {:.0} ({:.0}%), {:.1} KiB per refusal in flight; relay CPU per setup {} us, per refusal {} us ({}%)",
        b.setups_per_s,
        b.refusals_per_s,
        b.refusals_per_s / b.setups_per_s * 100.0,
        b.bytes_in_flight / 1024.0,
        fmt(b.cpu_per_setup.map(|c| c * 1e6), 0),
        fmt(b.cpu_per_refusal.map(|c| c * 1e6), 0),
        fmt(b.cpu_ratio.map(|r| r * 100.0), 0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rounds of the budget: good setups and forged refusals take turns, so a slower moment of a
/// shared machine falls on both alike.
const BUDGET_ROUNDS: usize = 5;

/// The work before authentication (issue 14), held against good wss setups: `n` good setups
/// on one relay and `n` forged ~31 KiB tickets (16 clients, over wss, each refused with 403) on
/// another, in turns of `n / BUDGET_ROUNDS`. Rates and each relay's own CPU time per
/// operation are the medians of the rounds. The refusing relay is a fresh one, so its memory
/// growth is not hidden by what earlier sessions left in the allocator; eight refusals one
/// after another warm it up before its baseline RSS is read, so what the process sets up once
/// on first use (tokio's slabs, the TLS session cache, the first connection's buffers) is not
/// charged to the 16 in flight (a warm-up of 16 at once would have grown the heap for them
/// and hidden their cost).
async fn budget(relay_bin: &Path, dir: &Path, sinks: &Ports, tickets: &Arc<pki::Tickets>, n: usize) -> Budget {
    const CONC: usize = 16;
    let (good, good_port, _) = relay(relay_bin, dir, true, "ecdsa", &[]).await;
    let (forged, forged_port, _) = relay(relay_bin, dir, true, "ecdsa", &[]).await;
    let good_sys = System::Relay { port: good_port, tls: Some(pki::client_config(dir)), tickets: tickets.clone() };
    let tls = pki::client_config(dir);
    let ticket = Arc::new(pki::forged(sinks.hello));
    let (good_pid, forged_pid) = (good.0.id(), forged.0.id());
    forged_round(forged_port, &tls, &ticket, 1, 8).await;
    let baseline = rss_bytes(forged_pid);
    let (peak, sampler) = peak_rss(forged_pid, Duration::from_millis(20));
    let per_round = (n / BUDGET_ROUNDS).max(1);
    let (mut setups, mut refusals, mut setup_cpu, mut refusal_cpu, mut ratios) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..BUDGET_ROUNDS {
        let before = cpu_seconds(good_pid);
        setups.push(setup_rate(&good_sys, sinks, per_round).await.unwrap_or_else(|e| fail("setup rate", e)));
        let setup = per_op(before, cpu_seconds(good_pid), per_round);
        let (start, before) = (Instant::now(), cpu_seconds(forged_pid));
        forged_round(forged_port, &tls, &ticket, CONC, per_round).await;
        refusals.push(per_round as f64 / start.elapsed().as_secs_f64());
        let refusal = per_op(before, cpu_seconds(forged_pid), per_round);
        ratios.extend(refusal.zip(setup).map(|(r, s)| r / s));
        setup_cpu.extend(setup);
        refusal_cpu.extend(refusal);
    }
    sampler.abort();
    let grown = peak.load(Ordering::Relaxed).saturating_sub(baseline) as f64;
    let median_of = |v: Vec<f64>| (v.len() == BUDGET_ROUNDS).then(|| median(v));
    Budget {
        setups_per_s: median(setups),
        refusals_per_s: median(refusals),
        cpu_per_setup: median_of(setup_cpu),
        cpu_per_refusal: median_of(refusal_cpu),
        cpu_ratio: median_of(ratios),
        bytes_in_flight: grown / CONC as f64,
    }
}

/// CPU seconds per operation between two readings; `None` below 50 ms in all (5 clock ticks:
/// noise, as in smoke runs).
fn per_op(before: Option<f64>, after: Option<f64>, n: usize) -> Option<f64> {
    let used = after? - before?;
    (used >= 0.05 && n > 0).then(|| used / n as f64)
}

/// `n` forged requests from `conc` clients, each refused with 403.
async fn forged_round(port: u16, tls: &Arc<rustls::ClientConfig>, ticket: &Arc<String>, conc: usize, n: usize) {
    let workers: Vec<_> = (0..conc)
        .map(|w| {
            let (tls, ticket) = (tls.clone(), ticket.clone());
            tokio::spawn(async move {
                let mut i = w;
                while i < n {
                    let s = tcp(port).await.unwrap_or_else(|e| fail("forged: connect", e));
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    let mut io =
                        tokio_rustls::TlsConnector::from(tls.clone()).connect(name, s).await.unwrap_or_else(|e| fail("forged: TLS", e));
                    let code = ws_client::handshake(&mut io, "localhost", &ticket).await.unwrap_or_else(|e| fail("forged: request", e));
                    assert_eq!(code, 403, "a forged ticket was not refused");
                    i += conc;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
}

/// The highest RSS of `pid` seen every `period` until the returned task is aborted.
fn peak_rss(pid: u32, period: Duration) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(AtomicU64::new(rss_bytes(pid)));
    let seen = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            seen.fetch_max(rss_bytes(pid), Ordering::Relaxed);
            tokio::time::sleep(period).await;
        }
    });
    (peak, task)
}

/// Round trips, all systems interleaved; then latency under load, one system at a time, with
/// the relay's peak RSS sampled while it carries the load.
async fn latencies(rows: &mut [Row], systems: &[(usize, System)], relay_pids: &HashMap<usize, u32>, sinks: &Ports, sizes: Sizes) {
    eprintln!("measuring round trips, all systems interleaved ...");
    let sys_refs: Vec<&System> = systems.iter().map(|(_, s)| s).collect();
    let results = latency_interleaved(&sys_refs, sinks, sizes.round_trips).await.unwrap_or_else(|e| fail("latency", e));
    for ((index, _), (p50, p99)) in systems.iter().zip(results) {
        rows[*index].p50 = Some(p50);
        rows[*index].p99 = Some(p99);
    }
    eprintln!("measuring latency under load ({} streaming down, {} up), one system at a time ...", sizes.load_down, sizes.load_up);
    for (index, sys) in systems {
        let started = Instant::now();
        let sampler = relay_pids.get(index).map(|&pid| peak_rss(pid, Duration::from_millis(100)));
        let got = load::under_load(sys, sinks, sizes.load_down, sizes.load_up, sizes.load_round_trips).await;
        if let Some((peak, s)) = sampler {
            s.abort();
            rows[*index].rss_under_load = Some(peak.load(Ordering::Relaxed));
        }
        let got = got.unwrap_or_else(|e| fail("latency under load", e));
        eprintln!("  {}: p99 {:.0} us, {:.1} s", rows[*index].name, got.p99_us, started.elapsed().as_secs_f64());
        rows[*index].load = Some(got);
    }
}

/// The tables and the targets, as printed; returns the stamp they start with.
fn print_tables(rows: &[Row], cold: &[Duration], sizes: Sizes, relay_bin: &Path) -> stamp::Stamp {
    let stamp = stamp::Stamp::now(relay_bin);
    println!("\n{}", stamp.line());
    println!(
        "wsproxy-bench ({} MiB per direction x {} runs, {} round trips, {} setups, {} idle sessions; {})",
        sizes.bulk_bytes >> 20,
        sizes.runs,
        sizes.round_trips,
        sizes.setups,
        sizes.idle_sessions,
        match PIN_RELAY.get().copied().flatten() {
            Some(cpu) =>
                format!("relays on CPU {cpu}, harness on {} other(s)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
            None => format!("{} cores shared", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        }
    );
    println!(
        "{:<30} {:>12} {:>12} {:>9} {:>9} {:>11} {:>13}",
        "system", "send MB/s", "recv MB/s", "p50 us", "p99 us", "setups/s", "idle B/sess"
    );
    for r in rows {
        println!(
            "{:<30} {:>12} {:>12} {:>9} {:>9} {:>11} {:>13}",
            r.name,
            fmt(r.send, 0),
            fmt(r.recv, 0),
            fmt(r.p50, 1),
            fmt(r.p99, 1),
            fmt(r.setups, 0),
            r.idle.map(|i| format!("{:.0}", i.1)).unwrap_or_else(|| "-".into())
        );
    }
    println!("\nrelay CPU per GB relayed (utime + stime of the relay's processes, forked children included, /proc/PID/stat)");
    println!("{:<30} {:>16} {:>16}", "system", "browser->VM s/GB", "VM->browser s/GB");
    for r in rows.iter().filter(|r| r.cpu_per_gb.is_some()) {
        let (up, down) = r.cpu_per_gb.unwrap();
        println!("{:<30} {:>16.2} {:>16.2}", r.name, up, down);
    }
    println!("\nunder load: a probe's round trips while {} sessions stream VM->browser and {} browser->VM", sizes.load_down, sizes.load_up);
    println!(
        "{:<30} {:>9} {:>9} {:>10} {:>9} {:>9} {:>12} {:>14}",
        "system", "p50 us", "p99 us", "p99.9 us", "fairness", "slowest", "down MB/s", "relay RSS MiB"
    );
    for r in rows.iter().filter(|r| r.load.is_some()) {
        let l = r.load.unwrap();
        println!(
            "{:<30} {:>9.0} {:>9.0} {:>10.0} {:>9.3} {:>8.0}% {:>12.0} {:>14}",
            r.name,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            l.fairness,
            l.slowest_share * 100.0,
            l.down_mb_s,
            r.rss_under_load.map(|b| format!("{:.1}", b as f64 / 1048576.0)).unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "relay cold start to ready: {}",
        cold.iter().map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ")
    );
    ratios(rows);
    stamp
}

/// `--soak`: one wss relay, good and foreign tickets, the soak run.
async fn soak_main(relay_bin: &Path, seconds: u64, sessions: usize) -> bool {
    let dir = tempfile_dir();
    eprintln!("making certificates and signing tickets ...");
    let engine = pki::write_all(&dir);
    let foreign = pki::foreign_key();
    let sinks = Ports {
        discard: sink::start(Mode::Discard).await,
        source: sink::start(Mode::Source).await,
        echo: sink::start(Mode::Echo).await,
        hello: sink::start(Mode::Hello).await,
    };
    let churn = (seconds as usize * 1000 / 20) / 2 + 50;
    let good_tickets = Arc::new(pki::Tickets::new(&engine, &[(sinks.echo, sessions), (sinks.hello, churn)]));
    let bad_tickets = Arc::new(pki::Tickets::new(&foreign, &[(sinks.hello, churn)]));
    let (child, port, _) = relay(relay_bin, &dir, true, "ecdsa", &[]).await;
    let tls = Some(pki::client_config(&dir));
    let good = System::Relay { port, tls: tls.clone(), tickets: good_tickets };
    let bad = System::Relay { port, tls, tickets: bad_tickets };
    eprintln!("soak: {sessions} sessions for {seconds} s ...");
    let result = soak::run(good, bad, sinks, child.0.id(), sessions, seconds).await;
    println!("{}\n{}", stamp::Stamp::now(relay_bin).line(), result.report);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    result.ok
}

/// The targets, as ratios from this run.
fn ratios(rows: &[Row]) {
    let get = |name: &str| rows.iter().find(|r| r.name == name);
    let (Some(direct), Some(socat), Some(ws), Some(wss)) = (get("direct TCP"), get("socat relay"), get("wsproxy ws"), get("wsproxy wss"))
    else {
        return;
    };
    let wsk = get("websockify ws");
    let min = |a: Option<f64>, b: Option<f64>| a.unwrap_or(0.0).min(b.unwrap_or(0.0));
    let socat_bulk = min(socat.send, socat.recv);
    let check = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("\ntargets (ratios within this run):");
    let ws_ratio = min(ws.send, ws.recv) / socat_bulk;
    println!("  ws bulk >= 80% of socat:            {:.0}%  {}", ws_ratio * 100.0, check(ws_ratio >= 0.8));
    let wss_ratio = min(wss.send, wss.recv) / socat_bulk;
    println!("  wss bulk >= 50% of socat:           {:.0}%  {}", wss_ratio * 100.0, check(wss_ratio >= 0.5));
    if let (Some((ws_up, ws_down)), Some((wss_up, wss_down)), Some((s_up, s_down))) = (ws.cpu_per_gb, wss.cpu_per_gb, socat.cpu_per_gb) {
        let r = (ws_up / s_up).max(ws_down / s_down);
        println!("  ws CPU per GB <= socat's:           {:.0}% (worse direction)  {}", r * 100.0, check(r <= 1.0));
        let r = (wss_up / s_up).max(wss_down / s_down);
        println!("  wss CPU per GB <= 2x socat's:       {r:.1}x (worse direction)  {}", check(r <= 2.0));
    }
    if let Some(w) = wsk {
        let r = ws.send.unwrap_or(0.0) / w.send.unwrap_or(f64::MAX);
        println!("  browser->VM >= 4x websockify:       {r:.1}x  {}", check(r >= 4.0));
        let r = ws.p99.unwrap_or(f64::MAX) / w.p99.unwrap_or(1.0);
        println!("  p99 <= 60% of websockify:           {:.0}%  {}", r * 100.0, check(r <= 0.6));
    }
    let added = ws.p50.unwrap_or(0.0) - direct.p50.unwrap_or(0.0);
    let socat_added = socat.p50.unwrap_or(0.0) - direct.p50.unwrap_or(0.0);
    println!("  added p50 <= socat's + 15 us:       {added:.1} us vs {:.1} us  {}", socat_added + 15.0, check(added <= socat_added + 15.0));
    println!("  wss setups >= 1000/s (ECDSA):       {:.0}/s  {}", wss.setups.unwrap_or(0.0), check(wss.setups.unwrap_or(0.0) >= 1000.0));
    if let Some(b) = wss.budget {
        let r = b.refusals_per_s / b.setups_per_s;
        println!(
            "  forged refusals/s >= wss setups/s:  {:.0}/s vs {:.0}/s ({:.0}%)  {}",
            b.refusals_per_s,
            b.setups_per_s,
            r * 100.0,
            check(r >= 1.0)
        );
        if let (Some(refusal), Some(setup), Some(ratio)) = (b.cpu_per_refusal, b.cpu_per_setup, b.cpu_ratio) {
            let (refusal, setup) = (refusal * 1e6, setup * 1e6);
            println!(
                "  relay CPU per refusal < per setup:  {refusal:.0} us vs {setup:.0} us ({:.0}%)  {}",
                ratio * 100.0,
                check(ratio < 1.0)
            );
        }
        let bytes = b.bytes_in_flight;
        println!("  memory per refusal in flight <= 64 KiB: {:.1} KiB  {}", bytes / 1024.0, check(bytes <= 64.0 * 1024.0));
    }
    if let Some(stored) = get("wsproxy wss + replay store (redis)") {
        let r = stored.setups.unwrap_or(0.0) / wss.setups.unwrap_or(f64::MAX);
        println!("  wss setups with replay store >= 80%: {:.0}%  {}", r * 100.0, check(r >= 0.8));
    }
    if let Some(i) = ws.idle {
        println!("  ws idle session <= 16 KiB:          {:.1} KiB  {}", i.1 / 1024.0, check(i.1 <= 16.0 * 1024.0));
    }
    if let Some(i) = wss.idle {
        println!("  wss idle session <= 32 KiB:         {:.1} KiB  {}", i.1 / 1024.0, check(i.1 <= 32.0 * 1024.0));
    }
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("wsproxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[cfg(test)]
mod tests {
    #[test]
    fn misspelt_flags_and_bad_numbers_are_refused() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(super::check_args(&args(&["--smoke", "--relay", "x", "--load-down", "100", "--load-only"])).is_ok());
        assert!(super::check_args(&args(&["--load-onyl"])).unwrap_err().contains("--load-onyl"));
        assert!(super::check_args(&args(&["--setups", "many"])).unwrap_err().contains("whole number"));
        assert!(super::check_args(&args(&["--json"])).unwrap_err().contains("needs a value"));
    }
}
