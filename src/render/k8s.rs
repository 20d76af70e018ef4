//! Kubernetes objects for the relay, as k8s-openapi types: Namespace, Secret, ConfigMap,
//! Deployment, Service, PodDisruptionBudget, NetworkPolicy.
//!
//! Security follows the "restricted" Pod Security Standard: non-root (65532), read-only root
//! filesystem, no capabilities, no privilege escalation, RuntimeDefault seccomp, no service
//! account token. A checksum of the certificates and configuration on the pod template makes
//! a rotation roll the pods; maxUnavailable 0 keeps consoles reachable while it does.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, HTTPGetAction, KeyToPath, Namespace, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;

use super::{labels, relay_conf, selector, sha256_hex, CertPaths, File, NAME};
use crate::pki::bundle::{Bundle, SECRET_CA, SECRET_CERT, SECRET_ENGINE, SECRET_KEY};
use crate::spec::{DeploySpec, ServiceType};

pub const SECRET_NAME: &str = "wsproxy-certs";
pub const CONFIGMAP_NAME: &str = "wsproxy-config";
pub const CERT_DIR: &str = "/etc/wsproxy/certs";
pub const CONF_DIR: &str = "/etc/wsproxy/conf.d";
pub const CHECKSUM_CERTS: &str = "wsproxyctl.ovirt.org/certs-checksum";
pub const CHECKSUM_CONFIG: &str = "wsproxyctl.ovirt.org/config-checksum";
/// The spec's `targetCa` in the ConfigMap (a CA is public), beside the configuration: the relay
/// reads only `*.conf` from that directory.
pub const TARGET_CA_FILE: &str = "target-ca.pem";
pub const METRICS_SERVICE_NAME: &str = "wsproxy-metrics";
pub const METRICS_PORT_NAME: &str = "metrics";
/// The admin listener's container port: no Service and no NetworkPolicy rule lead to it, so
/// operators reach one pod at a time through `kubectl port-forward`.
pub const ADMIN_PORT_NAME: &str = "admin";
/// Tells the metrics Service from the browsers' (both select the same pods).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

pub(super) fn meta(spec: &DeploySpec, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_string()), namespace: Some(spec.namespace.clone()), labels: Some(labels(spec)), ..Default::default() }
}

/// Seconds a pod goes on accepting after SIGTERM while its `/readyz` answers 503: the
/// endpoint leaves the Service (and every node's kube-proxy rules) before the listener
/// closes, so no console is refused during a rolling update.
pub const DRAIN_NOTICE_SECS: u32 = 5;

/// The drain: how long open consoles may go on after SIGTERM (`drainSeconds`).
pub fn drain_secs(spec: &DeploySpec) -> u32 {
    spec.drain_seconds.unwrap_or(crate::spec::DEFAULT_DRAIN_SECS_K8S)
}

/// The pod's termination grace: the notice, the drain, and 10 s for the 1001 closes (the
/// relay gives them 5) and the exit, so the kubelet never kills a drain short.
pub fn termination_grace_secs(spec: &DeploySpec) -> u32 {
    DRAIN_NOTICE_SECS + drain_secs(spec) + 10
}

/// The relay configuration as the pods see it.
pub fn conf(spec: &DeploySpec) -> String {
    let mut conf = relay_conf(
        spec,
        &CertPaths {
            cert: &format!("{CERT_DIR}/{SECRET_CERT}"),
            key: &format!("{CERT_DIR}/{SECRET_KEY}"),
            // With cert-manager, whose Secret holds only the proxy's certificate and key, the
            // engine certificate travels in the ConfigMap (it is public).
            engine: &if spec.cert_manager.is_some() {
                format!("{CONF_DIR}/{SECRET_ENGINE}")
            } else {
                format!("{CERT_DIR}/{SECRET_ENGINE}")
            },
            target_ca: &format!("{CONF_DIR}/{TARGET_CA_FILE}"),
            replay_password: super::REPLAY_PASSWORD_FILE,
            replay_ca: super::REPLAY_CA_FILE,
            ca: &format!("{CERT_DIR}/{SECRET_CA}"),
            admin_token: super::ADMIN_TOKEN_FILE,
        },
    );
    conf += &wsproxy::config::key::WSPROXY_DRAIN_NOTICE.line(DRAIN_NOTICE_SECS);
    conf += &wsproxy::config::key::WSPROXY_SHUTDOWN_GRACE.line(drain_secs(spec));
    if let Some(m) = &spec.metrics {
        conf += &wsproxy::config::key::WSPROXY_METRICS_LISTEN.line(format!("[::]:{}", m.port));
    }
    conf
}

