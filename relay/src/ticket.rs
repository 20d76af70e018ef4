//! oVirt console tickets: decode and verify, as the engine's `TicketEncoder` makes them.
//!
//! Pure: no I/O and no clock of its own (the caller passes "now"), so every rule is a plain
//! unit test and a fuzz target. The rules are in ../shared/OVIRT.md; the two that bite are the
//! PSS salt length (the engine uses the maximum, not the digest length) and that the embedded
//! `certificate` field is never trusted: only the configured engine certificate verifies.

use std::fmt;

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};
use serde::Deserialize;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Longest ticket accepted, in characters of the URL path. Engine tickets are ~3 KiB.
pub const MAX_TICKET_LEN: usize = 32 * 1024;

/// Why a ticket was refused. `reason()` is the stable label used in logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketError {
    /// Not base64, not UTF-8 JSON, a required field missing or not a string.
    Malformed(String),
    /// `signedFields` names neither `salt` nor `data`.
    UnsignedFields,
    /// The signature does not verify with the engine certificate.
    BadSignature,
    /// A legacy SHA-1 ticket while `WSPROXY_ALLOW_LEGACY_SHA1` is off.
    LegacyDisabled,
    /// `validTo` (plus skew) is in the past.
    Expired,
    /// `validFrom` (minus skew) is in the future.
    NotYetValid,
    /// The signed `data` is not a valid target description.
    BadData(String),
}

impl TicketError {
    /// Stable, low-cardinality label (metrics, log field).
    pub fn reason(&self) -> &'static str {
        match self {
            TicketError::Malformed(_) => "malformed",
            TicketError::UnsignedFields => "unsigned_fields",
            TicketError::BadSignature => "bad_signature",
            TicketError::LegacyDisabled => "legacy_sha1_disabled",
            TicketError::Expired => "expired",
            TicketError::NotYetValid => "not_yet_valid",
            TicketError::BadData(_) => "bad_data",
        }
    }
}

impl fmt::Display for TicketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TicketError::Malformed(why) => write!(f, "malformed ticket: {why}"),
            TicketError::UnsignedFields => write!(f, "ticket signedFields must include salt or data"),
            TicketError::BadSignature => write!(
                f,
                "ticket signature does not verify with CERT_FOR_DATA_VERIFICATION \
                 (is it the engine's current certificate?)"
            ),
            TicketError::LegacyDisabled => {
                write!(f, "legacy SHA-1 ticket refused (set WSPROXY_ALLOW_LEGACY_SHA1=true for engines older than 4.4)")
            }
            TicketError::Expired => write!(f, "ticket expired (check the clocks of engine and proxy)"),
            TicketError::NotYetValid => write!(f, "ticket not yet valid (check the clocks of engine and proxy)"),
            TicketError::BadData(why) => write!(f, "ticket data is not a console target: {why}"),
        }
    }
}

impl std::error::Error for TicketError {}

/// A KubeVirt VNC websocket endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVirt {
    pub path: String,
    pub token: String,
}

/// Where the relay must connect, as the engine signed it.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub ssl_target: bool,
    pub kubevirt: Option<KubeVirt>,
}

impl fmt::Debug for Target {
    // The KubeVirt token is a credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("ssl_target", &self.ssl_target)
            .field("kubevirt_path", &self.kubevirt.as_ref().map(|k| k.path.as_str()))
            .finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match (&self.kubevirt, self.ssl_target) {
            (Some(k), _) => write!(f, "wss://{host}:{}{}", self.port, k.path),
            (None, true) => write!(f, "vencrypt://{host}:{}", self.port),
            (None, false) => write!(f, "tcp://{host}:{}", self.port),
        }
    }
}

/// A verified ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub target: Target,
    /// End of validity, unix seconds (replay cache entries expire then).
    pub valid_to: i64,
    /// SHA-256 of the signature: identifies this ticket without keeping it.
    pub id: [u8; 32],
}

/// Verifies tickets with the engine's public key.
#[derive(Clone)]
pub struct TicketVerifier {
    key: RsaPublicKey,
    allow_legacy_sha1: bool,
    skew_secs: i64,
}

