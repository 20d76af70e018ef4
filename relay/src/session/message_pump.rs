//! The message pump for KubeVirt targets: the hypervisor side is a websocket too (virt-api's
//! VNC subresource), so data is relayed message by message between two websockets. Rare and
//! not on the hot path, so plainly written with `select!`; the browser side still uses our
//! codec ([`crate::browser`]).

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::encoding::{decode_base64, Encoding, TEXT_ON_BINARY};
use super::ending::{End, EndReason, Outcome};
use super::timing::{expired, housekeeping, lifetime, on_tick, tick, Tick, Timing};
use crate::browser::{BrowserSocket, Received};
use crate::metrics::Metrics;
use crate::target::ByteStream;
use crate::wsframe::opcode;

pub(crate) async fn pump_messages<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut BrowserSocket<S>,
    mut kv: WebSocketStream<ByteStream>,
    encoding: Encoding,
    timing: Timing,
    metrics: &Metrics,
    stops: &mut super::Stops,
    outcome: &mut Outcome,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let base64 = encoding == Encoding::Base64;
    let mut ticker = housekeeping(timing);
    let mut lifetime = lifetime(timing);
    let mut last_data = Instant::now();
    let mut last_browser = Instant::now();
    let mut text = Vec::new();
    let end = loop {
        tokio::select! {
            _ = stops.shutdown.changed() => break End::shutdown(),
            _ = expired(&mut lifetime) => break End::max_lifetime(),
            _ = stops.control.kill.notified() => break End::killed(),
            received = ws.recv() => {
                last_browser = Instant::now();
                let data = match from_browser(received, base64, &mut text) {
                    Ok(Some(data)) => data,
                    Ok(None) => continue,
                    Err(end) => break end,
                };
                last_data = last_browser;
                let n = data.len() as u64;
                if let Err(e) = kv.send(Message::Binary(data.into())).await {
                    break End::target_lost(e, "write");
                }
                outcome.to_target += n;
                stops.control.bytes.to_target.store(outcome.to_target, Relaxed);
                metrics.bytes_to_target.fetch_add(n, Relaxed);
            }
            msg = kv.next() => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None => break End::target_closed(),
                    Some(Err(e)) => break End::target_lost(e, "read"),
                    Some(Ok(_)) => continue,
                };
                last_data = Instant::now();
                let n = data.len() as u64;
                if let Err(e) = ws.send_data(base64, &data).await {
                    break End::Gone(format!("browser: {e}"));
                }
                outcome.to_browser += n;
                stops.control.bytes.to_browser.store(outcome.to_browser, Relaxed);
                metrics.bytes_to_browser.fetch_add(n, Relaxed);
            }
            _ = tick(&mut ticker) => match on_tick(timing, last_data, last_browser) {
                Tick::Continue => {}
                Tick::Ping => ws.queue(opcode::PING, b""),
                Tick::End(end) => break end,
            },
        }
    };
    let _ = kv.close(None).await;
    finish(ws, end, outcome).await;
}

/// What the browser sent, as bytes for the VM: `Ok(None)` for nothing yet (part of a base64
/// message, or an empty one), `Err` when the session must end.
fn from_browser(received: Received, base64: bool, text: &mut Vec<u8>) -> Result<Option<Vec<u8>>, End> {
    let data = match received {
        Received::Gone(why) => return Err(End::Gone(why)),
        Received::Violation(v) => return Err(End::violation(v)),
        Received::Data { bytes, text: false, .. } => bytes,
        Received::Data { text: true, .. } if !base64 => return Err(End::unsupported(TEXT_ON_BINARY)),
        Received::Data { bytes, text: true, end } => {
            text.extend_from_slice(&bytes);
            if !end {
                return Ok(None);
            }
            decode_base64(&std::mem::take(text)).map_err(End::unsupported)?
        }
    };
    Ok((!data.is_empty()).then_some(data))
}

/// Close the browser side as the end says, and record why.
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut BrowserSocket<S>, end: End, outcome: &mut Outcome) {
    match end {
        End::Close { code, reason, log, label } => {
            ws.close(code, &reason).await;
            outcome.reason = log;
            outcome.label = label;
        }
        End::BrowserClosed => {
            ws.finish().await;
            outcome.reason = "browser closed".into();
            outcome.label = EndReason::BrowserClosed;
        }
        End::Gone(why) => {
            // The browser's own close, or a socket that broke: answer a close if one came.
            outcome.label = if ws.closed_by_browser { EndReason::BrowserClosed } else { EndReason::BrowserGone };
            outcome.reason = why;
            ws.finish().await;
        }
    }
}
