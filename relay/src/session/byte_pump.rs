//! The byte pump between a browser's websocket and a plain or VeNCrypt target.
//!
//! Design (figures in docs/BENCHMARKS.md): one future per session drives both directions
//! from a single poll function, so neither direction ever waits on the other: a slow target
//! stops only the browser->target side (backpressure), never the pings or the other way.
//! Reads go into one scratch buffer per thread, frames are decoded and unmasked in place
//! ([`crate::wsframe`]) and written straight on; only what a peer did not take at once is
//! copied into a per-session buffer, which is released again when drained. An idle session
//! therefore holds no buffer. Target reads (up to 64 KiB) become one binary frame each,
//! header and payload contiguous in the scratch buffer: one write per message.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::encoding::{decode_base64, Encoding, TEXT_ON_BINARY};
use super::ending::{End, EndReason, Outcome};
use super::timing::{expired, housekeeping, lifetime, on_tick, tick, Tick, Timing};
use crate::browser::BrowserSocket;
use crate::metrics::Metrics;
use crate::registry::LiveBytes;
use crate::rehome::Rehome;
use crate::runtime;
use crate::target::{ByteStream, CHUNK};
use crate::wsframe::{self, opcode, Kind};

/// Largest read from the browser: several 64 KiB messages per syscall under bulk load. The
/// buffer is per worker thread, not per session, so its size costs idle sessions nothing.
const BROWSER_READ: usize = 256 * 1024;

/// Room before a target chunk in the scratch buffer for the frame header.
const HEADROOM: usize = wsframe::MAX_SERVER_HEADER;

thread_local! {
    /// One read buffer per worker thread, shared by every session polled on it: a poll never
    /// polls another session, so the borrow is never contended.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; BROWSER_READ.max(HEADROOM + CHUNK)].into_boxed_slice());
}

/// Payloads up to this size are gathered into one target write; larger ones are written where
/// they lie (moving them would cost more than the write saves).
const COALESCE_BELOW: usize = 4096;

/// Answers (pongs) waiting for the browser beyond which the browser is not read: a client that
/// floods pings and never reads is slowed to the pace it reads at (and closed by the ping
/// check if it never does). Pongs are never larger than the pings that asked for them, so the
/// session's input and output buffers together stay within one read, [`BROWSER_READ`].
const OUT_LIMIT: usize = 32 * 1024;

/// Rounds of progress in one poll before yielding to other sessions.
const ROUNDS: usize = 16;

/// Bytes one session may move in one poll before it yields to the others: a session streaming
/// at full speed must not keep a pointer move of another session waiting (per-process relays
/// get this from the kernel's scheduler). With 16 rounds of up to 64 KiB + 256 KiB each, a
/// poll could move 5 MiB: 100 streaming sessions made every other session's round trip wait
/// ~0.5 s at p99 (docs/BENCHMARKS.md, "latency under load").
const POLL_BUDGET: u64 = 64 * 1024;

struct BytePump<S> {
    ws: BrowserSocket<S>,
    target: ByteStream,
    base64: bool,
    /// Browser data the target has not taken yet.
    to_target: BytesMut,
    /// A base64 message being collected.
    text: Vec<u8>,
    browser_dirty: bool,
    target_dirty: bool,
    last_data: Instant,
    last_browser: Instant,
    to_target_bytes: u64,
    to_browser_bytes: u64,
    /// The same counts, where the admin listener reads them.
    live: Arc<LiveBytes>,
    metrics: Arc<Metrics>,
    /// The current measuring window of the session's byte rate (what decides its lane): when
    /// it began and how much had moved by then.
    window_start: Instant,
    window_moved: u64,
    /// Whether a poll in this window used its whole budget (had more to move than it may).
    window_busy: bool,
    /// Quiet rate windows in a row in the bulk lane (at [`QUIET_WINDOWS`] the session goes
    /// back to the main runtime).
    quiet_windows: u32,
}

