//! oVirt-format `KEY=VALUE` configuration files and flag overrides, turned into one typed
//! [`Config`].
//!
//! Why this shape: the relay must read the very files oVirt's engine-setup writes
//! (`/etc/ovirt-engine/ovirt-websocket-proxy.conf.d/*.conf`), so parsing is shell-like and
//! lenient about keys it does not know (PACKAGE_NAME and friends), but strict about the values
//! of keys it does know: a typo in a port must stop the relay with the file and line, not start
//! it on a default. Every key is defined once in [`key`] (name, help, default) and listed in
//! [`KEYS`]; the command line derives one flag per key from that table, `--help` appends the
//! defaults from it, and wsproxyctl renders configurations through it, so flags, files, help and
//! rendered configurations can never drift apart. Parsing does no I/O; [`Config::check_files`]
//! runs at start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::allow::TargetAllowList;
use crate::real_client::{ClientTrust, ProxyProtocol};

/// One configuration key: its name in oVirt files, what it means and its default. Defined once
/// here and used by the relay's parser, its `--help` (the default is appended, not typed twice)
/// and by wsproxyctl when it renders a configuration, so nothing can write a key the relay
/// does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub help: &'static str,
    /// The value an unset key takes, spelt as in a file and parsed like one; `None` when there
    /// is none or it depends on other keys (the help says how).
    pub default: Option<&'static str>,
}

impl Key {
    /// The help text with the default appended: what `wsproxy --help` shows.
    pub fn help_with_default(&self) -> String {
        match self.default {
            Some(d) => format!("{} (default {d})", self.help),
            None => self.help.to_string(),
        }
    }

    /// One line of an oVirt-format file: `NAME=value`.
    pub fn line(&self, value: impl fmt::Display) -> String {
        format!("{}={value}\n", self.name)
    }
}

/// Every key, by name. Keys without the `WSPROXY_` prefix are oVirt's own.
pub mod key {
    use super::Key;