impl fmt::Debug for TicketVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketVerifier")
            .field("key_bits", &(self.key.size() * 8))
            .field("allow_legacy_sha1", &self.allow_legacy_sha1)
            .field("skew_secs", &self.skew_secs)
            .finish()
    }
}

impl TicketVerifier {
    /// From the engine certificate (PEM), as in CERT_FOR_DATA_VERIFICATION.
    pub fn from_certificate_pem(pem: &[u8], allow_legacy_sha1: bool, skew_secs: i64) -> Result<Self, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
        let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let key = RsaPublicKey::from_public_key_der(cert.public_key().raw)
            .map_err(|e| format!("the certificate's key is not RSA (engine tickets are RSA-signed): {e}"))?;
        Ok(Self { key, allow_legacy_sha1, skew_secs })
    }

    /// From an RSA public key directly.
    pub fn from_public_key(key: RsaPublicKey, allow_legacy_sha1: bool, skew_secs: i64) -> Self {
        Self { key, allow_legacy_sha1, skew_secs }
    }

    /// Decode and verify a ticket taken from the URL path (without the leading `/`).
    pub fn verify(&self, raw: &str, now_unix: i64) -> Result<Ticket, TicketError> {
        self.verify_in_place(raw.as_bytes().to_vec(), now_unix)
    }

    /// [`verify`](Self::verify), decoding in the ticket's own buffer: what the relay does with
    /// a request path, so that a ticket costs no memory beyond the bytes it arrived in.
    pub fn verify_in_place(&self, mut ticket: Vec<u8>, now_unix: i64) -> Result<Ticket, TicketError> {
        decode_in_place(&mut ticket)?;
        let fields = Fields::parse(&ticket)?;
        let string = |name: &str| fields.get(name).ok_or_else(|| TicketError::Malformed(format!("field {name} is missing")));

        let signed_fields = signed_field_names(string("signedFields")?)?;
        // Hashed field by field: nothing grows with the input before the signature is checked.
        let digest_of = |mut hasher: Box<dyn sha2::digest::DynDigest>| -> Result<Box<[u8]>, TicketError> {
            for name in &signed_fields {
                hasher.update(string(name)?.as_bytes());
            }
            Ok(hasher.finalize())
        };

        let signature = if fields.v2_signature.is_some() {
            let sig = decode_b64(string("v2_signature")?, "v2_signature")?;
            self.verify_pss(&digest_of(Box::new(Sha256::new()))?, &sig)?;
            sig
        } else if fields.signature.is_some() {
            if !self.allow_legacy_sha1 {
                return Err(TicketError::LegacyDisabled);
            }
            match fields.digest.as_ref().map(|t| t.0.as_ref()) {
                None => {}
                Some(d) if d.eq_ignore_ascii_case("sha1") => {}
                Some(_) => return Err(TicketError::Malformed("legacy digest must be sha1".into())),
            }
            let sig = decode_b64(string("signature")?, "signature")?;
            self.key
                .verify(Pkcs1v15Sign::new::<Sha1>(), &digest_of(Box::new(Sha1::new()))?, &sig)
                .map_err(|_| TicketError::BadSignature)?;
            sig
        } else {
            return Err(TicketError::Malformed("no v2_signature".into()));
        };

        // Only signed fields are believed from here on.
        let signed = |name: &str| -> Result<&str, TicketError> {
            if signed_fields.contains(&name) {
                string(name)
            } else {
                Err(TicketError::Malformed(format!("field {name} is not signed")))
            }
        };
        let valid_from = parse_time(signed("validFrom")?, "validFrom")?;
        let valid_to = parse_time(signed("validTo")?, "validTo")?;
        if now_unix > valid_to + self.skew_secs {
            return Err(TicketError::Expired);
        }
        if now_unix + self.skew_secs < valid_from {
            return Err(TicketError::NotYetValid);
        }
        let target = parse_data(signed("data")?)?;
        Ok(Ticket {
            target,
            valid_to,
            // What the engine signed, not how it was spelt: the decoded signature bytes, so
            // no re-encoding (base64 variant, whitespace, JSON re-serialisation, field order)
            // is a second first use.
            id: Sha256::digest(&signature).into(),
        })
    }

    fn verify_pss(&self, hashed: &[u8], signature: &[u8]) -> Result<(), TicketError> {
        // The engine (Java, "RSASSA-PSS" with PSSParameterSpec salt = max) uses the maximum
        // salt length: emLen - hLen - 2, where emLen = ceil((modBits - 1) / 8).
        let mod_bits = self.key.n().bits();
        let em_len = (mod_bits - 1).div_ceil(8);
        let salt_len = em_len.checked_sub(32 + 2).ok_or(TicketError::BadSignature)?;
        self.key.verify(Pss::new_with_salt::<Sha256>(salt_len), hashed, signature).map_err(|_| TicketError::BadSignature)
    }
}

