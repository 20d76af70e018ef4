//! RFC 6455 framing for the server side, without I/O.
//!
//! Why our own instead of tungstenite on the browser side: the relay never needs whole
//! messages, only the bytes in them. Decoding frames in place (unmasking a word at a time,
//! handing payload ranges straight to the target) lets the pump read into one scratch buffer
//! per thread, so an idle session holds no buffer at all and a bulk transfer costs no copy
//! beyond the kernel's. tungstenite keeps a read buffer per connection, reassembles messages
//! and unmasks byte by byte. See docs/BENCHMARKS.md for the figures.
//!
//! The decoder enforces what a server must (RFC 6455 section 5): client frames are masked,
//! reserved bits are zero, control frames are final and at most 125 bytes, continuation frames
//! only continue a message, messages stay under the configured size.

use std::ops::Range;

/// Close codes the relay sends (RFC 6455 section 7.4.1).
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const ERROR: u16 = 1011;
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Largest header a server frame needs (2 + 8 bytes of length; servers do not mask).
pub const MAX_SERVER_HEADER: usize = 10;

/// The largest control frame a client may send: 125 payload bytes, 2 header bytes, 4 mask bytes.
pub const MAX_CLIENT_CONTROL_FRAME: usize = 125 + 2 + 4;

/// What a browser sent that ends the session with a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

fn violation(reason: &'static str) -> Violation {
    Violation { code: code::PROTOCOL, reason }
}

/// One decoded piece of input. `payload` indexes the buffer given to [`Decoder::next`] and is
/// already unmasked; `consumed` bytes of that buffer are done with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub consumed: usize,
    pub payload: Range<usize>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Part (or all) of a data message's payload; `end` when it completes the message.
    Data {
        text: bool,
        end: bool,
    },
    Ping,
    Pong,
    /// The peer's close frame; the payload holds its code and reason (possibly empty).
    Close,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Payload { left: u64, mask: [u8; 4], phase: usize, fin: bool },
}

/// Streaming decoder of client (masked) frames.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    /// The data message in progress (`Some(text)`), across continuation frames.
    message: Option<bool>,
    message_len: u64,
    max_message: u64,
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Decoder { state: State::Header, message: None, message_len: 0, max_message: max_message as u64 }
    }

    /// Decode the next piece of `buf`, unmasking payload in place. `Ok(None)`: more bytes are
    /// needed and nothing was consumed. Data payload is returned as soon as any of it is
    /// there; control frames only whole.
    pub fn next(&mut self, buf: &mut [u8]) -> Result<Option<Frame>, Violation> {
        match self.state {
            State::Header => self.header(buf),
            State::Payload { left, mask, phase, fin } => {
                let n = (left.min(buf.len() as u64)) as usize;
                if n == 0 && left > 0 {
                    return Ok(None);
                }
                unmask(&mut buf[..n], mask, phase);
                let left = left - n as u64;
                let text = self.message.unwrap_or(false);
                let end = left == 0 && fin;
                self.state = if left == 0 { State::Header } else { State::Payload { left, mask, phase: (phase + n) % 4, fin } };
                if end {
                    self.message = None;
                }
                Ok(Some(Frame { consumed: n, payload: 0..n, kind: Kind::Data { text, end } }))
            }
        }
    }

    fn header(&mut self, buf: &mut [u8]) -> Result<Option<Frame>, Violation> {
        let Some(head) = Head::parse(buf)? else { return Ok(None) };
        match head.opcode {
            OP_CLOSE | OP_PING | OP_PONG => control_frame(buf, &head),
            OP_TEXT | OP_BINARY | OP_CONTINUATION => self.data_header(&head),
            _ => Err(violation("unknown opcode")),
        }
    }

    /// A data frame's header: where it stands in its message (the message's size is checked
    /// here, before any payload); the payload follows in [`State::Payload`].
    fn data_header(&mut self, head: &Head) -> Result<Option<Frame>, Violation> {
        let (len, fin, at) = (head.len, head.fin, head.payload_at);
        let text = match (head.opcode, self.message) {
            (OP_CONTINUATION, Some(text)) => {
                self.message_len += len;
                text
            }
            (OP_CONTINUATION, None) => return Err(violation("continuation frame without a message to continue")),
            (_, Some(_)) => return Err(violation("new message before the previous one ended")),
            (op, None) => {
                self.message_len = len;
                op == OP_TEXT
            }
        };
        if self.message_len > self.max_message {
            return Err(Violation { code: code::TOO_BIG, reason: "message larger than WSPROXY_MAX_MESSAGE_SIZE" });
        }
        if len == 0 {
            // An empty frame still carries the message's end (the state stays Header).
            self.message = (!fin).then_some(text);
            return Ok(Some(Frame { consumed: at, payload: at..at, kind: Kind::Data { text, end: fin } }));
        }
        self.message = Some(text);
        self.state = State::Payload { left: len, mask: head.mask, phase: 0, fin };
        // Hand back the header alone; the payload follows on the next call.
        Ok(Some(Frame { consumed: at, payload: at..at, kind: Kind::Data { text, end: false } }))
    }
}

