//! The async runtimes the relay runs on: the main one, and a lower-priority lane for sessions
//! that stream at full speed.
//!
//! tokio's multi-thread scheduler looks for I/O events once every 61 task polls by default
//! (`event_interval`). Under load every streaming session's task is always ready to run, so a
//! pointer move that arrives is not even seen until a worker has polled up to 61 busy sessions
//! (each up to the byte pump's 64 KiB budget), and then queues behind them: with 100 consoles
//! streaming, the median round trip of an interactive one was 14.6 ms. Looking for events
//! before every task poll (one non-blocking `epoll_wait` each) brought that median to 50 us,
//! below socat's, and the p99 from 36 to 11 ms, with no loss of throughput (docs/BENCHMARKS.md,
//! "latency under load"). With no load the setting changes nothing: an idle worker waits in
//! the I/O driver anyway.
//!
//! What was left in the p99 is a woken session waiting behind busy ones in one run queue:
//! tokio has no priorities. The kernel has, and that is what per-process relays such as socat
//! get for free (a process that slept is run before ones that used their time slice). So a
//! session that streams (2 MB/s or more over 100 ms) moves to the bulk lane, a second runtime
//! whose worker threads run at a lower scheduling priority (nice [`BULK_NICE`]), with its
//! sockets (`crate::rehome`); it comes back when it goes quiet (the byte pump decides,
//! `session::byte_pump`). The lane's threads still get the whole machine when nothing
//! interactive wants it: nice weighs, it does not reserve.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// How many task polls may pass between two looks at the I/O driver.
const EVENT_INTERVAL: u32 = 1;

/// The nice value of the bulk lane's threads: weight 110 against 1024 for the main runtime's
/// (the kernel's table), so a woken interactive session's thread is run first. Measured
/// (docs/BENCHMARKS.md, "the bulk lane" and "queued afresh"): nice 10 gave the shortest round
/// trips but, alone, let the streams' shares drift apart (the lane's threads lose unevenly to
/// other processes on their cores, and tokio keeps a run queue per thread, so the sessions
/// dealt to the thread that lost got less); with the lane's sessions queued afresh every
/// 100 ms window (`session::byte_pump`, `Step::Redeal`) each session's time on each thread
/// evens out; a stream leaves the lane only after half a second of quiet (`QUIET_WINDOWS`),
/// so one that waits a moment for a peer does not bounce to the main runtime and stream there
/// at full priority (docs/BENCHMARKS.md, "queued afresh"). Nice 5 was the default before.
/// The default of `WSPROXY_BULK_LANE_NICE`.
pub const BULK_NICE: i32 = 10;

static BULK: OnceLock<Handle> = OnceLock::new();

/// The relay's multi-thread runtime.
pub fn build() -> std::io::Result<Runtime> {
    Builder::new_multi_thread().event_interval(EVENT_INTERVAL).enable_all().build()
}

/// The bulk lane's runtime. Its handle is registered for the sessions to find; the caller
/// keeps the runtime alive as long as the main one (a session that moves registers its
/// sockets with this runtime's I/O driver and its timers stay with the main one).
pub fn build_bulk_lane(nice: i32) -> std::io::Result<Runtime> {
    let runtime = Builder::new_multi_thread()
        .thread_name("wsproxy-bulk")
        .event_interval(EVENT_INTERVAL)
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .build()?;
    let _ = BULK.set(runtime.handle().clone());
    Ok(runtime)
}

/// The bulk lane, where one was built (the relay binary builds it; a relay embedded in a test
/// without it keeps every session where it started).
pub(crate) fn bulk_lane() -> Option<&'static Handle> {
    BULK.get()
}

/// Linux keeps a nice value per thread: this lowers only the calling thread's. Refused (a
/// seccomp profile that forbids it), the lane still works, without the priority.
fn lower_priority(nice: i32) {
    // SAFETY: plain syscalls on the calling thread, no memory passed.
    let refused = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) } != 0;
    if refused {
        tracing::debug!(error = %std::io::Error::last_os_error(), "bulk lane: could not lower the thread's priority");
    }
}
