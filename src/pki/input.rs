//! The files a user names on the command line (or that a certificate directory holds), read
//! with errors that say which input it was and where it normally comes from. One enum of the
//! inputs, so every message names the flag and the next step instead of a generic hint.

use std::path::Path;

use rcgen::KeyPair;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;

use crate::error::{Failure, Result};

/// An input file: a flag's value, or one file of a certificate directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `--ca-cert`: the engine CA certificate.
    CaCert,
    /// `--ca-key`: the engine CA's private key.
    CaKey,
    /// `--engine-cert`: the engine certificate (its key signs tickets).
    EngineCert,
    /// `--engine-key`: the engine's ticket-signing key.
    EngineKey,
    /// `--csr`: a certificate signing request from `certs request`.
    Csr,
    /// A file of a certificate directory ([`super::CA_FILE`], [`super::CERT_FILE`], [`super::KEY_FILE`], [`super::ENGINE_FILE`]).
    BundleFile(&'static str),
}

impl Input {
    /// How messages name it: the flag, or the file's name.
    pub fn label(self) -> &'static str {
        match self {
            Input::CaCert => "--ca-cert",
            Input::CaKey => "--ca-key",
            Input::EngineCert => "--engine-cert",
            Input::EngineKey => "--engine-key",
            Input::Csr => "--csr",
            Input::BundleFile(name) => name,
        }
    }

    /// Where it normally comes from: the next step when it cannot be read or parsed.
    pub fn hint(self) -> &'static str {
        match self {
            Input::CaCert => "the engine CA certificate is /etc/pki/ovirt-engine/ca.pem on the engine",
            Input::CaKey => "the engine CA key is /etc/pki/ovirt-engine/private/ca.pem on the engine",
            Input::EngineCert => "the engine certificate is /etc/pki/ovirt-engine/certs/engine.cer on the engine",
            Input::EngineKey => "the engine's signing key is /etc/pki/ovirt-engine/keys/engine_id_rsa on the engine",
            Input::Csr => "make one on the proxy host with `wsproxyctl certs request`",
            Input::BundleFile(_) => "write the directory with `wsproxyctl certs issue` (or `certs request` + `certs fetch`)",
        }
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Read an input file, with an error that says which input it is and where it comes from.
pub fn read(path: &Path, what: Input) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {what} {}: {e}; {}", path.display(), what.hint())))
}

/// Read a PEM private key (PKCS#8, or RSA PKCS#1 as oVirt's CA key is) into a signing key.
pub fn load_private_key(path: &Path, what: Input) -> Result<KeyPair> {
    let bytes = read(path, what)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED") {
        return Err(Failure::usage(format!(
            "{what} {} is encrypted; decrypt it first (openssl pkey -in {} -out plain.pem)",
            path.display(),
            path.display()
        )));
    }
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        let rsa = rsa::RsaPrivateKey::from_pkcs1_pem(&text)
            .map_err(|e| Failure::usage(format!("{what} {} is not a valid PKCS#1 RSA key: {e}", path.display())))?;
        let der = rsa.to_pkcs8_der().map_err(|e| Failure::usage(format!("{what} {}: {e}", path.display())))?;
        return KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
            .map_err(|e| Failure::usage(format!("{what} {}: {e}", path.display())));
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        return Err(Failure::usage(format!(
            "{what} {} is a SEC1 EC key; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt -in {} -out key.pem)",
            path.display(),
            path.display()
        )));
    }
    if !text.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(Failure::usage(format!("{what} {} is not a PEM private key", path.display())));
    }
    // RSA PKCS#8 keys need the algorithm named; others are detected.
    KeyPair::from_pem(&text)
        .or_else(|_| KeyPair::from_pem_and_sign_algo(&text, &rcgen::PKCS_RSA_SHA256))
        .map_err(|e| Failure::usage(format!("{what} {} cannot be used for signing: {e}", path.display())))
}

/// The DER of the first certificate in a PEM file.
pub fn read_cert_der(path: &Path, what: Input) -> Result<Vec<u8>> {
    cert_der_of(&read(path, what)?, path, what)
}

/// [`super::pem_cert_der`] of bytes already read from `path`, with the same error as [`read_cert_der`].
pub fn cert_der_of(bytes: &[u8], path: &Path, what: Input) -> Result<Vec<u8>> {
    super::pem_cert_der(bytes).map_err(|why| Failure::usage(format!("{what} {}: {why}; {}", path.display(), what.hint())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::ENGINE_FILE;

    #[test]
    fn a_missing_input_names_its_flag_and_where_it_comes_from() {
        let e = read(Path::new("/nonexistent/ca.pem"), Input::CaCert).unwrap_err();
        assert!(e.message.starts_with("cannot read --ca-cert /nonexistent/ca.pem: "), "{}", e.message);
        assert!(e.message.ends_with("/etc/pki/ovirt-engine/ca.pem on the engine"), "{}", e.message);
        let e = read(Path::new("/nonexistent/engine.cer"), Input::BundleFile(ENGINE_FILE)).unwrap_err();
        assert!(e.message.contains("cannot read engine.cer") && e.message.contains("certs issue"), "{}", e.message);
    }
}