/// The fixed part of a client frame's header: flags, opcode, length and mask.
struct Head {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
    /// Where the payload starts in the buffer.
    payload_at: usize,
}

impl Head {
    /// `None` while `buf` does not yet hold the whole header.
    #[inline]
    fn parse(buf: &[u8]) -> Result<Option<Head>, Violation> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        if b0 & 0x70 != 0 {
            return Err(violation("reserved bits set (no extension was negotiated)"));
        }
        if b1 & 0x80 == 0 {
            return Err(violation("client frames must be masked"));
        }
        let (len, at) = match b1 & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
            127 if buf.len() >= 10 => {
                let len = u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(violation("frame length has the top bit set"));
                }
                (len, 10)
            }
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let mask: [u8; 4] = buf[at..at + 4].try_into().expect("4 bytes");
        Ok(Some(Head { fin: b0 & 0x80 != 0, opcode: b0 & 0x0f, len, mask, payload_at: at + 4 }))
    }
}

/// A close, ping or pong: whole in one frame of at most 125 bytes, unmasked in place.
fn control_frame(buf: &mut [u8], head: &Head) -> Result<Option<Frame>, Violation> {
    if !head.fin {
        return Err(violation("fragmented control frame"));
    }
    if head.len > 125 {
        return Err(violation("control frame longer than 125 bytes"));
    }
    let (at, total) = (head.payload_at, head.payload_at + head.len as usize);
    if buf.len() < total {
        return Ok(None);
    }
    unmask(&mut buf[at..total], head.mask, 0);
    let kind = match head.opcode {
        OP_CLOSE => {
            check_close_payload(&buf[at..total])?;
            Kind::Close
        }
        OP_PING => Kind::Ping,
        _ => Kind::Pong,
    };
    Ok(Some(Frame { consumed: total, payload: at..total, kind }))
}