/// The field names a ticket may sign: the ones the engine's TicketEncoder signs.
pub const SIGNABLE_FIELDS: [&str; 4] = ["salt", "validFrom", "validTo", "data"];

/// `signedFields`, checked before any work that grows with it: each name one of
/// [`SIGNABLE_FIELDS`], none twice (so at most four), and `salt` or `data` among them.
fn signed_field_names(list: &str) -> Result<Vec<&str>, TicketError> {
    let mut names: Vec<&str> = Vec::with_capacity(SIGNABLE_FIELDS.len());
    for name in list.split(',').map(str::trim) {
        if !SIGNABLE_FIELDS.contains(&name) {
            return Err(TicketError::Malformed(format!(
                "signedFields names an unknown field {:?}",
                name.chars().take(32).collect::<String>()
            )));
        }
        if names.contains(&name) {
            return Err(TicketError::Malformed(format!("signedFields names {name} twice")));
        }
        names.push(name);
    }
    if !names.iter().any(|f| *f == "salt" || *f == "data") {
        return Err(TicketError::UnsignedFields);
    }
    Ok(names)
}

/// Base64 without padding (the decoder meets the characters before any `=`), standard alphabet.
const UNPADDED: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireNone));

/// [`decode_in_place`] on a copy of `raw`.
pub fn decode_path(raw: &[u8]) -> Result<Vec<u8>, TicketError> {
    let mut json = raw.to_vec();
    decode_in_place(&mut json)?;
    Ok(json)
}

/// The URL path form of a ticket, turned in its own buffer into the JSON the engine encoded:
/// percent-encoding undone, whitespace dropped, the URL-safe alphabet accepted, padding
/// optional. In place, because a forged ticket must cost no more than the bytes it arrived
/// in: the input is read in batches through stack buffers, and the decoded bytes (never more
/// than the input read so far) are written behind them.
pub fn decode_in_place(buf: &mut Vec<u8>) -> Result<(), TicketError> {
    const BATCH: usize = 1024;
    if buf.len() > MAX_TICKET_LEN {
        return Err(TicketError::Malformed(format!("longer than {MAX_TICKET_LEN} characters")));
    }
    let not_base64 = || TicketError::Malformed("not base64".into());
    // Base64 characters not yet decoded: fewer than four carried over, plus one batch.
    let mut chars = [0u8; BATCH + 3];
    let mut held = 0;
    let mut decoded = [0u8; BATCH / 4 * 3];
    let (mut read, mut written) = (0, 0);
    let mut padding = false;
    while read < buf.len() {
        let mut end = (read + BATCH).min(buf.len());
        // An escape (`%XX`) is never split between batches.
        if end < buf.len() {
            if let Some(at) = buf[end - 2..end].iter().position(|&b| b == b'%') {
                end = end - 2 + at;
            }
        }
        let input = &buf[read..end];
        let mut i = 0;
        while i < input.len() {
            // Runs of the standard alphabet, the bulk of any spelling, are copied whole.
            let run = input[i..].iter().position(|&b| !STANDARD_ALPHABET[b as usize]).unwrap_or(input.len() - i);
            if run > 0 {
                if padding {
                    return Err(not_base64());
                }
                chars[held..held + run].copy_from_slice(&input[i..i + run]);
                held += run;
                i += run;
                continue;
            }
            let mut byte = input[i];
            i += 1;
            // `%XX` with two hex digits is the byte it names; any other `%` stays itself (and
            // is then not base64).
            if byte == b'%' {
                if let Some(value) = input.get(i..i + 2).and_then(hex_pair) {
                    byte = value;
                    i += 2;
                }
            }
            match byte {
                b if b.is_ascii_whitespace() => {}
                b'=' => padding = true,
                _ if padding => return Err(not_base64()),
                b => {
                    chars[held] = match b {
                        b'-' => b'+',
                        b'_' => b'/',
                        b => b,
                    };
                    held += 1;
                }
            }
        }
        read = end;
        let whole = held / 4 * 4;
        let out = UNPADDED.decode_slice(&chars[..whole], &mut decoded).map_err(|_| not_base64())?;
        // `written + out` <= 3/4 of the characters read so far <= `read`: unread input is safe.
        buf[written..written + out].copy_from_slice(&decoded[..out]);
        written += out;
        chars.copy_within(whole..held, 0);
        held -= whole;
    }
    let out = UNPADDED.decode_slice(&chars[..held], &mut decoded).map_err(|_| not_base64())?;
    buf[written..written + out].copy_from_slice(&decoded[..out]);
    buf.truncate(written + out);
    Ok(())
}

