//! `certs inspect`: what is in a certificate directory and whether a proxy can run on it.
//! Every problem is a failed check with the fix; the exit code is non-zero when any check
//! fails or the proxy certificate expires within 30 days.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use super::input::{load_private_key, read_cert_der, Input};
use super::{days_left, fingerprint, key_matches, parse, sans};
use super::{CA_FILE, CERT_FILE, ENGINE_FILE, KEY_FILE};

/// Days before expiry at which inspect fails.
pub const WARN_DAYS: i64 = 30;

#[derive(Debug, Serialize)]
pub struct CertInfo {
    pub file: String,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub fingerprint: String,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub dir: String,
    pub certificates: Vec<CertInfo>,
    pub checks: Vec<Check>,
    pub ok: bool,
}

fn info(file: &str, der: &[u8]) -> CertInfo {
    let c = parse(der);
    CertInfo {
        file: file.to_string(),
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        sans: sans(&c),
        not_before: c.validity().not_before.to_string(),
        not_after: c.validity().not_after.to_string(),
        days_left: days_left(&c),
        fingerprint: fingerprint(der),
    }
}

/// The checks found so far.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, name: &str, ok: bool, detail: String) {
        self.0.push(Check { name: name.into(), ok, detail });
    }
}

pub fn run(dir: &Path) -> Report {
    let mut checks = Checks::default();
    let mut certificates = Vec::new();
    let load = |name: &'static str| read_cert_der(&dir.join(name), Input::BundleFile(name)).map_err(|e| e.message);
    let ca = load(CA_FILE);
    let cert = load(CERT_FILE);
    let engine = load(ENGINE_FILE);
    for (name, result) in [(CA_FILE, &ca), (CERT_FILE, &cert), (ENGINE_FILE, &engine)] {
        match result {
            Ok(der) => certificates.push(info(name, der)),
            Err(e) => checks.add(&format!("{name} readable"), false, e.clone()),
        }
    }
    let key_path = dir.join(KEY_FILE);
    let key = load_private_key(&key_path, Input::BundleFile(KEY_FILE));
    check_key_file(&mut checks, &key_path);
    if let Ok(cert_der) = &cert {
        check_certificate(&mut checks, cert_der, ca.as_ref().ok(), &key);
    }
    if let Ok(ca_der) = &ca {
        let left = days_left(&parse(ca_der));
        checks.add("CA valid", left >= 0, if left >= 0 { format!("{left} days left") } else { "the engine CA has expired".into() });
    }
    if engine.is_ok() {
        let pem = std::fs::read(dir.join(ENGINE_FILE)).unwrap_or_default();
        let verdict = wsproxy::ticket::TicketVerifier::from_certificate_pem(&pem, false, 0);
        checks.add(
            "engine certificate verifies tickets",
            verdict.is_ok(),
            verdict.err().unwrap_or_else(|| "RSA key, usable as CERT_FOR_DATA_VERIFICATION".into()),
        );
    }
    let checks = checks.0;
    let ok = checks.iter().all(|c| c.ok) && ca.is_ok() && cert.is_ok() && engine.is_ok();
    Report { dir: dir.display().to_string(), certificates, checks, ok }
}

/// The key file exists and only its owner can read it.
fn check_key_file(checks: &mut Checks, key_path: &Path) {
    match std::fs::metadata(key_path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            checks.add(
                "key file private",
                mode & 0o077 == 0,
                if mode & 0o077 == 0 { format!("mode {mode:o}") } else { format!("mode {mode:o}: run chmod 600 {}", key_path.display()) },
            );
        }
        Err(e) => checks.add("key file present", false, format!("{}: {e}", key_path.display())),
    }
}

/// The proxy certificate: its key, validity, usage, chain to the CA, and no CA key beside it.
fn check_certificate(checks: &mut Checks, cert_der: &[u8], ca_der: Option<&Vec<u8>>, key: &crate::error::Result<rcgen::KeyPair>) {
    let c = parse(cert_der);
    match key {
        Ok(k) => checks.add(
            "key matches certificate",
            key_matches(k, &c),
            if key_matches(k, &c) { "yes".into() } else { format!("{KEY_FILE} is not the key of {CERT_FILE}: re-issue") },
        ),
        Err(e) => checks.add("key readable", false, e.message.clone()),
    }
    let left = days_left(&c);
    checks.add(
        "certificate valid",
        left >= WARN_DAYS,
        match left {
            l if l < 0 => "expired: run `wsproxyctl certs issue --force`".to_string(),
            l if l < WARN_DAYS => format!("expires in {l} days: rotate it now (`wsproxyctl certs issue --force`)"),
            l => format!("{l} days left"),
        },
    );
    let server_auth = c.extended_key_usage().ok().flatten().is_some_and(|e| e.value.server_auth);
    checks.add("serverAuth usage", server_auth, if server_auth { "yes".into() } else { "missing: browsers will refuse it".into() });
    let Some(ca_der) = ca_der else { return };
    let cac = parse(ca_der);
    let signed = c.verify_signature(Some(cac.public_key())).is_ok() && c.issuer() == cac.subject();
    checks.add(
        "chain to CA",
        signed,
        if signed { format!("signed by {}", cac.subject()) } else { format!("{CERT_FILE} is not signed by {CA_FILE}") },
    );
    if let Ok(k) = key {
        if key_matches(k, &cac) {
            checks.add("no CA key", false, format!("{KEY_FILE} is the CA's private key: remove it from this directory"));
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The human text inspect prints.
        let mut out = String::new();
        for c in &self.certificates {
            out.push_str(&format!(
                "{}\n  subject:  {}\n  issuer:   {}\n  names:    {}\n  valid:    {} .. {} ({} days left)\n  sha256:   {}\n",
                c.file,
                c.subject,
                c.issuer,
                if c.sans.is_empty() { "-".into() } else { c.sans.join(", ") },
                c.not_before,
                c.not_after,
                c.days_left,
                c.fingerprint
            ));
        }
        out.push_str("checks\n");
        for c in &self.checks {
            out.push_str(&format!("  [{}] {}: {}\n", if c.ok { "ok" } else { "FAIL" }, c.name, c.detail));
        }
        let missing = |c: &Check| !c.ok && (c.name.ends_with("readable") || c.name == "key file present");
        if self.ok {
            out.push_str("all checks passed\n");
        } else if self.checks.iter().any(missing) {
            out.push_str(&format!("some checks failed: files are missing; {}\n", Input::BundleFile(KEY_FILE).hint()));
        } else {
            out.push_str("some checks failed\n");
        }
        f.write_str(&out)
    }
}
