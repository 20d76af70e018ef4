//! Why the relay could not start: typed, so a caller can tell which key, which file and which
//! io error, while `Display` keeps the operator-facing wording (the cause and the next step).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{key, ConfigError, Key};

#[derive(Debug)]
pub enum StartError {
    /// A configuration value only start-up can check (a file that does not exist).
    Config(ConfigError),
    /// CERT_FOR_DATA_VERIFICATION is unset: tickets could not be verified.
    NoEngineCert,
    /// The engine certificate could not be read.
    ReadEngineCert { path: PathBuf, source: std::io::Error },
    /// The engine certificate was read but cannot verify tickets.
    BadEngineCert { path: PathBuf, why: String },
    /// The proxy's certificate or key (SSL_CERTIFICATE, SSL_KEY) is unusable; the message
    /// names the file.
    ProxyCert(String),
    /// WSPROXY_TARGET_CA is unusable; the message names the file.
    TargetCa(String),
    /// The replay store's settings or files are unusable.
    ReplayStore(String),
    /// The browser-facing TLS configuration could not be built.
    Tls(String),
    /// The admin listener's CA or token file is unusable; the message names the file.
    Admin(String),
    /// A listener could not bind; `keys` names the settings that chose the address.
    Listen { keys: &'static str, addr: SocketAddr, source: std::io::Error },
}

impl StartError {
    /// The configuration key the failure is about, when there is one.
    pub fn key(&self) -> Option<Key> {
        match self {
            StartError::NoEngineCert | StartError::ReadEngineCert { .. } | StartError::BadEngineCert { .. } => {
                Some(key::CERT_FOR_DATA_VERIFICATION)
            }
            StartError::TargetCa(_) => Some(key::WSPROXY_TARGET_CA),
            StartError::ReplayStore(_) => Some(key::WSPROXY_REPLAY_STORE),
            StartError::Listen { keys, .. } if *keys == key::WSPROXY_METRICS_LISTEN.name => Some(key::WSPROXY_METRICS_LISTEN),
            _ => None,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::NoEngineCert => f.write_str(
                "CERT_FOR_DATA_VERIFICATION is not set: the relay needs the engine certificate to verify console tickets \
                 (on an engine host: /etc/pki/ovirt-engine/certs/engine.cer; `wsproxyctl certs fetch` downloads it)",
            ),
            StartError::ReadEngineCert { path, source } => write!(f, "cannot read CERT_FOR_DATA_VERIFICATION {}: {source}", path.display()),
            StartError::BadEngineCert { path, why } => write!(f, "CERT_FOR_DATA_VERIFICATION {}: {why}", path.display()),
            StartError::ProxyCert(why)
            | StartError::TargetCa(why)
            | StartError::ReplayStore(why)
            | StartError::Tls(why)
            | StartError::Admin(why) => f.write_str(why),
            StartError::Listen { keys, addr, source } => write!(f, "cannot listen on {addr} ({keys}): {source}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::ReadEngineCert { source, .. } | StartError::Listen { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, Settings};
    use crate::{Config, Relay};

    async fn start(settings: &[(Key, &str)]) -> StartError {
        let mut s = Settings::default();
        s.set(key::PROXY_HOST, "127.0.0.1", Origin::Flag);
        s.set(key::PROXY_PORT, "0", Origin::Flag);
        for (k, v) in settings {
            s.set(*k, *v, Origin::Flag);
        }
        match Relay::bind(Config::from_settings(&s).unwrap()).await {
            Ok(_) => panic!("the relay started"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn start_up_failures_name_the_key_the_file_and_the_io_error() {
        let e = start(&[]).await;
        assert!(matches!(e, StartError::NoEngineCert) && e.key() == Some(key::CERT_FOR_DATA_VERIFICATION), "{e}");

        let e = start(&[(key::CERT_FOR_DATA_VERIFICATION, "/nonexistent/engine.cer")]).await;
        let StartError::ReadEngineCert { path, source } = &e else { panic!("{e:?}") };
        assert_eq!(path, &PathBuf::from("/nonexistent/engine.cer"));
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("cannot read CERT_FOR_DATA_VERIFICATION /nonexistent/engine.cer: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());

        let e = start(&[(key::SSL_CERTIFICATE, "/nonexistent/p.cer"), (key::SSL_KEY, "/nonexistent/p.key")]).await;
        assert!(matches!(&e, StartError::Config(c) if c.0.contains("SSL_CERTIFICATE=/nonexistent/p.cer does not exist")), "{e}");
    }
}
