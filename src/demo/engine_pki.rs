//! A throwaway engine PKI for the demo, laid out like /etc/pki/ovirt-engine: an RSA CA, and an
//! RSA engine key and certificate (the ticket signer). Never use it for anything real.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;

use crate::error::{Failure, Result};
use crate::fsutil::{ensure_dir, write_atomic};

pub struct EnginePki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub engine_cert: PathBuf,
    pub engine_key: PathBuf,
}

fn rsa_pair() -> Result<(rsa::RsaPrivateKey, KeyPair)> {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| Failure::environment(e.to_string()))?;
    let der = key.to_pkcs8_der().map_err(|e| Failure::environment(e.to_string()))?;
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| Failure::environment(e.to_string()))?;
    Ok((key, pair))
}

fn err(e: rcgen::Error) -> Failure {
    Failure::environment(format!("cannot make the demo PKI: {e}"))
}

/// Create the PKI under `dir` (ca.pem, private/ca.pem, certs/engine.cer, keys/engine_id_rsa).
pub fn create(dir: &Path) -> Result<EnginePki> {
    for sub in ["private", "certs", "keys"] {
        ensure_dir(&dir.join(sub))?;
    }
    let (ca_rsa, ca_pair) = rsa_pair()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "wsproxyctl demo engine CA (throwaway)");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    ca_params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let ca_cert = ca_params.self_signed(&ca_pair).map_err(err)?;

    let (engine_rsa, engine_pair) = rsa_pair()?;
    let mut engine_params = CertificateParams::new(vec!["engine.demo.invalid".to_string()]).map_err(err)?;
    engine_params.distinguished_name.push(DnType::CommonName, "engine.demo.invalid");
    engine_params.not_before = ca_params.not_before;
    engine_params.not_after = ca_params.not_after;
    let issuer = Issuer::from_params(&ca_params, &ca_pair);
    let engine_cert = engine_params.signed_by(&engine_pair, &issuer).map_err(err)?;

    let pem = |k: &rsa::RsaPrivateKey| -> Result<String> {
        k.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).map(|p| p.to_string()).map_err(|e| Failure::environment(e.to_string()))
    };
    let pki = EnginePki {
        ca_cert: dir.join("ca.pem"),
        ca_key: dir.join("private/ca.pem"),
        engine_cert: dir.join("certs/engine.cer"),
        engine_key: dir.join("keys/engine_id_rsa"),
    };
    write_atomic(&pki.ca_cert, ca_cert.pem().as_bytes(), 0o644)?;
    write_atomic(&pki.ca_key, pem(&ca_rsa)?.as_bytes(), 0o600)?;
    write_atomic(&pki.engine_cert, engine_cert.pem().as_bytes(), 0o644)?;
    write_atomic(&pki.engine_key, pem(&engine_rsa)?.as_bytes(), 0o600)?;
    Ok(pki)
}
