//! `certs request` and `certs sign`: the CSR flow, for operators who want the proxy's private
//! key to be born on the proxy host and never travel.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, SanType};
use x509_parser::prelude::*;

use super::input::{self, Input};
use super::issue::{check_names, Ca};
use super::{generate_key, KeyType, CSR_FILE, KEY_FILE};
use crate::error::{Failure, Result};
use crate::fsutil::{ensure_dir, write_atomic};

/// Make a key and a CSR for `fqdn` (+ sans) in `out`.
pub fn request(fqdn: &str, sans: &[String], out: &Path, key_type: KeyType, force: bool) -> Result<Vec<PathBuf>> {
    let san_types = check_names(fqdn, sans)?;
    let key_path = out.join(KEY_FILE);
    if key_path.exists() && !force {
        return Err(Failure::usage(format!("{} already exists: pass --force to replace it", key_path.display())));
    }
    let key = generate_key(key_type)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, fqdn);
    params.distinguished_name = dn;
    let mut names: Vec<SanType> =
        vec![SanType::DnsName(fqdn.to_ascii_lowercase().try_into().map_err(|_| Failure::usage("invalid --fqdn"))?)];
    names.extend(san_types.into_iter().filter(|s| !matches!(s, SanType::DnsName(d) if d.as_str() == fqdn.to_ascii_lowercase())));
    params.subject_alt_names = names;
    let csr = params.serialize_request(&key).and_then(|c| c.pem()).map_err(|e| Failure::usage(format!("cannot make the CSR: {e}")))?;
    ensure_dir(out)?;
    let csr_path = out.join(CSR_FILE);
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&csr_path, csr.as_bytes(), 0o644)?;
    Ok(vec![key_path, csr_path])
}

/// The names a CSR asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requested {
    pub common_name: Option<String>,
    pub sans: Vec<String>,
}

/// Read and verify a CSR: its signature must be valid, its names valid DNS names or IPs.
pub fn read_request(path: &Path) -> Result<(CertificateSigningRequestParams, Requested)> {
    let pem = input::read(path, Input::Csr)?;
    let text = String::from_utf8_lossy(&pem);
    let params = CertificateSigningRequestParams::from_pem(&text).map_err(|e| {
        Failure::usage(format!(
            "{} is not a valid certificate signing request (signature checked): {e}; {}",
            path.display(),
            Input::Csr.hint()
        ))
    })?;
    let (_, der) = x509_parser::pem::parse_x509_pem(&pem).map_err(|_| Failure::usage("CSR is not PEM"))?;
    let (_, csr) = X509CertificationRequest::from_der(&der.contents).map_err(|_| Failure::usage("CSR is not DER"))?;
    let common_name = csr.certification_request_info.subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    let sans = params
        .params
        .subject_alt_names
        .iter()
        .map(|s| match s {
            SanType::DnsName(d) => Ok(d.as_str().to_string()),
            SanType::IpAddress(ip) => Ok(ip.to_string()),
            other => Err(Failure::usage(format!("CSR asks for an unsupported name {other:?}: only DNS names and IPs"))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((params, Requested { common_name, sans }))
}

/// Sign a CSR with the CA for exactly the names the operator gives (`fqdn` and `sans`): a
/// CSR that asks for any other name (the engine's own, say) is refused, listing them. The
/// certificate carries the CN, those names, serverAuth and bounded validity; nothing else the
/// CSR asked for.
pub fn sign(ca: &Ca, path: &Path, fqdn: &str, sans: &[String], days: u32) -> Result<(String, Requested, Option<String>)> {
    let (params, requested) = read_request(path)?;
    let given = |name: &str| name.eq_ignore_ascii_case(fqdn) || sans.iter().any(|s| s.eq_ignore_ascii_case(name));
    let extra: Vec<&str> = requested.common_name.iter().chain(requested.sans.iter()).map(String::as_str).filter(|n| !given(n)).collect();
    if !extra.is_empty() {
        return Err(Failure::usage(format!(
            "the CSR asks for {} beyond --fqdn {fqdn:?}{}: refusing to sign. Sign only names this proxy serves; \
             add --san NAME for each one it really does",
            extra.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "),
            if sans.is_empty() { String::new() } else { format!(" and --san {}", sans.join(", ")) }
        )));
    }
    let others: Vec<String> = sans.iter().filter(|s| !s.eq_ignore_ascii_case(fqdn)).cloned().collect();
    let san_types = check_names(fqdn, &others)?;
    let (pem, note) = ca.certify(fqdn, &san_types, days, &params.public_key)?;
    let signed = Requested { common_name: Some(fqdn.to_string()), sans: std::iter::once(fqdn.to_string()).chain(others).collect() };
    Ok((pem, signed, note))
}