    pub const PROXY_HOST: Key = Key { name: "PROXY_HOST", help: "Address to listen on; `*` means all addresses", default: Some("*") };
    pub const PROXY_PORT: Key = Key { name: "PROXY_PORT", help: "Port to listen on", default: Some("6100") };
    pub const SOURCE_IS_IPV6: Key = Key {
        name: "SOURCE_IS_IPV6",
        help: "With PROXY_HOST=*: unset listens dual stack on [::] (IPv4 too; 0.0.0.0 where the host has no IPv6), \
               False on 0.0.0.0 only (as oVirt's proxy), True on [::] (dual stack)",
        default: None,
    };
    pub const SSL_CERTIFICATE: Key =
        Key { name: "SSL_CERTIFICATE", help: "PEM certificate chain presented to browsers (leaf first)", default: None };
    pub const SSL_KEY: Key = Key { name: "SSL_KEY", help: "PEM private key of SSL_CERTIFICATE (PKCS#8, PKCS#1 or SEC1)", default: None };
    pub const CERT_FOR_DATA_VERIFICATION: Key =
        Key { name: "CERT_FOR_DATA_VERIFICATION", help: "Engine certificate (PEM) whose key signs console tickets", default: None };
    pub const SSL_ONLY: Key = Key {
        name: "SSL_ONLY",
        help: "Refuse plain ws; refuse to start without certificate files (default True when a certificate is set, else False)",
        default: None,
    };
    pub const SSL_MIN_VERSION: Key =
        Key { name: "SSL_MIN_VERSION", help: "Lowest TLS version: TLSv1.2 or TLSv1.3", default: Some("TLSv1.2") };
    pub const SSL_CIPHERS: Key =
        Key { name: "SSL_CIPHERS", help: "Accepted for compatibility; rustls offers only modern AEAD suites", default: None };
    pub const TRACE_ENABLE: Key = Key { name: "TRACE_ENABLE", help: "Log at debug level", default: Some("False") };
    pub const TRACE_FILE: Key = Key {
        name: "TRACE_FILE",
        help: "Accepted for compatibility and ignored (a warning at start says so): logs go to stderr",
        default: None,
    };
    pub const WSPROXY_TARGET_ALLOW: Key = Key {
        name: "WSPROXY_TARGET_ALLOW",
        help: "Comma-separated CIDRs and host patterns (*.example.com) tickets may point to; empty allows all",
        default: None,
    };
    pub const WSPROXY_TARGET_CA: Key = Key {
        name: "WSPROXY_TARGET_CA",
        help: "PEM CA that VeNCrypt and KubeVirt targets' certificates must chain to; unset accepts any (as oVirt's proxy does)",
        default: None,
    };
    pub const WSPROXY_KUBEVIRT_UNVERIFIED_TLS: Key = Key {
        name: "WSPROXY_KUBEVIRT_UNVERIFIED_TLS",
        help: "Send KubeVirt bearer tokens without WSPROXY_TARGET_CA, to an unverified TLS peer: UNSAFE, for tests only",
        default: Some("False"),
    };
    pub const WSPROXY_ALLOW_LEGACY_SHA1: Key = Key {
        name: "WSPROXY_ALLOW_LEGACY_SHA1",
        help: "Accept old engines' `signature` (RSA PKCS#1 v1.5 SHA-1) tickets",
        default: Some("False"),
    };
    pub const WSPROXY_ALLOW_TICKET_REUSE: Key =
        Key { name: "WSPROXY_ALLOW_TICKET_REUSE", help: "Accept a ticket more than once within its validity", default: Some("False") };
    pub const WSPROXY_TICKET_SKEW: Key =
        Key { name: "WSPROXY_TICKET_SKEW", help: "Clock skew tolerated on ticket validity, seconds, at most 300", default: Some("5") };
    pub const WSPROXY_MAX_SESSIONS: Key =
        Key { name: "WSPROXY_MAX_SESSIONS", help: "Concurrent sessions; more get HTTP 503", default: Some("10000") };
    pub const WSPROXY_MAX_SESSIONS_PER_IP: Key = Key {
        name: "WSPROXY_MAX_SESSIONS_PER_IP",
        help: "Concurrent sessions per client address; more get HTTP 503",
        default: Some("256"),
    };
    pub const WSPROXY_MAX_HANDSHAKES: Key = Key {
        name: "WSPROXY_MAX_HANDSHAKES",
        help: "Connections still in TLS or HTTP handshake; more are closed at once",
        default: Some("1024"),
    };
    pub const WSPROXY_HANDSHAKE_TIMEOUT: Key =
        Key { name: "WSPROXY_HANDSHAKE_TIMEOUT", help: "Seconds for TLS and the HTTP upgrade to complete", default: Some("10") };
    pub const WSPROXY_CONNECT_TIMEOUT: Key =
        Key { name: "WSPROXY_CONNECT_TIMEOUT", help: "Seconds to connect and negotiate with the target", default: Some("10") };
    pub const WSPROXY_IDLE_TIMEOUT: Key = Key {
        name: "WSPROXY_IDLE_TIMEOUT",
        help: "Close a session with no bytes either way for this many seconds; 0 disables",
        default: Some("3600"),
    };
    pub const WSPROXY_MAX_SESSION_SECONDS: Key = Key {
        name: "WSPROXY_MAX_SESSION_SECONDS",
        help: "Close every session this many seconds after it started, whatever it is doing (1008 with the reason); 0 disables",
        default: Some("0"),
    };
    pub const WSPROXY_PING_INTERVAL: Key = Key {
        name: "WSPROXY_PING_INTERVAL",
        help: "Seconds between websocket pings to detect vanished browsers; 0 disables",
        default: Some("30"),
    };
    pub const WSPROXY_MAX_MESSAGE_SIZE: Key = Key {
        name: "WSPROXY_MAX_MESSAGE_SIZE",
        help: "Largest websocket message accepted from a browser, bytes",
        default: Some("1048576"),
    };
    pub const WSPROXY_SHUTDOWN_GRACE: Key =
        Key { name: "WSPROXY_SHUTDOWN_GRACE", help: "Seconds open sessions may continue after SIGTERM", default: Some("30") };
    pub const WSPROXY_DRAIN_NOTICE: Key = Key {
        name: "WSPROXY_DRAIN_NOTICE",
        help: "Seconds after SIGTERM the relay still accepts while /readyz answers 503 (load balancers move away first)",
        default: Some("0"),
    };
    pub const WSPROXY_REUSE_PORT: Key = Key {
        name: "WSPROXY_REUSE_PORT",
        help: "Bind the listeners (browsers', metrics, admin) with SO_REUSEPORT, so a new relay of the same user can listen on the ports before this one stops (hand-over on redeploy)",
        default: Some("False"),
    };
    pub const WSPROXY_CERT_RELOAD_INTERVAL: Key = Key {
        name: "WSPROXY_CERT_RELOAD_INTERVAL",
        help: "Seconds between checks of certificate files for changes; 0 disables",
        default: Some("5"),
    };
    pub const WSPROXY_REPLAY_STORE: Key = Key {
        name: "WSPROXY_REPLAY_STORE",
        help: "Redis or Valkey where used tickets are recorded, so several relays refuse a ticket used on any of them: redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB]; unset keeps them in this process",
        default: None,
    };
    pub const WSPROXY_REPLAY_STORE_PASSWORD_FILE: Key = Key {
        name: "WSPROXY_REPLAY_STORE_PASSWORD_FILE",
        help: "File holding the replay store's password (the URL must not carry one)",
        default: None,
    };
    pub const WSPROXY_REPLAY_STORE_CA: Key = Key {
        name: "WSPROXY_REPLAY_STORE_CA",
        help: "PEM CA a rediss:// store's certificate must chain to; unset uses the system's roots",
        default: None,
    };
    pub const WSPROXY_REPLAY_STORE_FAIL_OPEN: Key = Key {
        name: "WSPROXY_REPLAY_STORE_FAIL_OPEN",
        help: "While the replay store is unreachable, accept tickets without the single-use check (WEAKER: a ticket could then be used twice) instead of answering 503",
        default: Some("False"),
    };
    pub const WSPROXY_REPLAY_STORE_TIMEOUT: Key = Key {
        name: "WSPROXY_REPLAY_STORE_TIMEOUT",
        help: "Seconds a single-use check may take before the store counts as unreachable",
        default: Some("2"),
    };
    pub const WSPROXY_BULK_LANE: Key = Key {
        name: "WSPROXY_BULK_LANE",
        help: "Move streaming sessions (2 MB/s and more) to a runtime of lower priority, so pointer moves are not queued behind video",
        default: Some("True"),
    };
    pub const WSPROXY_BULK_LANE_NICE: Key = Key {
        name: "WSPROXY_BULK_LANE_NICE",
        help: "The bulk lane threads' nice value, 0-19 (0: a run queue of their own at the same priority)",
        default: Some("10"),
    };
    pub const WSPROXY_TRUSTED_PROXIES: Key = Key {
        name: "WSPROXY_TRUSTED_PROXIES",
        help: "Comma-separated CIDRs or addresses of load balancers and proxies believed about the client's address \
               (PROXY protocol header, Forwarded, X-Forwarded-For); empty believes none",
        default: None,
    };
    pub const WSPROXY_PROXY_PROTOCOL: Key = Key {
        name: "WSPROXY_PROXY_PROTOCOL",
        help: "PROXY protocol (v1 or v2) from WSPROXY_TRUSTED_PROXIES: off, optional, or required (their connections \
               without one are closed); other peers never send one",
        default: Some("off"),
    };
    pub const WSPROXY_ADMIN_LISTEN: Key = Key {
        name: "WSPROXY_ADMIN_LISTEN",
        help: "host:port of the admin listener (list and end sessions; TLS with the proxy's certificate); unset disables",
        default: None,
    };
    pub const WSPROXY_ADMIN_CLIENT_CA: Key = Key {
        name: "WSPROXY_ADMIN_CLIENT_CA",
        help: "PEM CA whose client certificates the admin listener admits (the engine CA; `wsproxyctl certs issue --client NAME`)",
        default: None,
    };
    pub const WSPROXY_ADMIN_TOKEN_FILE: Key = Key {
        name: "WSPROXY_ADMIN_TOKEN_FILE",
        help: "File holding a bearer token the admin listener admits (Authorization: Bearer ...)",
        default: None,
    };
    pub const WSPROXY_METRICS_LISTEN: Key =
        Key { name: "WSPROXY_METRICS_LISTEN", help: "host:port for Prometheus metrics (plain http); unset disables", default: None };
    pub const WSPROXY_NOVNC_DIR: Key =
        Key { name: "WSPROXY_NOVNC_DIR", help: "Serve this noVNC directory at /novnc/ (for demos and tests)", default: None };
    pub const WSPROXY_LOG_FORMAT: Key = Key { name: "WSPROXY_LOG_FORMAT", help: "text or json", default: Some("text") };
}

