//! A minimal HTTPS GET over rustls, for the engine's pki-resource endpoints.
//!
//! Why not a full HTTP client: two small GETs of public PEM files do not justify one, and the
//! interesting part, which certificates are trusted, must stay explicit here.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// `https://host[:port][/...]` split into host and port; only https is accepted.
pub fn parse_https_url(url: &str) -> Result<(String, u16), String> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        format!("{url:?} must start with https:// (the engine's PKI is fetched over TLS only)")
    })?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed [ in address"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port"))?,
            None => 443,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_string(),
            port.parse().map_err(|_| format!("{url:?}: bad port"))?,
        )),
        None => Ok((authority.to_string(), 443)),
    }
}

/// GET `path` from `host:port` with the given TLS configuration. Returns status and body.
pub async fn get(
    host: &str,
    port: u16,
    path: &str,
    tls: Arc<ClientConfig>,
) -> Result<(u16, Vec<u8>), String> {
    let fut = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let name = wsproxy::tls::server_name(host)?;
        let mut stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\nUser-Agent: wsproxyctl\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        // Servers often skip close_notify; what was read until then is the answer.
        let _ = stream.take(16 << 20).read_to_end(&mut raw).await;
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .map_err(|_| format!("{host}:{port} did not answer within 20 s"))?
}

fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("not an HTTP response")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunked body".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_https_url("https://engine.example").unwrap(),
            ("engine.example".into(), 443)
        );
        assert_eq!(
            parse_https_url("https://engine.example:8443/ovirt-engine").unwrap(),
            ("engine.example".into(), 8443)
        );
        assert_eq!(
            parse_https_url("https://[::1]:9/").unwrap(),
            ("::1".into(), 9)
        );
        assert!(parse_https_url("http://engine.example")
            .unwrap_err()
            .contains("https://"));
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").unwrap(),
            (200, b"hi".to_vec())
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, b"abcde".to_vec()));
        assert!(parse_response(b"garbage").is_err());
    }
}