/// The standard base64 alphabet (`A-Z a-z 0-9 + /`), as a lookup table.
const STANDARD_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    table
};

/// The byte two hex digits name.
fn hex_pair(digits: &[u8]) -> Option<u8> {
    let digit = |d: u8| (d as char).to_digit(16);
    Some((digit(digits[0])? * 16 + digit(digits[1])?) as u8)
}

/// The fields of a ticket's JSON that the relay reads, borrowed from the decoded bytes (no
/// copy unless a string holds escapes). Other fields, such as the embedded `certificate`, are
/// skipped without being kept; a field given twice is refused.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    salt: Option<Text<'a>>,
    #[serde(borrow, rename = "validFrom")]
    valid_from: Option<Text<'a>>,
    #[serde(borrow, rename = "validTo")]
    valid_to: Option<Text<'a>>,
    #[serde(borrow)]
    data: Option<Text<'a>>,
    #[serde(borrow, rename = "signedFields")]
    signed_fields: Option<Text<'a>>,
    #[serde(borrow)]
    v2_signature: Option<Text<'a>>,
    #[serde(borrow)]
    signature: Option<Text<'a>>,
    #[serde(borrow)]
    digest: Option<Text<'a>>,
}

/// A JSON string borrowed from the input, or owned when it held escapes. (serde's own
/// `Deserialize` for `Cow` always copies, and inside an `Option` `#[serde(borrow)]` cannot
/// change that: a 21 KiB field was a 21 KiB copy.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(Visit(std::marker::PhantomData))
    }
}

impl<'a> Fields<'a> {
    fn parse(json: &'a [u8]) -> Result<Self, TicketError> {
        // A JSON array would also fill a struct, by position: only an object is a ticket.
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(TicketError::Malformed("not a JSON object".into()));
        }
        serde_json::from_slice(json).map_err(|e| TicketError::Malformed(format!("not a ticket's JSON: {e}")))
    }

    fn get(&self, name: &str) -> Option<&str> {
        let field = match name {
            "salt" => &self.salt,
            "validFrom" => &self.valid_from,
            "validTo" => &self.valid_to,
            "data" => &self.data,
            "signedFields" => &self.signed_fields,
            "v2_signature" => &self.v2_signature,
            "signature" => &self.signature,
            _ => return None,
        };
        field.as_ref().map(|t| t.0.as_ref())
    }
}

/// A signature field, decoded. Engine keys are at most 4096 bits (684 base64 characters);
/// anything far longer is refused before it is copied.
fn decode_b64(text: &str, field: &str) -> Result<Vec<u8>, TicketError> {
    if text.len() > 4096 {
        return Err(TicketError::Malformed(format!("{field} is longer than any RSA signature")));
    }
    let cleaned: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(cleaned.as_bytes()).map_err(|_| TicketError::Malformed(format!("{field} is not base64")))
}

/// Parse the engine's `yyyyMMddHHmmss` UTC timestamps into unix seconds.
pub fn parse_time(text: &str, field: &str) -> Result<i64, TicketError> {
    let format = format_description!("[year][month][day][hour][minute][second]");
    PrimitiveDateTime::parse(text.trim(), format)
        .map(|t| t.assume_utc().unix_timestamp())
        .map_err(|_| TicketError::Malformed(format!("{field} is not yyyyMMddHHmmss")))
}

