//! The engine PKI as the proxy needs it: the proxy's certificate signed by the engine CA, the
//! CA certificate, and the engine certificate that verifies tickets.
//!
//! Files keep oVirt's names (`ca.pem`, `websocket-proxy.cer`, `websocket-proxy.key.nopass`,
//! `engine.cer`) so a directory made here drops into `/etc/pki/ovirt-engine` layouts and into
//! the relay's configuration unchanged. The CA private key is read, never copied.

pub mod bundle;
pub mod csr;
pub mod fetch;
pub mod input;
pub mod inspect;
pub mod issue;

use std::net::IpAddr;

use rcgen::{KeyPair, SanType};
use rsa::pkcs8::EncodePrivateKey;
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use crate::error::{Failure, Result};

pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "websocket-proxy.cer";
pub const KEY_FILE: &str = "websocket-proxy.key.nopass";
pub const ENGINE_FILE: &str = "engine.cer";
pub const CSR_FILE: &str = "websocket-proxy.req";

/// Browsers refuse publicly-trusted server certificates valid longer than this; we hold private
/// CAs to the same bound.
pub const MAX_DAYS: u32 = 398;

/// Which key the proxy certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA P-256: fast TLS handshakes (the default).
    EcdsaP256,
    /// RSA 2048, as oVirt's engine-setup makes.
    Rsa2048,
}

/// Generate a new private key for the proxy.
pub fn generate_key(kind: KeyType) -> Result<KeyPair> {
    match kind {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Failure::environment(format!("cannot generate an ECDSA key: {e}"))),
        KeyType::Rsa2048 => {
            let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
                .map_err(|e| Failure::environment(format!("cannot generate an RSA key: {e}")))?;
            let der = key.to_pkcs8_der().map_err(|e| Failure::environment(format!("cannot encode the RSA key: {e}")))?;
            KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| Failure::environment(format!("cannot load the RSA key: {e}")))
        }
    }
}

/// The DER of the first certificate in PEM text. Text that also holds a private key (a
/// common export format, key and certificate in one file) is refused: certificate inputs are
/// copied into `ca.pem`, Secrets and podman secrets, and a key must never travel with them.
pub fn pem_cert_der(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if bytes.windows(b"PRIVATE KEY-----".len()).any(|w| w == b"PRIVATE KEY-----") {
        return Err("holds a PRIVATE KEY block as well as a certificate: give the certificate alone \
                    (openssl x509 -in FILE -out cert.pem); the key must never leave its host"
            .into());
    }
    let (_, pem) = x509_parser::pem::parse_x509_pem(bytes).map_err(|_| "not a PEM certificate".to_string())?;
    if pem.label != "CERTIFICATE" {
        return Err(format!("PEM holds {:?}, not a CERTIFICATE", pem.label));
    }
    X509Certificate::from_der(&pem.contents).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(pem.contents)
}

/// A certificate as PEM, written from its DER: what is copied on is the certificate and
/// nothing else of the file it came from.
pub fn certificate_pem(der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}

/// Parse DER (known to be valid from [`pem_cert_der`]).
pub fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).map(|(_, c)| c).expect("certificate checked when read")
}

/// Whether a signing key is the one certified by a certificate.
pub fn key_matches(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}

/// SHA-256 fingerprint as `sha256:AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", hex.join(":"))
}

/// Compare a user-given fingerprint (`sha256:` prefix optional, colons and case free).
pub fn fingerprint_matches(given: &str, der: &[u8]) -> bool {
    let norm = |s: &str| -> String {
        s.trim()
            .trim_start_matches("sha256:")
            .trim_start_matches("SHA256:")
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect::<String>()
            .to_ascii_uppercase()
    };
    let given = norm(given);
    given.len() == 64 && given == norm(&fingerprint(der))
}

/// A DNS name a certificate can be issued for (no IP, no wildcard, no trailing junk).
pub fn validate_dns_name(name: &str) -> std::result::Result<(), String> {
    let n = name.trim_end_matches('.');
    if n.parse::<IpAddr>().is_ok() {
        return Err(format!("{name:?} is an IP address; give a DNS name as --fqdn and the address as --san"));
    }
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !n.split('.').next_back().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        if n.contains('*') {
            return Err(format!("{name:?}: wildcard certificates are not issued; give the proxy's own name, as browsers reach it"));
        }
        Err(format!(
            "{name:?} is not a valid DNS name: give the fully qualified name browsers use for the proxy, \
             e.g. proxy.example.com (letters, digits and hyphens in dot-separated labels)"
        ))
    }
}

/// A `--san` value: an IP address or a DNS name.
pub fn parse_san(value: &str) -> Result<SanType> {
    if let Ok(ip) = value.trim().parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    validate_dns_name(value).map_err(|e| Failure::usage(format!("--san {e}")))?;
    let name = value.trim_end_matches('.').to_ascii_lowercase();
    Ok(SanType::DnsName(name.try_into().map_err(|_| Failure::usage(format!("--san {value:?} is not a valid DNS name")))?))
}

/// The DNS and IP subject alternative names of a certificate, as text.
pub fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => out.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()),
                GeneralName::IPAddress(b) if b.len() == 16 => out.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()),
                _ => {}
            }
        }
    }
    out
}

/// The certificate's validity, checked against now.
pub fn days_left(cert: &X509Certificate<'_>) -> i64 {
    let now = ::time::OffsetDateTime::now_utc().unix_timestamp();
    (cert.validity().not_after.timestamp() - now).div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(validate_dns_name("proxy.example.com").is_ok());
        assert!(validate_dns_name("localhost").is_ok());
        for bad in ["", "-x.example", "a..b", "has space.example", "*.example.com", "10.0.0.1", "x.123", "a_b.example"] {
            assert!(validate_dns_name(bad).is_err(), "{bad}");
        }
        assert!(validate_dns_name("10.0.0.1").unwrap_err().contains("--san"));
    }

    #[test]
    fn fingerprints() {
        let der = b"some certificate bytes";
        let fp = fingerprint(der);
        assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64 + 31);
        assert!(fingerprint_matches(&fp, der));
        assert!(fingerprint_matches(&fp.replace(':', "").to_lowercase().replacen("sha256", "sha256:", 1), der));
        assert!(!fingerprint_matches("sha256:00", der));
        assert!(!fingerprint_matches(&fingerprint(b"other"), der));
    }

    #[test]
    fn sans_parse() {
        assert!(matches!(parse_san("192.0.2.7").unwrap(), SanType::IpAddress(_)));
        assert!(matches!(parse_san("Proxy.Example.com").unwrap(), SanType::DnsName(_)));
        assert!(parse_san("bad name").is_err());
    }
}