/// Every key the relay understands, in `--help` order.
pub const KEYS: &[Key] = &[
    key::PROXY_HOST,
    key::PROXY_PORT,
    key::SOURCE_IS_IPV6,
    key::SSL_CERTIFICATE,
    key::SSL_KEY,
    key::CERT_FOR_DATA_VERIFICATION,
    key::SSL_ONLY,
    key::SSL_MIN_VERSION,
    key::SSL_CIPHERS,
    key::TRACE_ENABLE,
    key::TRACE_FILE,
    key::WSPROXY_TARGET_ALLOW,
    key::WSPROXY_TARGET_CA,
    key::WSPROXY_KUBEVIRT_UNVERIFIED_TLS,
    key::WSPROXY_ALLOW_LEGACY_SHA1,
    key::WSPROXY_ALLOW_TICKET_REUSE,
    key::WSPROXY_TICKET_SKEW,
    key::WSPROXY_MAX_SESSIONS,
    key::WSPROXY_MAX_SESSIONS_PER_IP,
    key::WSPROXY_MAX_HANDSHAKES,
    key::WSPROXY_HANDSHAKE_TIMEOUT,
    key::WSPROXY_CONNECT_TIMEOUT,
    key::WSPROXY_IDLE_TIMEOUT,
    key::WSPROXY_MAX_SESSION_SECONDS,
    key::WSPROXY_PING_INTERVAL,
    key::WSPROXY_MAX_MESSAGE_SIZE,
    key::WSPROXY_SHUTDOWN_GRACE,
    key::WSPROXY_DRAIN_NOTICE,
    key::WSPROXY_REUSE_PORT,
    key::WSPROXY_CERT_RELOAD_INTERVAL,
    key::WSPROXY_REPLAY_STORE,
    key::WSPROXY_REPLAY_STORE_PASSWORD_FILE,
    key::WSPROXY_REPLAY_STORE_CA,
    key::WSPROXY_REPLAY_STORE_FAIL_OPEN,
    key::WSPROXY_REPLAY_STORE_TIMEOUT,
    key::WSPROXY_BULK_LANE,
    key::WSPROXY_BULK_LANE_NICE,
    key::WSPROXY_TRUSTED_PROXIES,
    key::WSPROXY_PROXY_PROTOCOL,
    key::WSPROXY_ADMIN_LISTEN,
    key::WSPROXY_ADMIN_CLIENT_CA,
    key::WSPROXY_ADMIN_TOKEN_FILE,
    key::WSPROXY_METRICS_LISTEN,
    key::WSPROXY_NOVNC_DIR,
    key::WSPROXY_LOG_FORMAT,
];

/// The largest `WSPROXY_TICKET_SKEW`: a wider window would keep every ticket usable (and
/// remembered) for long after the engine meant it to expire.
pub const MAX_TICKET_SKEW: Duration = Duration::from_secs(300);

/// Lowest TLS protocol version accepted from browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    Tls12,
    Tls13,
}

/// TLS material for the browser-facing listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub min_version: TlsMinVersion,
    /// Whether plain (non-TLS) websocket clients are refused.
    pub ssl_only: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the relay needs to run, typed and validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub engine_cert: Option<PathBuf>,
    pub target_allow: TargetAllowList,
    /// Whom to believe about the client's address (WSPROXY_TRUSTED_PROXIES, WSPROXY_PROXY_PROTOCOL).
    pub client_trust: ClientTrust,
    pub target_ca: Option<PathBuf>,
    /// KubeVirt tokens may go to an unverified TLS peer (explicit, unsafe opt-out).
    pub kubevirt_unverified_tls: bool,
    pub allow_legacy_sha1: bool,
    pub allow_ticket_reuse: bool,
    pub ticket_skew: Duration,
    pub max_sessions: usize,
    pub max_sessions_per_ip: usize,
    /// Connections allowed in TLS or HTTP handshake at once (unauthenticated work).
    pub max_handshakes: usize,
    pub handshake_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// An absolute lifetime for every session (`None`: none).
    pub max_session: Option<Duration>,
    pub ping_interval: Option<Duration>,
    pub max_message_size: usize,
    pub shutdown_grace: Duration,
    /// After SIGTERM, how long the relay goes on accepting (and serving) while `/readyz`
    /// answers 503, before it stops accepting and drains.
    pub drain_notice: Duration,
    /// The listener joins a SO_REUSEPORT group: a successor relay (same user) can listen on
    /// the same port before this one stops accepting.
    pub reuse_port: bool,
    pub cert_reload_interval: Option<Duration>,
    /// Where used tickets are recorded; `None`: in this process.
    pub replay_store: Option<ReplayStoreConfig>,
    /// The bulk lane's nice value; `None`: no bulk lane (every session on the main runtime).
    pub bulk_lane_nice: Option<i32>,
    pub metrics_listen: Option<SocketAddr>,
    /// The admin listener (WSPROXY_ADMIN_*), when enabled.
    pub admin: Option<AdminConfig>,
    pub novnc_dir: Option<PathBuf>,
    pub trace: bool,
    pub log_format: LogFormat,
}

