//! The deployment description: one typed value that feeds every output (flags, `-f deploy.yaml`,
//! Kubernetes objects, the Helm chart's values, Quadlet units), so they cannot drift apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Failure, Result};

pub const DEFAULT_IMAGE: &str = crate::image::DEFAULT_TAG;
pub const DEFAULT_NAMESPACE: &str = "ovirt-websocket-proxy";
pub const DEFAULT_PORT: u16 = 6100;

/// Whether the trusted proxies send a PROXY protocol header: the relay's
/// `WSPROXY_PROXY_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolMode {
    #[default]
    Off,
    /// Read one when a trusted proxy sends it.
    Optional,
    /// A trusted proxy's connection without one is closed.
    Required,
}

impl ProxyProtocolMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyProtocolMode::Off => "off",
            ProxyProtocolMode::Optional => "optional",
            ProxyProtocolMode::Required => "required",
        }
    }

    fn is_off(&self) -> bool {
        *self == ProxyProtocolMode::Off
    }
}

/// How a Kubernetes Service exposes the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default, clap::ValueEnum)]
pub enum ServiceType {
    // Flag values spelled as Kubernetes (and `kubectl expose --type`) spells them; the earlier
    // kebab-case values stay accepted.
    #[default]
    #[value(name = "LoadBalancer", alias = "load-balancer")]
    LoadBalancer,
    #[value(name = "NodePort", alias = "node-port")]
    NodePort,
    /// Reached through something else in the cluster: an Ingress, a Gateway's TLSRoute, an
    /// OpenShift Route.
    #[value(name = "ClusterIP", alias = "cluster-ip")]
    ClusterIP,
}

/// CPU and memory for the relay container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceAmounts {
    /// CPU in Kubernetes quantity form, e.g. `100m` or `1`.
    pub cpu: String,
    /// Memory in Kubernetes quantity form, e.g. `64Mi`.
    pub memory: String,
}

/// Requests and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    pub requests: ResourceAmounts,
    pub limits: ResourceAmounts,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            requests: ResourceAmounts { cpu: "100m".into(), memory: "64Mi".into() },
            limits: ResourceAmounts { cpu: "2".into(), memory: "512Mi".into() },
        }
    }
}

/// The Kubernetes Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// LoadBalancer (default), NodePort or ClusterIP.
    #[serde(rename = "type", default)]
    pub kind: ServiceType,
    /// Fixed node port (30000-32767) for NodePort services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

/// A shared replay store (Redis or Valkey): single use of tickets across replicas and hosts
/// (docs/HA.md). Becomes the relay's WSPROXY_REPLAY_STORE* keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayStore {
    /// redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB], without credentials.
    pub url: String,
    /// Kubernetes: an existing Secret in the namespace holding the store's password under the
    /// key `password` (it never passes through wsproxyctl or Helm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<String>,
    /// Kubernetes: an existing Secret holding the PEM CA (key `ca.crt`) a rediss:// store's
    /// certificate must chain to; unset uses the image's system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
    /// While the store is unreachable, accept tickets without the single-use check instead of
    /// refusing new consoles (weaker: a ticket could then be used twice).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    /// Podman: a file (on the machine running wsproxyctl; relative to this file) holding the
    /// store's password; it becomes a podman secret readable only by the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Podman: a PEM CA file a rediss:// store's certificate must chain to (the image holds no
    /// system roots); it becomes a podman secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// What `passwordFile` and `caFile` hold, read and checked when the spec is loaded.
    #[serde(skip)]
    #[schemars(skip)]
    pub files: ReplayStoreFiles,
}

/// The contents of a replay store's `passwordFile` and `caFile`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ReplayStoreFiles {
    pub password: Option<String>,
    pub ca_pem: Option<String>,
}

/// Never print the password (a spec is printed in debug output).
impl std::fmt::Debug for ReplayStoreFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayStoreFiles")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .finish()
    }
}

/// Prometheus metrics on Kubernetes: the relay's plain-HTTP `/metrics` on a port of its own,
/// reached through a ClusterIP Service (`wsproxy-metrics`), never through the browsers' one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// Port of the `/metrics` listener (the relay's WSPROXY_METRICS_LISTEN).
    #[serde(default = "default_metrics_port")]
    pub port: u16,
    /// Also a ServiceMonitor (prometheus-operator, monitoring.coreos.com/v1) scraping it
    /// every 30 s; the cluster needs that CRD.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service_monitor: bool,
}

/// The admin listener (`wsproxyctl sessions list|kill`, and the session count in `status`): TLS
/// on a port of its own, never the browsers' one, off unless given. Operators prove who they
/// are with a client certificate from the engine CA (`certs issue --client NAME`), a bearer
/// token, or either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Admin {
    /// Port of the admin listener (the relay's WSPROXY_ADMIN_LISTEN, on every address).
    #[serde(default = "default_admin_port")]
    pub port: u16,
    /// Admit client certificates signed by the engine CA (the certificates' `ca.pem`, already
    /// deployed with the relay's own certificate).
    #[serde(default = "yes")]
    pub client_certificates: bool,
    /// Podman: a file (on the machine running wsproxyctl; relative to this file) holding a
    /// bearer token, at least 16 characters on one line; it becomes a podman secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Kubernetes: an existing Secret holding the bearer token under the key `token` (it
    /// never passes through wsproxyctl or Helm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// What `tokenFile` holds, read and checked when the spec is loaded.
    #[serde(skip)]
    #[schemars(skip)]
    pub token: Option<AdminToken>,
}

/// The admin token's text, never printed (a spec is printed in debug output).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

fn default_admin_port() -> u16 {
    DEFAULT_ADMIN_PORT
}
pub const DEFAULT_ADMIN_PORT: u16 = 6101;

fn yes() -> bool {
    true
}

fn default_metrics_port() -> u16 {
    DEFAULT_METRICS_PORT
}
pub const DEFAULT_METRICS_PORT: u16 = 9100;

/// Kubernetes: ways in besides the Service, each optional. TLS always reaches the relay's
/// own certificate (passthrough) unless an Ingress is told to re-encrypt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expose {
    /// An Ingress for ingress-nginx, at `proxyFqdn`, with console-length timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressWay>,
    /// A Gateway API TLSRoute (gateway.networking.k8s.io/v1) at `proxyFqdn`, attached to an
    /// existing Gateway's TLS passthrough listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_route: Option<TlsRouteWay>,
    /// An OpenShift Route (route.openshift.io/v1) at `proxyFqdn`, TLS passthrough.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub openshift_route: bool,
}