/// What one poll of the pump asks for, when it does not wait.
enum Step {
    End(End),
    /// Continue in the other lane.
    ChangeLane,
    /// Continue in the bulk lane, queued afresh: the lane's workers each keep a run queue and
    /// take from another's only when they run out of work, which a lane under full load never
    /// does, so a session would stay with the worker that first took it and the sessions dealt
    /// to a crowded worker would each get less (measured: 67 of 100 streams on one of two
    /// workers, each getting 85% of the mean, the other 33 119%). Queued afresh after each
    /// rate window that was not quiet, each stream's time on each worker evens out (queued
    /// afresh only every fifth window, the slowest stream still got 63-77% of the mean in some
    /// runs; docs/BENCHMARKS.md, "queued afresh"). Busy or not: a stream that waits for its
    /// browser in most polls is as stuck to its worker as one that uses its whole budget.
    Redeal,
}

impl<S: AsyncRead + AsyncWrite + Unpin> BytePump<S> {
    fn poll(&mut self, cx: &mut Context<'_>, lane: Lane) -> Poll<Step> {
        SCRATCH.with(|s| self.poll_with(cx, &mut s.borrow_mut(), lane))
    }

    fn poll_with(&mut self, cx: &mut Context<'_>, scratch: &mut [u8], lane: Lane) -> Poll<Step> {
        let moved_before = self.to_target_bytes + self.to_browser_bytes;
        for _ in 0..ROUNDS {
            if self.to_target_bytes + self.to_browser_bytes - moved_before >= POLL_BUDGET {
                break;
            }
            match self.round(cx, scratch) {
                Err(end) => return Poll::Ready(Step::End(end)),
                Ok(true) => {}
                Ok(false) => {
                    if let Err(end) = self.flush(cx) {
                        return Poll::Ready(Step::End(end));
                    }
                    // Waiting for a peer: the wakers are registered, and a poll in the other
                    // lane registers its own.
                    if let Some(step) = self.lane_step(lane) {
                        return Poll::Ready(step);
                    }
                    return Poll::Pending;
                }
            }
        }
        // Busy (budget or rounds used up): let other sessions run, then continue. What was
        // written is flushed first, so a TLS record never waits for this session's next turn.
        if let Err(end) = self.flush(cx) {
            return Poll::Ready(Step::End(end));
        }
        self.window_busy = true;
        if let Some(step) = self.lane_step(lane) {
            return Poll::Ready(step);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// At the end of a poll, once a rate window has closed: whether the session belongs in the
    /// other lane ([`Step::ChangeLane`]) or, staying in the bulk lane, is queued afresh there
    /// ([`Step::Redeal`]). A session that moves at least [`STREAMING_RATE`] is streaming; it
    /// comes back after [`QUIET_WINDOWS`] windows in a row below a quarter of that with no poll
    /// that used its whole budget, so neither a session near the line nor a stream that waits
    /// a moment for a peer moves back and forth.
    fn lane_step(&mut self, lane: Lane) -> Option<Step> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.window_start);
        if elapsed < LANE_WINDOW {
            return None;
        }
        let moved = self.to_target_bytes + self.to_browser_bytes;
        let rate = (moved - self.window_moved) as f64 / elapsed.as_secs_f64();
        let busy = std::mem::take(&mut self.window_busy);
        self.window_start = now;
        self.window_moved = moved;
        match lane {
            Lane::Main => (rate >= STREAMING_RATE && runtime::bulk_lane().is_some()).then_some(Step::ChangeLane),
            Lane::Bulk if !busy && rate < STREAMING_RATE / 4.0 => {
                self.quiet_windows += 1;
                (self.quiet_windows >= QUIET_WINDOWS).then(|| {
                    self.quiet_windows = 0;
                    Step::ChangeLane
                })
            }
            Lane::Bulk => {
                self.quiet_windows = 0;
                Some(Step::Redeal)
            }
        }
    }