/// The admin listener: where, and who is let in (client certificates, a bearer token or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub client_ca: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

/// A shared replay store (Redis or Valkey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayStoreConfig {
    /// `redis://` or `rediss://`, without a password.
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub fail_open: bool,
    pub timeout: Duration,
}

/// Where a value came from, so an error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File { path: PathBuf, line: usize },
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Origin::Flag => write!(f, "command line"),
        }
    }
}

/// A configuration problem, phrased for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// Raw key/value settings in the order they were given; later ones override earlier ones.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    values: BTreeMap<String, (String, Origin)>,
    /// Keys seen in files that the relay does not use (logged at debug level).
    pub ignored: Vec<(String, Origin)>,
}

impl Settings {
    /// Set a key, overriding any earlier value.
    pub fn set(&mut self, key: Key, value: impl Into<String>, origin: Origin) {
        self.values.insert(key.name.to_string(), (value.into(), origin));
    }

    /// The value of a key, if set.
    pub fn get(&self, key: Key) -> Option<&str> {
        self.values.get(key.name).map(|(v, _)| v.as_str())
    }

    fn origin(&self, key: Key) -> Option<&Origin> {
        self.values.get(key.name).map(|(_, o)| o)
    }

    /// Parse the text of one oVirt-format file into these settings.
    pub fn parse_text(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let origin = Origin::File { path: path.to_path_buf(), line };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed).trim_start();
            let Some((key, value)) = trimmed.split_once('=') else {
                return err(format!("{origin}: expected KEY=VALUE, found {:?}", truncate(trimmed)));
            };
            let key = key.trim();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return err(format!("{origin}: {:?} is not a valid key name", truncate(key)));
            }
            let value = unquote(value.trim()).map_err(|why| ConfigError(format!("{origin}: {key}: {why}")))?;
            if let Some(known) = KEYS.iter().find(|k| k.name == key) {
                self.set(*known, value, origin);
            } else if key.starts_with("WSPROXY_") {
                // Our own prefix: a misspelt key (or one of a newer relay) must not be
                // silently dropped. oVirt's other keys stay ignored.
                return err(format!(
                    "{origin}: {key} is not a key this relay knows{}; see `wsproxy --help` for the keys",
                    nearest_key(key).map(|k| format!(" (did you mean {k}?)")).unwrap_or_default()
                ));
            } else {
                self.ignored.push((key.to_string(), origin));
            }
        }
        Ok(())
    }

    /// Read a file, or every `*.conf` file of a directory in name order.
    pub fn load_path(&mut self, path: &Path) -> Result<(), ConfigError> {
        let meta = std::fs::metadata(path).map_err(|e| ConfigError(format!("cannot read configuration {}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = Vec::new();
            let entries = std::fs::read_dir(path).map_err(|e| ConfigError(format!("cannot list {}: {e}", path.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| ConfigError(format!("cannot list {}: {e}", path.display())))?;
                let file = entry.path();
                if file.extension().is_some_and(|ext| ext == "conf") {
                    // A *.conf entry that cannot be read (a dangling link, a directory) is an
                    // error naming it, never a silently skipped setting.
                    if !file.is_file() {
                        return err(format!(
                            "cannot read configuration {}: not a readable file (a dangling link or a directory?); fix or remove it",
                            file.display()
                        ));
                    }
                    files.push(file);
                }
            }
            files.sort();
            for file in files {
                self.load_file(&file)?;
            }
            Ok(())
        } else {
            self.load_file(path)
        }
    }

    fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read configuration {}: {e}", path.display())))?;
        self.parse_text(&text, path)
    }
}

/// The known `WSPROXY_*` key closest to `key` (edit distance at most 3), for "did you mean".
fn nearest_key(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .filter(|k| k.name.starts_with("WSPROXY_"))
        .map(|k| (edit_distance(key, k.name), k.name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance between two ASCII key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let substitute = previous + usize::from(ca != b[j]);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Strip shell-like quoting: `"..."` (with `\"`, `\\`, `\$` escapes) or `'...'`.
fn unquote(value: &str) -> Result<String, String> {
    if let Some(rest) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => return Err("unterminated escape".into()),
                },
                '"' => {
                    let tail = chars.as_str().trim();
                    if !tail.is_empty() && !tail.starts_with('#') {
                        return Err("unexpected text after closing quote".into());
                    }
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err("missing closing double quote".into())
    } else if let Some(rest) = value.strip_prefix('\'') {
        match rest.split_once('\'') {
            Some((inner, tail)) if tail.trim().is_empty() || tail.trim().starts_with('#') => Ok(inner.to_string()),
            Some(_) => Err("unexpected text after closing quote".into()),
            None => Err("missing closing single quote".into()),
        }
    } else {
        // Unquoted: a trailing ` # comment` is not part of the value.
        let value = match value.find(" #") {
            Some(pos) => &value[..pos],
            None => value,
        };
        Ok(value.trim().to_string())
    }
}

/// Parse oVirt/Python-style booleans.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" | "" => Some(false),
        _ => None,
    }
}

/// Typed reads of settings: a set, non-empty value, else the key's default (parsed like a
/// file's value); errors name the key, its value and where it was set.
struct Values<'a>(&'a Settings);