impl Expose {
    pub fn is_empty(&self) -> bool {
        self == &Expose::default()
    }
}

/// An Ingress for ingress-nginx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressWay {
    /// IngressClass name.
    #[serde(default = "default_ingress_class")]
    pub class_name: String,
    /// `Passthrough` (default): ingress-nginx hands the TLS connection to the relay untouched
    /// (its controller needs --enable-ssl-passthrough). `Reencrypt`: it terminates TLS with the
    /// proxy certificate (the same Secret) and opens HTTPS to the relay.
    #[serde(default)]
    pub tls: IngressTls,
}

fn default_ingress_class() -> String {
    "nginx".into()
}

/// How an Ingress carries TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum IngressTls {
    #[default]
    Passthrough,
    Reencrypt,
}

/// Where a TLSRoute attaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRouteWay {
    /// The Gateway's name.
    pub gateway: String,
    /// The Gateway's namespace (unset: the relay's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_namespace: Option<String>,
    /// The Gateway listener (its `name`), a TLS listener in Passthrough mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// Kubernetes: the proxy certificate from cert-manager instead of `wsproxyctl certs issue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertManager {
    /// The Issuer's or ClusterIssuer's name.
    pub issuer: String,
    /// `Issuer` (in the relay's namespace) or `ClusterIssuer`.
    #[serde(default)]
    pub issuer_kind: IssuerKind,
}

/// cert-manager's two kinds of issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum IssuerKind {
    #[default]
    Issuer,
    ClusterIssuer,
}

/// Where and how the Podman target runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Podman {
    /// Podman API: unix:///run/podman/podman.sock (default: the local socket) or ssh://user@host[:port].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// SSH private key for ssh:// hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// Several hosts behind one name, deployed in turn, each verified before the next (as
    /// `--host` given once per host; `--host` flags replace this list). Not with `host`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Quadlet units: `AutoUpdate=registry`, so `podman auto-update` pulls a newer image of the
    /// same tag and restarts the relay. Off by default: a restart in place ends open consoles
    /// (after drainSeconds). Needs a registry image and a Quadlet unit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_update: bool,
}

/// A deployment of the oVirt websocket proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploySpec {
    /// The engine's FQDN (where `engine-config -s WebSocketProxy=...` is run): with
    /// `--configure-engine`, deploy refuses to run anywhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_fqdn: Option<String>,
    /// The proxy's FQDN as browsers reach it; must be in the proxy certificate.
    #[serde(default)]
    pub proxy_fqdn: String,
    /// Port browsers connect to.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Certificate directory made by `wsproxyctl certs issue` (ca.pem, websocket-proxy.cer,
    /// websocket-proxy.key.nopass, engine.cer).
    #[serde(default = "default_certs")]
    pub certs: PathBuf,
    /// Relay image reference.
    #[serde(default = "default_image")]
    pub image: String,
    /// Kubernetes namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Relay replicas on Kubernetes. More than one needs `replayStore` (or
    /// `perReplicaSingleUse: true`).
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Where used tickets are recorded, shared by every replica (unset: each relay keeps its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_store: Option<ReplayStore>,
    /// Accept that each replica keeps its own record of used tickets (no replay store): a ticket
    /// used on one replica opens one more console on each other replica.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_replica_single_use: bool,
    /// Seconds open consoles may go on after the relay is told to stop (a redeploy, a node
    /// drain) before they are closed with 1001. Unset: 3600 on Kubernetes, where the surge
    /// pod takes new consoles meanwhile, and on podman (a Quadlet unit or a container), where
    /// the new relay takes the port first; 30 for the kube-play Pod `render` writes, which is
    /// replaced in place while new consoles wait for the drain to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<u32>,
    /// End every console this many seconds after it opened, whatever it is doing (1008 with
    /// the reason; the relay's WSPROXY_MAX_SESSION_SECONDS). 0, the default: no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_session_seconds: u64,
    /// Kubernetes Service.
    #[serde(default)]
    pub service: Service,
    /// Container resources.
    #[serde(default)]
    pub resources: Resources,
    /// PEM CA file (on the machine running wsproxyctl) that VeNCrypt and KubeVirt targets'
    /// certificates must chain to: the relay's WSPROXY_TARGET_CA. Relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ca: Option<PathBuf>,
    /// The PEM text of `targetCa`, read and checked when the spec is loaded.
    #[serde(skip)]
    #[schemars(skip)]
    pub target_ca_pem: Option<String>,
    /// Where tickets may send the relay: CIDRs, host names, `*.suffix` (empty: anywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_allow: Vec<String>,
    /// Load balancers and proxies (CIDRs or addresses) believed about the client's address,
    /// through a PROXY protocol header or Forwarded / X-Forwarded-For: the relay's
    /// WSPROXY_TRUSTED_PROXIES (empty: none, every peer is the client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Whether they send a PROXY protocol header: off, optional or required (their
    /// connections without one are closed). The relay's WSPROXY_PROXY_PROTOCOL.
    #[serde(default, skip_serializing_if = "ProxyProtocolMode::is_off")]
    pub proxy_protocol: ProxyProtocolMode,
    /// Extra labels on every object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes: Prometheus metrics (unset: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// The admin listener for live session control (unset: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<Admin>,
    /// Kubernetes: a cert-manager Certificate for proxyFqdn makes the relay's certificate and
    /// key (renewals are served without a restart); `certs` then holds only engine.cer and the
    /// issuer's CA as ca.pem (what verify trusts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManager>,
    /// engine.cer's PEM when `certManager` is set (read from `certs` at load, certificates only).
    #[serde(skip)]
    #[schemars(skip)]
    pub engine_cer_pem: Option<String>,
    /// Kubernetes: an Ingress, a Gateway API TLSRoute or an OpenShift Route in front of the
    /// Service (use `service: {type: ClusterIP}` with them).
    #[serde(default, skip_serializing_if = "Expose::is_empty")]
    pub expose: Expose,
    /// The Podman target.
    #[serde(default)]
    pub podman: Podman,
    /// Whether deploy.yaml or `--namespace` named the namespace; when neither did, deploy
    /// uses the kubeconfig context's (as kubectl does), and `namespace` is only the fallback.
    #[serde(skip)]
    #[schemars(skip)]
    pub namespace_given: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_certs() -> PathBuf {
    PathBuf::from("./proxy-certs")
}
fn default_image() -> String {
    DEFAULT_IMAGE.into()
}
fn default_namespace() -> String {
    DEFAULT_NAMESPACE.into()
}
fn default_replicas() -> u32 {
    1
}

/// The drain when the spec leaves it unset (see `drainSeconds`): on Kubernetes, ...
pub const DEFAULT_DRAIN_SECS_K8S: u32 = 3600;
/// ... for the kube-play Pod, replaced in place while new consoles wait, ...
pub const DEFAULT_DRAIN_SECS_IN_PLACE: u32 = 30;
/// ... and for what deploy installs on podman (a Quadlet unit or a container), where a
/// redeploy hands the port over (nothing waits).
pub const DEFAULT_DRAIN_SECS_HANDOVER: u32 = 3600;

/// Flag overrides (each `None` leaves the file's value).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub engine_fqdn: Option<String>,
    pub proxy_fqdn: Option<String>,
    pub certs: Option<PathBuf>,
    pub port: Option<u16>,
    pub image: Option<String>,
    pub namespace: Option<String>,
    pub replicas: Option<u32>,
    pub service_type: Option<ServiceType>,
    /// `--replay-store URL`: the store's URL (other replayStore fields from the file).
    pub replay_store: Option<String>,
    pub podman_host: Option<String>,
    pub identity: Option<PathBuf>,
}

