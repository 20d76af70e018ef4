//! Engine-style console tickets, signed here (for `verify` and `demo`) exactly as the engine's
//! TicketEncoder does: RSA-PSS, SHA-256, MGF1-SHA-256, maximum salt length, over the
//! concatenated signed fields.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::pss::BlindedSigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use sha2::Sha256;

use crate::error::{Failure, Result};

/// Read the engine's RSA signing key (PKCS#1 as /etc/pki/ovirt-engine/keys/engine_id_rsa, or PKCS#8).
pub fn load_engine_key(path: &Path) -> Result<RsaPrivateKey> {
    let text = crate::pki::input::read(path, crate::pki::input::Input::EngineKey)?;
    let text = String::from_utf8_lossy(&text);
    RsaPrivateKey::from_pkcs1_pem(&text)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&text))
        .map_err(|_| Failure::usage(format!("--engine-key {} is not an unencrypted RSA private key (PEM)", path.display())))
}

/// The console a ticket opens.
pub struct Console<'a> {
    pub host: &'a str,
    pub port: u16,
    pub ssl_target: bool,
}

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Sign a ticket valid from `now - 1` for `lifetime_secs`.
pub fn sign(key: &RsaPrivateKey, console: &Console, now_unix: i64, lifetime_secs: i64) -> String {
    let salt = STANDARD.encode(rand::random::<[u8; 8]>());
    let data = url_encode(
        &serde_json::json!({"host": console.host, "port": console.port.to_string(), "ssl_target": console.ssl_target}).to_string(),
    );
    let valid_from = wsproxy::ticket::format_time(now_unix - 1);
    let valid_to = wsproxy::ticket::format_time(now_unix + lifetime_secs);
    let message = format!("{salt}{valid_from}{valid_to}{data}");
    let em_len = (key.n().bits() - 1).div_ceil(8);
    let signer = BlindedSigningKey::<Sha256>::new_with_salt_len(key.clone(), em_len - 32 - 2);
    let signature = signer.sign_with_rng(&mut rand::thread_rng(), message.as_bytes()).to_vec();
    let ticket = serde_json::json!({
        "salt": salt,
        "validFrom": valid_from,
        "validTo": valid_to,
        "data": data,
        "signedFields": "salt,validFrom,validTo,data",
        "v2_signature": STANDARD.encode(signature),
    });
    STANDARD.encode(ticket.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsproxy::ticket::TicketVerifier;

    #[test]
    fn relay_accepts_what_we_sign() {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let now = 1_800_000_000;
        let t = sign(&key, &Console { host: "hv1.example", port: 5901, ssl_target: true }, now, 30);
        let v = TicketVerifier::from_public_key(key.to_public_key(), false, 5);
        let ok = v.verify(&t, now).unwrap();
        assert_eq!((ok.target.host.as_str(), ok.target.port, ok.target.ssl_target), ("hv1.example", 5901, true));
    }
}