impl Values<'_> {
    fn value(&self, k: Key) -> Option<&str> {
        self.0.get(k).filter(|v| !v.trim().is_empty()).or(k.default).map(str::trim)
    }

    fn path(&self, k: Key) -> Option<PathBuf> {
        self.value(k).map(PathBuf::from)
    }

    fn bad(&self, k: Key, why: &str) -> ConfigError {
        let origin = self.0.origin(k).map(|o| o.to_string()).unwrap_or_else(|| "default".into());
        ConfigError(format!("{origin}: {}={:?}: {why}", k.name, self.value(k).unwrap_or_default()))
    }

    fn boolean(&self, k: Key) -> Result<bool, ConfigError> {
        match self.0.get(k).or(k.default) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| self.bad(k, "expected True or False")),
        }
    }

    fn number(&self, k: Key) -> Result<u64, ConfigError> {
        match self.value(k) {
            None => Err(self.bad(k, "a number is required")),
            Some(v) => v.parse::<u64>().map_err(|_| self.bad(k, "expected a whole number")),
        }
    }

    fn seconds(&self, k: Key) -> Result<Duration, ConfigError> {
        self.number(k).map(Duration::from_secs)
    }

    /// Seconds where 0 means off.
    fn optional_seconds(&self, k: Key) -> Result<Option<Duration>, ConfigError> {
        let secs = self.number(k)?;
        Ok((secs > 0).then(|| Duration::from_secs(secs)))
    }

    fn bulk_lane_nice(&self) -> Result<Option<i32>, ConfigError> {
        if !self.boolean(key::WSPROXY_BULK_LANE)? {
            return Ok(None);
        }
        let nice = self.number(key::WSPROXY_BULK_LANE_NICE)?;
        if nice > 19 {
            return Err(self.bad(key::WSPROXY_BULK_LANE_NICE, "a nice value is 0-19"));
        }
        Ok(Some(nice as i32))
    }

    fn listen(&self) -> Result<SocketAddr, ConfigError> {
        let host = self.value(key::PROXY_HOST).unwrap_or("*");
        let ip: IpAddr = if host == "*" {
            // Unset or True: [::], which the listener binds dual stack (and as 0.0.0.0 where
            // the host has no IPv6); False keeps oVirt's IPv4-only wildcard.
            if self.value(key::SOURCE_IS_IPV6).is_none() || self.boolean(key::SOURCE_IS_IPV6)? {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        } else {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| self.bad(key::PROXY_HOST, "expected * or an IP address to listen on"))?
        };
        let port = u16::try_from(self.number(key::PROXY_PORT)?).map_err(|_| self.bad(key::PROXY_PORT, "a port is 0-65535"))?;
        Ok(SocketAddr::new(ip, port))
    }

    fn tls(&self) -> Result<Option<TlsFiles>, ConfigError> {
        let certificate = self.path(key::SSL_CERTIFICATE);
        let private_key = self.path(key::SSL_KEY);
        // SSL_ONLY's default depends on the other keys: on when a certificate is configured.
        let ssl_only = match self.0.get(key::SSL_ONLY) {
            None => certificate.is_some() || private_key.is_some(),
            Some(_) => self.boolean(key::SSL_ONLY)?,
        };
        let min_version = match self.value(key::SSL_MIN_VERSION) {
            None | Some("TLSv1.2") => TlsMinVersion::Tls12,
            Some("TLSv1.3") => TlsMinVersion::Tls13,
            Some(_) => return Err(self.bad(key::SSL_MIN_VERSION, "expected TLSv1.2 or TLSv1.3 (older versions are not offered)")),
        };
        match (certificate, private_key) {
            (Some(certificate), Some(key)) => Ok(Some(TlsFiles { certificate, key, min_version, ssl_only })),
            (None, None) if ssl_only => err("SSL_ONLY=True but SSL_CERTIFICATE and SSL_KEY are not set: \
                 set both to the proxy's certificate and key, or set SSL_ONLY=False to serve plain ws"),
            (None, None) => Ok(None),
            (Some(_), None) => err("SSL_CERTIFICATE is set but SSL_KEY is not: set both, or neither for plain ws"),
            (None, Some(_)) => err("SSL_KEY is set but SSL_CERTIFICATE is not: set both, or neither for plain ws"),
        }
    }

    fn ticket_skew(&self) -> Result<Duration, ConfigError> {
        match self.seconds(key::WSPROXY_TICKET_SKEW)? {
            skew if skew > MAX_TICKET_SKEW => {
                Err(self
                    .bad(key::WSPROXY_TICKET_SKEW, "at most 300 seconds: fix the clocks (NTP) instead of widening every ticket's window"))
            }
            skew => Ok(skew),
        }
    }

    fn metrics_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.value(key::WSPROXY_METRICS_LISTEN)
            .map(|v| v.parse::<SocketAddr>().map_err(|_| self.bad(key::WSPROXY_METRICS_LISTEN, "expected host:port, e.g. 127.0.0.1:9100")))
            .transpose()
    }

    fn replay_store(&self) -> Result<Option<ReplayStoreConfig>, ConfigError> {
        let Some(url) = self.value(key::WSPROXY_REPLAY_STORE) else {
            for k in [key::WSPROXY_REPLAY_STORE_PASSWORD_FILE, key::WSPROXY_REPLAY_STORE_CA] {
                if self.value(k).is_some() {
                    return Err(self.bad(k, "set without WSPROXY_REPLAY_STORE: set the store's URL too, or remove this key"));
                }
            }
            return Ok(None);
        };
        let tls = if url.starts_with("rediss://") {
            true
        } else if url.starts_with("redis://") {
            false
        } else {
            return Err(self.bad(key::WSPROXY_REPLAY_STORE, "expected redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB]"));
        };
        let authority = url.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or("")).unwrap_or("");
        if authority.contains('@') {
            // Not echoed back: the value holds a secret.
            let origin = self.0.origin(key::WSPROXY_REPLAY_STORE).map(|o| o.to_string()).unwrap_or_default();
            return err(format!(
                "{origin}: WSPROXY_REPLAY_STORE carries credentials in the URL: \
                 put the password in a file named by WSPROXY_REPLAY_STORE_PASSWORD_FILE"
            ));
        }
        let ca = self.path(key::WSPROXY_REPLAY_STORE_CA);
        if ca.is_some() && !tls {
            return Err(self.bad(key::WSPROXY_REPLAY_STORE_CA, "a CA only applies to rediss:// (TLS) stores"));
        }
        let timeout = self.seconds(key::WSPROXY_REPLAY_STORE_TIMEOUT)?;
        if timeout.is_zero() {
            return Err(self.bad(key::WSPROXY_REPLAY_STORE_TIMEOUT, "must be at least 1 second"));
        }
        Ok(Some(ReplayStoreConfig {
            url: url.to_string(),
            password_file: self.path(key::WSPROXY_REPLAY_STORE_PASSWORD_FILE),
            ca,
            fail_open: self.boolean(key::WSPROXY_REPLAY_STORE_FAIL_OPEN)?,
            timeout,
        }))
    }

    fn log_format(&self) -> Result<LogFormat, ConfigError> {
        match self.value(key::WSPROXY_LOG_FORMAT) {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(_) => Err(self.bad(key::WSPROXY_LOG_FORMAT, "expected text or json")),
        }
    }

    fn admin(&self) -> Result<Option<AdminConfig>, ConfigError> {
        let Some(listen) = self.value(key::WSPROXY_ADMIN_LISTEN) else {
            return Ok(None);
        };
        let listen = listen.parse().map_err(|_| self.bad(key::WSPROXY_ADMIN_LISTEN, "expected host:port, e.g. 127.0.0.1:6101"))?;
        let (client_ca, token_file) = (self.path(key::WSPROXY_ADMIN_CLIENT_CA), self.path(key::WSPROXY_ADMIN_TOKEN_FILE));
        if client_ca.is_none() && token_file.is_none() {
            return Err(self.bad(
                key::WSPROXY_ADMIN_LISTEN,
                "the admin listener needs a way to tell who asks: WSPROXY_ADMIN_CLIENT_CA (client certificates) or \
                 WSPROXY_ADMIN_TOKEN_FILE (a bearer token), or both",
            ));
        }
        if self.value(key::SSL_CERTIFICATE).is_none() {
            return Err(self.bad(key::WSPROXY_ADMIN_LISTEN, "the admin listener speaks TLS only: set SSL_CERTIFICATE and SSL_KEY"));
        }
        Ok(Some(AdminConfig { listen, client_ca, token_file }))
    }

    fn client_trust(&self) -> Result<ClientTrust, ConfigError> {
        let mode = ProxyProtocol::parse(self.value(key::WSPROXY_PROXY_PROTOCOL).unwrap_or("off"))
            .map_err(|why| self.bad(key::WSPROXY_PROXY_PROTOCOL, &why))?;
        let proxies = self.value(key::WSPROXY_TRUSTED_PROXIES).unwrap_or("");
        // A list that does not parse is the list's fault; a header without a list, the mode's.
        let blamed = if proxies.is_empty() { key::WSPROXY_PROXY_PROTOCOL } else { key::WSPROXY_TRUSTED_PROXIES };
        ClientTrust::parse(proxies, mode).map_err(|why| self.bad(blamed, &why))
    }

    fn max_message_size(&self) -> Result<usize, ConfigError> {
        match self.number(key::WSPROXY_MAX_MESSAGE_SIZE)? {
            n if n < 1024 => Err(self.bad(key::WSPROXY_MAX_MESSAGE_SIZE, "must be at least 1024 bytes")),
            n => Ok(n as usize),
        }
    }
}

