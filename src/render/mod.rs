//! Everything a deployment is rendered into, from one [`DeploySpec`]: the relay's oVirt-format
//! configuration, Kubernetes objects ([`k8s`]) and Podman units ([`podman`]). Pure functions:
//! spec and certificates in, text out; writing files is the caller's.

pub mod k8s;
pub mod podman;

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;
use crate::fsutil::{ensure_dir, write_atomic};
use crate::spec::DeploySpec;

pub const APP: &str = "ovirt-websocket-proxy";
pub const NAME: &str = "wsproxy";
pub const MANAGED_BY: &str = "wsproxyctl";

/// Where the relay finds its files inside a container.
pub struct CertPaths<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub engine: &'a str,
}

/// Where the replay store's password and CA appear inside the Kubernetes pod.
pub const REPLAY_PASSWORD_FILE: &str = "/etc/wsproxy/replay-store/password";
pub const REPLAY_CA_FILE: &str = "/etc/wsproxy/replay-store-ca/ca.crt";

/// The relay configuration in oVirt's KEY=VALUE format (the same keys engine-setup writes).
/// Every line comes from the relay's own key table ([`wsproxy::config::key`]), so this cannot
/// write a key the relay does not read.
pub fn relay_conf(spec: &DeploySpec, paths: &CertPaths) -> String {
    use wsproxy::config::key;
    let mut s = String::from("# Rendered by wsproxyctl from the deployment spec (oVirt ovirt-websocket-proxy format).\n");
    s += &key::PROXY_HOST.line("*");
    s += &key::PROXY_PORT.line(spec.port);
    s += &key::SSL_CERTIFICATE.line(paths.cert);
    s += &key::SSL_KEY.line(paths.key);
    s += &key::CERT_FOR_DATA_VERIFICATION.line(paths.engine);
    s += &key::SSL_ONLY.line("True");
    s += &key::SSL_MIN_VERSION.line("TLSv1.2");
    if !spec.target_allow.is_empty() {
        s += &key::WSPROXY_TARGET_ALLOW.line(spec.target_allow.join(","));
    }
    if let Some(store) = &spec.replay_store {
        s += &key::WSPROXY_REPLAY_STORE.line(&store.url);
        if store.password_secret.is_some() {
            s += &key::WSPROXY_REPLAY_STORE_PASSWORD_FILE.line(REPLAY_PASSWORD_FILE);
        }
        if store.ca_secret.is_some() {
            s += &key::WSPROXY_REPLAY_STORE_CA.line(REPLAY_CA_FILE);
        }
        if store.fail_open {
            s += &key::WSPROXY_REPLAY_STORE_FAIL_OPEN.line("True");
        }
    }
    s += &key::WSPROXY_LOG_FORMAT.line("json");
    s
}

/// Labels on every object: the standard app labels plus the spec's own.
pub fn labels(spec: &DeploySpec) -> BTreeMap<String, String> {
    let mut l = spec.labels.clone();
    l.insert("app.kubernetes.io/name".into(), APP.into());
    l.insert("app.kubernetes.io/instance".into(), NAME.into());
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l
}

/// The labels that select the relay's pods (stable across upgrades).
pub fn selector() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_string(), APP.to_string()), ("app.kubernetes.io/instance".to_string(), NAME.to_string())])
}

/// A rendered file.
pub struct File {
    pub name: String,
    pub contents: String,
    pub mode: u32,
}

/// Write rendered files into `dir` (atomically each).
pub fn write_all(dir: &Path, files: &[File]) -> Result<Vec<std::path::PathBuf>> {
    ensure_dir(dir)?;
    let mut written = Vec::new();
    for f in files {
        let path = dir.join(&f.name);
        write_atomic(&path, f.contents.as_bytes(), f.mode)?;
        written.push(path);
    }
    Ok(written)
}

/// Helm values equivalent to a spec and its certificates: `helm template` with them yields
/// the objects `render --target k8s` writes (a test holds the two to that).
pub fn helm_values(spec: &DeploySpec, bundle: &crate::pki::bundle::Bundle) -> String {
    use serde_json::json;
    let text = |v: &[u8]| String::from_utf8_lossy(v).to_string();
    let mut v = serde_json::to_value(spec).expect("spec serializes");
    let obj = v.as_object_mut().expect("object");
    obj.remove("certs");
    obj.remove("podman");
    obj.insert(
        "certificates".into(),
        json!({
            "caCrt": text(&bundle.ca_pem),
            "engineCer": text(&bundle.engine_pem),
            "tlsCrt": text(&bundle.cert_pem),
            "tlsKey": text(&bundle.key_pem),
        }),
    );
    serde_yaml::to_string(&v).expect("values serialize")
}

/// sha256 hex of text.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_relay_conf_is_read_by_the_relay_key_for_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spec.yaml");
        std::fs::write(&file, crate::spec::EXAMPLE).unwrap();
        let spec = DeploySpec::load(Some(&file), &crate::spec::Overrides::default()).unwrap();
        assert!(!spec.target_allow.is_empty());
        let text = relay_conf(&spec, &CertPaths { cert: "/c/tls.crt", key: "/c/tls.key", engine: "/c/engine.cer" });
        let mut settings = wsproxy::config::Settings::default();
        settings.parse_text(&text, std::path::Path::new("wsproxy.conf")).unwrap();
        assert!(settings.ignored.is_empty(), "keys the relay does not read: {:?}", settings.ignored);
        let config = wsproxy::Config::from_settings(&settings).unwrap();
        assert_eq!(config.listen.port(), spec.port);
        assert!(config.tls.is_some_and(|t| t.ssl_only));
        assert_eq!(config.log_format, wsproxy::config::LogFormat::Json);
        assert_eq!(config.engine_cert.as_deref(), Some(std::path::Path::new("/c/engine.cer")));
    }
}
