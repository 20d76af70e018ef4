//! `certs issue`: the proxy's certificate signed by the engine CA, in one step on the engine
//! host (and the signing half of the CSR flow).

use std::path::{Path, PathBuf};

use ::time::{Duration, OffsetDateTime};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber,
};

use super::input::{load_private_key, read_cert_der, Input};
use super::{key_matches, parse, parse_san, validate_dns_name, KeyType, MAX_DAYS};
use super::{CA_FILE, CERT_FILE, ENGINE_FILE, KEY_FILE};
use crate::error::{Failure, Result};
use crate::fsutil::{ensure_dir, write_atomic};

/// The engine CA, loaded and checked: the key belongs to the certificate, the certificate is a
/// CA and is valid now.
pub struct Ca {
    pub cert_der: Vec<u8>,
    pub cert_pem: Vec<u8>,
    key: KeyPair,
    not_after: i64,
}

impl Ca {
    pub fn load(cert: &Path, key: &Path) -> Result<Ca> {
        let cert_der = read_cert_der(cert, Input::CaCert)?;
        let cert_pem = super::certificate_pem(&cert_der);
        let key_pair = load_private_key(key, Input::CaKey)?;
        let parsed = parse(&cert_der);
        if !key_matches(&key_pair, &parsed) {
            return Err(Failure::usage(format!(
                "the CA key {} does not match the CA certificate {}: on an oVirt engine they are \
                 /etc/pki/ovirt-engine/private/ca.pem and /etc/pki/ovirt-engine/ca.pem",
                key.display(),
                cert.display()
            )));
        }
        let validity = parsed.validity();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if validity.not_after.timestamp() < now {
            return Err(Failure::usage(format!(
                "the CA certificate {} expired on {}: renew the engine CA first (engine-setup)",
                cert.display(),
                validity.not_after
            )));
        }
        if validity.not_before.timestamp() > now {
            return Err(Failure::usage(format!("the CA certificate {} is not valid before {}", cert.display(), validity.not_before)));
        }
        let is_ca = parsed.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(Failure::usage(format!(
                "{} is not a CA certificate (no basicConstraints CA:TRUE): pass the engine CA as --ca-cert",
                cert.display()
            )));
        }
        Ok(Ca { not_after: validity.not_after.timestamp(), cert_der, cert_pem, key: key_pair })
    }

    /// Sign a server certificate for `fqdn` (+ `sans`) over `public_key`, valid for `days`
    /// (clamped to the CA's own expiry). Returns the PEM and a note when clamped.
    pub fn certify(&self, fqdn: &str, sans: &[SanType], days: u32, public_key: &impl PublicKeyData) -> Result<(String, Option<String>)> {
        let (mut params, note) = self.leaf(fqdn, days)?;
        let mut names = vec![SanType::DnsName(
            fqdn.trim_end_matches('.')
                .to_ascii_lowercase()
                .try_into()
                .map_err(|_| Failure::usage(format!("{fqdn:?} is not a valid DNS name")))?,
        )];
        for san in sans {
            if !names.contains(san) {
                names.push(san.clone());
            }
        }
        params.subject_alt_names = names;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        Ok((self.sign(params, public_key)?, note))
    }

    /// Sign a client certificate (TLS client authentication only, no names) for `name`: what
    /// the relay's admin listener admits with WSPROXY_ADMIN_CLIENT_CA.
    pub fn certify_client(&self, name: &str, days: u32, public_key: &impl PublicKeyData) -> Result<(String, Option<String>)> {
        let (mut params, note) = self.leaf(name, days)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok((self.sign(params, public_key)?, note))
    }

    /// What every leaf shares: the subject, not a CA, validity (clamped to the CA's own
    /// expiry, with a note when clamped), a random serial, the authority key identifier.
    fn leaf(&self, common_name: &str, days: u32) -> Result<(CertificateParams, Option<String>)> {
        if days == 0 || days > MAX_DAYS {
            return Err(Failure::usage(format!(
                "--days {days}: must be 1-{MAX_DAYS} (browsers refuse server certificates valid longer than {MAX_DAYS} days)"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let mut not_after = now + Duration::days(days.into());
        let mut note = None;
        let ca_end = OffsetDateTime::from_unix_timestamp(self.not_after).unwrap_or(not_after);
        if ca_end < not_after {
            not_after = ca_end;
            note = Some(format!("validity shortened to the CA's own expiry ({ca_end})"));
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = now - Duration::minutes(5);
        params.not_after = not_after;
        let mut serial: [u8; 16] = rand::random();
        serial[0] &= 0x7f;
        serial[0] |= 0x01;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.use_authority_key_identifier_extension = true;
        Ok((params, note))
    }

    fn sign(&self, params: CertificateParams, public_key: &impl PublicKeyData) -> Result<String> {
        let issuer = Issuer::from_ca_cert_der(&self.cert_der.clone().into(), &self.key)
            .map_err(|e| Failure::usage(format!("cannot use the CA certificate: {e}")))?;
        let cert = params.signed_by(public_key, &issuer).map_err(|e| Failure::usage(format!("cannot sign the certificate: {e}")))?;
        Ok(cert.pem())
    }
}

/// What `certs issue` needs.
pub struct IssueOptions {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub fqdn: String,
    pub sans: Vec<String>,
    pub out: PathBuf,
    pub engine_cert: Option<PathBuf>,
    pub days: u32,
    pub key_type: KeyType,
    pub force: bool,
    /// A client certificate for this name (the admin listener's mutual TLS) instead of the
    /// proxy's server certificate.
    pub client: Option<String>,
}

/// What was written.
#[derive(Debug, serde::Serialize)]
pub struct Issued {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub fqdn: String,
    pub sans: Vec<String>,
    pub not_after: String,
    pub fingerprint: String,
    pub notes: Vec<String>,
}

/// What `certs issue` prints.
impl std::fmt::Display for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sans.is_empty() {
            true => writeln!(f, "issued a certificate for {}", self.fqdn)?,
            false => writeln!(f, "issued a certificate for {} (names: {})", self.fqdn, self.sans.join(", "))?,
        }
        writeln!(f, "  valid until {}\n  sha256 {}", self.not_after, self.fingerprint)?;
        for file in &self.files {
            writeln!(f, "  wrote {}", file.display())?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

/// `certs issue --client NAME`: `admin-NAME.cer` and `admin-NAME.key` (0600) in `--out`,
/// signed by the CA; the proxy's own files are not touched.
fn run_client(args: &IssueOptions, name: &str) -> Result<Issued> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
        return Err(Failure::usage(format!("--client {name:?}: a name of up to 64 letters, digits, '-', '_' or '.' (it names the files)")));
    }
    let ca = Ca::load(&args.ca_cert, &args.ca_key)?;
    let (cert_path, key_path) = (args.out.join(format!("admin-{name}.cer")), args.out.join(format!("admin-{name}.key")));
    if key_path.exists() && !args.force {
        return Err(Failure::usage(format!("{} already exists: pass --force to replace it", key_path.display())));
    }
    let key = super::generate_key(args.key_type)?;
    let (cert_pem, note) = ca.certify_client(name, args.days, &key)?;
    ensure_dir(&args.out)?;
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
    let der = super::pem_cert_der(cert_pem.as_bytes()).map_err(Failure::usage)?;
    let parsed = parse(&der);
    Ok(Issued {
        dir: args.out.clone(),
        files: vec![key_path, cert_path],
        fqdn: format!("client {name}"),
        sans: vec![],
        not_after: parsed.validity().not_after.to_string(),
        fingerprint: super::fingerprint(&der),
        notes: note.into_iter().collect(),
    })
}

/// Check names and the engine certificate before anything is written.
pub fn check_names(fqdn: &str, sans: &[String]) -> Result<Vec<SanType>> {
    validate_dns_name(fqdn).map_err(|e| Failure::usage(format!("--fqdn {e}")))?;
    sans.iter().map(|s| parse_san(s)).collect()
}

pub fn run(args: &IssueOptions) -> Result<Issued> {
    if let Some(name) = &args.client {
        return run_client(args, name);
    }
    let sans = check_names(&args.fqdn, &args.sans)?;
    let ca = Ca::load(&args.ca_cert, &args.ca_key)?;
    let key_path = args.out.join(KEY_FILE);
    if key_path.exists() && !args.force {
        return Err(Failure::usage(format!(
            "{} already exists: pass --force to replace the proxy's key (the old certificate stops working)",
            key_path.display()
        )));
    }
    let engine_pem = match &args.engine_cert {
        None => None,
        Some(path) => {
            let pem = super::certificate_pem(&read_cert_der(path, Input::EngineCert)?);
            wsproxy::ticket::TicketVerifier::from_certificate_pem(&pem, false, 0)
                .map_err(|e| Failure::usage(format!("--engine-cert {}: {e}", path.display())))?;
            Some(pem)
        }
    };
    let key = super::generate_key(args.key_type)?;
    let (cert_pem, note) = ca.certify(&args.fqdn, &sans, args.days, &key)?;

    ensure_dir(&args.out)?;
    let mut files = Vec::new();
    let mut write = |name: &str, data: &[u8], mode: u32| -> Result<()> {
        let path = args.out.join(name);
        write_atomic(&path, data, mode)?;
        files.push(path);
        Ok(())
    };
    // Key first: if anything after fails, the directory still holds a consistent old pair or
    // the new key with no certificate, never a certificate for a key that is not there.
    write(KEY_FILE, key.serialize_pem().as_bytes(), 0o600)?;
    write(CERT_FILE, cert_pem.as_bytes(), 0o644)?;
    write(CA_FILE, &ca.cert_pem, 0o644)?;
    if let Some(pem) = engine_pem {
        write(ENGINE_FILE, &pem, 0o644)?;
    }
    let der = super::pem_cert_der(cert_pem.as_bytes()).map_err(Failure::usage)?;
    let parsed = parse(&der);
    Ok(Issued {
        dir: args.out.clone(),
        files,
        fqdn: args.fqdn.clone(),
        sans: super::sans(&parsed),
        not_after: parsed.validity().not_after.to_string(),
        fingerprint: super::fingerprint(&der),
        notes: note.into_iter().collect(),
    })
}
