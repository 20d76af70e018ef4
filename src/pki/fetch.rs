//! `certs fetch`: the CA and engine certificates from the engine's pki-resource endpoints, over
//! https, trusted only through a pinned CA.
//!
//! engine-setup fetches the engine certificate over plain http without checking anything; a
//! man in the middle could then sign tickets for any host. Here the CA is trusted only if it
//! matches a fingerprint the operator copied from the engine (or a CA file they brought), and
//! the engine certificate is then fetched over a connection verified against that CA and must
//! itself be signed by it. With neither, the fingerprint is shown and nothing is trusted.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::input::{read_cert_der, Input};
use super::{fingerprint, fingerprint_matches, parse, pem_cert_der, CA_FILE, ENGINE_FILE};
use crate::error::{Failure, Result};
use crate::fsutil::{ensure_dir, write_atomic};
use crate::https_get;

pub const CA_PATH: &str = "/ovirt-engine/services/pki-resource?resource=ca-certificate&format=X509-PEM-CA";
pub const ENGINE_PATH: &str = "/ovirt-engine/services/pki-resource?resource=engine-certificate&format=X509-PEM";

/// How the engine CA is trusted.
pub enum Trust {
    Fingerprint(String),
    CaFile(PathBuf),
}

#[derive(Debug, serde::Serialize)]
pub struct Fetched {
    pub files: Vec<PathBuf>,
    pub ca_fingerprint: String,
    pub engine_subject: String,
}

/// What `certs fetch` prints.
impl std::fmt::Display for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "engine CA {}\nengine certificate {}", self.ca_fingerprint, self.engine_subject)?;
        for file in &self.files {
            writeln!(f, "wrote {}", file.display())?;
        }
        Ok(())
    }
}

async fn download(host: &str, port: u16, path: &str, tls: std::sync::Arc<rustls::ClientConfig>, what: &str) -> Result<Vec<u8>> {
    let (status, body) = https_get::get(host, port, path, tls).await.map_err(|e| {
        Failure::environment(format!(
            "fetching the {what} from https://{host}:{port}: {e}; is the engine's web server reachable from here \
                 (firewall, name resolution, --engine URL)?"
        ))
    })?;
    if status != 200 {
        return Err(Failure::check(format!(
            "https://{host}:{port}{path} answered HTTP {status}: is this an oVirt engine URL (https://ENGINE-FQDN)?"
        )));
    }
    Ok(body)
}

pub async fn run(engine: &str, trust: Option<Trust>, out: &Path) -> Result<Fetched> {
    let (host, port) = https_get::parse_https_url(engine).map_err(Failure::usage)?;
    let unverified = wsproxy::tls::target_client_config(None).map_err(Failure::environment)?;

    let trusted_ca_der = match trust {
        Some(Trust::CaFile(path)) => read_cert_der(&path, Input::CaCert)?,
        Some(Trust::Fingerprint(pin)) => {
            // Fetched over an unverified connection, believed only if it matches the pin.
            let pem = download(&host, port, CA_PATH, unverified, "CA certificate").await?;
            let der = pem_cert_der(&pem).map_err(|e| Failure::check(format!("the engine's CA resource: {e}")))?;
            if !fingerprint_matches(&pin, &der) {
                return Err(Failure::check(format!(
                    "the CA served by {engine} has fingerprint {}, not the pinned {pin}: \
                     check the fingerprint on the engine (openssl x509 -in /etc/pki/ovirt-engine/ca.pem -noout -fingerprint -sha256) \
                     or suspect a man in the middle",
                    fingerprint(&der)
                )));
            }
            der
        }
        None => {
            let pem = download(&host, port, CA_PATH, unverified, "CA certificate").await?;
            let der = pem_cert_der(&pem).map_err(|e| Failure::check(format!("the engine's CA resource: {e}")))?;
            let subject = parse(&der).subject().to_string();
            return Err(Failure::usage(format!(
                "not trusting the engine CA on first use. {engine} serves CA \"{subject}\" with fingerprint\n  {}\n\
                 Compare it with the engine's (openssl x509 -in /etc/pki/ovirt-engine/ca.pem -noout -fingerprint -sha256), then re-run with\n  \
                 --ca-fingerprint {}",
                fingerprint(&der),
                fingerprint(&der)
            )));
        }
    };

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(trusted_ca_der.clone()))
        .map_err(|e| Failure::usage(format!("the CA certificate cannot be used as a trust anchor: {e}")))?;
    let verified = wsproxy::tls::client_config_trusting(roots).map_err(Failure::environment)?;

    let ca_pem = download(&host, port, CA_PATH, verified.clone(), "CA certificate").await?;
    let ca_der = pem_cert_der(&ca_pem).map_err(|e| Failure::check(format!("the engine's CA resource: {e}")))?;
    if ca_der != trusted_ca_der {
        return Err(Failure::check(format!(
            "{engine} serves a different CA ({}) than the trusted one ({})",
            fingerprint(&ca_der),
            fingerprint(&trusted_ca_der)
        )));
    }
    let engine_pem = download(&host, port, ENGINE_PATH, verified, "engine certificate").await?;
    let engine_der = pem_cert_der(&engine_pem).map_err(|e| Failure::check(format!("the engine certificate resource: {e}")))?;
    let ca = parse(&ca_der);
    let engine_cert = parse(&engine_der);
    engine_cert
        .verify_signature(Some(ca.public_key()))
        .map_err(|_| Failure::check("the engine certificate is not signed by the engine CA: refusing it as CERT_FOR_DATA_VERIFICATION"))?;
    wsproxy::ticket::TicketVerifier::from_certificate_pem(&engine_pem, false, 0)
        .map_err(|e| Failure::check(format!("the engine certificate cannot verify tickets: {e}")))?;

    ensure_dir(out)?;
    let ca_path = out.join(CA_FILE);
    let engine_path = out.join(ENGINE_FILE);
    write_atomic(&ca_path, &super::certificate_pem(&ca_der), 0o644)?;
    write_atomic(&engine_path, &super::certificate_pem(&engine_der), 0o644)?;
    Ok(Fetched {
        files: vec![ca_path, engine_path],
        ca_fingerprint: fingerprint(&ca_der),
        engine_subject: engine_cert.subject().to_string(),
    })
}