/// Every object, in apply order, as JSON values.
pub fn objects(spec: &DeploySpec, bundle: Option<&Bundle>) -> Vec<serde_json::Value> {
    let to = |v: serde_json::Result<serde_json::Value>| v.expect("k8s-openapi types serialize");
    let mut out = vec![to(serde_json::to_value(namespace(spec)))];
    match (&spec.cert_manager, bundle) {
        (Some(cm), _) => out.push(certificate(spec, cm)),
        (None, Some(b)) => out.push(to(serde_json::to_value(secret(spec, b)))),
        (None, None) => {}
    }
    out.push(to(serde_json::to_value(config_map(spec))));
    // cert-manager's renewals reach the pods through the relay's reload, not a roll.
    let certs_checksum = bundle.filter(|_| spec.cert_manager.is_none()).map(|b| b.checksum());
    out.push(to(serde_json::to_value(deployment(spec, certs_checksum))));
    out.push(to(serde_json::to_value(service(spec))));
    out.push(to(serde_json::to_value(pdb(spec))));
    out.push(to(serde_json::to_value(network_policy(spec))));
    if let Some(m) = &spec.metrics {
        out.push(to(serde_json::to_value(metrics_service(spec, m.port))));
        if m.service_monitor {
            out.push(service_monitor(spec));
        }
    }
    out.extend(super::ways_in::objects(spec));
    out
}

/// The ClusterIP Service Prometheus scrapes: the metrics port only, never the browsers'.
pub fn metrics_service(spec: &DeploySpec, port: u16) -> Service {
    let mut metadata = meta(spec, METRICS_SERVICE_NAME);
    metadata.labels.get_or_insert_with(Default::default).insert(COMPONENT_LABEL.into(), METRICS_PORT_NAME.into());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector()),
            ports: Some(vec![ServicePort {
                name: Some(METRICS_PORT_NAME.into()),
                port: port as i32,
                target_port: Some(IntOrString::String(METRICS_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// prometheus-operator's ServiceMonitor for [`metrics_service`] (no k8s-openapi type: a CRD).
pub fn service_monitor(spec: &DeploySpec) -> serde_json::Value {
    let mut select = selector();
    select.insert(COMPONENT_LABEL.into(), METRICS_PORT_NAME.into());
    serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(spec, NAME),
        "spec": {
            "selector": { "matchLabels": select },
            "endpoints": [{ "port": METRICS_PORT_NAME, "path": "/metrics", "interval": "30s", "scheme": "http" }],
        },
    })
}

pub fn namespace(spec: &DeploySpec) -> Namespace {
    let mut l = labels(spec);
    l.insert("pod-security.kubernetes.io/enforce".into(), "restricted".into());
    Namespace { metadata: ObjectMeta { name: Some(spec.namespace.clone()), labels: Some(l), ..Default::default() }, ..Default::default() }
}

pub fn secret(spec: &DeploySpec, bundle: &Bundle) -> Secret {
    Secret {
        metadata: meta(spec, SECRET_NAME),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(bundle.secret_data().into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    }
}

pub fn config_map(spec: &DeploySpec) -> ConfigMap {
    ConfigMap {
        metadata: meta(spec, CONFIGMAP_NAME),
        data: Some(
            [("10-setup.conf".to_string(), conf(spec))]
                .into_iter()
                .chain(spec.target_ca_pem.clone().map(|pem| (TARGET_CA_FILE.to_string(), pem)))
                .chain(spec.engine_cer_pem.clone().map(|pem| (SECRET_ENGINE.to_string(), pem)))
                .collect(),
        ),
        ..Default::default()
    }
}

/// cert-manager's Certificate for proxyFqdn, written to the Secret the relay mounts: an
/// ECDSA P-256 key made anew at every renewal, 90 days, renewed 30 days before the end (the
/// relay serves the renewal without a restart).
pub fn certificate(spec: &DeploySpec, cm: &crate::spec::CertManager) -> serde_json::Value {
    let kind = match cm.issuer_kind {
        crate::spec::IssuerKind::Issuer => "Issuer",
        crate::spec::IssuerKind::ClusterIssuer => "ClusterIssuer",
    };
    serde_json::json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": meta(spec, NAME),
        "spec": {
            "secretName": SECRET_NAME,
            "secretTemplate": { "labels": labels(spec) },
            "dnsNames": [spec.proxy_fqdn],
            "issuerRef": { "name": cm.issuer, "kind": kind, "group": "cert-manager.io" },
            "privateKey": { "algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always" },
            "duration": "2160h",
            "renewBefore": "720h",
            "usages": ["server auth"],
        },
    })
}

/// The container security context every rendering uses: no privilege escalation, read-only
/// root, non-root, no capabilities.
pub fn hardened() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.to_string())
}

