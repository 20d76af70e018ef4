//! An HTTPS GET over rustls, for the engine's pki-resource endpoints: hyper's HTTP/1.1 client
//! on a rustls stream whose trust is chosen here, explicitly (a pinned CA or a CA file), not by
//! a general-purpose client's defaults.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// `https://host[:port][/...]` split into host and port; only https is accepted.
pub fn parse_https_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url:?} must start with https:// (the engine's PKI is fetched over TLS only)"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6.split_once(']').ok_or_else(|| format!("{url:?}: unclosed [ in address"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{url:?}: bad port"))?,
            None => 443,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host.to_string(), port.parse().map_err(|_| format!("{url:?}: bad port"))?)),
        None => Ok((authority.to_string(), 443)),
    }
}

/// Largest body accepted: the PEM files fetched are a few KiB.
const MAX_BODY: usize = 1 << 20;

/// A host as it goes before `:PORT` in an address or a URL: an IPv6 address in brackets.
pub fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The Host header: the name, with the port when it is not 443 and brackets for IPv6.
pub fn host_header(host: &str, port: u16) -> String {
    let name = bracketed(host);
    if port == 443 {
        name
    } else {
        format!("{name}:{port}")
    }
}

/// GET `path` from `host:port` with the given TLS configuration. Returns status and body.
/// HTTP/1.1 is hyper's (framing, chunked bodies, Content-Length); the body is bounded.
pub async fn get(host: &str, port: u16, path: &str, tls: Arc<ClientConfig>) -> Result<(u16, Vec<u8>), String> {
    request("GET", host, port, host, path, &[], tls).await
}

/// [`get`] with another method (no body), extra headers (the admin listener's bearer token),
/// and the name the server's certificate must carry (`host` unless connecting elsewhere, as
/// through `kubectl port-forward`).
pub async fn request(
    method: &str,
    host: &str,
    port: u16,
    server_name: &str,
    path: &str,
    headers: &[(&str, String)],
    tls: Arc<ClientConfig>,
) -> Result<(u16, Vec<u8>), String> {
    let fut = async {
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let name = wsproxy::tls::server_name(server_name)?;
        let stream = TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with {host}:{port} failed: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut request = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .header(http::header::HOST, host_header(host, port))
            .header(http::header::ACCEPT, "*/*")
            .header(http::header::USER_AGENT, "wsproxyctl")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("bad request for {path:?}: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("{host}:{port} answered badly: {e}"))?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY);
        let body = http_body_util::BodyExt::collect(body)
            .await
            .map_err(|e| format!("reading the answer of {host}:{port}: {e} (at most {MAX_BODY} bytes)"))?
            .to_bytes()
            .to_vec();
        driver.abort();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(20), fut).await.map_err(|_| format!("{host}:{port} did not answer within 20 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_https_url("https://engine.example").unwrap(), ("engine.example".into(), 443));
        assert_eq!(parse_https_url("https://engine.example:8443/ovirt-engine").unwrap(), ("engine.example".into(), 8443));
        assert_eq!(parse_https_url("https://[::1]:9/").unwrap(), ("::1".into(), 9));
        assert!(parse_https_url("http://engine.example").unwrap_err().contains("https://"));
    }

    /// An ssh host given as an IPv6 address yields addresses a connect and a URL can use
    /// (`status` joins them with the deployed ports).
    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(format!("{}:6100", bracketed("2001:db8::7")), "[2001:db8::7]:6100");
        assert_eq!(format!("{}:6101", bracketed("proxy.example.com")), "proxy.example.com:6101");
        let address: std::net::SocketAddr = format!("{}:6100", bracketed("::1")).parse().unwrap();
        assert_eq!(address.port(), 6100);
    }

    #[test]
    fn host_header_carries_port_and_brackets() {
        assert_eq!(host_header("engine.example", 443), "engine.example");
        assert_eq!(host_header("engine.example", 8443), "engine.example:8443");
        assert_eq!(host_header("::1", 8443), "[::1]:8443");
        assert_eq!(host_header("::1", 443), "[::1]");
    }
}