impl DeploySpec {
    /// Read `-f FILE` (if any), apply flags, validate.
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<DeploySpec> {
        let mut spec: DeploySpec = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::usage(format!("cannot read {}: {e}; `wsproxyctl config init` writes a commented one", path.display()))
                })?;
                let text = if text.trim().is_empty() { "{}" } else { &text };
                let mut spec: DeploySpec = serde_yaml::from_str(text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
                spec.namespace_given =
                    serde_yaml::from_str::<serde_yaml::Value>(text).is_ok_and(|v| v.get("namespace").is_some_and(|n| !n.is_null()));
                // Relative certificate paths are relative to the file.
                if let Some(dir) = path.parent() {
                    if spec.certs.is_relative() {
                        spec.certs = dir.join(&spec.certs);
                    }
                    if let Some(ca) = spec.target_ca.as_mut().filter(|ca| ca.is_relative()) {
                        *ca = dir.join(&*ca);
                    }
                    if let Some(store) = spec.replay_store.as_mut() {
                        for file in [&mut store.password_file, &mut store.ca_file].into_iter().flatten().filter(|f| f.is_relative()) {
                            *file = dir.join(&*file);
                        }
                    }
                    if let Some(token) = spec.admin.as_mut().and_then(|a| a.token_file.as_mut()).filter(|f| f.is_relative()) {
                        *token = dir.join(&*token);
                    }
                }
                spec
            }
            None => serde_yaml::from_str("{}").expect("defaults"),
        };
        if let Some(v) = &o.proxy_fqdn {
            spec.proxy_fqdn = v.clone();
        }
        if let Some(v) = &o.engine_fqdn {
            spec.engine_fqdn = Some(v.clone());
        }
        if let Some(v) = &o.certs {
            spec.certs = v.clone();
        }
        if let Some(v) = o.port {
            spec.port = v;
        }
        if let Some(v) = &o.image {
            spec.image = v.clone();
        }
        if let Some(v) = &o.namespace {
            spec.namespace = v.clone();
            spec.namespace_given = true;
        }
        if let Some(v) = o.replicas {
            spec.replicas = v;
        }
        if let Some(v) = o.service_type {
            spec.service.kind = v;
        }
        if let Some(url) = &o.replay_store {
            spec.replay_store.get_or_insert_with(ReplayStore::default).url = url.clone();
        }
        if let Some(v) = &o.podman_host {
            spec.podman.host = Some(v.clone());
            spec.podman.hosts.clear();
        }
        if let Some(v) = &o.identity {
            spec.podman.identity = Some(v.clone());
        }
        spec.validate()?;
        spec.target_ca_pem = spec.target_ca.as_deref().map(read_target_ca).transpose()?;
        if spec.cert_manager.is_some() {
            spec.engine_cer_pem = Some(read_engine_cer(&spec.certs.join(crate::pki::ENGINE_FILE))?);
        }
        if let Some(store) = spec.replay_store.as_mut() {
            store.files = read_replay_store_files(store)?;
        }
        if let Some(admin) = spec.admin.as_mut() {
            admin.token = admin.token_file.as_deref().map(read_admin_token).transpose()?;
        }
        Ok(spec)
    }

    /// Check values serde cannot: names, ranges, patterns.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: String| Err(Failure::usage(format!("{field}: {why}")));
        if self.proxy_fqdn.is_empty() {
            return bad("proxyFqdn", "missing: give --proxy-fqdn or proxyFqdn: in the file".into());
        }
        if let Err(e) = crate::pki::validate_dns_name(&self.proxy_fqdn) {
            return bad("proxyFqdn", e);
        }
        if let Some(engine) = &self.engine_fqdn {
            if let Err(e) = crate::pki::validate_dns_name(engine) {
                return bad("engineFqdn", e);
            }
        }
        if self.port == 0 {
            return bad("port", "must be 1-65535".into());
        }
        if self.replicas == 0 {
            return bad("replicas", "must be at least 1".into());
        }
        self.validate_replay_store()?;
        self.validate_extras()?;
        self.validate_admin()?;
        let label_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !label_ok(&self.namespace) {
            return bad("namespace", format!("{:?} is not a Kubernetes namespace name (lower case, digits, -)", self.namespace));
        }
        if self.image.trim().is_empty() || self.image.contains(char::is_whitespace) {
            return bad("image", format!("{:?} is not an image reference", self.image));
        }
        if let Err(e) = wsproxy::allow::TargetAllowList::parse(&self.target_allow.join(",")) {
            return bad("targetAllow", e);
        }
        if let Some(np) = self.service.node_port {
            if !(30000..=32767).contains(&np) {
                return bad("service.nodePort", format!("{np} is outside 30000-32767"));
            }
        }
        for (field, q) in [
            ("resources.requests.cpu", &self.resources.requests.cpu),
            ("resources.limits.cpu", &self.resources.limits.cpu),
            ("resources.requests.memory", &self.resources.requests.memory),
            ("resources.limits.memory", &self.resources.limits.memory),
        ] {
            let ok = !q.is_empty()
                && q.trim_end_matches(|c: char| c.is_ascii_alphabetic()).parse::<f64>().is_ok()
                && ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"]
                    .contains(&q.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.'));
            if !ok {
                return bad(field, format!("{q:?} is not a Kubernetes quantity (e.g. 100m, 64Mi)"));
            }
        }
        for (k, v) in &self.labels {
            if !label_key_ok(k) || !label_value_ok(v) {
                return bad(
                    "labels",
                    format!(
                        "{k:?}: {v:?} is not a Kubernetes label (key [prefix/]name, value up to 63 of a-z A-Z 0-9 - _ . \
                         beginning and ending with a letter or digit)"
                    ),
                );
            }
        }
        if self.target_allow.iter().any(|t| t.chars().any(char::is_control)) {
            return bad("targetAllow", "entries may not hold control characters".into());
        }
        if self.image.chars().any(char::is_control) {
            return bad("image", format!("{:?} holds control characters", self.image));
        }
        Ok(())
    }

    /// The optional parts: podman's hosts and auto-update, the metrics port, the trusted
    /// proxies (checked as the relay will read them).
    fn validate_extras(&self) -> Result<()> {
        let bad = |field: &str, why: String| Err(Failure::usage(format!("{field}: {why}")));
        if self.trusted_proxies.iter().any(|p| p.contains(',') || p.chars().any(char::is_control)) {
            return bad("trustedProxies", "one CIDR or address per entry, without commas or control characters".into());
        }
        use wsproxy::real_client::{ClientTrust, ProxyProtocol};
        let mode = match self.proxy_protocol {
            ProxyProtocolMode::Off => ProxyProtocol::Off,
            ProxyProtocolMode::Optional => ProxyProtocol::Optional,
            ProxyProtocolMode::Required => ProxyProtocol::Required,
        };
        if let Err(e) = ClientTrust::parse(&self.trusted_proxies.join(","), mode) {
            return bad(if self.trusted_proxies.is_empty() { "proxyProtocol" } else { "trustedProxies" }, e);
        }
        if self.podman.host.is_some() && !self.podman.hosts.is_empty() {
            return bad("podman.hosts", "give podman.host (one host) or podman.hosts (several), not both".into());
        }
        if self.podman.auto_update && !self.image_is_registry() {
            return bad(
                "podman.autoUpdate",
                format!(
                    "{} is a local image; podman auto-update pulls from a registry: name a registry image or drop autoUpdate",
                    self.image
                ),
            );
        }
        if let Some(m) = &self.metrics {
            if m.port == self.port || m.port == 0 {
                return bad("metrics.port", format!("{} is not a port of its own (the browsers' port is {})", m.port, self.port));
            }
        }
        Ok(())
    }

    /// The admin listener: a port of its own and at least one way to tell who asks.
    fn validate_admin(&self) -> Result<()> {
        let Some(admin) = &self.admin else { return Ok(()) };
        let bad = |field: &str, why: String| Err(Failure::usage(format!("{field}: {why}")));
        let metrics = self.metrics.as_ref().map(|m| m.port);
        if admin.port == 0 || admin.port == self.port || Some(admin.port) == metrics {
            let metrics = metrics.map(|p| format!(", the metrics' {p}")).unwrap_or_default();
            return bad(
                "admin.port",
                format!("{} is not a port of its own (the browsers' port is {}{metrics}): pick another", admin.port, self.port),
            );
        }
        if !admin.client_certificates && admin.token_file.is_none() && admin.token_secret.is_none() {
            return bad(
                "admin",
                "no way to tell who asks: keep clientCertificates: true (certificates from `certs issue --client`), or \
                 give tokenFile (podman) or tokenSecret (Kubernetes)"
                    .into(),
            );
        }
        if admin.token_file.is_some() && admin.token_secret.is_some() {
            return bad("admin.tokenFile", "give tokenSecret (Kubernetes) or tokenFile (podman), not both".into());
        }
        if let Some(name) = admin.token_secret.as_deref().filter(|n| !secret_name_ok(n)) {
            return bad("admin.tokenSecret", format!("{name:?} is not a Kubernetes Secret name (lower case, digits, - and .)"));
        }
        if admin.client_certificates && self.cert_manager.is_some() {
            return bad(
                "admin.clientCertificates",
                "with certManager the engine CA is not deployed beside the relay: set clientCertificates: false and give \
                 tokenSecret"
                    .into(),
            );
        }
        Ok(())
    }

    /// Single use across replicas: more than one replica needs a shared store, or an explicit
    /// choice of per-replica single use.
    fn validate_replay_store(&self) -> Result<()> {
        let bad = |field: &str, why: String| Err(Failure::usage(format!("{field}: {why}")));
        if let Some(store) = &self.replay_store {
            let Some((scheme, rest)) = store.url.split_once("://").filter(|(s, _)| *s == "redis" || *s == "rediss") else {
                return bad("replayStore.url", "expected redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB] (Redis or Valkey)".into());
            };
            if rest.split('/').next().unwrap_or("").contains('@') {
                return bad(
                    "replayStore.url",
                    "carries credentials: put the password in a Secret named by replayStore.passwordSecret".into(),
                );
            }
            if store.url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return bad("replayStore.url", "may not hold spaces or control characters".into());
            }
            if store.ca_secret.is_some() && scheme != "rediss" {
                return bad("replayStore.caSecret", "a CA only applies to rediss:// (TLS) stores".into());
            }
            if store.ca_file.is_some() && scheme != "rediss" {
                return bad("replayStore.caFile", "a CA only applies to rediss:// (TLS) stores".into());
            }
            if store.password_file.is_some() && store.password_secret.is_some() {
                return bad("replayStore.passwordFile", "give passwordSecret (Kubernetes) or passwordFile (podman), not both".into());
            }
            if store.ca_file.is_some() && store.ca_secret.is_some() {
                return bad("replayStore.caFile", "give caSecret (Kubernetes) or caFile (podman), not both".into());
            }
            for (field, name) in [("replayStore.passwordSecret", &store.password_secret), ("replayStore.caSecret", &store.ca_secret)] {
                if let Some(name) = name.as_deref().filter(|n| !secret_name_ok(n)) {
                    return bad(field, format!("{name:?} is not a Kubernetes Secret name (lower case, digits, - and .)"));
                }
            }
        } else if self.replicas > 1 && !self.per_replica_single_use {
            return bad(
                "replicas",
                format!(
                    "{} replicas without replayStore would each keep their own record of used tickets: a ticket used on \
                     one replica would open another console on each of the others. Point replayStore.url at a Redis or \
                     Valkey (docs/HA.md), use replicas: 1, or set perReplicaSingleUse: true to accept that",
                    self.replicas
                ),
            );
        }
        Ok(())
    }

    /// The podman target has no Kubernetes Secrets: refuse spec fields that name them.
    pub fn check_podman(&self) -> Result<()> {
        if self.cert_manager.is_some() {
            return Err(Failure::usage(
                "certManager: is for Kubernetes (cert-manager writes a Secret there); for a podman host issue the \
                 certificate with `wsproxyctl certs issue` and drop certManager:",
            ));
        }
        if !self.expose.is_empty() {
            return Err(Failure::usage(
                "expose: (Ingress, TLSRoute, OpenShift Route) is for Kubernetes; a podman host is reached at its own \
                 address: drop expose: for --target podman",
            ));
        }
        if self.metrics.is_some() {
            return Err(Failure::usage(
                "metrics: is for Kubernetes (a port of its own behind a ClusterIP Service); podman hosts do not get a \
                 metrics listener from wsproxyctl yet: drop metrics: for --target podman",
            ));
        }
        if self.admin.as_ref().is_some_and(|a| a.token_secret.is_some()) {
            return Err(Failure::usage(
                "admin.tokenSecret names a Kubernetes Secret; for podman give admin.tokenFile (a file here, copied into a \
                 podman secret)",
            ));
        }
        if let Some(store) = &self.replay_store {
            if store.password_secret.is_some() || store.ca_secret.is_some() {
                return Err(Failure::usage(
                    "replayStore.passwordSecret and replayStore.caSecret name Kubernetes Secrets; for podman give \
                     replayStore.passwordFile and replayStore.caFile (files here, copied into podman secrets)",
                ));
            }
        }
        Ok(())
    }

    /// Kubernetes reads Secrets, not files on this machine: refuse the podman-only file fields
    /// instead of ignoring them.
    pub fn check_k8s(&self) -> Result<()> {
        if self.admin.as_ref().is_some_and(|a| a.token_file.is_some()) {
            return Err(Failure::usage(
                "admin.tokenFile is for podman; on Kubernetes create a Secret with the token under the key `token` and \
                 name it in admin.tokenSecret",
            ));
        }
        if let Some(store) = &self.replay_store {
            if store.password_file.is_some() || store.ca_file.is_some() {
                return Err(Failure::usage(
                    "replayStore.passwordFile and replayStore.caFile are for podman; on Kubernetes create Secrets and name \
                     them in replayStore.passwordSecret and replayStore.caSecret (the password never passes through wsproxyctl)",
                ));
            }
        }
        Ok(())
    }

    /// What the operator should know before deploying this spec (printed by render and deploy).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.replicas > 1 && self.replay_store.is_none() {
            out.push(format!(
                "perReplicaSingleUse: each of the {} replicas keeps its own record of used tickets, so a ticket can open \
                 up to {} consoles (one per replica); replayStore makes single use hold across them (docs/HA.md)",
                self.replicas, self.replicas
            ));
        }
        use std::os::unix::fs::PermissionsExt;
        let secret_files = [
            ("admin.tokenFile", self.admin.as_ref().and_then(|a| a.token_file.as_ref())),
            ("replayStore.passwordFile", self.replay_store.as_ref().and_then(|s| s.password_file.as_ref())),
        ];
        for (field, file) in secret_files.into_iter().filter_map(|(f, p)| Some((f, p?))) {
            let mode = std::fs::metadata(file).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            if mode & 0o077 != 0 {
                out.push(format!("{field} {} is readable by other users (mode {mode:04o}): chmod 600 it", file.display()));
            }
        }
        if self.replay_store.as_ref().is_some_and(|s| s.fail_open) {
            out.push("replayStore.failOpen: while the store is unreachable, tickets are accepted without the single-use check".into());
        }
        out
    }

    /// Whether the image comes from a registry (not a local-only `localhost/` name).
    pub fn image_is_registry(&self) -> bool {
        let first = self.image.split('/').next().unwrap_or("");
        self.image.contains('/') && first != "localhost" && (first.contains('.') || first.contains(':'))
    }
}