    /// One turn of each direction; whether anything moved.
    fn round(&mut self, cx: &mut Context<'_>, scratch: &mut [u8]) -> Result<bool, End> {
        let mut progress = false;
        self.write_browser(cx, &mut progress)?;
        if self.ws.out.is_empty() {
            self.target_to_browser(cx, scratch, &mut progress)?;
        }
        if !self.to_target.is_empty() {
            self.write_target(cx, &mut progress)?;
        }
        if self.to_target.is_empty() && self.ws.out.len() < OUT_LIMIT {
            self.browser_to_target(cx, scratch, &mut progress)?;
        }
        Ok(progress)
    }

    /// Queued frames to the browser.
    fn write_browser(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Result<(), End> {
        if drain(&mut self.ws.io, cx, &mut self.ws.out).map_err(browser_gone)? {
            self.browser_dirty = true;
            *progress = true;
        }
        Ok(())
    }

    /// One target read becomes one frame, written at once; what the browser does not take
    /// waits in `out` (and no further target read happens until it is gone).
    fn target_to_browser(&mut self, cx: &mut Context<'_>, scratch: &mut [u8], progress: &mut bool) -> Result<(), End> {
        let mut rb = ReadBuf::new(&mut scratch[HEADROOM..HEADROOM + CHUNK]);
        match Pin::new(&mut self.target).poll_read(cx, &mut rb) {
            Poll::Pending => Ok(()),
            Poll::Ready(Err(e)) => Err(End::target_lost(e, "read")),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Err(End::target_closed());
                }
                *progress = true;
                self.last_data = Instant::now();
                self.to_browser_bytes += n as u64;
                self.live.to_browser.store(self.to_browser_bytes, std::sync::atomic::Ordering::Relaxed);
                self.metrics.bytes_to_browser.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                if self.base64 {
                    self.ws.queue_data(true, &scratch[HEADROOM..HEADROOM + n]);
                    return Ok(());
                }
                let start = wsframe::header_before(&mut scratch[..HEADROOM], opcode::BINARY, n);
                let frame = &scratch[start..HEADROOM + n];
                self.browser_dirty |= write_or_keep(&mut self.ws.io, cx, frame, &mut self.ws.out).map_err(browser_gone)?;
                Ok(())
            }
        }
    }

    fn write_target(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Result<(), End> {
        if drain(&mut self.target, cx, &mut self.to_target).map_err(|e| End::target_lost(e, "write"))? {
            if self.to_target.is_empty() {
                // The browser was not read while the target was slow: not its silence.
                self.last_browser = Instant::now();
            }
            self.target_dirty = true;
            *progress = true;
        }
        Ok(())
    }

    /// Read the browser into the scratch buffer (after any partial frame kept from before),
    /// decode in place, hand payload on.
    fn browser_to_target(&mut self, cx: &mut Context<'_>, scratch: &mut [u8], progress: &mut bool) -> Result<(), End> {
        let mut carried = std::mem::take(&mut self.ws.pending);
        if !carried.is_empty() {
            // Bytes that came with the upgrade, or a partial frame: decode what is complete.
            let used = self.decode(cx, &mut carried)?;
            carried.advance(used);
            // Decoding may have queued answers (pongs) or data: another round writes them.
            *progress |= used > 0;
            if !self.to_target.is_empty() || self.ws.out.len() >= OUT_LIMIT {
                self.ws.pending = carried;
                return Ok(());
            }
        }
        let k = carried.len();
        scratch[..k].copy_from_slice(&carried);
        // Input kept plus output waiting plus this read stay within one read's size.
        let room = BROWSER_READ.saturating_sub(k + self.ws.out.len()).max(wsframe::MAX_CLIENT_CONTROL_FRAME);
        let end = (k + room).min(scratch.len());
        let mut rb = ReadBuf::new(&mut scratch[k..end]);
        match Pin::new(&mut self.ws.io).poll_read(cx, &mut rb) {
            Poll::Pending => {
                self.ws.pending = carried;
                Ok(())
            }
            Poll::Ready(Err(e)) => Err(browser_gone(e)),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Err(End::Gone("browser disconnected".into()));
                }
                *progress = true;
                self.last_browser = Instant::now();
                let total = k + n;
                let used = self.decode(cx, &mut scratch[..total])?;
                // The start of a frame (a few bytes) waits for the next read.
                self.ws.pending = BytesMut::from(&scratch[used..total]);
                Ok(())
            }
        }
    }

    /// Decode every complete frame in `buf`; returns how many bytes were used (the rest is
    /// the start of a frame). Small payloads are moved up behind the previous one (into bytes
    /// already decoded, so nothing unread is overwritten) and handed to the target together: a
    /// burst of small messages (pointer moves) costs one write. Large payloads are written
    /// where they lie, without a copy.
    fn decode(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Result<usize, End> {
        let mut at = 0;
        // buf[batch] holds payload bytes not yet handed to the target.
        let mut batch = 0..0;
        loop {
            if self.ws.out.len() >= OUT_LIMIT {
                // Answers pile up unread: stop here; the rest waits in `pending`.
                self.send_target(cx, &buf[batch])?;
                return Ok(at);
            }
            let frame = match self.ws.decoder.next(&mut buf[at..]) {
                Ok(Some(f)) => f,
                Ok(None) => {
                    self.send_target(cx, &buf[batch])?;
                    return Ok(at);
                }
                Err(v) => return Err(End::violation(v)),
            };
            let payload = at + frame.payload.start..at + frame.payload.end;
            at += frame.consumed;
            match frame.kind {
                Kind::Data { text: false, .. } => {
                    if !payload.is_empty() {
                        self.last_data = Instant::now();
                        if batch.is_empty() {
                            batch = payload;
                        } else if payload.len() <= COALESCE_BELOW {
                            let len = payload.len();
                            buf.copy_within(payload, batch.end);
                            batch.end += len;
                        } else {
                            self.send_target(cx, &buf[batch])?;
                            batch = payload;
                        }
                    }
                }
                Kind::Data { text: true, end } => {
                    if !self.base64 {
                        return Err(End::unsupported(TEXT_ON_BINARY));
                    }
                    self.text.extend_from_slice(&buf[payload]);
                    if end {
                        let decoded = decode_base64(&self.text).map_err(End::unsupported)?;
                        self.text = Vec::new();
                        self.last_data = Instant::now();
                        // In order: what came before this message first.
                        self.send_target(cx, &buf[std::mem::replace(&mut batch, 0..0)])?;
                        self.send_target(cx, &decoded)?;
                    }
                }
                Kind::Pong => {}
                kind => {
                    if self.ws.on_control(kind, &buf[payload]).is_some() {
                        // What the browser sent before its close still belongs to the VM.
                        self.send_target(cx, &buf[batch])?;
                        return Err(End::BrowserClosed);
                    }
                }
            }
        }
    }

    /// Write browser data to the target now if nothing is waiting, else queue it.
    fn send_target(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Result<(), End> {
        if data.is_empty() {
            return Ok(());
        }
        self.to_target_bytes += data.len() as u64;
        self.live.to_target.store(self.to_target_bytes, std::sync::atomic::Ordering::Relaxed);
        self.metrics.bytes_to_target.fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if !self.to_target.is_empty() {
            self.to_target.extend_from_slice(data);
            return Ok(());
        }
        self.target_dirty |= write_or_keep(&mut self.target, cx, data, &mut self.to_target).map_err(|e| End::target_lost(e, "write"))?;
        Ok(())
    }

    /// Push out what TLS layers hold (TCP flush is a no-op).
    fn flush(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        if self.browser_dirty {
            match Pin::new(&mut self.ws.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.browser_dirty = false,
                Poll::Ready(Err(e)) => return Err(End::Gone(format!("browser: {e}"))),
                Poll::Pending => {}
            }
        }
        if self.target_dirty {
            match Pin::new(&mut self.target).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.target_dirty = false,
                Poll::Ready(Err(e)) => return Err(End::target_lost(e, "write")),
                Poll::Pending => {}
            }
        }
        Ok(())
    }
}