pub fn deployment(spec: &DeploySpec, certs_checksum: Option<String>) -> Deployment {
    let config = format!("{}{}{}", conf(spec), spec.target_ca_pem.as_deref().unwrap_or(""), spec.engine_cer_pem.as_deref().unwrap_or(""));
    let mut annotations = BTreeMap::from([(CHECKSUM_CONFIG.to_string(), sha256_hex(config.as_bytes()))]);
    if let Some(sum) = certs_checksum {
        annotations.insert(CHECKSUM_CERTS.to_string(), sum);
    }
    Deployment {
        metadata: meta(spec, NAME),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas as i32),
            selector: LabelSelector { match_labels: Some(selector()), ..Default::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels(spec)), annotations: Some(annotations), ..Default::default() }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(termination_grace_secs(spec).into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(crate::image::UID as i64),
                        run_as_group: Some(crate::image::UID as i64),
                        fs_group: Some(crate::image::UID as i64),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                        ..Default::default()
                    }),
                    containers: vec![relay_container(spec)],
                    volumes: Some(volumes(spec)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The relay's container: hardened, ready while `/readyz` says so (503 from SIGTERM on), alive
/// while `/healthz` does (200 all through the drain), certificates and configuration mounted
/// read-only.
fn relay_container(spec: &DeploySpec) -> Container {
    let probe = |path: &str, initial: i32, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("wss".into()),
            scheme: Some("HTTPS".into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let r = &spec.resources;
    Container {
        name: NAME.into(),
        image: Some(spec.image.clone()),
        // Pulled only when absent: a kind- or podman-loaded local image is used as it is, and an
        // overlay's `images:` naming a registry just works.
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["--config".into(), CONF_DIR.into()]),
        ports: Some(
            [
                ("wss", Some(spec.port)),
                (METRICS_PORT_NAME, spec.metrics.as_ref().map(|m| m.port)),
                (ADMIN_PORT_NAME, spec.admin.as_ref().map(|a| a.port)),
            ]
            .into_iter()
            .filter_map(|(name, port)| {
                Some(ContainerPort {
                    name: Some(name.into()),
                    container_port: port? as i32,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
            })
            .collect(),
        ),
        readiness_probe: Some(probe("/readyz", 1, 5)),
        liveness_probe: Some(probe("/healthz", 5, 10)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), quantity(&r.requests.cpu)),
                ("memory".to_string(), quantity(&r.requests.memory)),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), quantity(&r.limits.cpu)),
                ("memory".to_string(), quantity(&r.limits.memory)),
            ])),
            ..Default::default()
        }),
        security_context: Some(hardened()),
        volume_mounts: Some(
            [("certs", CERT_DIR), ("config", CONF_DIR)]
                .into_iter()
                .chain(secret_files(spec).into_iter().map(|(name, _, _, dir)| (name, dir)))
                .map(|(name, dir)| VolumeMount { name: name.into(), mount_path: dir.into(), read_only: Some(true), ..Default::default() })
                .collect(),
        ),
        ..Default::default()
    }
}