/// A Kubernetes label name segment (also a label value when non-empty): up to 63 of
/// `a-z A-Z 0-9 - _ .`, beginning and ending with a letter or digit. Labels are written into
/// YAML and Quadlet units, so nothing else (no newline, no `=`, no space) may pass.
fn label_segment_ok(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `targetCa`: PEM certificates only (a private key in it is refused, as for every certificate
/// input), written back from their DER.
fn read_target_ca(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Failure::usage(format!("targetCa {}: {e}", path.display())))?;
    let der = crate::pki::pem_cert_der(&bytes).map_err(|why| Failure::usage(format!("targetCa {}: {why}", path.display())))?;
    Ok(String::from_utf8_lossy(&crate::pki::certificate_pem(&der)).into_owned())
}

/// With `certManager`, the engine certificate alone (a certificate; a private key refused).
fn read_engine_cer(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::usage(format!(
            "certManager: {} ({e}): the relay still needs the engine certificate; `wsproxyctl certs fetch` gets it",
            path.display()
        ))
    })?;
    let der = crate::pki::pem_cert_der(&bytes).map_err(|why| Failure::usage(format!("{}: {why}", path.display())))?;
    Ok(String::from_utf8_lossy(&crate::pki::certificate_pem(&der)).into_owned())
}

/// `replayStore.passwordFile` (one line, not empty) and `caFile` (PEM certificates only).
fn read_replay_store_files(store: &ReplayStore) -> Result<ReplayStoreFiles> {
    let password = match &store.password_file {
        None => None,
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("replayStore.passwordFile {}: {e}", path.display())))?;
            let password = text.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() || password.contains(['\r', '\n']) {
                return Err(Failure::usage(format!(
                    "replayStore.passwordFile {}: expected the password alone on one line",
                    path.display()
                )));
            }
            Some(password)
        }
    };
    let ca_pem = match &store.ca_file {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| Failure::usage(format!("replayStore.caFile {}: {e}", path.display())))?;
            let der =
                crate::pki::pem_cert_der(&bytes).map_err(|why| Failure::usage(format!("replayStore.caFile {}: {why}", path.display())))?;
            Some(String::from_utf8_lossy(&crate::pki::certificate_pem(&der)).into_owned())
        }
    };
    Ok(ReplayStoreFiles { password, ca_pem })
}

