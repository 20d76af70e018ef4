//! Everything a deployment is rendered into, from one [`DeploySpec`]: the relay's oVirt-format
//! configuration, Kubernetes objects ([`k8s`]), the Helm chart's values ([`helm`]) and Podman
//! units ([`podman`]). Pure functions: spec and certificates in, text out; writing files is the
//! caller's.

pub mod helm;
pub mod k8s;
pub mod podman;
pub mod ways_in;

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
    /// Where the spec's `targetCa` is inside the container.
    pub target_ca: &'a str,
    /// Where the replay store's password and CA are inside the container.
    pub replay_password: &'a str,
    pub replay_ca: &'a str,
    /// The CA that signed the relay's certificate (client certificates for the admin listener).
    pub ca: &'a str,
    /// The admin listener's bearer token.
    pub admin_token: &'a str,
}

/// Where the replay store's password and CA appear inside the Kubernetes pod.
pub const REPLAY_PASSWORD_FILE: &str = "/etc/wsproxy/replay-store/password";
pub const REPLAY_CA_FILE: &str = "/etc/wsproxy/replay-store-ca/ca.crt";
/// Where the admin listener's token (`admin.tokenSecret`) appears inside the Kubernetes pod.
pub const ADMIN_TOKEN_FILE: &str = "/etc/wsproxy/admin-token/token";

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
    if spec.target_ca_pem.is_some() {
        s += &key::WSPROXY_TARGET_CA.line(paths.target_ca);
    }
    if !spec.trusted_proxies.is_empty() {
        s += &key::WSPROXY_TRUSTED_PROXIES.line(spec.trusted_proxies.join(","));
    }
    if spec.proxy_protocol != crate::spec::ProxyProtocolMode::Off {
        s += &key::WSPROXY_PROXY_PROTOCOL.line(spec.proxy_protocol.as_str());
    }
    if let Some(store) = &spec.replay_store {
        s += &key::WSPROXY_REPLAY_STORE.line(&store.url);
        if store.password_secret.is_some() || store.files.password.is_some() {
            s += &key::WSPROXY_REPLAY_STORE_PASSWORD_FILE.line(paths.replay_password);
        }
        if store.ca_secret.is_some() || store.files.ca_pem.is_some() {
            s += &key::WSPROXY_REPLAY_STORE_CA.line(paths.replay_ca);
        }
        if store.fail_open {
            s += &key::WSPROXY_REPLAY_STORE_FAIL_OPEN.line("True");
        }
    }
    if spec.max_session_seconds > 0 {
        s += &key::WSPROXY_MAX_SESSION_SECONDS.line(spec.max_session_seconds);
    }
    if let Some(admin) = &spec.admin {
        s += &key::WSPROXY_ADMIN_LISTEN.line(format!("[::]:{}", admin.port));
        if admin.client_certificates {
            s += &key::WSPROXY_ADMIN_CLIENT_CA.line(paths.ca);
        }
        if admin.token.is_some() || admin.token_secret.is_some() {
            s += &key::WSPROXY_ADMIN_TOKEN_FILE.line(paths.admin_token);
        }
    }
    s += &key::WSPROXY_LOG_FORMAT.line("json");
    s
}

/// A `targetAllow` entry as a NetworkPolicy CIDR (an address gets /32 or /128), or `None` for a
/// name pattern, which a NetworkPolicy cannot express.
pub fn egress_cidr(entry: &str) -> Option<String> {
    let entry = entry.trim();
    if let Some((addr, bits)) = entry.split_once('/') {
        let cidr = addr.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok();
        return cidr.then(|| entry.to_string());
    }
    match entry.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(_) => Some(format!("{entry}/32")),
        std::net::IpAddr::V6(_) => Some(format!("{entry}/128")),
    }
}

/// The TCP port of a `redis://` or `rediss://` URL (6379 when it names none).
pub fn replay_store_port(url: &str) -> u16 {
    let authority = url.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or("")).unwrap_or("");
    let port = match authority.rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => port.parse().ok(),
        _ => None,
    };
    port.unwrap_or(6379)
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