/// The certificate Secret and the configuration ConfigMap, as volumes.
fn volumes(spec: &DeploySpec) -> Vec<Volume> {
    // cert-manager's Secret: the certificate and key (its ca.crt depends on the issuer).
    let keys: &[&str] =
        if spec.cert_manager.is_some() { &[SECRET_CERT, SECRET_KEY] } else { &[SECRET_CERT, SECRET_KEY, SECRET_CA, SECRET_ENGINE] };
    let items = keys.iter().map(|k| KeyToPath { key: k.to_string(), path: k.to_string(), mode: None }).collect();
    vec![
        Volume {
            name: "certs".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(SECRET_NAME.into()),
                default_mode: Some(0o440),
                items: Some(items),
                optional: Some(false),
            }),
            ..Default::default()
        },
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: CONFIGMAP_NAME.into(),
                default_mode: Some(0o444),
                optional: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
    .into_iter()
    .chain(secret_files(spec).into_iter().map(|(name, secret, key, _)| Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o440),
            items: Some(vec![KeyToPath { key: key.into(), path: key.into(), mode: None }]),
            optional: Some(false),
        }),
        ..Default::default()
    }))
    .collect()
}

/// The operator's own Secrets the pod mounts (the replay store's password and CA, the admin
/// token): (volume, Secret name, key, mount directory).
fn secret_files(spec: &DeploySpec) -> Vec<(&'static str, String, &'static str, &'static str)> {
    let dir = |file: &'static str| file.rsplit_once('/').map(|(d, _)| d).unwrap_or(file);
    let mut out = Vec::new();
    if let Some(store) = &spec.replay_store {
        if let Some(name) = &store.password_secret {
            out.push(("replay-store", name.clone(), "password", dir(super::REPLAY_PASSWORD_FILE)));
        }
        if let Some(name) = &store.ca_secret {
            out.push(("replay-store-ca", name.clone(), "ca.crt", dir(super::REPLAY_CA_FILE)));
        }
    }
    if let Some(name) = spec.admin.as_ref().and_then(|a| a.token_secret.as_ref()) {
        out.push(("admin-token", name.clone(), "token", dir(super::ADMIN_TOKEN_FILE)));
    }
    out
}