/// Unix seconds now: the clock tickets are checked against.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Format unix seconds as the engine's `yyyyMMddHHmmss` UTC.
pub fn format_time(unix: i64) -> String {
    let format = format_description!("[year][month][day][hour][minute][second]");
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(format).ok()).unwrap_or_default()
}

/// Decode the `data` field: a URL-encoded JSON object describing the console target.
pub fn parse_data(data: &str) -> Result<Target, TicketError> {
    let plus_as_space = data.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map_err(|_| TicketError::BadData("percent-encoding is not UTF-8".into()))?;
    let value: Value = serde_json::from_str(&decoded).map_err(|_| TicketError::BadData("not JSON".into()))?;
    let obj = value.as_object().ok_or_else(|| TicketError::BadData("not a JSON object".into()))?;

    let host = match obj.get("host") {
        Some(Value::String(h)) if !h.trim().is_empty() => h.trim().trim_start_matches('[').trim_end_matches(']').to_string(),
        _ => return Err(TicketError::BadData("host is missing".into())),
    };
    if host.len() > 253 || host.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@') {
        return Err(TicketError::BadData("host is not a host name or address".into()));
    }
    let port = match obj.get("port") {
        Some(Value::String(p)) => p.trim().parse::<u16>().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
    .filter(|p| *p != 0)
    .ok_or_else(|| TicketError::BadData("port is missing or not 1-65535".into()))?;
    let ssl_target = match obj.get("ssl_target") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(_) => return Err(TicketError::BadData("ssl_target is not a boolean".into())),
    };
    let kubevirt = match (obj.get("path"), obj.get("token")) {
        (Some(Value::String(path)), token) if !path.is_empty() => {
            if !path.starts_with('/') {
                return Err(TicketError::BadData("path must start with /".into()));
            }
            let token = match token {
                Some(Value::String(t)) => t.clone(),
                None | Some(Value::Null) => String::new(),
                Some(_) => return Err(TicketError::BadData("token is not a string".into())),
            };
            Some(KubeVirt { path: path.clone(), token })
        }
        _ => None,
    };
    Ok(Target { host, port, ssl_target, kubevirt })
}

#[cfg(test)]
mod tests {
    //! Unit tests with a signer from this crate's dependency set: they pin the rules. The
    //! independent-signer tests (openssl) live in tests/ticket_openssl.rs.
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rsa::pss::BlindedSigningKey;
    use rsa::signature::{RandomizedSigner, SignatureEncoding};
    use rsa::RsaPrivateKey;
    use serde_json::Map;
    use std::sync::OnceLock;

