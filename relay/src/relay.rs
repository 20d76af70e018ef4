//! A session after the upgrade: which pump relays it, the VeNCrypt greeting in front of it,
//! and what both pumps share (timers, how a session ends).
//!
//! Plain and VeNCrypt targets are byte streams, relayed by [`crate::byte_pump`] (the fast
//! path: one poll function, no buffers on idle sessions). KubeVirt targets speak websocket
//! themselves and are relayed message by message by [`crate::message_pump`].

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::browser::{BrowserSocket, Received};
use crate::byte_pump::pump_bytes;
use crate::message_pump::pump_messages;
use crate::metrics::Metrics;
use crate::target::Connected;
use crate::vencrypt;
use crate::wsframe::{code, Violation};

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
    /// The metric label ([`crate::metrics::END_REASONS`]).
    pub label: &'static str,
}

/// Relay until either side ends, the session idles out, or shutdown is forced.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut BrowserSocket<S>,
    target: Connected,
    encoding: Encoding,
    timing: Timing,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut outcome = Outcome::default();
    match target {
        Connected::Plain(mut stream) => pump_bytes(ws, &mut stream, encoding, timing, metrics, shutdown, &mut outcome).await,
        Connected::VeNCrypt { mut stream, browser_security } => match greet_browser(ws, encoding, browser_security).await {
            Ok(early) => {
                if !early.is_empty() && stream.write_all(&early).await.is_err() {
                    outcome.reason = "target closed during the RFB greeting".into();
                    outcome.label = "target_error";
                    ws.close(code::ERROR, "target closed during the RFB greeting").await;
                    return outcome;
                }
                outcome.to_target += early.len() as u64;
                pump_bytes(ws, &mut stream, encoding, timing, metrics, shutdown, &mut outcome).await
            }
            Err(why) => {
                ws.close(code::PROTOCOL, &why).await;
                outcome.reason = why;
                outcome.label = "protocol_error";
            }
        },
        Connected::KubeVirt(kv) => pump_messages(ws, *kv, encoding, timing, metrics, shutdown, &mut outcome).await,
    }
    outcome
}

/// Bytes of browser data (decoding base64 messages), slow path.
async fn read_browser<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut BrowserSocket<S>,
    encoding: Encoding,
    text: &mut Vec<u8>,
) -> Result<Vec<u8>, String> {
    loop {
        match ws.recv().await {
            Received::Gone(why) => return Err(why),
            Received::Violation(v) => return Err(v.reason.into()),
            Received::Data { bytes, text: false, .. } => return Ok(bytes),
            Received::Data { bytes, text: true, end } => {
                if encoding == Encoding::Binary {
                    return Err(TEXT_ON_BINARY.into());
                }
                text.extend_from_slice(&bytes);
                if end {
                    let decoded = decode_base64(text)?;
                    text.clear();
                    return Ok(decoded);
                }
            }
        }
    }
}

pub(crate) const TEXT_ON_BINARY: &str = "browser sent a text message on a binary session";

pub(crate) fn decode_base64(text: &[u8]) -> Result<Vec<u8>, String> {
    STANDARD.decode(text.trim_ascii()).map_err(|_| "browser sent invalid base64".to_string())
}

/// Greet the browser as a plain RFB server offering one security type (the VeNCrypt bridge).
/// Returns bytes the browser sent beyond its security choice.
async fn greet_browser<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut BrowserSocket<S>,
    encoding: Encoding,
    security: u8,
) -> Result<Vec<u8>, String> {
    let base64 = encoding == Encoding::Base64;
    let send_err = |e: std::io::Error| format!("browser: {e}");
    ws.send_data(base64, vencrypt::RFB_VERSION).await.map_err(send_err)?;
    let mut pending = Vec::new();
    let mut text = Vec::new();
    while pending.len() < 12 {
        pending.extend(read_browser(ws, encoding, &mut text).await?);
    }
    vencrypt::check_browser_version(&pending[..12])?;
    pending.drain(..12);
    ws.send_data(base64, &vencrypt::browser_security_offer(security)).await.map_err(send_err)?;
    while pending.is_empty() {
        pending.extend(read_browser(ws, encoding, &mut text).await?);
    }
    if pending[0] != security {
        return Err(format!("browser chose security type {} but only {security} was offered", pending[0]));
    }
    pending.drain(..1);
    Ok(pending)
}

/// Periodic housekeeping: pings and the idle check share one timer.
pub(crate) fn housekeeping(timing: Timing) -> Option<tokio::time::Interval> {
    let period = match (timing.ping_interval, timing.idle_timeout) {
        (Some(p), _) => p,
        (None, Some(idle)) => (idle / 4).max(Duration::from_secs(1)),
        (None, None) => return None,
    };
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(interval)
}

pub(crate) async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What housekeeping decided.
pub(crate) enum Tick {
    Continue,
    Ping,
    End(End),
}

/// `last_browser`: when the browser was last heard, or last waited for (time spent waiting
/// on a slow target is not the browser's silence).
pub(crate) fn on_tick(timing: Timing, last_data: Instant, last_browser: Instant) -> Tick {
    if let Some(idle) = timing.idle_timeout {
        if last_data.elapsed() >= idle {
            return Tick::End(End::close(code::NORMAL, "idle timeout (WSPROXY_IDLE_TIMEOUT)", "idle_timeout"));
        }
    }
    if let Some(ping) = timing.ping_interval {
        if last_browser.elapsed() >= ping * 2 + Duration::from_secs(1) {
            return Tick::End(End::close(code::AWAY, "browser stopped answering pings", "ping_timeout"));
        }
        return Tick::Ping;
    }
    Tick::Continue
}

/// How a pump ended.
pub(crate) enum End {
    /// Close the browser side with this code and reason; `log` goes to the session line,
    /// `label` to the metric.
    Close { code: u16, reason: String, log: String, label: &'static str },
    /// The browser closed; its answer is queued.
    BrowserClosed,
    /// The browser cannot be written to any more.
    Gone(String),
}

impl End {
    /// A close whose reason is also what the session's log line says.
    pub(crate) fn close(code: u16, why: impl Into<String>, label: &'static str) -> End {
        let why = why.into();
        End::Close { code, reason: why.clone(), log: why, label }
    }

    /// Text the session cannot take: a text message on a binary session, or bad base64.
    pub(crate) fn unsupported(why: impl Into<String>) -> End {
        End::close(code::UNSUPPORTED, why, "protocol_error")
    }

    pub(crate) fn shutdown() -> End {
        End::Close { code: code::AWAY, reason: "proxy shutting down".into(), log: "proxy shutdown".into(), label: "shutdown" }
    }

    pub(crate) fn target_closed() -> End {
        End::Close {
            code: code::NORMAL,
            reason: "target closed the connection".into(),
            log: "target closed".into(),
            label: "target_closed",
        }
    }
}

/// The end of a session whose browser broke RFC 6455.
pub(crate) fn violation_end(v: Violation) -> End {
    let label = if v.code == code::TOO_BIG { "message_too_big" } else { "protocol_error" };
    End::close(v.code, v.reason, label)
}

pub(crate) fn target_lost(e: impl std::fmt::Display, what: &str) -> End {
    End::Close {
        code: code::ERROR,
        reason: format!("target connection lost: {e}"),
        log: format!("target {what}: {e}"),
        label: "target_error",
    }
}