pub fn service(spec: &DeploySpec) -> Service {
    Service {
        metadata: meta(spec, NAME),
        spec: Some(ServiceSpec {
            type_: Some(
                match spec.service.kind {
                    ServiceType::LoadBalancer => "LoadBalancer",
                    ServiceType::NodePort => "NodePort",
                    ServiceType::ClusterIP => "ClusterIP",
                }
                .into(),
            ),
            // Keep the browser's address: per-client limits and logs need it (a ClusterIP
            // Service has no external traffic to keep it for).
            external_traffic_policy: (spec.service.kind != ServiceType::ClusterIP).then(|| "Local".into()),
            // IPv6 browsers too where the cluster has both families (the relay listens on both).
            ip_family_policy: Some("PreferDualStack".into()),
            selector: Some(selector()),
            ports: Some(vec![ServicePort {
                name: Some("wss".into()),
                port: spec.port as i32,
                target_port: Some(IntOrString::String("wss".into())),
                protocol: Some("TCP".into()),
                node_port: spec.service.node_port.map(i32::from),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn pdb(spec: &DeploySpec) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(spec, NAME),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector()), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Ingress to the browser port; with a `targetAllow` of addresses and CIDRs only, egress too:
/// to those networks (any port), DNS, and the replay store's port. A name pattern in
/// `targetAllow` cannot be written as a NetworkPolicy, so then egress stays open (the relay's
/// own allow list still applies).
pub fn network_policy(spec: &DeploySpec) -> NetworkPolicy {
    let egress = egress_rules(spec);
    NetworkPolicy {
        metadata: meta(spec, NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(selector()), ..Default::default() }),
            policy_types: Some(if egress.is_some() { vec!["Ingress".into(), "Egress".into()] } else { vec!["Ingress".into()] }),
            egress,
            // The browsers' port; the metrics port, when there is one, as a rule of its own
            // (narrow it with a `from` of your Prometheus' namespace in an overlay).
            ingress: Some(
                [Some(spec.port), spec.metrics.as_ref().map(|m| m.port)]
                    .into_iter()
                    .flatten()
                    .map(|port| NetworkPolicyIngressRule {
                        ports: Some(vec![NetworkPolicyPort {
                            port: Some(IntOrString::Int(port as i32)),
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }),
    }
}

/// The egress rules `network_policy` describes, or `None` when egress stays open.
fn egress_rules(spec: &DeploySpec) -> Option<Vec<NetworkPolicyEgressRule>> {
    let cidrs: Vec<String> = spec.target_allow.iter().map(|t| super::egress_cidr(t)).collect::<Option<_>>()?;
    if cidrs.is_empty() {
        return None;
    }
    let tcp =
        |port: u16| NetworkPolicyPort { port: Some(IntOrString::Int(port.into())), protocol: Some("TCP".into()), ..Default::default() };
    let mut rules = vec![
        NetworkPolicyEgressRule {
            to: Some(
                cidrs
                    .into_iter()
                    .map(|cidr| NetworkPolicyPeer { ip_block: Some(IPBlock { cidr, except: None }), ..Default::default() })
                    .collect(),
            ),
            ports: None,
        },
        NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![
                NetworkPolicyPort { port: Some(IntOrString::Int(53)), protocol: Some("UDP".into()), ..Default::default() },
                tcp(53),
            ]),
        },
    ];
    if let Some(store) = &spec.replay_store {
        rules.push(NetworkPolicyEgressRule { to: None, ports: Some(vec![tcp(super::replay_store_port(&store.url))]) });
    }
    Some(rules)
}

/// YAML text of one object.
pub fn to_yaml(obj: &serde_json::Value) -> String {
    serde_yaml::to_string(obj).expect("JSON values serialize as YAML")
}

/// A kustomize base: one file per object listed in kustomization.yaml, except two that a base
/// should not pin. The relay configuration comes from a `configMapGenerator` (files under
/// `config/`), so an overlay that patches it gets a new ConfigMap name and the pods roll. The
/// Namespace is written beside the base but not listed in it: overlays choose their own
/// namespace (`namespace:` in theirs), and a base that creates one would fight them.
pub fn files(spec: &DeploySpec, bundle: Option<&Bundle>) -> Vec<File> {
    let header = "# Rendered by `wsproxyctl render --target k8s`; edit the deployment spec, not this file.\n";
    let mut files = Vec::new();
    let mut resources = Vec::new();
    for obj in objects(spec, bundle) {
        match obj["kind"].as_str() {
            Some("Namespace") => files.push(File {
                name: "namespace.yaml".into(),
                contents: format!(
                    "{header}# Not part of the base (kustomization.yaml): create the namespace with it first,\n\
                     #   kubectl apply -f namespace.yaml\n# or let an overlay name its own.\n{}",
                    to_yaml(&obj)
                ),
                mode: 0o644,
            }),
            Some("ConfigMap") => continue,
            kind => {
                let name = format!("{:02}-{}.yaml", (resources.len() + 1) * 10, kind.unwrap_or("object").to_ascii_lowercase());
                let mode = if obj["kind"] == "Secret" { 0o600 } else { 0o644 };
                files.push(File { name: name.clone(), contents: format!("{header}{}", to_yaml(&obj)), mode });
                resources.push(name);
            }
        }
    }
    let config = config_map(spec).data.unwrap_or_default();
    for (key, text) in &config {
        files.push(File { name: format!("config/{key}"), contents: text.clone(), mode: 0o644 });
    }
    let generator = serde_json::json!([{
        "name": CONFIGMAP_NAME,
        "files": config.keys().map(|key| format!("config/{key}")).collect::<Vec<_>>(),
        "options": { "labels": labels(spec) },
    }]);
    let mut kustomization = format!(
        "{header}apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         # Where the objects go; an overlay's own `namespace:` replaces it.\nnamespace: {}\nresources:\n",
        spec.namespace
    );
    for name in &resources {
        kustomization.push_str(&format!("  - {name}\n"));
    }
    kustomization.push_str(
        "# The relay configuration: its name carries a hash of the contents, so an overlay that\n\
         # patches it (behavior: merge) rolls the pods.\nconfigMapGenerator:\n",
    );
    kustomization.push_str(&to_yaml(&generator));
    files.push(File { name: "kustomization.yaml".into(), contents: kustomization, mode: 0o644 });
    files
}