    fn key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut StdRng::seed_from_u64(7), 2048).unwrap())
    }

    fn other_key() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut StdRng::seed_from_u64(8), 2048).unwrap())
    }

    const NOW: i64 = 1_800_000_000;

    fn ticket_with(key: &RsaPrivateKey, salt_len: usize, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let data = "%7B%22host%22%3A%22127.0.0.1%22%2C%22port%22%3A%225900%22%2C%22ssl_target%22%3Afalse%7D";
        let mut m = Map::new();
        m.insert("salt".into(), Value::String(STANDARD.encode([1u8, 2, 3, 4, 5, 6, 7, 8])));
        m.insert("validFrom".into(), Value::String(format_time(NOW - 10)));
        m.insert("validTo".into(), Value::String(format_time(NOW + 10)));
        m.insert("data".into(), Value::String(data.into()));
        m.insert("signedFields".into(), Value::String("salt,validFrom,validTo,data".into()));
        let message: String = ["salt", "validFrom", "validTo", "data"].iter().map(|f| m[*f].as_str().unwrap().to_string()).collect();
        let signer = BlindedSigningKey::<Sha256>::new_with_salt_len(key.clone(), salt_len);
        let sig = signer.sign_with_rng(&mut StdRng::seed_from_u64(1), message.as_bytes()).to_vec();
        m.insert("v2_signature".into(), Value::String(STANDARD.encode(sig)));
        m.insert("certificate".into(), Value::String("-----BEGIN CERTIFICATE-----\nignored\n".into()));
        edit(&mut m);
        STANDARD.encode(serde_json::to_vec(&Value::Object(m)).unwrap())
    }

    fn verifier() -> TicketVerifier {
        TicketVerifier::from_public_key(key().to_public_key(), false, 5)
    }

    #[test]
    fn accepts_max_salt_ticket() {
        let t = verifier().verify(&ticket_with(key(), 222, |_| {}), NOW).unwrap();
        assert_eq!(t.target.host, "127.0.0.1");
        assert_eq!(t.target.port, 5900);
        assert!(!t.target.ssl_target);
        assert_eq!(t.valid_to, NOW + 10);
    }

    #[test]
    fn digest_length_salt_is_not_the_engine_format() {
        let e = verifier().verify(&ticket_with(key(), 32, |_| {}), NOW).unwrap_err();
        assert_eq!(e, TicketError::BadSignature);
    }

    #[test]
    fn url_safe_and_percent_encoded_forms() {
        let t = ticket_with(key(), 222, |_| {});
        let url_safe = t.replace('+', "-").replace('/', "_").trim_end_matches('=').to_string();
        assert!(verifier().verify(&url_safe, NOW).is_ok());
        let pct = t.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
        assert!(verifier().verify(&pct, NOW).is_ok());
    }

    #[test]
    fn window_and_skew() {
        let t = ticket_with(key(), 222, |_| {});
        assert!(verifier().verify(&t, NOW + 15).is_ok(), "within skew");
        assert_eq!(verifier().verify(&t, NOW + 16).unwrap_err(), TicketError::Expired);
        assert!(verifier().verify(&t, NOW - 15).is_ok());
        assert_eq!(verifier().verify(&t, NOW - 16).unwrap_err(), TicketError::NotYetValid);
    }

    #[test]
    fn foreign_key_and_embedded_certificate_are_not_trusted() {
        let t = ticket_with(other_key(), 222, |_| {});
        assert_eq!(verifier().verify(&t, NOW).unwrap_err(), TicketError::BadSignature);
    }

    #[test]
    fn tampered_data_fails() {
        let t = ticket_with(key(), 222, |m| {
            m.insert("data".into(), Value::String("%7B%22host%22%3A%2210.0.0.1%22%2C%22port%22%3A%2222%22%7D".into()));
        });
        assert_eq!(verifier().verify(&t, NOW).unwrap_err(), TicketError::BadSignature);
    }

    #[test]
    fn signed_fields_must_cover_salt_or_data() {
        let t = ticket_with(key(), 222, |m| {
            m.insert("signedFields".into(), Value::String("validFrom,validTo".into()));
        });
        assert_eq!(verifier().verify(&t, NOW).unwrap_err(), TicketError::UnsignedFields);
        let t = ticket_with(key(), 222, |m| {
            m.remove("signedFields");
        });
        assert!(matches!(verifier().verify(&t, NOW).unwrap_err(), TicketError::Malformed(_)));
    }

    #[test]
    fn repeated_or_unknown_signed_fields_are_refused_before_any_hashing() {
        // The forged-ticket amplifier: one 30 KB field named thousands of times.
        let repeated = vec!["data"; 3000].join(",");
        for list in [repeated.as_str(), "salt,salt", "salt,certificate", "salt,v2_signature", "data,"] {
            let t = ticket_with(key(), 222, |m| {
                m.insert("signedFields".into(), Value::String(list.into()));
            });
            assert!(
                matches!(verifier().verify(&t, NOW).unwrap_err(), TicketError::Malformed(ref why) if why.contains("signedFields")),
                "{list:.40}"
            );
        }
    }

    #[test]
    fn one_use_per_signature_however_the_ticket_is_spelt() {
        let plain = ticket_with(key(), 222, |_| {});
        let id = verifier().verify(&plain, NOW).unwrap().id;
        // The same signed ticket, re-encoded: JSON field order and whitespace, a signature
        // with line breaks, URL-safe base64 without padding.
        let mut fields: Map<String, Value> = serde_json::from_slice(&STANDARD.decode(&plain).unwrap()).unwrap();
        let sig = fields["v2_signature"].as_str().unwrap().to_string();
        let wrapped: String = sig.as_bytes().chunks(64).map(|c| format!("{}\n", std::str::from_utf8(c).unwrap())).collect();
        fields.insert("v2_signature".into(), Value::String(wrapped));
        let reordered: Map<String, Value> = fields.into_iter().rev().collect();
        let pretty = serde_json::to_string_pretty(&Value::Object(reordered)).unwrap();
        // A JSON escape in a signed field (the string is owned, not borrowed, then).
        let pretty = pretty.replacen("\"%7B", "\"\\u00257B", 1);
        assert!(pretty.contains("\\u0025"));
        let respelt = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pretty);
        assert_ne!(respelt, plain);
        assert_eq!(verifier().verify(&respelt, NOW).unwrap().id, id);
    }

    #[test]
    fn path_decoding_matches_base64_in_every_spelling() {
        // Longer than the decoder's batch, so batches join; each spelling decodes the same.
        let json: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let padded = STANDARD.encode(&json[..4999]);
        assert!(padded.ends_with('='));
        let wrapped: String = padded.as_bytes().chunks(76).map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap())).collect();
        let url_safe = padded.replace('+', "-").replace('/', "_").trim_end_matches('=').to_string();
        let percent = padded.replace('+', "%2B").replace('/', "%2f").replace('=', "%3D");
        for spelling in [&padded, &wrapped, &url_safe, &percent] {
            assert_eq!(decode_path(spelling.as_bytes()).unwrap(), &json[..4999]);
        }
        // Every character escaped, shifted by 0-2 spaces: escapes meet the batch ends at every phase.
        let escaped: String = padded.bytes().map(|b| format!("%{b:02X}")).collect();
        for shift in 0..3 {
            let spelling = format!("{}{escaped}", " ".repeat(shift));
            assert_eq!(decode_path(spelling.as_bytes()).unwrap(), &json[..4999], "shift {shift}");
        }
        for bad in ["QQ=A", "QQ==A", "Q", "QR==", "QQ%3D%3DQQ"] {
            assert_eq!(decode_path(bad.as_bytes()).unwrap_err(), TicketError::Malformed("not base64".into()), "{bad}");
        }
    }

    /// The rules of [`decode_in_place`] written the plain way (whole-input percent-decoding,
    /// then filtering, then one base64 decode), to hold the batched decoder against.
    fn plain_decode(raw: &[u8]) -> Option<Vec<u8>> {
        let mut chars = Vec::new();
        let mut padding = false;
        for b in percent_encoding::percent_decode(raw) {
            match b {
                b if b.is_ascii_whitespace() => {}
                b'=' => padding = true,
                _ if padding => return None,
                b'-' => chars.push(b'+'),
                b'_' => chars.push(b'/'),
                b => chars.push(b),
            }
        }
        UNPADDED.decode(&chars).ok()
    }

    #[test]
    fn batched_decoding_agrees_with_the_plain_rules_on_random_spellings() {
        use rand::{seq::SliceRandom, Rng};
        let mut rng = StdRng::seed_from_u64(14);
        for round in 0..400 {
            let json: Vec<u8> = (0..rng.gen_range(0..3000)).map(|_| rng.gen()).collect();
            let mut spelling = Vec::new();
            for b in STANDARD.encode(&json).bytes() {
                match rng.gen_range(0..40) {
                    0 => spelling.extend(format!("%{b:02X}").bytes()),
                    1 => spelling.extend([b' ', b]),
                    2 => spelling.extend([b'\r', b'\n', b]),
                    3 if b == b'+' => spelling.push(b'-'),
                    3 if b == b'/' => spelling.push(b'_'),
                    _ => spelling.push(b),
                }
            }
            // Every fourth spelling gets one thing that is not a ticket, somewhere: a bare or
            // broken escape, a stray character, an escape of an escape, padding mid-way.
            if round % 4 == 0 {
                let at = rng.gen_range(0..=spelling.len());
                let defect: &[u8] = [&b"%"[..], b"%G1", b"!", b"%25", b"=A", b"%3DA"].choose(&mut rng).unwrap();
                spelling.splice(at..at, defect.iter().copied());
            }
            let batched = decode_path(&spelling).ok();
            assert_eq!(batched, plain_decode(&spelling), "round {round}: {}", String::from_utf8_lossy(&spelling));
            if round % 4 != 0 {
                assert_eq!(batched.as_deref(), Some(&json[..]), "round {round}");
            }
        }
    }

    #[test]
    fn a_field_given_twice_or_fields_by_position_are_not_a_ticket() {
        let plain = ticket_with(key(), 222, |_| {});
        let json = String::from_utf8(STANDARD.decode(&plain).unwrap()).unwrap();
        let twice = json.replacen('{', r#"{"salt":"AAAA","#, 1);
        let err = verifier().verify(&STANDARD.encode(twice), NOW).unwrap_err();
        assert!(matches!(err, TicketError::Malformed(ref why) if why.contains("duplicate field")), "{err}");
        let fields: Map<String, Value> = serde_json::from_str(&json).unwrap();
        let by_position = serde_json::to_string(&fields.values().collect::<Vec<_>>()).unwrap();
        assert_eq!(verifier().verify(&STANDARD.encode(by_position), NOW).unwrap_err(), TicketError::Malformed("not a JSON object".into()));
    }

    #[test]
    fn a_signature_longer_than_any_key_is_refused_before_decoding() {
        let t = ticket_with(key(), 222, |m| {
            m.insert("v2_signature".into(), Value::String("A".repeat(8192)));
        });
        let err = verifier().verify(&t, NOW).unwrap_err();
        assert!(matches!(err, TicketError::Malformed(ref why) if why.contains("longer than any RSA signature")), "{err}");
    }

    #[test]
    fn garbage() {
        for raw in ["", "!!!", "aGVsbG8=", "W10=", "eyJhIjoxfQ=="] {
            assert!(matches!(verifier().verify(raw, NOW).unwrap_err(), TicketError::Malformed(_)), "{raw}");
        }
        assert!(verifier().verify(&"A".repeat(MAX_TICKET_LEN + 1), NOW).is_err());
    }

    #[test]
    fn legacy_sha1_only_when_enabled() {
        let mut m = Map::new();
        m.insert("salt".into(), Value::String("c2FsdHNhbHQ=".into()));
        m.insert("validFrom".into(), Value::String(format_time(NOW - 10)));
        m.insert("validTo".into(), Value::String(format_time(NOW + 10)));
        m.insert("data".into(), Value::String("%7B%22host%22%3A%22h%22%2C%22port%22%3A%225900%22%7D".into()));
        m.insert("signedFields".into(), Value::String("salt,validFrom,validTo,data".into()));
        let message: String = ["salt", "validFrom", "validTo", "data"].iter().map(|f| m[*f].as_str().unwrap()).collect();
        let sig = key().sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(message.as_bytes())).unwrap();
        m.insert("signature".into(), Value::String(STANDARD.encode(sig)));
        m.insert("digest".into(), Value::String("sha1".into()));
        let t = STANDARD.encode(serde_json::to_vec(&Value::Object(m)).unwrap());
        assert_eq!(verifier().verify(&t, NOW).unwrap_err(), TicketError::LegacyDisabled);
        let legacy = TicketVerifier::from_public_key(key().to_public_key(), true, 5);
        assert_eq!(legacy.verify(&t, NOW).unwrap().target.host, "h");
    }

    #[test]
    fn data_forms() {
        let t = parse_data("%7B%22host%22%3A%22hv%22%2C%22port%22%3A5901%2C%22ssl_target%22%3Atrue%7D").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.ssl_target), ("hv", 5901, true));
        let t = parse_data(r#"{"host":"virt-api","port":"443","path":"/apis/x/vnc","token":"s3cret"}"#).unwrap();
        assert_eq!(t.kubevirt.as_ref().unwrap().path, "/apis/x/vnc");
        assert!(!format!("{t:?}").contains("s3cret"), "token must not be printed");
        assert!(parse_data(r#"{"host":"h","port":"0"}"#).is_err());
        assert!(parse_data(r#"{"host":"h","port":"99999"}"#).is_err());
        assert!(parse_data(r#"{"port":"1"}"#).is_err());
        assert!(parse_data(r#"{"host":"a/b","port":"1"}"#).is_err());
        assert!(parse_data(r#"{"host":"h","port":"1","path":"nope"}"#).is_err());
    }

    #[test]
    fn time_round_trip() {
        assert_eq!(parse_time(&format_time(NOW), "t").unwrap(), NOW);
        assert_eq!(format_time(0), "19700101000000");
        assert!(parse_time("2026-01-01", "t").is_err());
    }
}
