//! The byte pump between a browser's websocket and a connected target.
//!
//! Design (see docs/BENCHMARKS.md for figures and limits): one task per session drives both directions with
//! `select!`, so an idle session is one small future and no buffers: the target side waits for
//! readiness before allocating a chunk, and the websocket side keeps tungstenite's buffers
//! small. Each target read becomes one binary message (up to 64 KiB), handed to tungstenite
//! without copying (`Bytes`). Keepalive pings find vanished browsers; an idle timeout ends
//! sessions nobody uses; shutdown closes with 1001 after the drain grace.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::metrics::Metrics;
use crate::target::{ByteStream, Connected};
use crate::vencrypt;

/// How the browser encodes RFB in websocket messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Subprotocol `binary` (noVNC) or none: binary messages.
    Binary,
    /// Subprotocol `base64` (old clients): text messages holding base64.
    Base64,
}

/// Session timing knobs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ping_interval: Option<Duration>,
    pub idle_timeout: Option<Duration>,
}

/// How a session ended, for the close log line.
#[derive(Debug, Default)]
pub struct Outcome {
    pub to_target: u64,
    pub to_browser: u64,
    pub reason: String,
}

/// Close the browser side with a code and reason, not waiting long for a vanished peer.
pub async fn close<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, code: CloseCode, reason: &str) {
    // Close reasons are limited to 123 bytes by RFC 6455.
    let mut reason = reason.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
}

fn encode(encoding: Encoding, data: Bytes) -> Message {
    match encoding {
        Encoding::Binary => Message::Binary(data),
        Encoding::Base64 => Message::Text(STANDARD.encode(&data).into()),
    }
}

fn decode(encoding: Encoding, msg: Message) -> Result<Option<Bytes>, String> {
    match (msg, encoding) {
        (Message::Binary(b), _) => Ok(Some(b)),
        (Message::Text(t), Encoding::Base64) => STANDARD
            .decode(t.as_str().trim())
            .map(|v| Some(Bytes::from(v)))
            .map_err(|_| "browser sent invalid base64".to_string()),
        (Message::Text(_), Encoding::Binary) => Err("browser sent a text message on a binary session".into()),
        _ => Ok(None),
    }
}

/// Read at least `n` bytes of RFB from the browser into `pending`.
async fn read_browser<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    encoding: Encoding,
    pending: &mut Vec<u8>,
    n: usize,
) -> Result<(), String> {
    while pending.len() < n {
        match ws.next().await {
            Some(Ok(Message::Close(_))) | None => return Err("browser closed during the RFB greeting".into()),
            Some(Ok(msg)) => {
                if let Some(data) = decode(encoding, msg)? {
                    pending.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(format!("browser: {e}")),
        }
    }
    Ok(())
}

/// Greet the browser as a plain RFB server offering one security type (the VeNCrypt bridge).
/// Returns bytes the browser sent beyond its security choice.
async fn greet_browser<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    encoding: Encoding,
    security: u8,
) -> Result<Vec<u8>, String> {
    let send_err = |e: tokio_tungstenite::tungstenite::Error| format!("browser: {e}");
    ws.send(encode(encoding, Bytes::from_static(vencrypt::RFB_VERSION))).await.map_err(send_err)?;
    let mut pending = Vec::new();
    read_browser(ws, encoding, &mut pending, 12).await?;
    vencrypt::check_browser_version(&pending[..12])?;
    pending.drain(..12);
    ws.send(encode(encoding, Bytes::copy_from_slice(&vencrypt::browser_security_offer(security))))
        .await
        .map_err(send_err)?;
    read_browser(ws, encoding, &mut pending, 1).await?;
    if pending[0] != security {
        return Err(format!("browser chose security type {} but only {security} was offered", pending[0]));
    }
    pending.drain(..1);
    Ok(pending)
}

/// Relay until either side ends, the session idles out, or shutdown is forced.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    target: Connected,
    encoding: Encoding,
    timing: Timing,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut outcome = Outcome::default();
    match target {
        Connected::Plain(stream) => pump_bytes(ws, stream, encoding, timing, metrics, shutdown, &mut outcome).await,
        Connected::VeNCrypt { mut stream, browser_security } => match greet_browser(ws, encoding, browser_security).await {
            Ok(early) => {
                if !early.is_empty() && stream.write_all(&early).await.is_err() {
                    outcome.reason = "target closed during the RFB greeting".into();
                    return outcome;
                }
                outcome.to_target += early.len() as u64;
                pump_bytes(ws, stream, encoding, timing, metrics, shutdown, &mut outcome).await
            }
            Err(why) => {
                close(ws, CloseCode::Protocol, &why).await;
                outcome.reason = why;
            }
        },
        Connected::KubeVirt(kv) => pump_messages(ws, *kv, encoding, timing, metrics, shutdown, &mut outcome).await,
    }
    outcome
}

/// Periodic housekeeping: pings and the idle check share one timer.
fn housekeeping(timing: Timing) -> Option<tokio::time::Interval> {
    let period = match (timing.ping_interval, timing.idle_timeout) {
        (Some(p), _) => p,
        (None, Some(idle)) => (idle / 4).max(Duration::from_secs(1)),
        (None, None) => return None,
    };
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(interval)
}

