//! `wsproxy-bench --soak`: a bounded load run against the relay over wss.
//!
//! For `seconds`, `sessions` concurrent sessions each send pseudo-random messages to an echo
//! target and check every byte that comes back; meanwhile a stream of new sessions alternates
//! engine-signed tickets (must open) and foreign-signed ones (must get 403). At the end: bytes
//! moved, corrupt or lost bytes (must be 0), bad tickets accepted (must be 0), and the relay's
//! open fds and RSS in the first and the last 10% of the run (must not grow). Loopback only;
//! it stops by itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ports, System};
use crate::sink::Mode;

#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    corrupt: AtomicU64,
    session_errors: AtomicU64,
    good_opened: AtomicU64,
    good_refused: AtomicU64,
    bad_refused: AtomicU64,
    bad_accepted: AtomicU64,
}

/// The relay's open descriptors; None when /proc cannot be read (then the soak fails: a
/// count of 0 would pass the growth check without measuring anything).
fn fds(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count() as u64)
}

/// xorshift: cheap pseudo-random payloads, reproducible per session.
fn fill(seed: &mut u64, buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *b = *seed as u8;
    }
}

pub struct SoakResult {
    pub ok: bool,
    pub report: String,
}

/// Run the soak. `good` and `bad` open sessions with engine-signed and foreign tickets.
pub async fn run(good: System, bad: System, sinks: Ports, pid: u32, sessions: usize, seconds: u64) -> SoakResult {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> =
        (0..sessions).map(|id| tokio::spawn(echo_session(id as u64, good.clone(), sinks, counters.clone(), stop.clone()))).collect();
    let churn = tokio::spawn(churn(good, bad, sinks, counters.clone(), stop.clone()));
    let samples = sample(pid, seconds).await;
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = churn.await;
    verdict(&counters, &samples, pid, sessions, seconds)
}

/// One long session echoing checksummed data of random sizes until `stop`.
async fn echo_session(id: u64, sys: System, sinks: Ports, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let Ok(mut conn) = sys.connect(&sinks, Mode::Echo).await else {
        c.session_errors.fetch_add(1, Relaxed);
        return;
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ id;
    let mut sent = vec![0u8; 8192];
    while !stop.load(Relaxed) {
        let n = 1 + (seed as usize % sent.len());
        fill(&mut seed, &mut sent[..n]);
        if conn.send(&sent[..n], None).await.is_err() {
            c.session_errors.fetch_add(1, Relaxed);
            return;
        }
        match conn.recv_into(n).await {
            Ok(back) if back == sent[..n] => {
                c.bytes.fetch_add(2 * n as u64, Relaxed);
            }
            Ok(_) => {
                c.corrupt.fetch_add(n as u64, Relaxed);
            }
            Err(_) => {
                c.session_errors.fetch_add(1, Relaxed);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A stream of new sessions, good and bad tickets alternating, until `stop`.
async fn churn(good: System, bad: System, sinks: Ports, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    while !stop.load(Relaxed) {
        let is_bad = i % 2 == 1;
        let sys = if is_bad { &bad } else { &good };
        match (sys.connect(&sinks, Mode::Hello).await, is_bad) {
            (Ok(mut conn), false) => {
                if conn.recv(1).await.is_ok() {
                    c.good_opened.fetch_add(1, Relaxed);
                } else {
                    c.good_refused.fetch_add(1, Relaxed);
                }
            }
            (Err(_), false) => {
                c.good_refused.fetch_add(1, Relaxed);
            }
            (Ok(_), true) => {
                c.bad_accepted.fetch_add(1, Relaxed);
            }
            (Err(_), true) => {
                c.bad_refused.fetch_add(1, Relaxed);
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The relay's (fds, RSS) in the first and the last tenth of the run, and how many samples
/// could not be read.
struct Samples {
    early: Vec<(u64, u64)>,
    late: Vec<(u64, u64)>,
    unreadable: u64,
}

async fn sample(pid: u32, seconds: u64) -> Samples {
    let start = Instant::now();
    let window = Duration::from_secs((seconds / 10).max(1));
    let mut s = Samples { early: Vec::new(), late: Vec::new(), unreadable: 0 };
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = super::rss_bytes(pid);
        let Some(fd_count) = fds(pid).filter(|_| rss > 0) else {
            s.unreadable += 1;
            continue;
        };
        let sample = (fd_count, rss);
        if start.elapsed() > Duration::from_secs(2) && start.elapsed() < Duration::from_secs(2) + window {
            s.early.push(sample);
        }
        if start.elapsed() > Duration::from_secs(seconds) - window {
            s.late.push(sample);
        }
    }
    s
}

/// PASS only when nothing was corrupted, lost or wrongly accepted, and fds and RSS did not grow.
fn verdict(c: &Counters, s: &Samples, pid: u32, sessions: usize, seconds: u64) -> SoakResult {
    let max = |v: &[(u64, u64)], f: fn(&(u64, u64)) -> u64| v.iter().map(f).max().unwrap_or(0);
    let (fd_early, fd_late) = (max(&s.early, |s| s.0), max(&s.late, |s| s.0));
    let (rss_early, rss_late) = (max(&s.early, |s| s.1), max(&s.late, |s| s.1));
    let (corrupt, bad_accepted, errors) = (c.corrupt.load(Relaxed), c.bad_accepted.load(Relaxed), c.session_errors.load(Relaxed));
    // Growth allowance: a few fds of churn in flight, 10% of RSS for allocator noise.
    let fd_ok = fd_late <= fd_early + 16;
    let rss_ok = rss_late <= rss_early + rss_early / 10 + 2 * 1024 * 1024;
    let measured = s.unreadable == 0 && !s.early.is_empty() && !s.late.is_empty();
    let ok = measured && corrupt == 0 && bad_accepted == 0 && errors == 0 && fd_ok && rss_ok && c.good_refused.load(Relaxed) == 0;
    let report = format!(
        "soak: {seconds} s, {sessions} concurrent wss sessions echoing checksummed data\n\
         \x20 moved {:.1} MB both ways; corrupt/lost bytes {corrupt}; session errors {errors}\n\
         \x20 new sessions: {} good opened, {} good refused, {} bad refused, {bad_accepted} bad accepted\n\
         \x20 relay fds {fd_early} -> {fd_late}; RSS {:.1} -> {:.1} MiB{}  => {}",
        c.bytes.load(Relaxed) as f64 / 1e6,
        c.good_opened.load(Relaxed),
        c.good_refused.load(Relaxed),
        c.bad_refused.load(Relaxed),
        rss_early as f64 / 1048576.0,
        rss_late as f64 / 1048576.0,
        if measured { String::new() } else { format!(" (NOT MEASURED: /proc/{pid} unreadable in {} samples)", s.unreadable) },
        if ok { "PASS" } else { "FAIL" }
    );
    SoakResult { ok, report }
}
