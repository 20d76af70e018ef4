//! The certificate directory as the deploy targets package it: a Kubernetes
//! `kubernetes.io/tls` Secret (tls.crt, tls.key, ca.crt, engine.cer) or Podman secrets.
//!
//! Loading checks the directory is complete and consistent (key matches certificate,
//! certificate signed by the CA, engine certificate able to verify tickets) and that the key is
//! not the CA's: only these four files are ever packaged, so the CA private key cannot ride
//! along even if it sits in the same directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::input::{cert_der_of, load_private_key, Input};
use super::{key_matches, parse, CA_FILE, CERT_FILE, ENGINE_FILE, KEY_FILE};
use crate::error::{Failure, Result};

/// Secret keys inside a Kubernetes Secret, and the file names the relay reads them as.
pub const SECRET_CERT: &str = "tls.crt";
pub const SECRET_KEY: &str = "tls.key";
pub const SECRET_CA: &str = "ca.crt";
pub const SECRET_ENGINE: &str = "engine.cer";
/// Every key of [`Bundle::secret_data`].
pub const SECRET_KEYS: [&str; 4] = [SECRET_CERT, SECRET_KEY, SECRET_CA, SECRET_ENGINE];

/// The podman secret holding one of [`SECRET_KEYS`]: `tls.crt` becomes `PREFIX-tls-crt`.
pub fn podman_secret_name(prefix: &str, key: &str) -> String {
    format!("{prefix}-{}", key.replace('.', "-"))
}

/// The four files a proxy needs, checked.
#[derive(Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub engine_pem: Vec<u8>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn read(dir: &Path, name: &str, hint: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| Failure::usage(format!("{} is missing or unreadable ({e}): {hint}", path.display())))
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let issue_hint = "create it with `wsproxyctl certs issue`";
        let ca_read = read(dir, CA_FILE, issue_hint)?;
        let cert_pem = read(dir, CERT_FILE, issue_hint)?;
        let key_pem = read(dir, KEY_FILE, issue_hint)?;
        let engine_read = read(dir, ENGINE_FILE, "pass --engine-cert to `certs issue`, or run `wsproxyctl certs fetch`")?;

        let ca_der = cert_der_of(&ca_read, &dir.join(CA_FILE), Input::BundleFile(CA_FILE))?;
        let cert_der = cert_der_of(&cert_pem, &dir.join(CERT_FILE), Input::BundleFile(CERT_FILE))?;
        let (ca, cert) = (parse(&ca_der), parse(&cert_der));
        let key = load_private_key(&dir.join(KEY_FILE), Input::BundleFile(KEY_FILE))?;
        if key_matches(&key, &ca) {
            return Err(Failure::usage(format!(
                "{} is the engine CA's private key: it must never leave the engine. Issue a proxy key with `wsproxyctl certs issue`",
                dir.join(KEY_FILE).display()
            )));
        }
        if !key_matches(&key, &cert) {
            return Err(Failure::usage(format!(
                "{} does not belong to {}: re-run `wsproxyctl certs issue --force`",
                dir.join(KEY_FILE).display(),
                dir.join(CERT_FILE).display()
            )));
        }
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return Err(Failure::usage(format!("{} is not signed by {}", dir.join(CERT_FILE).display(), dir.join(CA_FILE).display())));
        }
        if super::days_left(&cert) < 0 {
            return Err(Failure::usage(format!("{} has expired: re-issue it", dir.join(CERT_FILE).display())));
        }
        // What goes into Secrets is the certificates alone, re-encoded from DER: a key that
        // came along in one of these files can never be copied on.
        wsproxy::ticket::TicketVerifier::from_certificate_pem(&engine_read, false, 0)
            .map_err(|e| Failure::usage(format!("{}: {e}", dir.join(ENGINE_FILE).display())))?;
        let ca_pem = super::certificate_pem(&ca_der);
        let engine_pem = super::certificate_pem(&cert_der_of(&engine_read, &dir.join(ENGINE_FILE), Input::BundleFile(ENGINE_FILE))?);
        Ok(Bundle { dir: dir.to_path_buf(), ca_pem, cert_pem, key_pem, engine_pem })
    }

    /// Data of the Kubernetes `kubernetes.io/tls` Secret.
    pub fn secret_data(&self) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            (SECRET_CERT.to_string(), self.cert_pem.clone()),
            (SECRET_KEY.to_string(), self.key_pem.clone()),
            (SECRET_CA.to_string(), self.ca_pem.clone()),
            (SECRET_ENGINE.to_string(), self.engine_pem.clone()),
        ])
    }

    /// Podman secrets: (secret name, contents), named by [`podman_secret_name`].
    pub fn podman_secrets(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.secret_data().into_iter().map(|(key, data)| (podman_secret_name(prefix, &key), data)).collect()
    }

    /// A digest of all four files (sha256 of their contents concatenated in key order:
    /// ca.crt, engine.cer, tls.crt, tls.key): changes when any certificate or key changes, so
    /// pods roll and containers restart. The Helm chart computes the same.
    pub fn checksum(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (_, v) in self.secret_data() {
            h.update(&v);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}