/// `admin.tokenFile`: the token alone on one line, at least 16 characters (as the relay
/// requires of WSPROXY_ADMIN_TOKEN_FILE), so a deploy never ships one the relay refuses.
fn read_admin_token(path: &Path) -> Result<AdminToken> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("admin.tokenFile {}: {e}", path.display())))?;
    let token = text.trim_end_matches(['\r', '\n']);
    if token.chars().count() < 16 || token.contains(['\r', '\n']) || token.chars().any(char::is_whitespace) {
        return Err(Failure::usage(format!(
            "admin.tokenFile {}: expected the token alone on one line, at least 16 characters without spaces \
             (e.g. `openssl rand -hex 16 > {}`)",
            path.display(),
            path.display()
        )));
    }
    Ok(AdminToken(token.to_string()))
}

/// A Kubernetes object name (DNS-1123 subdomain): lower case letters, digits, `-` and `.`.
fn secret_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty() || label_segment_ok(v)
}

fn label_key_ok(k: &str) -> bool {
    match k.rsplit_once('/') {
        Some((prefix, name)) => prefix.len() <= 253 && crate::pki::validate_dns_name(prefix).is_ok() && label_segment_ok(name),
        None => label_segment_ok(k),
    }
}

/// The JSON Schema of the spec (`config schema`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(DeploySpec)).expect("schema serializes")
}

