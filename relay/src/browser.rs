//! The browser's end of a session: a websocket (server role) over TCP or TLS.
//!
//! Holds only what must outlive a poll: frames queued for the browser (`out`), bytes of a
//! frame that arrived in part (`pending`), and the decoder's state. Both buffers are empty,
//! and so unallocated, on an idle session. The fast byte pump (`session/byte_pump.rs`) works on these
//! fields directly; the async methods here serve the slower paths (the VeNCrypt greeting,
//! KubeVirt message relaying, closing).

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::wsframe::{self, code, opcode, Decoder, Kind, Violation};

/// How long a close may take before the connection is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub struct BrowserSocket<S> {
    pub io: S,
    /// Bytes received but not yet decoded (a partial header or control frame).
    pub pending: BytesMut,
    /// Whole frames not yet written to the browser.
    pub out: BytesMut,
    pub decoder: Decoder,
    /// The browser sent its close frame (our answer is queued in `out`).
    pub closed_by_browser: bool,
}

/// What the slow path's [`BrowserSocket::recv`] returns.
#[derive(Debug)]
pub enum Received {
    Data {
        bytes: Vec<u8>,
        text: bool,
        end: bool,
    },
    /// The browser closed or vanished; the string says which.
    Gone(String),
    /// The browser broke RFC 6455: close with the violation's code.
    Violation(Violation),
}

impl<S: AsyncRead + AsyncWrite + Unpin> BrowserSocket<S> {
    /// `early` holds bytes that arrived with the upgrade request.
    pub fn new(io: S, early: Vec<u8>, max_message: usize) -> Self {
        BrowserSocket {
            io,
            pending: BytesMut::from(&early[..]),
            out: BytesMut::new(),
            decoder: Decoder::new(max_message),
            closed_by_browser: false,
        }
    }

    /// Queue one frame.
    pub fn queue(&mut self, op: u8, payload: &[u8]) {
        let mut head = [0u8; wsframe::MAX_SERVER_HEADER];
        let start = wsframe::header_before(&mut head, op, payload.len());
        self.out.extend_from_slice(&head[start..]);
        self.out.extend_from_slice(payload);
    }

    /// Queue a data message in the session's encoding.
    pub fn queue_data(&mut self, base64: bool, payload: &[u8]) {
        if base64 {
            use base64::Engine as _;
            let text = base64::engine::general_purpose::STANDARD.encode(payload);
            self.queue(opcode::TEXT, text.as_bytes());
        } else {
            self.queue(opcode::BINARY, payload);
        }
    }

    /// Write everything queued. Cancel-safe: progress is kept in `out`.
    pub async fn flush_out(&mut self) -> std::io::Result<()> {
        while !self.out.is_empty() {
            let n = self.io.write(&self.out).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.out.advance(n);
        }
        self.io.flush().await
    }

    /// Handle a control frame (ping -> pong, close -> answer). Returns a reason when it ends
    /// the session.
    pub fn on_control(&mut self, kind: Kind, payload: &[u8]) -> Option<String> {
        match kind {
            Kind::Ping => {
                self.queue(opcode::PONG, payload);
                None
            }
            Kind::Close => {
                // Answer with the browser's own code, as RFC 6455 suggests.
                let answer = if payload.len() >= 2 { payload[..2].to_vec() } else { Vec::new() };
                self.queue(opcode::CLOSE, &answer);
                self.closed_by_browser = true;
                Some("browser closed".into())
            }
            _ => None,
        }
    }

    /// Next piece of data from the browser (slow path). Cancel-safe: partial input stays in
    /// `pending`, queued answers in `out`.
    pub async fn recv(&mut self) -> Received {
        loop {
            if !self.out.is_empty() {
                if let Err(e) = self.flush_out().await {
                    return Received::Gone(format!("browser: {e}"));
                }
            }
            match self.decoder.next(&mut self.pending) {
                Err(v) => return Received::Violation(v),
                Ok(Some(f)) => {
                    let frame = self.pending.split_to(f.consumed);
                    let payload = &frame[f.payload.clone()];
                    match f.kind {
                        Kind::Data { text, end } if !payload.is_empty() || end => {
                            return Received::Data { bytes: payload.to_vec(), text, end };
                        }
                        Kind::Data { .. } | Kind::Pong => {}
                        kind => {
                            if let Some(why) = self.on_control(kind, payload) {
                                return Received::Gone(why);
                            }
                        }
                    }
                }
                Ok(None) => match self.io.read_buf(&mut self.pending).await {
                    Ok(0) => return Received::Gone("browser disconnected".into()),
                    Ok(_) => {}
                    Err(e) => return Received::Gone(format!("browser: {e}")),
                },
            }
        }
    }

    /// Send a data message now (slow path).
    pub async fn send_data(&mut self, base64: bool, payload: &[u8]) -> std::io::Result<()> {
        self.queue_data(base64, payload);
        self.flush_out().await
    }

    /// End the session: write what is queued plus a close frame (unless the browser closed
    /// first and its answer is already queued), wait for the browser's answering close so our
    /// last frames are not lost to a reset, then close the connection. Bounded by
    /// [`CLOSE_GRACE`] for browsers that vanished.
    pub async fn close(&mut self, close_code: u16, reason: &str) {
        let answer_expected = !self.closed_by_browser;
        if answer_expected {
            self.queue(opcode::CLOSE, &wsframe::close_payload(close_code, reason));
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if self.flush_out().await.is_err() {
                return;
            }
            if answer_expected {
                self.await_close_answer().await;
            }
            let _ = self.io.shutdown().await;
        })
        .await;
    }

    /// Read and discard until the browser's close frame, EOF or garbage.
    async fn await_close_answer(&mut self) {
        loop {
            match self.decoder.next(&mut self.pending) {
                Ok(Some(f)) if f.kind == Kind::Close => return,
                Ok(Some(f)) => {
                    self.pending.advance(f.consumed);
                }
                Err(_) => return,
                Ok(None) => match self.io.read_buf(&mut self.pending).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
            }
        }
    }

    /// Drop the connection after writing what is queued (the browser already closed).
    pub async fn finish(&mut self) {
        self.close(code::NORMAL, "").await;
    }
}
