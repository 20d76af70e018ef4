//! Podman outputs: a [`ContainerPlan`] (what the container is: image, secrets, port,
//! hardening) rendered as a Quadlet `wsproxy.container` unit for systemd hosts, and as a Pod
//! manifest for `podman kube play` on hosts without systemd. `deploy --target podman` creates
//! the same container through the API from the same plan, so the three cannot disagree.
//!
//! A redeploy hands the port over from the running relay to the new one (see
//! [`Placement::HandOver`]); with Quadlet that takes a unit per relay, since a systemd
//! service's container lives and dies with the service: deploy takes turns between [`Slot`]s.

use std::collections::BTreeMap;

use super::{labels, relay_conf, CertPaths, File, NAME};
use crate::pki::bundle::Bundle;
use crate::spec::DeploySpec;

pub const CONTAINER_NAME: &str = "wsproxy";
pub const SECRET_PREFIX: &str = "wsproxy";
pub const CONF_SECRET: &str = "wsproxy-conf";
/// The spec's `targetCa`, when it names one.
pub const TARGET_CA_SECRET: &str = "wsproxy-target-ca";
/// The spec's `replayStore.passwordFile` and `caFile`, when it names them.
pub const REPLAY_PASSWORD_SECRET: &str = "wsproxy-replay-store-password";
pub const REPLAY_CA_SECRET: &str = "wsproxy-replay-store-ca";
/// The spec's `admin.tokenFile`, when it names one.
pub const ADMIN_TOKEN_SECRET: &str = "wsproxy-admin-token";
pub const SECRETS_DIR: &str = "/run/secrets";
/// Label on everything deploy creates, so undeploy removes exactly that.
pub const OWNER_LABEL: &str = "io.ovirt.wsproxyctl.managed";
/// Label carrying the digest of certificates + configuration (a change restarts the container).
pub const CHECKSUM_LABEL: &str = "io.ovirt.wsproxyctl.checksum";

/// A podman secret the container gets, readable only by the relay's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub name: String,
    pub data: Vec<u8>,
}

/// Label on a relay container that can hand its port over (see [`Placement::HandOver`]).
pub const HANDOVER_LABEL: &str = "io.ovirt.wsproxyctl.handover";
/// The port browsers connect to (read by `wsproxyctl status`).
pub const PORT_LABEL: &str = "io.ovirt.wsproxyctl.port";
/// The admin listener's port, when there is one (read by `wsproxyctl status`).
pub const ADMIN_PORT_LABEL: &str = "io.ovirt.wsproxyctl.admin-port";

/// How a redeploy replaces the relay on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The old relay stops, then the new one starts on the published port: the kube-play Pod.
    /// New consoles wait for the drain.
    InPlace,
    /// What deploy installs, as a Quadlet unit or a container through the API: on the host's
    /// network with `WSPROXY_REUSE_PORT`, so a redeploy starts the new relay on the port first
    /// and only then tells the old one to drain. Nothing waits, so the drain can be long.
    HandOver,
}

/// Label on a Quadlet unit's container naming its unit file (a [`Slot`]).
pub const UNIT_LABEL: &str = "io.ovirt.wsproxyctl.quadlet-unit";

/// One of the Quadlet units deploy takes turns with. The new relay must start while the old
/// one still serves, and a Quadlet container is stopped with its service (it runs in the
/// service's cgroup, and the service's ExecStop removes it), so each new relay needs a service
/// of its own that is not still draining an earlier relay: `wsproxy.service`,
/// `wsproxy-b.service`, ... up to [`Slot::COUNT`]. All name their container `wsproxy` (deploy
/// renames the old one out of the way first; systemd finds each by its cidfile) and each has
/// its own podman secrets, so a draining relay's files stay as they were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(usize);

impl Slot {
    /// How many relays may run at once on a host: the current one and three still draining.
    pub const COUNT: usize = 4;
    /// The unit deploy installs first (and `render` writes): `wsproxy.container`.
    pub const FIRST: Slot = Slot(0);

    pub fn all() -> impl Iterator<Item = Slot> + Clone {
        (0..Self::COUNT).map(Slot)
    }