impl Config {
    /// Build a typed configuration from raw settings, reporting the first bad value with its
    /// origin. No I/O: whether the files exist is [`Config::check_files`]'s job, at start-up.
    pub fn from_settings(s: &Settings) -> Result<Config, ConfigError> {
        let v = Values(s);
        Ok(Config {
            listen: v.listen()?,
            tls: v.tls()?,
            engine_cert: v.path(key::CERT_FOR_DATA_VERIFICATION),
            target_allow: TargetAllowList::parse(v.value(key::WSPROXY_TARGET_ALLOW).unwrap_or(""))
                .map_err(|why| v.bad(key::WSPROXY_TARGET_ALLOW, &why))?,
            target_ca: v.path(key::WSPROXY_TARGET_CA),
            client_trust: v.client_trust()?,
            kubevirt_unverified_tls: v.boolean(key::WSPROXY_KUBEVIRT_UNVERIFIED_TLS)?,
            allow_legacy_sha1: v.boolean(key::WSPROXY_ALLOW_LEGACY_SHA1)?,
            allow_ticket_reuse: v.boolean(key::WSPROXY_ALLOW_TICKET_REUSE)?,
            ticket_skew: v.ticket_skew()?,
            max_sessions: v.number(key::WSPROXY_MAX_SESSIONS)? as usize,
            max_sessions_per_ip: v.number(key::WSPROXY_MAX_SESSIONS_PER_IP)? as usize,
            max_handshakes: v.number(key::WSPROXY_MAX_HANDSHAKES)?.max(1) as usize,
            handshake_timeout: v.seconds(key::WSPROXY_HANDSHAKE_TIMEOUT)?,
            connect_timeout: v.seconds(key::WSPROXY_CONNECT_TIMEOUT)?,
            idle_timeout: v.optional_seconds(key::WSPROXY_IDLE_TIMEOUT)?,
            max_session: v.optional_seconds(key::WSPROXY_MAX_SESSION_SECONDS)?,
            ping_interval: v.optional_seconds(key::WSPROXY_PING_INTERVAL)?,
            max_message_size: v.max_message_size()?,
            shutdown_grace: v.seconds(key::WSPROXY_SHUTDOWN_GRACE)?,
            drain_notice: v.seconds(key::WSPROXY_DRAIN_NOTICE)?,
            reuse_port: v.boolean(key::WSPROXY_REUSE_PORT)?,
            cert_reload_interval: v.optional_seconds(key::WSPROXY_CERT_RELOAD_INTERVAL)?,
            replay_store: v.replay_store()?,
            bulk_lane_nice: v.bulk_lane_nice()?,
            metrics_listen: v.metrics_listen()?,
            admin: v.admin()?,
            novnc_dir: v.path(key::WSPROXY_NOVNC_DIR),
            trace: v.boolean(key::TRACE_ENABLE)?,
            log_format: v.log_format()?,
        })
    }

