//! A session after the upgrade: which pump relays it and the VeNCrypt greeting in front of it.
//!
//! Plain and VeNCrypt targets are byte streams, relayed by [`byte_pump`] (the fast path: one
//! poll function, no buffers on idle sessions). KubeVirt targets speak websocket themselves
//! and are relayed message by message by [`message_pump`]. What both pumps share lives in
//! leaf modules below this one ([`ending`], [`timing`], [`encoding`]), so dependencies run one
//! way: this entry -> the pumps -> the leaves (layout after tokio's mini-redis: one concern per
//! file, shared types at the bottom).

mod byte_pump;
pub mod encoding;
pub mod ending;
mod message_pump;
pub mod timing;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use byte_pump::pump_bytes;
pub use encoding::Encoding;
use encoding::{decode_base64, TEXT_ON_BINARY};
pub use ending::{EndReason, Outcome};
use message_pump::pump_messages;
pub use timing::Timing;

use crate::browser::{BrowserSocket, Received};
use crate::metrics::Metrics;
use crate::registry::Control;
use crate::rehome::Rehome;
use crate::target::Connected;
use crate::vencrypt;
use crate::wsframe::code;

/// What ends a session besides its two sides: the shutdown, and `control` (the admin
/// listener's kill; the pump also writes its byte counts there).
pub struct Stops {
    pub shutdown: watch::Receiver<bool>,
    pub control: Control,
}

/// Relay until either side ends, the session idles out, shutdown is forced or an operator
/// ends it.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + Rehome + 'static>(
    mut ws: Box<BrowserSocket<S>>,
    target: Connected,
    encoding: Encoding,
    timing: Timing,
    metrics: Arc<Metrics>,
    mut stops: Stops,
) -> Outcome {
    let mut outcome = Outcome::default();
    match target {
        Connected::Plain(stream) => pump_bytes(ws, stream, encoding, timing, metrics, stops, &mut outcome).await,
        Connected::VeNCrypt { mut stream, browser_security } => match greet_browser(&mut ws, encoding, browser_security).await {
            Ok(early) => {
                if !early.is_empty() && stream.write_all(&early).await.is_err() {
                    outcome.reason = "target closed during the RFB greeting".into();
                    outcome.label = EndReason::TargetError;
                    ws.close(code::ERROR, "target closed during the RFB greeting").await;
                    return outcome;
                }
                outcome.to_target += early.len() as u64;
                pump_bytes(ws, stream, encoding, timing, metrics, stops, &mut outcome).await
            }
            Err(why) => {
                ws.close(code::PROTOCOL, &why).await;
                outcome.reason = why;
                outcome.label = EndReason::ProtocolError;
            }
        },
        Connected::KubeVirt(kv) => pump_messages(&mut *ws, *kv, encoding, timing, &metrics, &mut stops, &mut outcome).await,
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
