//! The message pump for KubeVirt targets: the hypervisor side is a websocket too (virt-api's
//! VNC subresource), so data is relayed message by message between two websockets. Rare and
//! not on the hot path, so plainly written with `select!`; the browser side still uses our
//! codec ([`crate::browser`]).

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::encoding::{decode_base64, Encoding, TEXT_ON_BINARY};
use super::ending::{End, EndReason, Outcome};
use super::timing::{housekeeping, on_tick, tick, Tick, Timing};
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
    shutdown: &mut watch::Receiver<bool>,
    outcome: &mut Outcome,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let base64 = encoding == Encoding::Base64;
    let mut ticker = housekeeping(timing);
    let mut last_data = Instant::now();
    let mut last_browser = Instant::now();
    let mut text = Vec::new();
    let end = loop {
        tokio::select! {
            _ = shutdown.changed() => break End::shutdown(),
            received = ws.recv() => {
                last_browser = Instant::now();
                let data = match received {
                    Received::Gone(why) => {
                        let _ = kv.close(None).await;
                        outcome.reason = why;
                        outcome.label = if ws.closed_by_browser { EndReason::BrowserClosed } else { EndReason::BrowserGone };
                        ws.finish().await;
                        return;
                    }
                    Received::Violation(v) => break End::violation(v),
                    Received::Data { bytes, text: false, .. } => bytes,
                    Received::Data { text: true, .. } if !base64 => break End::unsupported(TEXT_ON_BINARY),
                    Received::Data { bytes, text: true, end } => {
                        text.extend_from_slice(&bytes);
                        if !end {
                            continue;
                        }
                        match decode_base64(&std::mem::take(&mut text)) {
                            Ok(d) => d,
                            Err(why) => break End::unsupported(why),
                        }
                    }
                };
                if data.is_empty() {
                    continue;
                }
                last_data = last_browser;
                let n = data.len() as u64;
                if let Err(e) = kv.send(Message::Binary(data.into())).await {
                    break End::target_lost(e, "write");
                }
                outcome.to_target += n;
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
                    let _ = kv.close(None).await;
                    outcome.reason = format!("browser: {e}");
                    outcome.label = EndReason::BrowserGone;
                    return;
                }
                outcome.to_browser += n;
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
            outcome.reason = why;
            outcome.label = EndReason::BrowserGone;
        }
    }
}