    /// The slots after this one, in turn, ending with itself.
    pub fn after(self) -> impl Iterator<Item = Slot> {
        (1..=Self::COUNT).map(move |i| Slot((self.0 + i) % Self::COUNT))
    }

    /// Where this slot is in [`Slot::all`].
    pub fn index(self) -> usize {
        self.0
    }

    /// `wsproxy`, `wsproxy-b`, `wsproxy-c`, ...
    fn stem(self) -> String {
        match self.0 {
            0 => CONTAINER_NAME.to_string(),
            n => format!("{CONTAINER_NAME}-{}", char::from(b'a' + n as u8)),
        }
    }

    /// `wsproxy.container`, `wsproxy-b.container`, ...
    pub fn unit_file(self) -> String {
        format!("{}.container", self.stem())
    }

    /// The systemd service Quadlet makes of the unit.
    pub fn service(self) -> String {
        format!("{}.service", self.stem())
    }

    /// The podman secret this slot keeps the file `name` (`wsproxy-tls-key`, ...) in:
    /// `wsproxy-b-tls-key` for the second. In the container it is `name` whatever the slot.
    pub fn secret_name(self, name: &str) -> String {
        match name.strip_prefix(&format!("{SECRET_PREFIX}-")) {
            Some(rest) if self.0 > 0 => format!("{}-{rest}", self.stem()),
            _ => name.to_string(),
        }
    }
}

/// Everything about the relay container.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    pub name: String,
    pub placement: Placement,
    pub image: String,
    pub args: Vec<String>,
    pub host_port: u16,
    pub container_port: u16,
    /// The admin listener's port (`admin:`), published on the same number.
    pub admin_port: Option<u16>,
    pub secrets: Vec<SecretMount>,
    pub labels: BTreeMap<String, String>,
    pub auto_update: bool,
    /// Seconds podman gives the relay after SIGTERM ([`stop_timeout_secs`]).
    pub stop_timeout: u32,
    pub checksum: String,
}

/// The relay configuration inside the container (secrets are files under /run/secrets).
pub fn conf(spec: &DeploySpec, placement: Placement) -> String {
    conf_in(spec, placement, SECRETS_DIR)
}

/// The relay configuration when the secret files are in `dir`.
pub fn conf_in(spec: &DeploySpec, placement: Placement, dir: &str) -> String {
    use wsproxy::config::key;
    let path = |n: &str| format!("{dir}/{SECRET_PREFIX}-{n}");
    let mut conf = relay_conf(
        spec,
        &CertPaths {
            cert: &path("tls-crt"),
            key: &path("tls-key"),
            engine: &path("engine-cer"),
            target_ca: &path("target-ca"),
            replay_password: &path("replay-store-password"),
            replay_ca: &path("replay-store-ca"),
            ca: &path("ca-crt"),
            admin_token: &path("admin-token"),
        },
    );
    conf += &key::WSPROXY_SHUTDOWN_GRACE.line(drain_secs(spec, placement));
    if placement == Placement::HandOver {
        conf += &key::WSPROXY_REUSE_PORT.line("True");
    }
    conf
}

/// The names of the podman secrets a plan uses, in both Quadlet slots (for undeploy, which
/// has no plan).
pub fn secret_names() -> Vec<String> {
    let mut names: Vec<String> =
        crate::pki::bundle::SECRET_KEYS.iter().map(|k| crate::pki::bundle::podman_secret_name(SECRET_PREFIX, k)).collect();
    names.push(TARGET_CA_SECRET.into());
    names.push(REPLAY_PASSWORD_SECRET.into());
    names.push(REPLAY_CA_SECRET.into());
    names.push(ADMIN_TOKEN_SECRET.into());
    names.push(CONF_SECRET.into());
    Slot::all().flat_map(|slot| names.iter().map(move |n| slot.secret_name(n))).collect()
}