fn browser_gone(e: std::io::Error) -> End {
    End::Gone(format!("browser: {e}"))
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::WriteZero, "connection closed")
}

/// Write `data` now; what the peer does not take is kept in `keep`. Whether anything was
/// written.
fn write_or_keep<W: AsyncWrite + Unpin>(io: &mut W, cx: &mut Context<'_>, data: &[u8], keep: &mut BytesMut) -> std::io::Result<bool> {
    match Pin::new(io).poll_write(cx, data) {
        Poll::Ready(Ok(0)) => Err(closed()),
        Poll::Ready(Ok(n)) => {
            keep.extend_from_slice(&data[n..]);
            Ok(true)
        }
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => {
            keep.extend_from_slice(data);
            Ok(false)
        }
    }
}

/// Write from `queue` what the peer takes now; an emptied queue gives its memory back.
/// Whether anything was written.
fn drain<W: AsyncWrite + Unpin>(io: &mut W, cx: &mut Context<'_>, queue: &mut BytesMut) -> std::io::Result<bool> {
    if queue.is_empty() {
        return Ok(false);
    }
    match Pin::new(io).poll_write(cx, queue) {
        Poll::Ready(Ok(0)) => Err(closed()),
        Poll::Ready(Ok(n)) => {
            queue.advance(n);
            if queue.is_empty() {
                *queue = BytesMut::new();
            }
            Ok(true)
        }
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(false),
    }
}

