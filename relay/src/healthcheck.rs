//! `wsproxy healthcheck URL`: ask a relay's `/healthz` or `/readyz` and exit 0 on a 2xx answer.
//!
//! The image has no shell and no curl, so whatever checks the relay from inside its container
//! (a Helm test, a container health check, Quadlet's `HealthCmd`) runs the relay binary
//! itself. HTTPS is verified against `--ca`; a check of the relay's own port on localhost,
//! where the certificate names the proxy's FQDN instead, says `--insecure` explicitly.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of an answer that is read: a health answer is a few hundred bytes.
const MAX_ANSWER: usize = 16 * 1024;

/// How an HTTPS relay's certificate is checked.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// It must chain to this CA and name the URL's host.
    Ca(&'a Path),
    /// Any certificate (the handshake's signatures are still checked).
    Insecure,
}

/// GET `url` within `timeout`. `Ok` holds the status line when it is 2xx; `Err` says what
/// failed (no answer, the TLS handshake, a status that is not 2xx, with the body).
pub async fn check(url: &str, trust: Option<Trust<'_>>, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, get(url, trust)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer from {url} within {} s", timeout.as_secs())),
    }
}

async fn get(url: &str, trust: Option<Trust<'_>>) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = parsed.port_or_known_default().ok_or_else(|| format!("{url} has no port"))?;
    let path = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_string(),
    };
    // What TLS would trust is settled before anything is sent.
    let tls = match (parsed.scheme(), trust) {
        ("http", _) => None,
        ("https", Some(Trust::Ca(path))) => Some(crate::tls::target_client_config(Some(path))?),
        ("https", Some(Trust::Insecure)) => Some(crate::tls::target_client_config(None)?),
        ("https", None) => return Err(format!("{url} is HTTPS: give --ca FILE to verify the relay's certificate, or --insecure")),
        (other, _) => return Err(format!("{url}: the scheme must be http or https, not {other}")),
    };
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((bare_host, port)).await.map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: wsproxy-healthcheck\r\nConnection: close\r\n\r\n");
    let answer = match tls {
        None => exchange(tcp, &request).await?,
        Some(config) => {
            let name = crate::tls::server_name(bare_host)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
            exchange(tls, &request).await?
        }
    };
    status(url, &answer)
}

/// Send `request`, read the answer until the peer closes (at most [`MAX_ANSWER`] bytes).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &str) -> Result<Vec<u8>, String> {
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("sending the request failed: {e}"))?;
    let mut answer = Vec::new();
    // A peer that closes without TLS close_notify still gave its answer.
    let _ = (&mut stream).take(MAX_ANSWER as u64).read_to_end(&mut answer).await;
    Ok(answer)
}

/// The status line when 2xx, else an error with the status and the body's first line.
fn status(url: &str, answer: &[u8]) -> Result<String, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(answer) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return Err(format!("{url} did not answer with HTTP")),
    };
    let code = response.code.unwrap_or(0);
    let line = format!("{code} {}", response.reason.unwrap_or(""));
    let body = String::from_utf8_lossy(&answer[head_len..]);
    let first = body.lines().next().unwrap_or("").trim();
    match code {
        200..=299 => Ok(format!("{url}: {line}")),
        _ => Err(format!("{url} answered {line}: {first}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_pass_and_the_rest_say_why() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(status("u", ok).unwrap(), "u: 200 OK");
        let draining = b"HTTP/1.1 503 Service Unavailable\r\n\r\nstopping: send new consoles elsewhere\n";
        assert_eq!(status("u", draining).unwrap_err(), "u answered 503 Service Unavailable: stopping: send new consoles elsewhere");
        assert_eq!(status("u", b"SSH-2.0-OpenSSH\r\n").unwrap_err(), "u did not answer with HTTP");
    }

    #[tokio::test]
    async fn https_without_a_trust_choice_is_refused_before_connecting() {
        let err = check("https://192.0.2.1:6100/healthz", None, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains("--ca FILE") && err.contains("--insecure"), "{err}");
        let err = check("ftp://localhost/x", None, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains("not ftp"), "{err}");
    }
}