/// [`selector`] as a label selector for list calls (`-l` form): what status and logs use to
/// find the relay's pods. Name first, as kubectl users write it.
pub fn pod_selector() -> String {
    format!("app.kubernetes.io/name={APP},app.kubernetes.io/instance={NAME}")
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
        if let Some(parent) = path.parent().filter(|p| *p != dir) {
            ensure_dir(parent)?;
        }
        write_atomic(&path, f.contents.as_bytes(), f.mode)?;
        written.push(path);
    }
    Ok(written)
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
    fn target_ca_is_named_where_each_target_puts_it() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, _) = crate::spec::tests::spec_with_target_ca(dir.path());
        assert!(k8s::conf(&spec).contains("WSPROXY_TARGET_CA=/etc/wsproxy/conf.d/target-ca.pem"));
        let cm = k8s::config_map(&spec).data.unwrap();
        assert_eq!(cm.get(k8s::TARGET_CA_FILE), spec.target_ca_pem.as_ref());
        assert!(podman::conf(&spec, podman::Placement::InPlace).contains("WSPROXY_TARGET_CA=/run/secrets/wsproxy-target-ca"));
        assert!(podman::secret_names().contains(&podman::TARGET_CA_SECRET.to_string()), "undeploy removes it too");
    }

    #[test]
    fn egress_cidrs_and_store_ports() {
        assert_eq!(egress_cidr("192.168.10.0/24").as_deref(), Some("192.168.10.0/24"));
        assert_eq!(egress_cidr("10.1.2.3").as_deref(), Some("10.1.2.3/32"));
        assert_eq!(egress_cidr("fd00::1").as_deref(), Some("fd00::1/128"));
        assert_eq!(egress_cidr("*.hosts.example.com"), None);
        assert_eq!(egress_cidr("host.example.com"), None);
        assert_eq!(replay_store_port("redis://valkey:6380/2"), 6380);
        assert_eq!(replay_store_port("rediss://valkey.consoles.svc"), 6379);
        assert_eq!(replay_store_port("redis://[fd00::5]:7000"), 7000);
        assert_eq!(replay_store_port("redis://[fd00::5]"), 6379);
    }

    #[test]
    fn egress_is_limited_only_when_target_allow_holds_addresses_alone() {
        let load = |text: &str| {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("spec.yaml");
            std::fs::write(&file, format!("proxyFqdn: p.example.com\n{text}")).unwrap();
            DeploySpec::load(Some(&file), &crate::spec::Overrides::default()).unwrap()
        };
        let open = k8s::network_policy(&load("targetAllow: ['192.168.10.0/24', '*.hosts.example.com']\n"));
        let spec = open.spec.unwrap();
        assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
        assert!(spec.egress.is_none());
        let fenced =
            k8s::network_policy(&load("targetAllow: ['192.168.10.0/24', '10.1.2.3']\nreplayStore: {url: 'redis://valkey:6380'}\n"));
        let spec = serde_json::to_value(fenced.spec.unwrap()).unwrap();
        assert_eq!(spec["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
        assert_eq!(spec["egress"][0]["to"][1]["ipBlock"]["cidr"], "10.1.2.3/32");
        assert_eq!(spec["egress"][1]["ports"][0]["port"], 53);
        assert_eq!(spec["egress"][2]["ports"][0]["port"], 6380);
    }

    #[test]
    fn the_pod_selector_selects_exactly_the_selector_labels() {
        let parsed: BTreeMap<String, String> =
            pod_selector().split(',').map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect();
        assert_eq!(parsed, selector());
    }

    #[test]
    fn the_rendered_relay_conf_is_read_by_the_relay_key_for_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spec.yaml");
        std::fs::write(dir.path().join("admin-token"), "0123456789abcdef0123\n").unwrap();
        let behind_a_balancer =
            "trustedProxies: ['10.0.0.0/8', 'fd00::1']\nproxyProtocol: required\nadmin: {port: 6200, tokenFile: admin-token}\n\
             maxSessionSeconds: 28800\n";
        std::fs::write(&file, format!("{}\n{behind_a_balancer}", crate::spec::EXAMPLE)).unwrap();
        let spec = DeploySpec::load(Some(&file), &crate::spec::Overrides::default()).unwrap();
        assert!(!spec.target_allow.is_empty());
        let text = relay_conf(
            &spec,
            &CertPaths {
                cert: "/c/tls.crt",
                key: "/c/tls.key",
                engine: "/c/engine.cer",
                target_ca: "/c/ca",
                replay_password: "/c/p",
                replay_ca: "/c/rca",
                ca: "/c/ca.crt",
                admin_token: "/c/token",
            },
        );
        let mut settings = wsproxy::config::Settings::default();
        settings.parse_text(&text, std::path::Path::new("wsproxy.conf")).unwrap();
        assert!(settings.ignored.is_empty(), "keys the relay does not read: {:?}", settings.ignored);
        let config = wsproxy::Config::from_settings(&settings).unwrap();
        assert_eq!(config.listen.port(), spec.port);
        assert!(config.tls.is_some_and(|t| t.ssl_only));
        assert_eq!(config.log_format, wsproxy::config::LogFormat::Json);
        assert_eq!(config.engine_cert.as_deref(), Some(std::path::Path::new("/c/engine.cer")));
        use wsproxy::real_client::{ClientTrust, ProxyProtocol};
        assert_eq!(config.client_trust, ClientTrust::parse("10.0.0.0/8,fd00::1", ProxyProtocol::Required).unwrap());
        assert_eq!(config.max_session, Some(std::time::Duration::from_secs(28800)));
        let admin = config.admin.expect("admin: reaches the relay");
        assert_eq!(admin.listen, "[::]:6200".parse().unwrap());
        assert_eq!(admin.client_ca.as_deref(), Some(std::path::Path::new("/c/ca.crt")), "client certificates by default");
        assert_eq!(admin.token_file.as_deref(), Some(std::path::Path::new("/c/token")));
        assert!(config.drain_notice.is_zero(), "podman has no Service to leave: no notice");
        // relay_conf itself leaves the drain to each target (below).
        assert_eq!(config.shutdown_grace, std::time::Duration::from_secs(30));

        // The pods' configuration adds the drain notice, which the relay reads as such.
        let mut settings = wsproxy::config::Settings::default();
        settings.parse_text(&k8s::conf(&spec), std::path::Path::new("10-setup.conf")).unwrap();
        assert!(settings.ignored.is_empty(), "keys the relay does not read: {:?}", settings.ignored);
        let config = wsproxy::Config::from_settings(&settings).unwrap();
        assert_eq!(config.drain_notice, std::time::Duration::from_secs(k8s::DRAIN_NOTICE_SECS.into()));
        assert_eq!(config.shutdown_grace, std::time::Duration::from_secs(crate::spec::DEFAULT_DRAIN_SECS_K8S.into()));

        // drainSeconds reaches both targets' relays, and podman's stop timeout is above it.
        let mut spec = spec;
        spec.drain_seconds = Some(600);
        for text in [k8s::conf(&spec), podman::conf(&spec, podman::Placement::InPlace), podman::conf(&spec, podman::Placement::HandOver)] {
            let mut settings = wsproxy::config::Settings::default();
            settings.parse_text(&text, std::path::Path::new("conf")).unwrap();
            let config = wsproxy::Config::from_settings(&settings).unwrap();
            assert_eq!(config.shutdown_grace, std::time::Duration::from_secs(600), "{text}");
        }
        assert_eq!(podman::stop_timeout_secs(&spec, podman::Placement::InPlace), 610);
        assert_eq!(podman::stop_timeout_secs(&spec, podman::Placement::HandOver), 610);
        assert_eq!(k8s::termination_grace_secs(&spec), 615);
    }

    /// `admin:` on Kubernetes: the relay reads the mounted CA and the operator's token Secret,
    /// the pod names the port, and nothing else leads to it (no Service port, no NetworkPolicy
    /// rule): operators come through `kubectl port-forward`, one pod at a time.
    #[test]
    fn the_admin_listener_on_kubernetes_is_reached_only_through_port_forward() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deploy.yaml");
        std::fs::write(&file, "proxyFqdn: p.example\nadmin: {port: 6200, tokenSecret: ops-token}\n").unwrap();
        let spec = DeploySpec::load(Some(&file), &Default::default()).unwrap();
        let mut settings = wsproxy::config::Settings::default();
        settings.parse_text(&k8s::conf(&spec), std::path::Path::new("10-setup.conf")).unwrap();
        let admin = wsproxy::Config::from_settings(&settings).unwrap().admin.unwrap();
        assert_eq!(admin.client_ca.as_deref(), Some(std::path::Path::new("/etc/wsproxy/certs/ca.crt")));
        assert_eq!(admin.token_file.as_deref(), Some(std::path::Path::new(ADMIN_TOKEN_FILE)));

        let objs = k8s::objects(&spec, None);
        let find = |kind: &str| objs.iter().find(|o| o["kind"] == kind).unwrap().clone();
        let pod = find("Deployment")["spec"]["template"]["spec"].clone();
        let ports = &pod["containers"][0]["ports"];
        assert_eq!(ports[1], serde_json::json!({"name": "admin", "containerPort": 6200, "protocol": "TCP"}));
        let token = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "admin-token").unwrap();
        assert_eq!(token["secret"]["secretName"], "ops-token");
        assert_eq!(token["secret"]["items"][0]["key"], "token");
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        assert!(mounts.iter().any(|m| m["name"] == "admin-token" && m["mountPath"] == "/etc/wsproxy/admin-token"), "{mounts:?}");
        let service = find("Service").to_string();
        let policy = find("NetworkPolicy").to_string();
        assert!(!service.contains("6200") && !policy.contains("6200") && !policy.contains("\"admin\""), "{service}\n{policy}");
    }

    /// `metrics:` reaches the relay as a dual-stack /metrics listener on its own port, the pod
    /// names that port, the NetworkPolicy admits it, and only the metrics Service (which the
    /// ServiceMonitor selects) exposes it.
    #[test]
    fn metrics_are_wired_from_the_relay_to_the_service_monitor() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deploy.yaml");
        std::fs::write(&file, "proxyFqdn: p.example\nmetrics: {port: 9200, serviceMonitor: true}\n").unwrap();
        let spec = DeploySpec::load(Some(&file), &Default::default()).unwrap();
        let mut settings = wsproxy::config::Settings::default();
        settings.parse_text(&k8s::conf(&spec), std::path::Path::new("10-setup.conf")).unwrap();
        let config = wsproxy::Config::from_settings(&settings).unwrap();
        assert_eq!(config.metrics_listen, Some("[::]:9200".parse().unwrap()));

        let objs = k8s::objects(&spec, None);
        let find = |kind: &str, name: &str| objs.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name).unwrap().clone();
        let ports = &find("Deployment", "wsproxy")["spec"]["template"]["spec"]["containers"][0]["ports"];
        assert_eq!(ports[1], serde_json::json!({"name": "metrics", "containerPort": 9200, "protocol": "TCP"}));
        let ingress = &find("NetworkPolicy", "wsproxy")["spec"]["ingress"];
        assert_eq!((ingress[0]["ports"][0]["port"].as_u64(), ingress[1]["ports"][0]["port"].as_u64()), (Some(6100), Some(9200)));
        let browsers = find("Service", "wsproxy");
        assert_eq!(browsers["spec"]["ports"].as_array().unwrap().len(), 1, "the browsers' Service never exposes metrics");
        let metrics = find("Service", k8s::METRICS_SERVICE_NAME);
        assert_eq!(metrics["spec"]["type"], "ClusterIP");
        assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "metrics");
        let monitor = find("ServiceMonitor", "wsproxy");
        let wanted = monitor["spec"]["selector"]["matchLabels"].as_object().unwrap();
        for (service, selected) in [(&metrics, true), (&browsers, false)] {
            let labels = &service["metadata"]["labels"];
            assert_eq!(wanted.iter().all(|(k, v)| &labels[k] == v), selected, "{labels}");
        }
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");

        // Podman hosts are refused rather than silently given nothing; the port is its own.
        assert!(spec.check_podman().unwrap_err().to_string().contains("metrics"));
        std::fs::write(&file, "proxyFqdn: p.example\nexpose: {openshiftRoute: true}\n").unwrap();
        let exposed = DeploySpec::load(Some(&file), &Default::default()).unwrap();
        assert!(exposed.check_podman().unwrap_err().to_string().contains("expose"));
        std::fs::write(&file, "proxyFqdn: p.example\nmetrics: {port: 6100}\n").unwrap();
        assert!(DeploySpec::load(Some(&file), &Default::default()).unwrap_err().to_string().contains("metrics.port"));
    }
}