/// A commented example (`config init`).
pub const EXAMPLE: &str = concat!(
    r#"# wsproxyctl deployment description (wsproxyctl config schema prints its JSON Schema).
# Flags override these values: --proxy-fqdn --certs --port --image --namespace --replicas.

# The engine, where `engine-config -s WebSocketProxy=...` is run.
engineFqdn: engine.example.com
# The proxy host's name as browsers reach it (must be in the proxy certificate).
proxyFqdn: proxy.example.com
# Port browsers connect to (oVirt's default is 6100).
port: 6100
# Made by `wsproxyctl certs issue` (relative to this file).
certs: ./proxy-certs
# The relay image: `wsproxyctl image build` makes localhost/ovirt-websocket-proxy:"#,
    env!("CARGO_PKG_VERSION"),
    r#".
image: localhost/ovirt-websocket-proxy:"#,
    env!("CARGO_PKG_VERSION"),
    r#"

# Kubernetes
namespace: ovirt-websocket-proxy
# More than one replica needs a shared replay store (single use of tickets across replicas):
replicas: 1
# How long open consoles may go on when the relay is told to stop (a redeploy), before
# they are closed with 1001. Unset: 3600 on Kubernetes and podman (the new relay takes new
# consoles meanwhile), 30 for the kube-play Pod (replaced in place: new consoles wait).
# drainSeconds: 3600
# End every console this long after it opened (1008 with the reason); 0: no limit.
# maxSessionSeconds: 28800
# replayStore:
#   url: rediss://valkey.consoles.svc:6379     # Redis or Valkey
#   passwordSecret: wsproxy-replay-store       # existing Secret, key "password"
#   caSecret: wsproxy-replay-store-ca          # existing Secret, key "ca.crt" (rediss)
#   # podman instead: files here, copied into podman secrets readable only by the relay
#   # passwordFile: ./store-password
#   # caFile: ./store-ca.pem
service:
  type: LoadBalancer        # or NodePort (then optionally nodePort: 30610), or ClusterIP
resources:
  requests: { cpu: 100m, memory: 64Mi }
  limits: { cpu: "2", memory: 512Mi }
# Prometheus /metrics on a port of its own behind a ClusterIP Service wsproxy-metrics
# (serviceMonitor: true adds a prometheus-operator ServiceMonitor):
# metrics: { port: 9100, serviceMonitor: false }

# The CA the hypervisors' VeNCrypt (and KubeVirt) certificates must chain to (optional;
# unset accepts any certificate, as oVirt's proxy does). Relative to this file.
# targetCa: ./hypervisor-ca.pem

# Where tickets may send the relay: the hypervisors' networks or names. Empty allows all.
targetAllow:
  - 192.168.10.0/24
  - "*.hosts.example.com"

# Behind a load balancer: its addresses, believed about the client's address (per-address
# limits, audit records, logs), and whether it sends a PROXY protocol header (HAProxy's
# send-proxy-v2; off, optional or required). Forwarded / X-Forwarded-For from them count too.
# trustedProxies: [10.0.0.0/8]
# proxyProtocol: required

# Live session control (`wsproxyctl sessions list|kill`, counted by `status`) on a TLS port
# of its own; operators show a certificate from `certs issue --client NAME`, or a token:
# podman: tokenFile (a file here, at least 16 characters, copied into a podman secret);
# Kubernetes: tokenSecret (an existing Secret, key "token"), reached by kubectl port-forward.
# admin: { port: 6101, clientCertificates: true, tokenFile: ./admin-token }

# Extra labels on every object.
labels: {}

# Podman: the separate host's API (ssh://user@host or unix:///run/podman/podman.sock).
podman:
  host: ssh://root@proxy.example.com
  identity: ~/.ssh/id_ed25519
"#
);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// podman.hosts is a list or nothing: with podman.host beside it the spec is refused; a
    /// --host flag replaces it.
    #[test]
    fn podman_hosts_and_host_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("deploy.yaml");
        std::fs::write(&f, "proxyFqdn: p.example\npodman: {host: 'ssh://root@a', hosts: ['ssh://root@b', 'ssh://root@c']}\n").unwrap();
        let e = DeploySpec::load(Some(&f), &Overrides::default()).unwrap_err().to_string();
        assert!(e.contains("podman.hosts"), "{e}");
        std::fs::write(&f, "proxyFqdn: p.example\npodman: {hosts: ['ssh://root@b', 'ssh://root@c']}\n").unwrap();
        let flag = Overrides { podman_host: Some("ssh://root@a".into()), ..Default::default() };
        let spec = DeploySpec::load(Some(&f), &flag).unwrap();
        assert_eq!((spec.podman.host.as_deref(), spec.podman.hosts.len()), (Some("ssh://root@a"), 0), "--host replaces the list");
    }

    /// Only a namespace that deploy.yaml or --namespace names is "given"; otherwise deploy
    /// takes the kubeconfig context's, as kubectl does.
    #[test]
    fn a_namespace_is_given_by_the_file_or_the_flag_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("deploy.yaml");
        let load = |text: &str, flag: Option<&str>| {
            std::fs::write(&f, text).unwrap();
            let o = Overrides { namespace: flag.map(str::to_string), ..Default::default() };
            let spec = DeploySpec::load(Some(&f), &o).unwrap();
            (spec.namespace, spec.namespace_given)
        };
        assert_eq!(load("proxyFqdn: p.example\n", None), (DEFAULT_NAMESPACE.to_string(), false));
        assert_eq!(load("proxyFqdn: p.example\nnamespace: consoles\n", None), ("consoles".to_string(), true));
        assert_eq!(load("proxyFqdn: p.example\n", Some("virt")), ("virt".to_string(), true));
        let flags_only = Overrides { proxy_fqdn: Some("p.example".into()), ..Default::default() };
        assert!(!DeploySpec::load(None, &flags_only).unwrap().namespace_given);
    }

    /// Podman's replay store password and CA come from files beside the spec: read, checked,
    /// kept out of debug output, and refused where they would mean nothing.
    #[test]
    fn replay_store_files_are_read_checked_and_podman_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["store.example".into()]).unwrap();
        std::fs::write(dir.path().join("store-ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("two-lines"), "a\nb\n").unwrap();
        let load = |store: &str| {
            let f = dir.path().join("deploy.yaml");
            std::fs::write(&f, format!("proxyFqdn: p.example\nreplayStore:\n{store}")).unwrap();
            DeploySpec::load(Some(&f), &Overrides::default())
        };
        let spec = load("  url: rediss://store.example:6379\n  passwordFile: pw\n  caFile: store-ca.pem\n").unwrap();
        let files = &spec.replay_store.as_ref().unwrap().files;
        assert_eq!(files.password.as_deref(), Some("s3cret"), "the line break is not part of the password");
        assert!(files.ca_pem.as_deref().is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----")));
        assert!(!format!("{spec:?}").contains("s3cret"), "never in debug output");
        spec.check_podman().unwrap();
        assert!(spec.check_k8s().unwrap_err().message.contains("passwordSecret"));

        let refused = |store: &str, needle: &str| {
            let e = load(store).unwrap_err();
            assert!(e.message.contains(needle), "{store}: {}", e.message);
        };
        refused("  url: redis://store.example\n  caFile: store-ca.pem\n", "only applies to rediss://");
        refused("  url: redis://store.example\n  passwordFile: pw\n  passwordSecret: s\n", "not both");
        refused("  url: redis://store.example\n  passwordFile: two-lines\n", "the password alone on one line");
        refused("  url: redis://store.example\n  passwordFile: missing\n", "replayStore.passwordFile");
        refused("  url: rediss://store.example\n  caFile: pw\n", "replayStore.caFile");
    }

    fn load_text(text: &str, o: &Overrides) -> Result<DeploySpec> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("deploy.yaml");
        std::fs::write(&f, text).unwrap();
        DeploySpec::load(Some(&f), o)
    }

    /// A deploy.yaml in `dir` naming hv-ca.pem, a self-signed CA beside it, loaded; and the CA
    /// (with its key, for the tests that put one where it must not be).
    pub(crate) fn spec_with_target_ca(dir: &Path) -> (DeploySpec, rcgen::CertifiedKey<rcgen::KeyPair>) {
        let ca = rcgen::generate_simple_self_signed(vec!["hypervisors".into()]).unwrap();
        std::fs::write(dir.join("hv-ca.pem"), ca.cert.pem()).unwrap();
        let file = dir.join("deploy.yaml");
        std::fs::write(&file, "proxyFqdn: p.example.com\ntargetCa: hv-ca.pem\n").unwrap();
        (DeploySpec::load(Some(&file), &Overrides::default()).unwrap(), ca)
    }
    #[test]
    fn example_parses() {
        let s = load_text(EXAMPLE, &Overrides::default()).unwrap();
        assert_eq!(s.proxy_fqdn, "proxy.example.com");
        assert_eq!(s.target_allow.len(), 2);
        assert!(s.certs.ends_with("proxy-certs"));
    }

    #[test]
    fn values_written_into_units_and_yaml_cannot_inject_lines() {
        let with = |extra: &str| load_text(&format!("proxyFqdn: p.example.com\n{extra}"), &Overrides::default());
        for bad in [
            "labels:\n  team: \"a\\n[Service]\\nExecStartPre=/bin/sh -c id\"\n",
            "labels:\n  \"te am\": x\n",
            "labels:\n  \"-team\": x\n",
            "labels:\n  team: \"x=y\"\n",
            "image: \"localhost/x:1\\u0000\"\n",
            "image: \"localhost/x:1\\n[Service]\"\n",
        ] {
            assert!(with(bad).is_err(), "accepted: {bad}");
        }
        let ok = with("labels:\n  example.com/team: consoles\n  tier: \"\"\n").unwrap();
        assert_eq!(ok.labels.len(), 2);
    }

    /// `admin:` needs a port of its own and a way to tell who asks; its token file is read
    /// relative to deploy.yaml, must be long enough for the relay, and never printed; each
    /// target refuses the other's way of passing the token rather than ignoring it.
    #[test]
    fn the_admin_listener_is_checked_before_anything_is_deployed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("deploy.yaml");
        let load = |text: &str| {
            std::fs::write(&f, format!("proxyFqdn: p.example\nport: 6100\nmetrics: {{port: 9100}}\n{text}")).unwrap();
            DeploySpec::load(Some(&f), &Overrides::default())
        };
        let defaults = load("admin: {}\n").unwrap().admin.unwrap();
        assert_eq!((defaults.port, defaults.client_certificates, defaults.token), (DEFAULT_ADMIN_PORT, true, None));
        for (text, says) in [
            ("admin: {port: 6100}", "admin.port"),
            ("admin: {port: 9100}", "admin.port"),
            ("admin: {clientCertificates: false}", "no way to tell who asks"),
            ("admin: {tokenFile: missing}", "admin.tokenFile"),
            ("admin: {tokenFile: short}", "at least 16 characters"),
            ("admin: {portt: 1}", "unknown field"),
            ("admin: {tokenSecret: Ops_Token}", "admin.tokenSecret"),
            ("admin: {tokenSecret: t, tokenFile: admin-token}", "not both"),
            ("admin: {}\ncertManager: {issuer: ca}", "admin.clientCertificates"),
        ] {
            std::fs::write(dir.path().join("short"), "abc\n").unwrap();
            let e = load(&format!("{text}\n")).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        std::fs::write(dir.path().join("admin-token"), "s3cr3t-t0ken-0123456789\n").unwrap();
        let spec = load("admin: {port: 6200, clientCertificates: false, tokenFile: admin-token}\n").unwrap();
        assert_eq!(spec.admin.as_ref().and_then(|a| a.token.as_ref()).map(|t| t.0.as_str()), Some("s3cr3t-t0ken-0123456789"));
        assert!(!format!("{spec:?}").contains("s3cr3t"), "the token is never printed");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("admin-token"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(spec.warnings().iter().any(|w| w.contains("admin.tokenFile") && w.contains("chmod 600")), "{:?}", spec.warnings());
        std::fs::set_permissions(dir.path().join("admin-token"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(spec.warnings().is_empty(), "{:?}", spec.warnings());
        assert!(spec.check_k8s().unwrap_err().message.contains("admin.tokenSecret"));
        let spec = DeploySpec { metrics: None, ..load("admin: {tokenSecret: ops-token}\n").unwrap() };
        assert!(spec.check_k8s().is_ok());
        assert!(spec.check_podman().unwrap_err().message.contains("admin.tokenFile"));
    }

    #[test]
    fn flags_override_and_complete() {
        let o = Overrides {
            proxy_fqdn: Some("p.example".into()),
            port: Some(7000),
            replicas: Some(3),
            replay_store: Some("redis://valkey:6379".into()),
            ..Default::default()
        };
        let s = DeploySpec::load(None, &o).unwrap();
        assert_eq!((s.proxy_fqdn.as_str(), s.port, s.replicas), ("p.example", 7000, 3));
        assert_eq!(s.replay_store.as_ref().map(|r| r.url.as_str()), Some("redis://valkey:6379"));
        assert_eq!(s.namespace, DEFAULT_NAMESPACE);
    }

    #[test]
    fn target_ca_is_read_relative_to_the_file_and_refused_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, ca) = spec_with_target_ca(dir.path());
        let f = dir.path().join("deploy.yaml");
        assert_eq!(spec.target_ca.as_deref(), Some(dir.path().join("hv-ca.pem").as_path()));
        assert!(spec.target_ca_pem.as_deref().is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----")));
        std::fs::write(dir.path().join("hv-ca.pem"), format!("{}{}", ca.cert.pem(), ca.signing_key.serialize_pem())).unwrap();
        let e = DeploySpec::load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(e.message.contains("targetCa") && e.message.contains("PRIVATE KEY"), "{}", e.message);
    }

    #[test]
    fn more_than_one_replica_needs_a_replay_store_or_the_explicit_per_replica_choice() {
        let with = |text: &str| load_text(&format!("proxyFqdn: p.example\n{text}"), &Overrides::default());
        let e = with("replicas: 2\n").unwrap_err();
        assert!(e.message.contains("replayStore") && e.message.contains("perReplicaSingleUse"), "{}", e.message);
        assert!(with("replicas: 1\n").unwrap().warnings().is_empty());
        let chosen = with("replicas: 2\nperReplicaSingleUse: true\n").unwrap();
        assert!(chosen.warnings()[0].contains("up to 2 consoles"), "{:?}", chosen.warnings());
        let shared =
            with("replicas: 3\nreplayStore: {url: 'rediss://valkey:6379', passwordSecret: valkey-auth, caSecret: valkey-ca}\n").unwrap();
        assert!(shared.warnings().is_empty());
        for (bad, field) in [
            ("replayStore: {url: 'http://valkey:6379'}", "replayStore.url"),
            ("replayStore: {url: 'redis://:pw@valkey:6379'}", "carries credentials"),
            ("replayStore: {url: 'redis://valkey:6379', caSecret: ca}", "replayStore.caSecret"),
            ("replayStore: {url: 'redis://valkey:6379', passwordSecret: Bad_Name}", "replayStore.passwordSecret"),
        ] {
            let e = with(&format!("{bad}\n")).unwrap_err();
            assert!(e.message.contains(field), "{bad}: {}", e.message);
        }
        let podman = with("replayStore: {url: 'redis://valkey:6379', passwordSecret: valkey-auth}\n").unwrap();
        assert!(podman.check_podman().unwrap_err().message.contains("Kubernetes Secrets"));
    }

    #[test]
    fn trusted_proxies_are_checked_as_the_relay_reads_them() {
        let with = |extra: &str| load_text(&format!("proxyFqdn: p.example\n{extra}"), &Overrides::default());
        let ok = with("trustedProxies: ['10.0.0.0/8', '192.0.2.7']\nproxyProtocol: optional\n").unwrap();
        assert_eq!(ok.proxy_protocol, ProxyProtocolMode::Optional);
        for (bad, field) in [
            ("proxyProtocol: required\n", "proxyProtocol"),
            ("trustedProxies: ['10.0.0.0/99']\n", "trustedProxies"),
            ("trustedProxies: ['10.0.0.0/8,10.1.0.0/16']\n", "trustedProxies"),
            ("trustedProxies: [10.0.0.1]\nproxyProtocol: sometimes\n", "proxyProtocol"),
        ] {
            let e = with(bad).unwrap_err();
            assert!(e.message.contains(field), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = load_text("proxyFqdn: p.example\nport: sixty\n", &Overrides::default()).unwrap_err();
        assert!(e.message.contains("port") && e.message.contains("line 2"), "{}", e.message);
        let e = load_text("proxyFqdn: p.example\nreplica: 2\n", &Overrides::default()).unwrap_err();
        assert!(e.message.contains("unknown field `replica`") && e.message.contains("line 2"), "{}", e.message);
        let e = load_text("proxyFqdn: not a name\n", &Overrides::default()).unwrap_err();
        assert!(e.message.contains("proxyFqdn"), "{}", e.message);
        let e = DeploySpec::load(None, &Overrides::default()).unwrap_err();
        assert!(e.message.contains("--proxy-fqdn"), "{}", e.message);
        let e = load_text(
            "proxyFqdn: p.example\nresources:\n  requests: {cpu: lots, memory: 1Mi}\n  limits: {cpu: '1', memory: 1Mi}\n",
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.message.contains("resources.requests.cpu"), "{}", e.message);
        let e = load_text("proxyFqdn: p.example\ntargetAllow: ['10.0.0.0/99']\n", &Overrides::default()).unwrap_err();
        assert!(e.message.contains("targetAllow"), "{}", e.message);
    }

    #[test]
    fn registry_detection() {
        let mut s = DeploySpec::load(None, &Overrides { proxy_fqdn: Some("p.example".into()), ..Default::default() }).unwrap();
        assert!(!s.image_is_registry());
        s.image = "quay.io/ovirt/websocket-proxy:1.0".into();
        assert!(s.image_is_registry());
        s.image = "registry.local:5000/wsproxy".into();
        assert!(s.image_is_registry());
    }

    #[test]
    fn schema_has_the_fields() {
        let schema = json_schema().to_string();
        for f in ["proxyFqdn", "targetAllow", "replicas", "nodePort", "LoadBalancer"] {
            assert!(schema.contains(f), "{f}");
        }
    }
}
