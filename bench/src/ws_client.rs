//! A minimal websocket client written for the harness (RFC 6455 framing by hand), so the
//! measurements do not go through the relay's own websocket library.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Send the upgrade request and read the answer's status line; returns the status code.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, host: &str, path: &str) -> std::io::Result<u16> {
    let req = format!(
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: YmVuY2htYXJrLWtleS0xMjM=\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    s.flush().await?;
    let mut head = Vec::with_capacity(256);
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed during handshake"));
        }
        head.push(b[0]);
        if head.len() > 8192 {
            return Err(std::io::Error::other("response head too large"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
}

/// Append one masked binary frame carrying `payload` to `out`.
pub fn frame(payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x82);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    let m = u32::from_ne_bytes(mask);
    let m64 = (m as u64) | ((m as u64) << 32);
    let body = &mut out[start..];
    let (chunks, rest) = body.split_at_mut(body.len() / 8 * 8);
    for c in chunks.chunks_exact_mut(8) {
        let v = u64::from_ne_bytes(c.try_into().unwrap()) ^ m64;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// Read one frame's payload (server frames are unmasked); control frames are returned too,
/// with their opcode.
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> std::io::Result<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await?;
    let opcode = h[0] & 0x0f;
    let mut len = (h[1] & 0x7f) as u64;
    if len == 126 {
        len = s.read_u16().await? as u64;
    } else if len == 127 {
        len = s.read_u64().await?;
    }
    if h[1] & 0x80 != 0 {
        let mut m = [0u8; 4];
        s.read_exact(&mut m).await?;
    }
    buf.resize(len as usize, 0);
    s.read_exact(buf).await?;
    Ok(opcode)
}