fn check_close_payload(p: &[u8]) -> Result<(), Violation> {
    match p.len() {
        0 => Ok(()),
        1 => Err(violation("close frame with a one-byte payload")),
        _ => {
            let c = u16::from_be_bytes([p[0], p[1]]);
            let valid = matches!(c, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !valid {
                return Err(violation("close frame with an invalid code"));
            }
            std::str::from_utf8(&p[2..]).map_err(|_| violation("close reason is not UTF-8"))?;
            Ok(())
        }
    }
}

/// XOR `data` with the mask, starting at byte `phase` of it; a word at a time.
pub fn unmask(data: &mut [u8], mask: [u8; 4], phase: usize) {
    let mut m = [0u8; 4];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(phase + i) % 4];
    }
    let word = u32::from_ne_bytes(m) as u64;
    let wide = word | (word << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// Write a server frame header for `len` payload bytes so that it ends at `out.len()`;
/// returns where it starts. `out` must hold [`MAX_SERVER_HEADER`] bytes.
pub fn header_before(out: &mut [u8], opcode: u8, len: usize) -> usize {
    let end = out.len();
    let start = match len {
        0..=125 => {
            out[end - 1] = len as u8;
            end - 2
        }
        126..=65535 => {
            out[end - 3] = 126;
            out[end - 2..].copy_from_slice(&(len as u16).to_be_bytes());
            end - 4
        }
        _ => {
            out[end - 9] = 127;
            out[end - 8..].copy_from_slice(&(len as u64).to_be_bytes());
            end - 10
        }
    };
    out[start] = 0x80 | opcode;
    start
}

/// Opcodes the relay sends.
pub mod opcode {
    pub const TEXT: u8 = super::OP_TEXT;
    pub const BINARY: u8 = super::OP_BINARY;
    pub const CLOSE: u8 = super::OP_CLOSE;
    pub const PING: u8 = super::OP_PING;
    pub const PONG: u8 = super::OP_PONG;
}

/// A close frame's payload: code and reason, the reason cut to fit 125 bytes on a character
/// boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(&reason.as_bytes()[..cut]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame, masked, as a browser would send it (written independently of the
    /// decoder: byte-wise masking).
    fn client(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Feed `input` in pieces of `step` bytes, as a socket might; collect data and events.
    fn decode_all(input: &[u8], step: usize, max: usize) -> Result<(Vec<u8>, Vec<Kind>), Violation> {
        let mut d = Decoder::new(max);
        let mut pending: Vec<u8> = Vec::new();
        let (mut data, mut kinds) = (Vec::new(), Vec::new());
        for piece in input.chunks(step) {
            pending.extend_from_slice(piece);
            while let Some(f) = d.next(&mut pending)? {
                if matches!(f.kind, Kind::Data { .. }) {
                    data.extend_from_slice(&pending[f.payload.clone()]);
                }
                if f.kind != (Kind::Data { text: false, end: false }) || !f.payload.is_empty() {
                    kinds.push(f.kind);
                }
                pending.drain(..f.consumed);
            }
        }
        Ok((data, kinds))
    }

    #[test]
    fn decodes_every_length_form_in_any_split() {
        for len in [0usize, 1, 7, 125, 126, 1000, 65535, 65536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let frame = client(true, OP_BINARY, &payload, [0x12, 0x34, 0x56, 0x78]);
            for step in [1, 3, 8, 13, 4096, usize::MAX] {
                let step = step.min(frame.len().max(1));
                let (data, kinds) = decode_all(&frame, step, 1 << 20).unwrap();
                assert_eq!(data, payload, "len {len} step {step}");
                assert_eq!(kinds.last(), Some(&Kind::Data { text: false, end: true }), "len {len} step {step}");
            }
        }
    }

    #[test]
    fn fragments_and_interleaved_control_frames() {
        let mut input = client(false, OP_BINARY, b"hello ", [1, 2, 3, 4]);
        input.extend(client(true, OP_PING, b"are you there", [9, 9, 9, 9]));
        input.extend(client(false, OP_CONTINUATION, b"wor", [5, 6, 7, 8]));
        input.extend(client(true, OP_CONTINUATION, b"ld", [0, 0, 0, 1]));
        input.extend(client(true, OP_CLOSE, &close_payload(1000, "bye"), [4, 3, 2, 1]));
        let (data, kinds) = decode_all(&input, 5, 1024).unwrap();
        assert_eq!(data, b"hello world");
        assert!(kinds.contains(&Kind::Ping));
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Data { text: false, end: true }).count(), 1);
        assert_eq!(kinds.last(), Some(&Kind::Close));
    }

    #[test]
    fn text_messages_are_marked() {
        let (data, kinds) = decode_all(&client(true, OP_TEXT, b"AAEC", [7, 7, 7, 7]), 64, 1024).unwrap();
        assert_eq!(data, b"AAEC");
        assert_eq!(kinds.last(), Some(&Kind::Data { text: true, end: true }));
    }

    #[test]
    fn refuses_what_a_server_must_refuse() {
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            (
                {
                    let mut f = client(true, OP_BINARY, b"x", [1, 1, 1, 1]);
                    f[1] &= 0x7f;
                    f.drain(2..6);
                    f
                },
                code::PROTOCOL,
                "masked",
            ),
            (
                {
                    let mut f = client(true, OP_BINARY, b"x", [1, 1, 1, 1]);
                    f[0] |= 0x40;
                    f
                },
                code::PROTOCOL,
                "reserved",
            ),
            (client(true, 0x3, b"x", [1, 1, 1, 1]), code::PROTOCOL, "opcode"),
            (client(false, OP_PING, b"x", [1, 1, 1, 1]), code::PROTOCOL, "fragmented control"),
            (client(true, OP_PING, &[0u8; 126], [1, 1, 1, 1]), code::PROTOCOL, "125"),
            (client(true, OP_CONTINUATION, b"x", [1, 1, 1, 1]), code::PROTOCOL, "continuation"),
            (
                [client(false, OP_BINARY, b"x", [1, 1, 1, 1]), client(true, OP_BINARY, b"y", [1, 1, 1, 1])].concat(),
                code::PROTOCOL,
                "new message",
            ),
            (client(true, OP_BINARY, &[0u8; 2000], [1, 1, 1, 1]), code::TOO_BIG, "WSPROXY_MAX_MESSAGE_SIZE"),
            (
                [client(false, OP_BINARY, &[0u8; 800], [1, 1, 1, 1]), client(true, OP_CONTINUATION, &[0u8; 800], [1, 1, 1, 1])].concat(),
                code::TOO_BIG,
                "WSPROXY_MAX_MESSAGE_SIZE",
            ),
            (client(true, OP_CLOSE, &[3], [1, 1, 1, 1]), code::PROTOCOL, "one-byte"),
            (client(true, OP_CLOSE, &close_payload(1005, ""), [1, 1, 1, 1]), code::PROTOCOL, "invalid code"),
            (client(true, OP_CLOSE, &[0x03, 0xe8, 0xff], [1, 1, 1, 1]), code::PROTOCOL, "UTF-8"),
        ];
        for (input, want_code, want_reason) in cases {
            let err = decode_all(&input, input.len(), 1024).unwrap_err();
            assert_eq!(err.code, want_code, "{want_reason}: {err:?}");
            assert!(err.reason.contains(want_reason), "{want_reason}: {err:?}");
        }
    }

    #[test]
    fn headers_fit_their_lengths() {
        for (len, want) in [(0usize, 2usize), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut buf = [0u8; MAX_SERVER_HEADER];
            let start = header_before(&mut buf, opcode::BINARY, len);
            assert_eq!(MAX_SERVER_HEADER - start, want, "len {len}");
            assert_eq!(buf[start], 0x82);
        }
    }

    #[test]
    fn unmask_matches_bytewise_at_every_phase() {
        let mask = [0xa1, 0xb2, 0xc3, 0xd4];
        for phase in 0..4 {
            for len in 0..40 {
                let orig: Vec<u8> = (0..len as u8).collect();
                let mut fast = orig.clone();
                unmask(&mut fast, mask, phase);
                let slow: Vec<u8> = orig.iter().enumerate().map(|(i, b)| b ^ mask[(phase + i) % 4]).collect();
                assert_eq!(fast, slow);
            }
        }
    }

    #[test]
    fn close_reason_is_cut_on_a_character_boundary() {
        let p = close_payload(1011, &"é".repeat(100));
        assert!(p.len() <= 125);
        std::str::from_utf8(&p[2..]).unwrap();
    }
}