/// The drain on podman: how long open consoles may go on after SIGTERM (`drainSeconds`;
/// unset, long where a redeploy hands over and short where new consoles wait for it).
pub fn drain_secs(spec: &DeploySpec, placement: Placement) -> u32 {
    spec.drain_seconds.unwrap_or(match placement {
        Placement::InPlace => crate::spec::DEFAULT_DRAIN_SECS_IN_PLACE,
        Placement::HandOver => crate::spec::DEFAULT_DRAIN_SECS_HANDOVER,
    })
}

/// Seconds podman waits after SIGTERM before it kills the relay: the drain and 10 s for the
/// 1001 closes (the relay gives them 5) and the exit, so the drain is never cut. Podman's
/// default is 10 s, and in a Quadlet unit systemd's `TimeoutStopSec` does not change it: the
/// container itself must carry it (the API container, the Quadlet unit and the kube-play Pod
/// all do).
pub fn stop_timeout_secs(spec: &DeploySpec, placement: Placement) -> u32 {
    drain_secs(spec, placement) + CLOSE_SECS
}

/// What the stop timeout allows beyond the drain: the 1001 closes and the exit.
const CLOSE_SECS: u32 = 10;

impl ContainerPlan {
    /// How long the relay drains its open consoles after SIGTERM (its stop timeout less the
    /// closes), for reports.
    pub fn drain_secs(&self) -> u32 {
        self.stop_timeout.saturating_sub(CLOSE_SECS)
    }
}

/// Seconds between two health checks of the relay's container.
pub const HEALTH_INTERVAL_SECS: u32 = 30;

/// What podman runs as the container's health check: the relay's own `healthcheck` on its
/// port (the image has no shell or curl). `--insecure`: the certificate names the proxy's FQDN,
/// not 127.0.0.1, and the check sends nothing secret. Liveness (`/healthz`), not readiness:
/// a draining relay is healthy.
pub fn health_cmd(port: u16) -> Vec<String> {
    vec![crate::image::ENTRYPOINT.into(), "healthcheck".into(), "--insecure".into(), format!("https://127.0.0.1:{port}/healthz")]
}

/// How long systemd lets a Quadlet unit start, an image pull included.
pub const START_TIMEOUT_SECS: u32 = 900;

/// Where the kube-play Pod mounts its files.
pub const KUBE_FILES_DIR: &str = "/etc/wsproxy/files";

/// Plan the container for a spec and its certificates.
pub fn plan(spec: &DeploySpec, bundle: &Bundle, placement: Placement) -> ContainerPlan {
    let conf = conf(spec, placement);
    let mut secrets: Vec<SecretMount> =
        bundle.podman_secrets(SECRET_PREFIX).into_iter().map(|(name, data)| SecretMount { name, data }).collect();
    let store = spec.replay_store.as_ref().map(|s| s.files.clone()).unwrap_or_default();
    let admin_token = spec.admin.as_ref().and_then(|a| a.token.as_ref()).map(|t| t.0.clone());
    for (name, text) in [
        (TARGET_CA_SECRET, &spec.target_ca_pem),
        (REPLAY_PASSWORD_SECRET, &store.password),
        (REPLAY_CA_SECRET, &store.ca_pem),
        (ADMIN_TOKEN_SECRET, &admin_token),
    ] {
        if let Some(text) = text {
            secrets.push(SecretMount { name: name.into(), data: text.clone().into_bytes() });
        }
    }
    secrets.push(SecretMount { name: CONF_SECRET.into(), data: conf.clone().into_bytes() });
    // The files' contents count too (only their paths are in the configuration).
    let files = [&spec.target_ca_pem, &store.password, &store.ca_pem, &admin_token];
    let target_ca: String = files.iter().map(|f| f.as_deref().map(|t| super::sha256_hex(t.as_bytes())).unwrap_or_default()).collect();
    // So are the container's own settings: a deploy after they change replaces the container.
    let settings = format!("stop-timeout={} health={:?}", stop_timeout_secs(spec, placement), health_cmd(spec.port));
    let checksum = super::sha256_hex(
        format!("{}{}{}{target_ca}{settings}", bundle.checksum(), super::sha256_hex(conf.as_bytes()), spec.image).as_bytes(),
    );
    let mut l = labels(spec);
    l.insert(OWNER_LABEL.into(), "true".into());
    l.insert(CHECKSUM_LABEL.into(), checksum.clone());
    // Where browsers reach it, for `wsproxyctl status` (the port is in a secret otherwise).
    l.insert(PORT_LABEL.into(), spec.port.to_string());
    let admin_port = spec.admin.as_ref().map(|a| a.port);
    if let Some(port) = admin_port {
        l.insert(ADMIN_PORT_LABEL.into(), port.to_string());
    }
    if placement == Placement::HandOver {
        l.insert(HANDOVER_LABEL.into(), "true".into());
    }
    ContainerPlan {
        name: CONTAINER_NAME.into(),
        placement,
        image: spec.image.clone(),
        args: vec!["--config".into(), format!("{SECRETS_DIR}/{CONF_SECRET}")],
        host_port: spec.port,
        container_port: spec.port,
        admin_port,
        secrets,
        labels: l,
        auto_update: spec.podman.auto_update,
        stop_timeout: stop_timeout_secs(spec, placement),
        checksum,
    }
}

