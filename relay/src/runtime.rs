//! The async runtime the relay runs on, and the one setting it changes.
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

/// How many task polls may pass between two looks at the I/O driver.
const EVENT_INTERVAL: u32 = 1;

/// The relay's multi-thread runtime.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().event_interval(EVENT_INTERVAL).enable_all().build()
}