/// Which runtime a session is polled on (`crate::runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Main,
    Bulk,
}

impl Lane {
    /// A session has just moved into this lane: the bulk lane gauge counts it in or out.
    fn entered(self, metrics: &Metrics) {
        use std::sync::atomic::Ordering::Relaxed;
        match self {
            Lane::Bulk => metrics.sessions_bulk_lane.fetch_add(1, Relaxed),
            Lane::Main => metrics.sessions_bulk_lane.fetch_sub(1, Relaxed),
        };
    }

    /// A session ended in this lane: one fewer in the bulk lane if it was there.
    fn ended_in(self, metrics: &Metrics) {
        if self == Lane::Bulk {
            metrics.sessions_bulk_lane.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Bytes per second (both directions) from which a session counts as streaming and moves to
/// the bulk lane: a console playing video moves, one whose user types, points and sees the
/// screen redrawn stays (a full-screen update is a burst of a few hundred KB, within one window).
const STREAMING_RATE: f64 = 2_000_000.0;

/// Quiet rate windows in a row after which a bulk session goes back to the main runtime. One
/// was not enough: at the lane's low priority under overload, a stream waiting a window for
/// its browser or VM looked quiet, went back, streamed a window at full priority on the main
/// runtime and returned; such streams bounced and took 2-3.5x the others' share (measured per
/// thread, docs/BENCHMARKS.md, "queued afresh"). Half a second of quiet costs a console whose
/// video stopped half a second more at the lane's priority.
const QUIET_WINDOWS: u32 = 5;

/// How long a session's rate is measured before its lane is decided again. An idle session
/// has no polls and stays where it is; a bulk one that went idle comes back with its next
/// byte.
const LANE_WINDOW: Duration = Duration::from_millis(100);

/// A session's relaying state, owned, so that it can move between the lanes.
struct Relaying<S> {
    pump: BytePump<S>,
    timing: Timing,
    ticker: Option<tokio::time::Interval>,
    lifetime: Option<Pin<Box<tokio::time::Sleep>>>,
    shutdown: watch::Receiver<bool>,
    kill: Arc<tokio::sync::Notify>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Rehome> Relaying<S> {
    /// Relay in this lane until the session ends, asks for the other lane, or asks to be
    /// queued afresh in the bulk lane. A session that has just changed lanes first takes its
    /// sockets along.
    async fn run(mut self: Box<Self>, lane: Lane, moved: bool) -> (Box<Self>, Step) {
        if moved {
            if let Err(e) = self.pump.ws.io.rehome().and_then(|()| self.pump.target.rehome()) {
                tracing::debug!(error = %e, "a session's sockets stayed with the other lane's runtime");
            }
        }
        let step = loop {
            tokio::select! {
                step = poll_fn(|cx| self.pump.poll(cx, lane)) => break step,
                _ = self.shutdown.changed() => break Step::End(End::shutdown()),
                _ = expired(&mut self.lifetime) => break Step::End(End::max_lifetime()),
                _ = self.kill.notified() => break Step::End(End::killed()),
                _ = tick(&mut self.ticker) => match on_tick(self.timing, self.pump.last_data, self.pump.last_browser) {
                    Tick::Continue => {}
                    Tick::Ping => self.pump.ws.queue(opcode::PING, b""),
                    Tick::End(end) => break Step::End(end),
                },
            }
        };
        (self, step)
    }
}

pub(crate) async fn pump_bytes<S: AsyncRead + AsyncWrite + Unpin + Send + Rehome + 'static>(
    ws: Box<BrowserSocket<S>>,
    target: ByteStream,
    encoding: Encoding,
    timing: Timing,
    metrics: Arc<Metrics>,
    stops: super::Stops,
    outcome: &mut Outcome,
) {
    let now = Instant::now();
    let pump = BytePump {
        ws: *ws,
        target,
        base64: encoding == Encoding::Base64,
        to_target: BytesMut::new(),
        text: Vec::new(),
        browser_dirty: false,
        target_dirty: false,
        last_data: now,
        last_browser: now,
        to_target_bytes: 0,
        to_browser_bytes: 0,
        live: stops.control.bytes,
        metrics,
        window_start: now,
        window_moved: 0,
        window_busy: false,
        quiet_windows: 0,
    };
    // Boxed: the state moves between the lanes as a pointer, and the futures that carry it
    // stay small (a task is as large as its largest state; server.rs).
    let (shutdown, kill) = (stops.shutdown, stops.control.kill);
    let mut relaying = Box::new(Relaying { pump, timing, ticker: housekeeping(timing), lifetime: lifetime(timing), shutdown, kill });
    let mut lane = Lane::Main;
    let mut moved = false;
    let end = loop {
        let (back, step) = match (lane, runtime::bulk_lane()) {
            // Spawned from here, the main runtime, the task goes to the lane's shared queue,
            // which the lane's workers take from in turn (a spawn from a lane worker would stay
            // in that worker's own queue).
            (Lane::Bulk, Some(bulk)) => match bulk.spawn(relaying.run(Lane::Bulk, moved)).await {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {
                    // The bulk lane stopped (the process is ending): the session went with it.
                    outcome.reason = "relay shutting down".into();
                    outcome.label = EndReason::Shutdown;
                    return;
                }
            },
            _ => relaying.run(Lane::Main, moved).await,
        };
        relaying = back;
        match step {
            Step::End(end) => break end,
            Step::ChangeLane => {
                lane = if lane == Lane::Main { Lane::Bulk } else { Lane::Main };
                moved = true;
                lane.entered(&relaying.pump.metrics);
            }
            Step::Redeal => moved = false,
        }
    };
    lane.ended_in(&relaying.pump.metrics);
    let mut pump = relaying.pump;
    outcome.to_target += pump.to_target_bytes;
    outcome.to_browser += pump.to_browser_bytes;
    let to_target = std::mem::take(&mut pump.to_target);
    match end {
        End::Close { code, reason, log, label } => {
            pump.ws.close(code, &reason).await;
            outcome.reason = log;
            outcome.label = label;
        }
        End::BrowserClosed => {
            // What the browser sent before its close still belongs to the VM.
            let _ = tokio::time::timeout(Duration::from_secs(2), pump.target.write_all(&to_target)).await;
            pump.ws.finish().await;
            outcome.reason = "browser closed".into();
            outcome.label = EndReason::BrowserClosed;
        }
        End::Gone(why) => {
            outcome.reason = why;
            outcome.label = EndReason::BrowserGone;
        }
    }
}