/// What housekeeping decided.
enum Tick {
    Continue,
    Ping,
    End(CloseCode, &'static str),
}

fn on_tick(timing: Timing, last_data: Instant, last_browser: Instant) -> Tick {
    if let Some(idle) = timing.idle_timeout {
        if last_data.elapsed() >= idle {
            return Tick::End(CloseCode::Normal, "idle timeout (WSPROXY_IDLE_TIMEOUT)");
        }
    }
    if let Some(ping) = timing.ping_interval {
        if last_browser.elapsed() >= ping * 2 + Duration::from_secs(1) {
            return Tick::End(CloseCode::Away, "browser stopped answering pings");
        }
        return Tick::Ping;
    }
    Tick::Continue
}

#[allow(clippy::too_many_arguments)]
async fn pump_bytes<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    mut target: ByteStream,
    encoding: Encoding,
    timing: Timing,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
    outcome: &mut Outcome,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut ticker = housekeeping(timing);
    let mut last_data = Instant::now();
    let mut last_browser = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                close(ws, CloseCode::Away, "proxy shutting down").await;
                outcome.reason = "proxy shutdown".into();
                return;
            }
            msg = ws.next() => {
                last_browser = Instant::now();
                let msg = match msg {
                    None => { outcome.reason = "browser disconnected".into(); return; }
                    Some(Err(e)) => { outcome.reason = format!("browser: {e}"); return; }
                    Some(Ok(Message::Close(_))) => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.flush()).await;
                        outcome.reason = "browser closed".into();
                        return;
                    }
                    Some(Ok(msg)) => msg,
                };
                match decode(encoding, msg) {
                    Ok(Some(data)) => {
                        last_data = last_browser;
                        if let Err(e) = target.write_all(&data).await {
                            close(ws, CloseCode::Error, &format!("target connection lost: {e}")).await;
                            outcome.reason = format!("target write: {e}");
                            return;
                        }
                        outcome.to_target += data.len() as u64;
                        metrics.bytes_to_target.fetch_add(data.len() as u64, Relaxed);
                    }
                    Ok(None) => {}
                    Err(why) => {
                        close(ws, CloseCode::Unsupported, &why).await;
                        outcome.reason = why;
                        return;
                    }
                }
            }
            chunk = target.read_chunk() => {
                match chunk {
                    Ok(data) if data.is_empty() => {
                        close(ws, CloseCode::Normal, "target closed the connection").await;
                        outcome.reason = "target closed".into();
                        return;
                    }
                    Ok(data) => {
                        last_data = Instant::now();
                        let n = data.len() as u64;
                        if let Err(e) = ws.send(encode(encoding, data)).await {
                            outcome.reason = format!("browser: {e}");
                            return;
                        }
                        outcome.to_browser += n;
                        metrics.bytes_to_browser.fetch_add(n, Relaxed);
                    }
                    Err(e) => {
                        close(ws, CloseCode::Error, &format!("target connection lost: {e}")).await;
                        outcome.reason = format!("target read: {e}");
                        return;
                    }
                }
            }
            _ = async { ticker.as_mut().unwrap().tick().await }, if ticker.is_some() => {
                match on_tick(timing, last_data, last_browser) {
                    Tick::Continue => {}
                    Tick::Ping => { let _ = ws.send(Message::Ping(Bytes::new())).await; }
                    Tick::End(code, why) => {
                        close(ws, code, why).await;
                        outcome.reason = why.into();
                        return;
                    }
                }
            }
        }
    }
}

async fn pump_messages<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    mut kv: WebSocketStream<ByteStream>,
    encoding: Encoding,
    timing: Timing,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
    outcome: &mut Outcome,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut ticker = housekeeping(timing);
    let mut last_data = Instant::now();
    let mut last_browser = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                close(ws, CloseCode::Away, "proxy shutting down").await;
                let _ = kv.close(None).await;
                outcome.reason = "proxy shutdown".into();
                return;
            }
            msg = ws.next() => {
                last_browser = Instant::now();
                let data = match msg {
                    Some(Ok(Message::Close(_))) | None => { let _ = kv.close(None).await; outcome.reason = "browser closed".into(); return; }
                    Some(Err(e)) => { let _ = kv.close(None).await; outcome.reason = format!("browser: {e}"); return; }
                    Some(Ok(msg)) => match decode(encoding, msg) {
                        Ok(Some(data)) => data,
                        Ok(None) => continue,
                        Err(why) => { close(ws, CloseCode::Unsupported, &why).await; outcome.reason = why; return; }
                    },
                };
                last_data = last_browser;
                let n = data.len() as u64;
                if let Err(e) = kv.send(Message::Binary(data)).await {
                    close(ws, CloseCode::Error, &format!("target connection lost: {e}")).await;
                    outcome.reason = format!("target: {e}");
                    return;
                }
                outcome.to_target += n;
                metrics.bytes_to_target.fetch_add(n, Relaxed);
            }
            msg = kv.next() => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None => { close(ws, CloseCode::Normal, "target closed the connection").await; outcome.reason = "target closed".into(); return; }
                    Some(Err(e)) => { close(ws, CloseCode::Error, &format!("target connection lost: {e}")).await; outcome.reason = format!("target: {e}"); return; }
                    Some(Ok(_)) => continue,
                };
                last_data = Instant::now();
                let n = data.len() as u64;
                if let Err(e) = ws.send(encode(encoding, data)).await {
                    outcome.reason = format!("browser: {e}");
                    return;
                }
                outcome.to_browser += n;
                metrics.bytes_to_browser.fetch_add(n, Relaxed);
            }
            _ = async { ticker.as_mut().unwrap().tick().await }, if ticker.is_some() => {
                match on_tick(timing, last_data, last_browser) {
                    Tick::Continue => {}
                    Tick::Ping => { let _ = ws.send(Message::Ping(Bytes::new())).await; }
                    Tick::End(code, why) => { close(ws, code, why).await; outcome.reason = why.into(); return; }
                }
            }
        }
    }
}
