//! Certificates and engine-style tickets for the benchmark, made here: an ECDSA CA, proxy
//! certificates with ECDSA P-256 and RSA-2048 keys, and an RSA-2048 engine key whose tickets
//! are signed like the engine's (RSA-PSS, SHA-256, maximum salt), all before timing starts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs8::EncodePrivateKey;
use rsa::pss::BlindedSigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::RsaPrivateKey;
use sha2::Sha256;

fn rsa_pair() -> (RsaPrivateKey, rcgen::KeyPair) {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256).unwrap();
    (key, pair)
}

/// Write ca.pem, proxy-{ecdsa,rsa}.{cer,key}, engine.cer; return the engine key.
pub fn write_all(dir: &Path) -> RsaPrivateKey {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "bench CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();

    let leaf = |key: &rcgen::KeyPair, name: &str| {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.cer")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    };
    leaf(&rcgen::KeyPair::generate().unwrap(), "proxy-ecdsa");
    let (_, rsa_proxy) = rsa_pair();
    leaf(&rsa_proxy, "proxy-rsa");
    let (engine, engine_pair) = rsa_pair();
    let params = rcgen::CertificateParams::new(vec!["engine.bench".to_string()]).unwrap();
    std::fs::write(dir.join("engine.cer"), params.signed_by(&engine_pair, &issuer).unwrap().pem()).unwrap();
    engine
}

/// An RSA key the relay does not trust (tickets it signs must be refused).
pub fn foreign_key() -> RsaPrivateKey {
    RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap()
}

/// A TLS client trusting the bench CA.
pub fn client_config(dir: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}{:02}{:02}{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

fn sign(key: &RsaPrivateKey, port: u16) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let salt = STANDARD.encode(rand::random::<[u8; 8]>());
    let data = format!("%7B%22host%22%3A%22127.0.0.1%22%2C%22port%22%3A%22{port}%22%7D");
    let (from, to) = (utc(now - 5), utc(now + 3600));
    let message = format!("{salt}{from}{to}{data}");
    let signer = BlindedSigningKey::<Sha256>::new_with_salt_len(key.clone(), 256 - 32 - 2);
    let sig = signer.sign_with_rng(&mut rand::thread_rng(), message.as_bytes()).to_vec();
    let json = serde_json::json!({"salt": salt, "validFrom": from, "validTo": to, "data": data,
        "signedFields": "salt,validFrom,validTo,data", "v2_signature": STANDARD.encode(sig)});
    STANDARD.encode(json.to_string()).replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

/// A forged ticket of about 31 KiB, the most an unauthenticated client may send: a large
/// `data` field, valid times, and a signature of random bytes nobody made.
pub fn forged(port: u16) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let data = format!("%7B%22host%22%3A%22127.0.0.1%22%2C%22port%22%3A%22{port}%22%2C%22pad%22%3A%22{}%22%7D", "A".repeat(21_000));
    let json = serde_json::json!({"salt": STANDARD.encode(rand::random::<[u8; 8]>()), "validFrom": utc(now - 5),
        "validTo": utc(now + 3600), "data": data, "signedFields": "salt,validFrom,validTo,data",
        "v2_signature": STANDARD.encode((0..256).map(|_| rand::random::<u8>()).collect::<Vec<u8>>())});
    STANDARD.encode(json.to_string()).replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

/// Pre-signed single-use tickets per target port.
pub struct Tickets {
    pool: Mutex<HashMap<u16, Vec<String>>>,
}

impl Tickets {
    pub fn new(key: &RsaPrivateKey, wanted: &[(u16, usize)]) -> Tickets {
        let pool = wanted.iter().map(|(port, n)| (*port, (0..*n).map(|_| sign(key, *port)).collect())).collect();
        Tickets { pool: Mutex::new(pool) }
    }

    pub fn next(&self, port: u16) -> String {
        self.pool.lock().unwrap().get_mut(&port).and_then(Vec::pop).expect("enough tickets were signed")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_format() {
        assert_eq!(super::utc(0), "19700101000000");
        assert_eq!(super::utc(1_800_000_000), "20270115080000");
    }
}