/// The Quadlet unit of `slot`.
pub fn quadlet(plan: &ContainerPlan, slot: Slot) -> String {
    let uid = crate::image::UID;
    let mut s = String::from(
        "# Rendered by `wsproxyctl render --target podman`. Install into /etc/containers/systemd/,\n\
         # then `systemctl daemon-reload && systemctl start wsproxy`. The secrets it names are\n\
         # created by `wsproxyctl deploy --target podman` (or `podman secret create`).\n",
    );
    s.push_str("[Unit]\nDescription=oVirt websocket proxy (wsproxy)\nWants=network-online.target\nAfter=network-online.target\n\n");
    s.push_str("[Container]\n");
    s.push_str(&format!("ContainerName={}\nImage={}\n", plan.name, plan.image));
    s.push_str(&format!("Exec={}\n", plan.args.join(" ")));
    if plan.placement == Placement::HandOver {
        // The port is shared with the next relay through SO_REUSEPORT, which needs the host's
        // own socket (a published port belongs to one container).
        s.push_str("Network=host\n");
    } else {
        s.push_str(&format!("PublishPort={}:{}\n", plan.host_port, plan.container_port));
        if let Some(port) = plan.admin_port {
            s.push_str(&format!("PublishPort={port}:{port}\n"));
        }
    }
    for secret in &plan.secrets {
        let target = if slot == Slot::FIRST { String::new() } else { format!(",target={}", secret.name) };
        s.push_str(&format!("Secret={},uid={uid},gid={uid},mode=0400{target}\n", slot.secret_name(&secret.name)));
    }
    s.push_str(&format!("User={uid}\nGroup={uid}\n"));
    s.push_str("ReadOnly=true\n");
    s.push_str("# Podman mounts each secret as a file under /run/secrets: on a read-only root that needs a tmpfs.\n");
    s.push_str(&format!("Tmpfs={SECRETS_DIR}:size=1m,mode=0755\n"));
    s.push_str("DropCapability=all\nNoNewPrivileges=true\n");
    // `StopTimeout=` exists only from podman 5.0; PodmanArgs works in every Quadlet (4.4+).
    s.push_str(&format!("PodmanArgs=--stop-timeout={}\n", plan.stop_timeout));
    // A JSON array: a plain string would be run by /bin/sh, which the image does not have.
    let health = serde_json::to_string(&health_cmd(plan.container_port)).unwrap_or_default();
    s.push_str(&format!("HealthCmd={health}\nHealthInterval={HEALTH_INTERVAL_SECS}s\nHealthRetries=3\n"));
    if plan.auto_update {
        s.push_str("AutoUpdate=registry\n");
    }
    for (k, v) in &plan.labels {
        s.push_str(&format!("Label={k}={v}\n"));
    }
    s.push_str(&format!("Label={UNIT_LABEL}={}\n", slot.unit_file()));
    // systemd waits a little longer than podman, so podman's own stop is the one that acts.
    // TimeoutStartSec: the first start may pull the image (systemd's default 90 s is short
    // for a slow registry); podman's own stop timeout does the stopping.
    s.push_str(&format!(
        "\n[Service]\nRestart=on-failure\nRestartSec=2\nTimeoutStartSec={START_TIMEOUT_SECS}\nTimeoutStopSec={}\n\n",
        plan.stop_timeout + 5
    ));
    s.push_str("[Install]\nWantedBy=multi-user.target default.target\n");
    s
}

