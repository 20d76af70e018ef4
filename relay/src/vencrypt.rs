//! VeNCrypt X509 towards the hypervisor, plain VNC security towards the browser.
//!
//! libvirt's `vnc_tls` makes QEMU offer only VeNCrypt (security type 19). noVNC in oVirt is not
//! given the hypervisor's certificates, so the relay terminates VeNCrypt: it negotiates version
//! 0.2, picks X509VNC (261, or X509None 260), runs TLS, and from then on relays the RFB stream
//! untouched. The browser is told the server offers just VNC authentication (or None), so
//! the VNC password challenge/response still runs end to end between browser and QEMU.
//!
//! The negotiation is written over plain `AsyncRead + AsyncWrite` so a fuzzer can play the
//! server side.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// RFB version the relay speaks on both sides.
pub const RFB_VERSION: &[u8; 12] = b"RFB 003.008\n";

pub const SECURITY_NONE: u8 = 1;
pub const SECURITY_VNC_AUTH: u8 = 2;
pub const SECURITY_VENCRYPT: u8 = 19;
pub const VENCRYPT_X509_NONE: u32 = 260;
pub const VENCRYPT_X509_VNC: u32 = 261;

/// Result of the pre-TLS negotiation: which security type the browser must be offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub subtype: u32,
    pub browser_security: u8,
}

/// Negotiate VeNCrypt up to the point where TLS starts. Errors are phrased for the log.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(server: &mut S) -> Result<Negotiated, String> {
    let io = |e: std::io::Error| format!("VeNCrypt negotiation: {e}");
    let mut version = [0u8; 12];
    server.read_exact(&mut version).await.map_err(io)?;
    if !version.starts_with(b"RFB ") {
        return Err("target did not send an RFB version: is it a VNC server?".into());
    }
    server.write_all(RFB_VERSION).await.map_err(io)?;

    let count = server.read_u8().await.map_err(io)?;
    if count == 0 {
        let len = server.read_u32().await.map_err(io)?.min(1024) as usize;
        let mut reason = vec![0u8; len];
        server.read_exact(&mut reason).await.map_err(io)?;
        return Err(format!("target refused the connection: {}", String::from_utf8_lossy(&reason)));
    }
    let mut types = vec![0u8; count as usize];
    server.read_exact(&mut types).await.map_err(io)?;
    if !types.contains(&SECURITY_VENCRYPT) {
        return Err(format!("ticket says ssl_target but the target does not offer VeNCrypt (security types {types:?})"));
    }
    server.write_u8(SECURITY_VENCRYPT).await.map_err(io)?;

    let major = server.read_u8().await.map_err(io)?;
    let minor = server.read_u8().await.map_err(io)?;
    if (major, minor) < (0, 2) {
        return Err(format!("target offers VeNCrypt {major}.{minor}; 0.2 is required"));
    }
    server.write_all(&[0, 2]).await.map_err(io)?;
    if server.read_u8().await.map_err(io)? != 0 {
        return Err("target refused VeNCrypt version 0.2".into());
    }

    let n = server.read_u8().await.map_err(io)?;
    let mut subtypes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        subtypes.push(server.read_u32().await.map_err(io)?);
    }
    let negotiated = if subtypes.contains(&VENCRYPT_X509_VNC) {
        Negotiated { subtype: VENCRYPT_X509_VNC, browser_security: SECURITY_VNC_AUTH }
    } else if subtypes.contains(&VENCRYPT_X509_NONE) {
        Negotiated { subtype: VENCRYPT_X509_NONE, browser_security: SECURITY_NONE }
    } else {
        return Err(format!("target offers no X509 VeNCrypt subtype (offered {subtypes:?}; X509Vnc=261 or X509None=260 needed)"));
    };
    server.write_u32(negotiated.subtype).await.map_err(io)?;
    if server.read_u8().await.map_err(io)? != 1 {
        return Err("target refused the VeNCrypt subtype".into());
    }
    Ok(negotiated)
}

/// What the relay says to the browser before relaying: the RFB version, then (after the
/// browser's version) the single security type on offer.
pub fn browser_security_offer(security: u8) -> [u8; 2] {
    [1, security]
}

/// Check the browser's RFB version reply: RFB 3.7 and 3.8 use the security-type list the relay
/// sends; 3.3 does not.
pub fn check_browser_version(version: &[u8]) -> Result<(), String> {
    match version {
        b"RFB 003.008\n" | b"RFB 003.007\n" => Ok(()),
        other => {
            Err(format!("browser answered RFB version {:?}; 3.7 or 3.8 is needed for VeNCrypt targets", String::from_utf8_lossy(other)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run_against(server_script: Vec<u8>) -> (Result<Negotiated, String>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            server.write_all(&server_script).await.unwrap();
            server.shutdown().await.unwrap();
            let mut got = Vec::new();
            let _ = server.read_to_end(&mut got).await;
            got
        });
        let result = negotiate(&mut client).await;
        drop(client);
        (result, writer.await.unwrap())
    }

    fn script(types: &[u8], subtypes: &[u32], sub_ack: u8) -> Vec<u8> {
        let mut s = b"RFB 003.008\n".to_vec();
        s.push(types.len() as u8);
        s.extend_from_slice(types);
        s.extend_from_slice(&[0, 2, 0]);
        s.push(subtypes.len() as u8);
        for st in subtypes {
            s.extend_from_slice(&st.to_be_bytes());
        }
        s.push(sub_ack);
        s
    }

    #[tokio::test]
    async fn picks_x509vnc() {
        let (r, sent) = run_against(script(&[19], &[262, 261, 260], 1)).await;
        assert_eq!(r.unwrap(), Negotiated { subtype: 261, browser_security: 2 });
        let mut expect = RFB_VERSION.to_vec();
        expect.push(19);
        expect.extend_from_slice(&[0, 2]);
        expect.extend_from_slice(&261u32.to_be_bytes());
        assert_eq!(sent, expect);
    }

    #[tokio::test]
    async fn falls_back_to_x509none() {
        let (r, _) = run_against(script(&[19], &[260], 1)).await;
        assert_eq!(r.unwrap().browser_security, SECURITY_NONE);
    }

    #[tokio::test]
    async fn refuses_without_vencrypt_or_x509() {
        let (r, _) = run_against(script(&[2], &[], 1)).await;
        assert!(r.unwrap_err().contains("does not offer VeNCrypt"));
        let (r, _) = run_against(script(&[19], &[258, 257], 1)).await;
        assert!(r.unwrap_err().contains("no X509"));
        let (r, _) = run_against(script(&[19], &[261], 0)).await;
        assert!(r.unwrap_err().contains("refused the VeNCrypt subtype"));
    }

    #[tokio::test]
    async fn reports_server_refusal_and_truncation() {
        let mut s = b"RFB 003.008\n\x00".to_vec();
        s.extend_from_slice(&5u32.to_be_bytes());
        s.extend_from_slice(b"busy!");
        let (r, _) = run_against(s).await;
        assert!(r.unwrap_err().contains("busy!"));
        let (r, _) = run_against(b"RFB 003.0".to_vec()).await;
        assert!(r.is_err());
        let (r, _) = run_against(b"HTTP/1.1 200 OK\r\n".to_vec()).await;
        assert!(r.unwrap_err().contains("RFB"));
    }

    #[test]
    fn browser_versions() {
        assert!(check_browser_version(b"RFB 003.008\n").is_ok());
        assert!(check_browser_version(b"RFB 003.003\n").is_err());
    }
}