    /// The files the configuration names exist (checked at start-up, before anything binds),
    /// with the next step when one does not.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        if let Some(admin) = &self.admin {
            for (k, path) in [(key::WSPROXY_ADMIN_CLIENT_CA, &admin.client_ca), (key::WSPROXY_ADMIN_TOKEN_FILE, &admin.token_file)] {
                if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                    return err(format!("{}={} does not exist or is not a file", k.name, path.display()));
                }
            }
        }
        if let Some(store) = &self.replay_store {
            for (k, path) in [(key::WSPROXY_REPLAY_STORE_PASSWORD_FILE, &store.password_file), (key::WSPROXY_REPLAY_STORE_CA, &store.ca)] {
                if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                    return err(format!("{}={} does not exist or is not a file", k.name, path.display()));
                }
            }
        }
        if let Some(tls) = &self.tls {
            for (k, path) in [(key::SSL_CERTIFICATE, &tls.certificate), (key::SSL_KEY, &tls.key)] {
                if !path.is_file() {
                    return err(format!(
                        "{}={} does not exist or is not a file; \
                         issue the proxy certificate with `wsproxyctl certs issue` and point {} at it",
                        k.name,
                        path.display(),
                        k.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The command-line flag for a key: `PROXY_PORT` -> `proxy-port`.
pub fn flag_name(key: &str) -> String {
    key.to_ascii_lowercase().replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        s.parse_text(text, Path::new("10-setup.conf"))?;
        Ok(s)
    }

    #[test]
    fn reads_engine_setup_style_file() {
        let s = parse(
            "# written by engine-setup\nPROXY_PORT=6100\nSSL_CERTIFICATE=\"/etc/pki/ovirt-engine/certs/websocket-proxy.cer\"\n\
             SSL_ONLY=True\nPACKAGE_NAME=\"ovirt-engine\"\nexport TRACE_ENABLE=False\n",
        )
        .unwrap();
        assert_eq!(s.get(key::PROXY_PORT), Some("6100"));
        assert_eq!(s.get(key::SSL_CERTIFICATE), Some("/etc/pki/ovirt-engine/certs/websocket-proxy.cer"));
        assert_eq!(s.get(key::SSL_ONLY), Some("True"));
        assert_eq!(s.get(key::TRACE_ENABLE), Some("False"));
        assert_eq!(s.ignored.len(), 1);
        assert_eq!(s.ignored[0].0, "PACKAGE_NAME");
    }

    #[test]
    fn quoting_and_comments() {
        let s = parse("PROXY_HOST='*'\nSSL_CIPHERS=\"HIGH:\\\"x\\\"\" # note\nPROXY_PORT=6101 # trailing\n").unwrap();
        assert_eq!(s.get(key::PROXY_HOST), Some("*"));
        assert_eq!(s.get(key::SSL_CIPHERS), Some("HIGH:\"x\""));
        assert_eq!(s.get(key::PROXY_PORT), Some("6101"));
    }

    #[test]
    fn later_lines_win() {
        let s = parse("PROXY_PORT=1\nPROXY_PORT=2\n").unwrap();
        assert_eq!(s.get(key::PROXY_PORT), Some("2"));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let e = parse("PROXY_PORT=1\nthis is not a setting\n").unwrap_err();
        assert!(e.0.starts_with("10-setup.conf:2:"), "{e}");
        let e = parse("SSL_KEY=\"/unterminated\n").unwrap_err();
        assert!(e.0.contains("10-setup.conf:1") && e.0.contains("closing double quote"), "{e}");
    }

    #[test]
    fn bad_values_name_origin_and_key() {
        let s = parse("PROXY_PORT=61oo\n").unwrap();
        let e = Config::from_settings(&s).unwrap_err();
        assert!(e.0.contains("10-setup.conf:1") && e.0.contains("PROXY_PORT"), "{e}");
        let s = parse("PROXY_PORT=70000\n").unwrap();
        assert!(Config::from_settings(&s).unwrap_err().0.contains("0-65535"));
        let s = parse("SSL_MIN_VERSION=TLSv1.0\n").unwrap();
        assert!(Config::from_settings(&s).unwrap_err().0.contains("TLSv1.2 or TLSv1.3"));
        let s = parse("SSL_ONLY=maybe\n").unwrap();
        assert!(Config::from_settings(&s).unwrap_err().0.contains("True or False"));
    }

    #[test]
    fn defaults_are_plain_ws_on_6100() {
        let c = Config::from_settings(&Settings::default()).unwrap();
        assert_eq!(c.listen, "[::]:6100".parse().unwrap(), "dual stack unless SOURCE_IS_IPV6=False");
        assert!(c.tls.is_none());
        assert_eq!(c.ticket_skew, Duration::from_secs(5));
        assert!(!c.allow_legacy_sha1);
    }

    #[test]
    fn the_bulk_lane_is_on_at_its_default_nice_unless_told() {
        assert_eq!(Config::from_settings(&Settings::default()).unwrap().bulk_lane_nice, Some(crate::runtime::BULK_NICE));
        assert_eq!(Config::from_settings(&parse("WSPROXY_BULK_LANE_NICE=0\n").unwrap()).unwrap().bulk_lane_nice, Some(0));
        assert_eq!(Config::from_settings(&parse("WSPROXY_BULK_LANE=False\n").unwrap()).unwrap().bulk_lane_nice, None);
        let e = Config::from_settings(&parse("WSPROXY_BULK_LANE_NICE=20\n").unwrap()).unwrap_err();
        assert!(e.0.contains("WSPROXY_BULK_LANE_NICE") && e.0.contains("0-19"), "{e}");
    }

    #[test]
    fn ipv6_wildcard() {
        let s = parse("SOURCE_IS_IPV6=True\n").unwrap();
        assert_eq!(Config::from_settings(&s).unwrap().listen, "[::]:6100".parse().unwrap());
        let s = parse("SOURCE_IS_IPV6=False\n").unwrap();
        assert_eq!(Config::from_settings(&s).unwrap().listen, "0.0.0.0:6100".parse().unwrap(), "oVirt's IPv4-only wildcard");
    }

    #[test]
    fn ssl_only_without_files_refuses() {
        let s = parse("SSL_ONLY=True\n").unwrap();
        let e = Config::from_settings(&s).unwrap_err();
        assert!(e.0.contains("SSL_ONLY=True") && e.0.contains("SSL_CERTIFICATE"), "{e}");
    }

    #[test]
    fn conf_d_directory_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("20-local.conf"), "PROXY_PORT=7000\n").unwrap();
        std::fs::write(dir.path().join("10-setup.conf"), "PROXY_PORT=6100\nPROXY_HOST=127.0.0.1\n").unwrap();
        std::fs::write(dir.path().join("99-ignored.conf.rpmnew"), "PROXY_PORT=1\n").unwrap();
        let mut s = Settings::default();
        s.load_path(dir.path()).unwrap();
        let c = Config::from_settings(&s).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000".parse().unwrap());
    }

    #[test]
    fn an_unreadable_conf_d_entry_stops_the_relay_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-setup.conf"), "PROXY_PORT=6100\n").unwrap();
        std::os::unix::fs::symlink("/nonexistent/target.conf", dir.path().join("20-gone.conf")).unwrap();
        let e = Settings::default().load_path(dir.path()).unwrap_err();
        assert!(e.0.contains("20-gone.conf") && e.0.contains("fix or remove it"), "{e}");
        std::fs::remove_file(dir.path().join("20-gone.conf")).unwrap();
        std::fs::create_dir(dir.path().join("30-dir.conf")).unwrap();
        let e = Settings::default().load_path(dir.path()).unwrap_err();
        assert!(e.0.contains("30-dir.conf"), "{e}");
    }

    #[test]
    fn ticket_skew_is_bounded() {
        assert_eq!(Config::from_settings(&parse("WSPROXY_TICKET_SKEW=300\n").unwrap()).unwrap().ticket_skew, MAX_TICKET_SKEW);
        let e = Config::from_settings(&parse("WSPROXY_TICKET_SKEW=301\n").unwrap()).unwrap_err();
        assert!(e.0.contains("WSPROXY_TICKET_SKEW") && e.0.contains("at most 300"), "{e}");
    }

    #[test]
    fn an_unknown_wsproxy_key_is_an_error_naming_the_nearest_key() {
        let e = parse("PACKAGE_NAME=ovirt\nWSPROXY_MAX_SESION=5\n").unwrap_err();
        assert!(e.0.contains(":2: WSPROXY_MAX_SESION") && e.0.contains("did you mean WSPROXY_MAX_SESSIONS?"), "{e}");
        let e = parse("WSPROXY_FROM_THE_FUTURE=1\n").unwrap_err();
        assert!(e.0.contains("WSPROXY_FROM_THE_FUTURE is not a key this relay knows;"), "{e}");
        // oVirt's own keys the relay does not use stay ignored.
        assert_eq!(parse("PACKAGE_NAME=ovirt\nFORCE_DATA_VERIFICATION=True\n").unwrap().ignored.len(), 2);
    }

    #[test]
    fn every_key_is_defined_once_and_its_default_is_what_an_unset_key_gives() {
        let names: std::collections::BTreeSet<_> = KEYS.iter().map(|k| k.name).collect();
        assert_eq!(names.len(), KEYS.len(), "a key is listed twice");
        for k in KEYS {
            assert!(!(k.default.is_some() && k.help.contains("(default")), "{}: the default is typed twice", k.name);
        }
        // Each default, written into a file, gives the same configuration as leaving it unset.
        let unset = Config::from_settings(&Settings::default()).unwrap();
        let mut written = Settings::default();
        let text: String = KEYS.iter().filter_map(|k| k.default.map(|d| k.line(d))).collect();
        written.parse_text(&text, Path::new("defaults.conf")).unwrap();
        let explicit = Config::from_settings(&written).unwrap();
        assert_eq!(format!("{unset:?}"), format!("{explicit:?}"));
        assert_eq!(unset.listen.port().to_string(), key::PROXY_PORT.default.unwrap());
        assert_eq!(unset.max_message_size.to_string(), key::WSPROXY_MAX_MESSAGE_SIZE.default.unwrap());
        assert!(key::WSPROXY_IDLE_TIMEOUT.help_with_default().ends_with("; 0 disables (default 3600)"));
    }

    #[test]
    fn parsing_does_no_io_and_start_up_checks_the_files() {
        let mut s = Settings::default();
        s.set(key::SSL_CERTIFICATE, "/nonexistent/proxy.cer", Origin::Flag);
        s.set(key::SSL_KEY, "/nonexistent/proxy.key", Origin::Flag);
        let c = Config::from_settings(&s).unwrap();
        let e = c.check_files().unwrap_err();
        assert!(e.0.starts_with("SSL_CERTIFICATE=/nonexistent/proxy.cer does not exist") && e.0.contains("certs issue"), "{e}");
    }

    #[test]
    fn flag_names_follow_keys() {
        assert_eq!(flag_name("PROXY_PORT"), "proxy-port");
        assert_eq!(flag_name("WSPROXY_TARGET_ALLOW"), "wsproxy-target-allow");
    }
}