/// The kube-play Pod's files (its certificates, token and configuration) as a Secret.
fn kube_files_secret(spec: &DeploySpec, plan: &ContainerPlan, labels: BTreeMap<String, String>) -> k8s_openapi::api::core::v1::Secret {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    Secret {
        metadata: ObjectMeta { name: Some("wsproxy-files".into()), labels: Some(labels), ..Default::default() },
        // stringData: podman 4.3 leaves `data` base64 text undecoded in mounted files.
        string_data: Some(
            plan.secrets
                .iter()
                .map(|s| {
                    let text = if s.name == CONF_SECRET {
                        conf_in(spec, plan.placement, KUBE_FILES_DIR)
                    } else {
                        String::from_utf8_lossy(&s.data).to_string()
                    };
                    (s.name.clone(), text)
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// A Pod (+ its Secret) for `podman kube play` on hosts without systemd.
pub fn kube_play(spec: &DeploySpec, plan: &ContainerPlan) -> String {
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, KeyToPath, Pod, PodSecurityContext, PodSpec, SecretVolumeSource, Volume, VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let uid = crate::image::UID as i64;
    let mut l = labels(spec);
    l.insert(OWNER_LABEL.into(), "true".into());
    let secret = kube_files_secret(spec, plan, l.clone());
    let pod = Pod {
        metadata: ObjectMeta { name: Some(NAME.into()), labels: Some(l), ..Default::default() },
        spec: Some(PodSpec {
            restart_policy: Some("OnFailure".into()),
            // podman kube play makes this the container's stop timeout (podman 4.7 and later).
            termination_grace_period_seconds: Some(plan.stop_timeout.into()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(uid),
                run_as_group: Some(uid),
                ..Default::default()
            }),
            containers: vec![Container {
                name: CONTAINER_NAME.into(),
                image: Some(plan.image.clone()),
                args: Some(vec!["--config".into(), format!("{KUBE_FILES_DIR}/{CONF_SECRET}")]),
                ports: Some(
                    std::iter::once((plan.container_port, plan.host_port))
                        .chain(plan.admin_port.map(|p| (p, p)))
                        .map(|(inside, host)| ContainerPort {
                            container_port: inside.into(),
                            host_port: Some(host.into()),
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                security_context: Some(super::k8s::hardened()),
                volume_mounts: Some(vec![VolumeMount {
                    name: "files".into(),
                    mount_path: KUBE_FILES_DIR.into(),
                    read_only: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "files".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("wsproxy-files".into()),
                    // podman 4.3 panics on a secret volume without `optional`.
                    optional: Some(false),
                    items: Some(plan.secrets.iter().map(|s| KeyToPath { key: s.name.clone(), path: s.name.clone(), mode: None }).collect()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    format!(
        "# Rendered by `wsproxyctl render --target podman` for `podman kube play` (hosts without systemd).\n\
         # It holds the proxy's private key: keep it 0600.\n---\n{}---\n{}",
        serde_yaml::to_string(&secret).expect("serialize"),
        serde_yaml::to_string(&pod).expect("serialize")
    )
}

/// The rendered files: the Quadlet unit deploy installs first (it hands the port over), and
/// the kube-play Pod (replaced in place: `podman kube play --replace`).
pub fn files(spec: &DeploySpec, bundle: &Bundle) -> Vec<File> {
    let unit = quadlet(&plan(spec, bundle, Placement::HandOver), Slot::FIRST);
    vec![
        File { name: Slot::FIRST.unit_file(), contents: unit, mode: 0o644 },
        File { name: "wsproxy-pod.yaml".into(), contents: kube_play(spec, &plan(spec, bundle, Placement::InPlace)), mode: 0o600 },
    ]
}
