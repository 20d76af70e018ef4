//! The HTTP/1.1 request head that precedes every websocket upgrade, and the few plain
//! responses the relay sends (healthz, refusals).
//!
//! Why hand-rolled on httparse: the relay must answer 403/503 *before* upgrading, serve
//! `/healthz` on the same TLS listener, and bound the head's size and time (slowloris). A
//! websocket library's accept callback can do some of this, but not the bounds.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted (bytes). Browsers send well under 2 KiB plus the ticket.
pub const MAX_HEAD: usize = 48 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request head: what the relay looks at, nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub upgrade_websocket: bool,
    pub connection_upgrade: bool,
    pub ws_version: Option<String>,
    pub ws_key: Option<String>,
    pub ws_protocols: Vec<String>,
    /// `Forwarded` and `X-Forwarded-For` values, in order: believed only from trusted proxies
    /// ([`crate::real_client`]).
    pub forwarded: Vec<String>,
    pub x_forwarded_for: Vec<String>,
    /// `Authorization` (the admin listener's bearer token): a secret, never logged.
    pub authorization: Option<String>,
}

/// Why a head could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Peer closed or I/O failed before a full head (nothing to answer).
    Closed,
    /// Head larger than [`MAX_HEAD`] or too many headers: 431.
    TooLarge,
    /// Not HTTP/1.x: 400.
    Invalid(String),
}

/// Parse a complete head (`buf` ends at or after `\r\n\r\n`). Returns the request and the
/// length of the head.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    Ok(parse_head(buf)?.map(|(mut req, len, path)| {
        req.path = String::from_utf8_lossy(&buf[path]).into_owned();
        (req, len)
    }))
}

/// [`parse`], with the path left empty and given as its place in `buf` instead, so that
/// [`read_head`] can keep it without copying (a path may carry a ticket of 32 KiB).
fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize, std::ops::Range<usize>)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Invalid(e.to_string())),
    };
    let path = req.path.map(|p| {
        let start = p.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + p.len()
    });
    let mut out = Request { method: req.method.unwrap_or_default().to_string(), ..Request::default() };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_string();
        let has_token = |token: &str| value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token));
        if h.name.eq_ignore_ascii_case("upgrade") {
            out.upgrade_websocket |= has_token("websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            out.connection_upgrade |= has_token("upgrade");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-version") {
            out.ws_version = Some(value);
        } else if h.name.eq_ignore_ascii_case("sec-websocket-key") {
            out.ws_key = Some(value);
        } else if h.name.eq_ignore_ascii_case("sec-websocket-protocol") {
            out.ws_protocols.extend(value.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()));
        } else if h.name.eq_ignore_ascii_case("forwarded") {
            out.forwarded.push(value);
        } else if h.name.eq_ignore_ascii_case("x-forwarded-for") {
            out.x_forwarded_for.push(value);
        } else if h.name.eq_ignore_ascii_case("authorization") {
            out.authorization = Some(value);
        }
    }
    Ok(Some((out, len, path.unwrap_or_default())))
}

/// Whether `bytes` hold the empty line that ends a head (`\n\n` or `\n\r\n`).
fn head_ended(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes).any(|at| matches!(&bytes[at + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

/// Read a request head. Returns the request and any bytes that followed it.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Request, Vec<u8>), HeadError> {
    // Read straight into the head's buffer, grown a little at a time rather than doubled: a
    // head that carries a 31 KiB ticket holds about 31 KiB, not 64.
    const STEP: usize = 4096;
    let mut buf = Vec::with_capacity(STEP);
    loop {
        if buf.capacity() - buf.len() < STEP / 2 {
            buf.reserve_exact(STEP);
        }
        let before = buf.len();
        let n = stream.read_buf(&mut buf).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        // Only the new bytes (and the two before them) can complete the head: parse once it
        // has ended, instead of re-parsing the whole buffer on every read (quadratic under a
        // client that sends one byte at a time). The first read is parsed whatever it holds,
        // so a client that does not speak HTTP is answered at once.
        if before == 0 || head_ended(&buf[before.saturating_sub(2)..]) {
            if let Some((mut req, len, path)) = parse_head(&buf)? {
                let leftover = buf.split_off(len);
                // The path is kept in the head's own buffer, moved to its front.
                buf.truncate(path.end);
                buf.drain(..path.start);
                req.path = String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                return Ok((req, leftover));
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Write a short plain-text response and close the exchange.
pub async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, body: &str) -> std::io::Result<()> {
    respond_with(stream, status, "text/plain; charset=utf-8", body.as_bytes()).await
}

/// Write a response with a body of a given content type.
pub async fn respond_with<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    // One write: head and body arrive together (one TLS record, one segment for small ones),
    // so clients that read the head and what came with it see the reason too.
    let mut whole = head.into_bytes();
    whole.extend_from_slice(body);
    stream.write_all(&whole).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 section 4.2.2).
pub fn accept_key(client_key: &str) -> String {
    use base64::Engine as _;
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(client_key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// The 101 response completing a websocket upgrade.
pub fn switching_protocols(accept_key: &str, protocol: Option<&str>) -> String {
    let mut head =
        format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n");
    if let Some(p) = protocol {
        head.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upgrade() {
        let raw = b"GET /abc%2Bdef HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                    Sec-WebSocket-Protocol: binary, base64\r\n\r\nEXTRA";
        let (req, len) = parse(raw).unwrap().unwrap();
        assert_eq!(req.path, "/abc%2Bdef");
        assert!(req.upgrade_websocket && req.connection_upgrade);
        assert_eq!(req.ws_version.as_deref(), Some("13"));
        assert_eq!(req.ws_protocols, vec!["binary", "base64"]);
        assert_eq!(&raw[len..], b"EXTRA");
    }

    #[test]
    fn partial_and_invalid() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        assert!(matches!(parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), Err(HeadError::Invalid(_))));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(HeadError::TooLarge));
    }

    #[tokio::test]
    async fn read_head_bounds_size() {
        let mut big = b"GET /".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let mut reader = &big[..];
        assert_eq!(read_head(&mut reader).await.unwrap_err(), HeadError::TooLarge);
        let mut closed: &[u8] = b"GET / HT";
        assert_eq!(read_head(&mut closed).await.unwrap_err(), HeadError::Closed);
    }

    #[tokio::test]
    async fn read_head_keeps_the_path_and_what_followed() {
        let ticket = "Q".repeat(20_000);
        let mut raw = format!("GET /{ticket}?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();
        raw.extend_from_slice(b"\x81\x00");
        let mut reader = &raw[..];
        let (req, leftover) = read_head(&mut reader).await.unwrap();
        assert_eq!(req.path, format!("/{ticket}?x=1"));
        assert_eq!(req.method, "GET");
        assert_eq!(leftover, b"\x81\x00");
    }

    #[test]
    fn the_end_of_a_head_is_an_empty_line_with_or_without_carriage_returns() {
        for ended in [&b"\r\n\r\n"[..], b"\n\n", b"\n\r\n", b"Host: x\r\n\r\nbody", b"x\n\n\n"] {
            assert!(head_ended(ended), "{:?}", String::from_utf8_lossy(ended));
        }
        for not_yet in [&b""[..], b"\n", b"\r\n\r", b"a\nb\r\nc\n", b"\n\r", b"\r\r\n"] {
            assert!(!head_ended(not_yet), "{:?}", String::from_utf8_lossy(not_yet));
        }
    }

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
