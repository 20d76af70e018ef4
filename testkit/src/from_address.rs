//! Clients that connect from an address of their own on the loopback network (127.0.0.2,
//! .3, ...), so the address a relay records tells whom it believed: the balancer in front of
//! it (127.0.0.1) or the client behind it. Raw websocket upgrades, so a test can add the
//! headers a balancer would and read the status line itself.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to 127.0.0.1:`port` from `source` (an address of the loopback network).
pub async fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.connect(crate::local(port)).await.unwrap()
}

/// A websocket upgrade for `ticket` with `extra` header lines; the status and the stream (kept
/// open by the caller while the session should last).
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, ticket: &str, extra: &str) -> (u16, S) {
    let request = format!(
        "GET /{ticket} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary\r\n{extra}\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), io.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!("no response head ({other:?}): {}", String::from_utf8_lossy(&head)),
        }
    }
    let status = String::from_utf8_lossy(&head).split(' ').nth(1).unwrap().parse().unwrap();
    (status, io)
}

/// wss through `port` from `source`, trusting `ca` for `localhost`.
pub async fn wss_upgrade_from(source: &str, port: u16, ca: &Path, ticket: &str) -> (u16, impl AsyncRead + AsyncWrite + Unpin) {
    let tcp = connect_from(source, port).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(crate::client_tls(ca)).connect(name, tcp).await.unwrap();
    upgrade(tls, ticket, "").await
}

/// The code of the close frame an upgraded stream receives (server frames are unmasked),
/// skipping data frames before it; `None` when the stream ends or `wait` passes first.
pub async fn close_code<S: AsyncRead + Unpin>(io: &mut S, wait: Duration) -> Option<u16> {
    let read = async {
        loop {
            let mut head = [0u8; 2];
            io.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => u64::from(io.read_u16().await.ok()?),
                127 => io.read_u64().await.ok()?,
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).ok()?];
            io.read_exact(&mut payload).await.ok()?;
            if head[0] & 0x0f == 0x8 {
                return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok().flatten()
}
