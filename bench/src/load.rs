//! Latency under load and fairness: what a console user feels while other consoles stream.
//!
//! A probe session does small round trips (10-byte messages, one outstanding, like pointer
//! moves, at most one every [`PROBE_INTERVAL`]) while `down` sessions stream VM->browser and `up` sessions stream browser->VM at
//! full speed through the same system. Reported: the probe's p50/p99/p99.9, and over the
//! streaming VM->browser sessions Jain's fairness index and the slowest session's share of
//! the mean (bytes each received while the probe ran).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use super::{ws_client, Ports, System, MSG};
use crate::sink::Mode;

/// The probe's pace: a pointer moved as fast as the fastest mice report (1000 Hz; browsers
/// send fewer events than that). Unpaced, a relay that answers in 50 us turns the probe into
/// 20,000 round trips a second, whose own CPU is then taken from the streams it is measured
/// against (a relay that is slow to answer was spared that cost).
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// The shortest time the probe runs (and the streams are counted).
const MIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// One system's figures under load.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub fairness: f64,
    pub slowest_share: f64,
    pub down_mb_s: f64,
    /// The streams' shares of the mean, sorted: the slowest, the 10th, 50th and 90th
    /// percentiles and the fastest (`--load-only` prints them: how unfair, and in what shape).
    pub shares: [f64; 5],
}

/// Jain's fairness index of per-session amounts: 1 when all are equal, 1/n when one has all.
pub fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    if squares == 0.0 {
        return 0.0;
    }
    sum * sum / (x.len() as f64 * squares)
}

fn percentile(sorted: &[f64], per_mille: usize) -> f64 {
    sorted[(sorted.len() * per_mille / 1000).min(sorted.len() - 1)]
}

/// Run the probe under load through `sys`.
pub async fn under_load(sys: &System, sinks: &Ports, down: usize, up: usize, round_trips: usize) -> std::io::Result<Load> {
    let window = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..down {
        let mut c = sys.connect(sinks, Mode::Source).await?;
        c.send(&(u64::MAX / 2).to_be_bytes(), None).await?;
        let (window, got) = (window.clone(), Arc::new(AtomicU64::new(0)));
        receivers.push(got.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                if c.recv(MSG).await.is_err() {
                    return;
                }
                if window.load(Relaxed) {
                    got.fetch_add(MSG as u64, Relaxed);
                }
            }
        }));
    }
    for _ in 0..up {
        let mut c = sys.connect(sinks, Mode::Discard).await?;
        c.send(&(u64::MAX / 2).to_be_bytes(), None).await?;
        tasks.push(tokio::spawn(async move {
            let payload = vec![0x5au8; MSG];
            let mut framed = Vec::with_capacity(MSG + 14);
            ws_client::frame(&payload, [1, 2, 3, 4], &mut framed);
            while c.send(&payload, Some(&framed)).await.is_ok() {}
        }));
    }
    // The probe runs on its own thread and runtime: queued behind the streaming tasks in this
    // runtime it would measure the harness's scheduler, not the system under test.
    let (probe_sys, probe_sinks, probe_window) = (sys.clone(), *sinks, window.clone());
    let probe = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("probe runtime");
        rt.block_on(probe_round_trips(&probe_sys, &probe_sinks, round_trips, &probe_window))
    });
    let (rtts, seconds) = tokio::task::spawn_blocking(move || probe.join().expect("probe thread")).await.expect("join")?;
    window.store(false, Relaxed);
    for t in tasks {
        t.abort();
    }
    let mut rtts = rtts;
    rtts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let bytes: Vec<f64> = receivers.iter().map(|g| g.load(Relaxed) as f64).collect();
    let mean = bytes.iter().sum::<f64>() / bytes.len().max(1) as f64;
    let mut sorted: Vec<f64> = bytes.iter().map(|b| if mean > 0.0 { b / mean } else { 0.0 }).collect();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let shares = if sorted.is_empty() { [0.0; 5] } else { [0, 100, 500, 900, 1000].map(|p| percentile(&sorted, p)) };
    Ok(Load {
        p50_us: percentile(&rtts, 500),
        p99_us: percentile(&rtts, 990),
        p999_us: percentile(&rtts, 999),
        fairness: jain(&bytes),
        slowest_share: shares[0],
        down_mb_s: bytes.iter().sum::<f64>() / seconds / 1e6,
        shares,
    })
}

/// Round trips of 10-byte messages, one outstanding; opens `window` for the streams' counts.
/// Returns the round trips (µs) and the seconds the window was open.
async fn probe_round_trips(sys: &System, sinks: &Ports, n: usize, window: &AtomicBool) -> std::io::Result<(Vec<f64>, f64)> {
    let msg = [9u8; 10];
    let mut framed = Vec::new();
    ws_client::frame(&msg, [5, 6, 7, 8], &mut framed);
    let mut probe = sys.connect(sinks, Mode::Echo).await?;
    for _ in 0..20 {
        probe.send(&msg, Some(&framed)).await?;
        probe.recv(10).await?;
    }
    window.store(true, Relaxed);
    let start = Instant::now();
    let mut rtts = Vec::with_capacity(n);
    let mut pace = tokio::time::interval(PROBE_INTERVAL);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // At least n round trips, and at least a second: the streams' shares need time to show.
    while rtts.len() < n || start.elapsed() < MIN_WINDOW {
        pace.tick().await;
        let t = Instant::now();
        probe.send(&msg, Some(&framed)).await?;
        probe.recv(10).await?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((rtts, start.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn jain_index() {
        assert!((super::jain(&[5.0, 5.0, 5.0]) - 1.0).abs() < 1e-9);
        assert!((super::jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-9);
    }
}
