//! `deploy --target podman`: the relay container on the separate host, through the podman API
//! (Docker-compatible, via bollard), locally over a unix socket or remotely over ssh.
//!
//! Why a volume and not podman secrets for the certificates: the Docker-compatible container
//! API that bollard speaks cannot attach secrets to a container. The certificates go into a
//! volume (`wsproxy-certs-<checksum>`) through the archive API, owned by the relay's uid with
//! mode 0400, mounted read-only at /run/secrets: the same paths the Quadlet unit's `Secret=`
//! lines give, so one relay configuration serves both.
//!
//! Everything created carries the label `io.ovirt.wsproxyctl.managed=true`; undeploy removes
//! exactly that. A checksum label (certificates + configuration + image) makes a second deploy
//! with the same inputs a no-op and a changed certificate a replacement.
//!
//! The replacement is a hand-over (see [`Placement::HandOver`]): the running relay is renamed
//! `wsproxy-draining-<time>`, the new one starts as `wsproxy` on the same port (host network,
//! SO_REUSEPORT) with its own certificates volume, and only once it says it is ready does the
//! old one get SIGTERM: it stops accepting, drains its open consoles and exits, and the next
//! deploy removes it. Should the new relay not start, the old one is renamed back, untouched.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, Mount, MountType, PortBinding, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ImportImageOptions, KillContainerOptions, ListContainersOptions, ListVolumesOptions,
    LogsOptions, RemoveContainerOptions, RemoveVolumeOptions, RenameContainerOptions, UploadToContainerOptions,
};
use bollard::{ClientVersion, Docker};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::error::{Failure, Result};
use crate::render::podman::{
    health_cmd, ContainerPlan, Placement, Slot, CHECKSUM_LABEL, HANDOVER_LABEL, HEALTH_INTERVAL_SECS, OWNER_LABEL, SECRETS_DIR, UNIT_LABEL,
};

/// The certificates volume of a planned relay container (`wsproxy-certs-<checksum>`): each
/// version has its own, so a draining relay keeps the files it was started with.
pub fn volume_of(plan: &ContainerPlan) -> String {
    format!("{}-{}", volumes_prefix(&plan.name), &plan.checksum[..12.min(plan.checksum.len())])
}

/// What every certificates volume of relay `container` is named from.
fn volumes_prefix(container: &str) -> String {
    format!("{container}-certs")
}

fn loader_of(volume: &str) -> String {
    format!("{volume}-loader")
}

/// The name a replaced relay drains under.
pub(crate) fn draining_name(container: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    format!("{container}-draining-{now}")
}

/// What the demo's container needs beyond a deployment: the host's network (to reach a VNC
/// server on the host's loopback) and read-only bind mounts (a noVNC directory).
#[derive(Debug, Default, Clone)]
pub struct Extras {
    pub host_network: bool,
    /// (host path, container path), read-only.
    pub binds: Vec<(String, String)>,
}
/// podman 4.3's Docker-compatible API level; newer podman accepts it too.
const API: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };

/// Where the podman API is.
pub fn describe_host(host: Option<&str>) -> String {
    host.map(str::to_string).unwrap_or_else(|| default_socket().unwrap_or_else(|| "unix:///run/podman/podman.sock".into()))
}

/// The local podman API when no --host is given: `CONTAINER_HOST` when set (podman's own
/// variable), else the system socket, else the user's.
fn default_socket() -> Option<String> {
    if let Some(host) = std::env::var_os("CONTAINER_HOST").filter(|h| !h.is_empty()) {
        return Some(host.to_string_lossy().into_owned());
    }
    let mut candidates = vec!["/run/podman/podman.sock".to_string()];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        candidates.push(format!("{}/podman/podman.sock", x.to_string_lossy()));
    }
    candidates.into_iter().find(|p| Path::new(p).exists()).map(|p| format!("unix://{p}"))
}

/// Connect and check the API answers.
pub async fn connect(host: Option<&str>, identity: Option<&Path>) -> Result<Docker> {
    let uri = describe_host(host);
    let docker = if let Some(path) = uri.strip_prefix("unix://") {
        if !Path::new(path).exists() {
            return Err(Failure::environment(format!(
                "no podman API socket at {path}: start it with `systemctl enable --now podman.socket` \
                 (or `podman system service --time=0 unix://{path}`), or pass --host"
            )));
        }
        super::ssh_transport::connect_unix(Path::new(path), &API)?
    } else if uri.starts_with("ssh://") {
        let link = super::ssh_transport::SshLink::new(&uri, identity)?;
        return connect_checked(super::ssh_transport::connect(&link, &API)?, &uri).await;
    } else {
        return Err(Failure::usage(format!("--host {uri:?}: use unix:///path/to/podman.sock or ssh://user@host[:port]")));
    };
    connect_checked(docker, &uri).await
}

/// Check that the API answers and is podman.
async fn connect_checked(docker: Docker, uri: &str) -> Result<Docker> {
    let version = docker.version().await.map_err(|e| {
        let hint = if uri.starts_with("ssh://") {
            "can you `ssh` there with that key, and does the host run podman with an active podman.socket (systemctl enable --now podman.socket)?"
        } else {
            "is the podman service running?"
        };
        Failure::environment(format!("the podman API at {uri} does not answer: {e}; {hint}"))
    })?;
    let is_podman = version.components.iter().flatten().any(|c| c.name.to_ascii_lowercase().contains("podman"));
    if !is_podman {
        return Err(Failure::environment(format!(
            "{uri} is not podman (it says {:?}); deploy --target podman needs podman",
            version.version
        )));
    }
    Ok(docker)
}

fn owner_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{OWNER_LABEL}=true")])])
}

/// Every container deploy created (by its owner label), running or not.
async fn managed_containers(docker: &Docker) -> Result<Vec<bollard::models::ContainerSummary>> {
    docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(owner_filter()), ..Default::default() }))
        .await
        .map_err(|e| Failure::environment(format!("listing containers: {e}")))
}

/// What deploy found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Change {
    Unchanged,
    Created,
    /// The old relay was stopped, then the new one started.
    Replaced,
    /// The new relay took the port while the old one went on serving; the old one drains.
    HandedOver,
}

/// A relay container deploy made, as it is now.
#[derive(Debug)]
pub struct Found {
    pub checksum: String,
    pub running: bool,
    /// Made to hand its port over ([`HANDOVER_LABEL`]).
    pub hand_over: bool,
    /// Started by a Quadlet unit ([`UNIT_LABEL`]), not through the API.
    pub from_unit: bool,
}

impl Found {
    /// Whether a redeploy of `plan` hands the port over from this relay (it runs, was made to
    /// share its port, and the plan does too) instead of stopping it first.
    pub fn hands_over_to(&self, plan: &ContainerPlan) -> bool {
        self.running && self.hand_over && plan.placement == Placement::HandOver
    }
}

/// Whether a listed container runs.
fn is_running(c: &bollard::models::ContainerSummary) -> bool {
    c.state.as_ref().is_some_and(|s| s.to_string() == "running")
}

fn name_of(c: &bollard::models::ContainerSummary) -> String {
    c.names.iter().flatten().next().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default()
}

/// The relay container as deploy last left it.
async fn current(docker: &Docker, name: &str) -> Result<Option<Found>> {
    let list = managed_containers(docker).await?;
    Ok(list.into_iter().find(|c| name_of(c) == name).map(|c| {
        let label = |key: &str| c.labels.as_ref().and_then(|l| l.get(key).cloned());
        Found {
            checksum: label(CHECKSUM_LABEL).unwrap_or_default(),
            running: is_running(&c),
            hand_over: label(HANDOVER_LABEL).as_deref() == Some("true"),
            from_unit: label(UNIT_LABEL).is_some(),
        }
    }))
}

/// A local-only image the host lacks: what deploy (and its dry run) says.
pub fn image_missing(image: &str) -> Failure {
    Failure::usage(format!("{image} is not on the podman host: pass --image-archive from `wsproxyctl image build`, or a registry --image"))
}

/// Make sure the image is on the host: load it from an archive, pull a registry reference, or
/// find it already there.
pub async fn ensure_image(docker: &Docker, image: &str, archive: Option<&Path>, registry: bool) -> Result<String> {
    if let Some(path) = archive {
        let bytes = std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read --image-archive {}: {e}", path.display())))?;
        let mut stream =
            docker.import_image(ImportImageOptions { quiet: true, ..Default::default() }, bollard::body_full(Bytes::from(bytes)), None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| Failure::environment(format!("loading {} into podman: {e}", path.display())))?;
        }
        docker.inspect_image(image).await.map_err(|_| {
            Failure::usage(format!(
                "{} does not hold {image}: build it with `wsproxyctl image build --tag {image}` or pass --image with its tag",
                path.display()
            ))
        })?;
        return Ok(format!("loaded {image} from {}", path.display()));
    }
    if docker.inspect_image(image).await.is_ok() {
        return Ok(format!("{image} is present"));
    }
    if !registry {
        return Err(image_missing(image));
    }
    let mut stream =
        docker.create_image(Some(CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() }), None, None);
    while let Some(item) = stream.next().await {
        item.map_err(|e| Failure::environment(format!("pulling {image}: {e}")))?;
    }
    Ok(format!("pulled {image}"))
}

fn secrets_tar(plan: &ContainerPlan) -> Vec<u8> {
    let uid = crate::image::UID as u64;
    let mut b = tar::Builder::new(Vec::new());
    for s in &plan.secrets {
        let mut h = tar::Header::new_gnu();
        h.set_path(&s.name).expect("plain names");
        h.set_size(s.data.len() as u64);
        h.set_mode(0o400);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &s.data[..]).expect("in memory");
    }
    b.into_inner().expect("in memory")
}

/// The certificates volume at the secrets path: writable for the loader, read-only for the relay.
fn certs_mount(volume: &str, read_only: bool) -> Mount {
    Mount {
        typ: Some(MountType::VOLUME),
        source: Some(volume.to_string()),
        target: Some(SECRETS_DIR.into()),
        read_only: Some(read_only),
        ..Default::default()
    }
}

fn labels(plan: &ContainerPlan) -> HashMap<String, String> {
    plan.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Remove a container at once (its volumes stay), saying whether podman did. A running one is
/// killed first: podman's forced removal stops a container with its own stop timeout, and a
/// relay stops by draining its consoles, which in container mode may take an hour (the
/// hand-over's drain). Whoever removes a relay (undeploy, a rollback, a switch of mode, a
/// failed start) wants it gone now, not after its last console.
async fn force_remove(docker: &Docker, name: &str) -> std::result::Result<(), bollard::errors::Error> {
    // Refused when the container is not running (or not there): nothing to kill then.
    kill(docker, name).await;
    docker.remove_container(name, Some(RemoveContainerOptions { force: true, v: false, ..Default::default() })).await
}

/// [`force_remove`] where a container that is not there is fine.
async fn remove_container(docker: &Docker, name: &str) {
    let _ = force_remove(docker, name).await;
}

/// Fill the certificates volume through a stopped helper container's archive API.
async fn load_volume(docker: &Docker, plan: &ContainerPlan) -> Result<()> {
    let volume = volume_of(plan);
    let loader = loader_of(&volume);
    let _ = docker.remove_volume(&volume, Some(RemoveVolumeOptions { force: true })).await;
    docker
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(volume.clone()),
            labels: Some(labels(plan)),
            ..Default::default()
        })
        .await
        .map_err(|e| Failure::environment(format!("creating volume {volume}: {e}")))?;
    remove_container(docker, &loader).await;
    let body = ContainerCreateBody {
        image: Some(plan.image.clone()),
        cmd: Some(vec!["--version".into()]),
        labels: Some(labels(plan)),
        host_config: Some(HostConfig { mounts: Some(vec![certs_mount(&volume, false)]), ..Default::default() }),
        ..Default::default()
    };
    docker
        .create_container(Some(CreateContainerOptions { name: Some(loader.clone()), ..Default::default() }), body)
        .await
        .map_err(|e| Failure::environment(format!("creating the certificate loader: {e}")))?;
    let uploaded = docker
        .upload_to_container(
            &loader,
            Some(UploadToContainerOptions { path: SECRETS_DIR.into(), ..Default::default() }),
            bollard::body_full(Bytes::from(secrets_tar(plan))),
        )
        .await;
    remove_container(docker, &loader).await;
    uploaded.map_err(|e| Failure::environment(format!("copying the certificates into volume {volume}: {e}")))
}

/// Create (or replace) and start the relay container. Returns what changed.
pub async fn apply(docker: &Docker, plan: &ContainerPlan, extras: &Extras) -> Result<Change> {
    let found = ours(docker, &plan.name).await?;
    let change = match &found {
        // The same relay, unless a unit runs it: the container replaces the unit then.
        Some(f) if f.running && f.checksum == plan.checksum && !f.from_unit => return Ok(Change::Unchanged),
        Some(f) if f.hands_over_to(plan) => Change::HandedOver,
        Some(_) => Change::Replaced,
        None => Change::Created,
    };
    remove_drained(docker, &plan.name).await;
    if change == Change::HandedOver {
        hand_over(docker, plan, extras).await?;
    } else {
        remove_container(docker, &plan.name).await;
        start(docker, plan, extras).await?;
    }
    remove_unused_volumes(docker, plan).await;
    Ok(change)
}

/// Rename the running relay out of the way, start the new one on the same port, and once it is
/// ready tell the old one to drain (SIGTERM: it stops accepting, serves its open consoles up to
/// its drain and exits 0, which its restart policy leaves alone). If the new relay does not
/// come up, it is removed and the old one gets its name back, never having stopped serving.
async fn hand_over(docker: &Docker, plan: &ContainerPlan, extras: &Extras) -> Result<()> {
    let old = draining_name(&plan.name);
    rename(docker, &plan.name, &old).await?;
    let started = async {
        start(docker, plan, extras).await?;
        wait_ready(docker, &plan.name).await
    };
    if let Err(e) = started.await {
        remove_container(docker, &plan.name).await;
        let back = rename(docker, &old, &plan.name).await.err().map(|e| format!("; renaming it back failed too: {e}")).unwrap_or_default();
        return Err(Failure::environment(format!("{e}\nthe running relay was left serving (as before){back}")));
    }
    tell_to_drain(docker, &old).await
}

/// SIGTERM: the relay stops accepting, serves its open consoles up to its drain and exits 0
/// (which neither its restart policy nor its unit's Restart=on-failure restarts).
pub(crate) async fn tell_to_drain(docker: &Docker, old: &str) -> Result<()> {
    docker
        .kill_container(old, Some(KillContainerOptions { signal: "SIGTERM".into() }))
        .await
        .map_err(|e| Failure::environment(format!("telling the old relay {old} to drain (SIGTERM): {e}")))
}

/// SIGKILL a container, if it runs: a relay that must go now, not after its drain.
pub(crate) async fn kill(docker: &Docker, name: &str) {
    let _ = docker.kill_container(name, Some(KillContainerOptions { signal: "SIGKILL".into() })).await;
}

/// SIGKILL every running relay deploy made, so that stopping their units does not wait for
/// their drains (undeploy). Returns their names.
pub(crate) async fn kill_managed(docker: &Docker) -> Result<Vec<String>> {
    let mut killed = Vec::new();
    for c in managed_containers(docker).await? {
        if is_running(&c) {
            kill(docker, &name_of(&c)).await;
            killed.push(name_of(&c));
        }
    }
    Ok(killed)
}

/// Of `names`, the containers that are no longer there.
pub(crate) async fn gone(docker: &Docker, names: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        if docker.inspect_container(&name, None).await.is_err() {
            out.push(name);
        }
    }
    out
}

pub(crate) async fn rename(docker: &Docker, from: &str, to: &str) -> Result<()> {
    docker
        .rename_container(from, RenameContainerOptions { name: to.into() })
        .await
        .map_err(|e| Failure::environment(format!("renaming container {from} to {to}: {e}")))
}

/// The relay logs "wsproxy ready" once its listener is bound: before that, a hand-over must not
/// tell the old one to stop. Its reason when it exits instead (from the log as it was followed:
/// a Quadlet unit's container is removed as it exits).
pub(crate) async fn wait_ready(docker: &Docker, name: &str) -> Result<()> {
    match tokio::time::timeout(Duration::from_secs(10), log_shows(docker, name, "wsproxy ready")).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(seen)) => {
            let logs = if seen.trim().is_empty() { logs(docker, name).await } else { seen };
            Err(Failure::environment(format!("the new relay container exited at start:\n{logs}")))
        }
        Err(_) => Err(Failure::environment(format!(
            "the new relay container {name} did not say it was ready within 10 s:\n{}",
            logs(docker, name).await
        ))),
    }
}

/// The relays earlier hand-overs left draining: (name, still running).
async fn drained_or_draining(docker: &Docker, container: &str) -> Vec<(String, bool)> {
    let prefix = format!("{container}-draining-");
    let Ok(list) = managed_containers(docker).await else { return Vec::new() };
    list.iter().filter(|c| name_of(c).starts_with(&prefix)).map(|c| (name_of(c), is_running(c))).collect()
}

/// Remove the relays earlier hand-overs left draining that have finished (exited); those still
/// serving consoles are left alone.
pub(crate) async fn remove_drained(docker: &Docker, container: &str) {
    for (name, _) in drained_or_draining(docker, container).await.into_iter().filter(|(_, running)| !running) {
        remove_container(docker, &name).await;
    }
}

/// The relays still draining their consoles after a hand-over (for `status`).
pub(crate) async fn draining(docker: &Docker, container: &str) -> Vec<String> {
    drained_or_draining(docker, container).await.into_iter().filter(|(_, running)| *running).map(|(name, _)| name).collect()
}

/// Remove this relay's certificates volumes of earlier versions that no container uses any
/// more (podman refuses to remove a volume in use: a draining relay keeps its own).
pub(crate) async fn remove_unused_volumes(docker: &Docker, plan: &ContainerPlan) {
    let keep = volume_of(plan);
    for name in certificate_volumes(docker, &plan.name).await.into_iter().filter(|n| *n != keep) {
        let _ = docker.remove_volume(&name, Some(RemoveVolumeOptions { force: false })).await;
    }
}

/// The certificates volumes deploy made for relay `container`, every version (none when
/// podman cannot list them).
async fn certificate_volumes(docker: &Docker, container: &str) -> Vec<String> {
    let prefix = volumes_prefix(container);
    let listed = docker.list_volumes(Some(ListVolumesOptions { filters: Some(owner_filter()) })).await;
    let volumes = listed.ok().and_then(|l| l.volumes).unwrap_or_default();
    volumes.into_iter().map(|v| v.name).filter(|n| n.starts_with(&prefix)).collect()
}

/// Fill a new certificates volume, create the relay container and start it.
async fn start(docker: &Docker, plan: &ContainerPlan, extras: &Extras) -> Result<()> {
    load_volume(docker, plan).await?;
    let host_network = extras.host_network || plan.placement == Placement::HandOver;
    let port = format!("{}/tcp", plan.container_port);
    // The browsers' port, and the admin listener's on the same number where there is one.
    let published: Vec<(String, u16)> =
        std::iter::once((port.clone(), plan.host_port)).chain(plan.admin_port.map(|p| (format!("{p}/tcp"), p))).collect();
    let body = ContainerCreateBody {
        image: Some(plan.image.clone()),
        cmd: Some(plan.args.clone()),
        user: Some(format!("{0}:{0}", crate::image::UID)),
        labels: Some(labels(plan)),
        exposed_ports: (!host_network).then(|| published.iter().map(|(inside, _)| inside.clone()).collect()),
        stop_signal: Some("SIGTERM".into()),
        stop_timeout: Some(plan.stop_timeout.into()),
        healthcheck: Some(HealthConfig {
            test: Some(std::iter::once("CMD".to_string()).chain(health_cmd(plan.container_port)).collect()),
            interval: Some(i64::from(HEALTH_INTERVAL_SECS) * 1_000_000_000),
            timeout: Some(10_000_000_000),
            retries: Some(3),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            port_bindings: (!host_network).then(|| {
                published
                    .iter()
                    .map(|(inside, host)| {
                        (inside.clone(), Some(vec![PortBinding { host_ip: Some(String::new()), host_port: Some(host.to_string()) }]))
                    })
                    .collect::<HashMap<_, _>>()
            }),
            network_mode: host_network.then(|| "host".to_string()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::ON_FAILURE), maximum_retry_count: Some(0) }),
            mounts: Some(
                std::iter::once(certs_mount(&volume_of(plan), true))
                    .chain(extras.binds.iter().map(|(host, inside)| Mount {
                        typ: Some(MountType::BIND),
                        source: Some(host.clone()),
                        target: Some(inside.clone()),
                        read_only: Some(true),
                        ..Default::default()
                    }))
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(Some(CreateContainerOptions { name: Some(plan.name.clone()), ..Default::default() }), body)
        .await
        .map_err(|e| Failure::environment(format!("creating container {}: {e}", plan.name)))?;
    docker.start_container(&plan.name, None).await.map_err(|e| Failure::environment(format!("starting container {}: {e}", plan.name)))?;
    wait_running(docker, &plan.name).await
}

/// The relay either listens within moments or exits with its reason: report that reason.
pub async fn wait_running(docker: &Docker, name: &str) -> Result<()> {
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(info) = docker.inspect_container(name, None).await else {
            continue;
        };
        let state = info.state.unwrap_or_default();
        if state.running == Some(false) && state.finished_at.as_deref().is_some_and(|f| !f.starts_with("0001")) {
            let logs = logs(docker, name).await;
            return Err(Failure::environment(format!("the relay container exited at start:\n{logs}")));
        }
        if state.running == Some(true) && state.started_at.is_some() {
            return Ok(());
        }
    }
    Err(Failure::environment(format!("container {name} did not start within 10 s")))
}

/// [`current`], refusing a container of that name that deploy did not create: it is not ours
/// to replace.
pub(crate) async fn ours(docker: &Docker, name: &str) -> Result<Option<Found>> {
    let found = current(docker, name).await?;
    if found.is_none() && docker.inspect_container(name, None).await.is_ok() {
        return Err(Failure::usage(format!(
            "a container named {name} exists on the host but was not created by wsproxyctl: remove or rename it first"
        )));
    }
    Ok(found)
}

/// Make way for the Quadlet unit's container: refuse a foreign one of that name, remove the
/// relay an earlier deploy started directly (a switch between modes).
pub async fn make_way_for_unit(docker: &Docker, name: &str) -> Result<()> {
    if ours(docker, name).await?.is_some() {
        remove_container(docker, name).await;
    }
    Ok(())
}

/// Create (or re-create) the podman secrets the Quadlet unit of `slot` names, labelled as ours.
pub async fn replace_secrets(docker: &Docker, plan: &ContainerPlan, slot: Slot) -> Result<()> {
    use base64::Engine as _;
    for secret in &plan.secrets {
        let name = slot.secret_name(&secret.name);
        match docker.delete_secret(&name).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(Failure::environment(format!("replacing podman secret {name}: {e}"))),
        }
        docker
            .create_secret(bollard::models::SecretSpec {
                name: Some(name.clone()),
                data: Some(base64::engine::general_purpose::STANDARD.encode(&secret.data)),
                labels: Some(labels(plan)),
                ..Default::default()
            })
            .await
            .map_err(|e| Failure::environment(format!("creating podman secret {name}: {e}")))?;
    }
    Ok(())
}

/// Follow the container's log from its first line until it shows `needle`, or the container
/// stops: then the log's last lines as seen. From the first line: a relay that took over a
/// port is at once busy with consoles, whose audit records would push its start-up lines out
/// of any tail.
async fn log_shows(docker: &Docker, name: &str, needle: &str) -> std::result::Result<(), String> {
    const KEEP: usize = 4096;
    let options = LogsOptions { follow: true, stdout: true, stderr: true, tail: "all".into(), ..Default::default() };
    let mut stream = docker.logs(name, Some(options));
    // What was seen last, for a needle split across two chunks and for the error.
    let mut seen = String::new();
    while let Some(Ok(chunk)) = stream.next().await {
        seen.push_str(&chunk.to_string());
        if seen.contains(needle) {
            return Ok(());
        }
        if seen.len() > KEEP {
            let cut = seen.len() - KEEP;
            let cut = (cut..seen.len()).find(|i| seen.is_char_boundary(*i)).unwrap_or(seen.len());
            seen.drain(..cut);
        }
    }
    Err(seen)
}

/// The last lines the relay printed.
pub async fn logs(docker: &Docker, name: &str) -> String {
    let mut out = String::new();
    let mut stream = docker.logs(name, Some(LogsOptions { stdout: true, stderr: true, tail: "20".into(), ..Default::default() }));
    while let Some(Ok(chunk)) = stream.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

/// Values of `label` on the containers deploy created (e.g. where their Quadlet unit is).
pub async fn managed_label_values(docker: &Docker, label: &str) -> Result<Vec<String>> {
    let list = managed_containers(docker).await?;
    Ok(list.into_iter().filter_map(|c| c.labels.and_then(|l| l.get(label).cloned())).collect())
}

/// Remove one relay container and its certificates volumes (the demo's cleanup).
pub async fn remove_one(docker: &Docker, name: &str) {
    remove_container(docker, name).await;
    for volume in certificate_volumes(docker, name).await {
        remove_container(docker, &loader_of(&volume)).await;
        let _ = docker.remove_volume(&volume, Some(RemoveVolumeOptions { force: true })).await;
    }
}

/// Roll back a hand-over whose new relay failed verification: remove that relay and its
/// certificates volume, and nothing else. The old relay was told to drain when the new one took
/// the port: it cannot be made to accept again, but its open consoles go on to the end of its
/// drain instead of being cut with it.
pub async fn roll_back_hand_over(docker: &Docker, plan: &ContainerPlan, removal: &mut super::Removal) {
    removal.record(format!("container {}", plan.name), force_remove(docker, &plan.name).await);
    let volume = volume_of(plan);
    let removed = docker.remove_volume(&volume, Some(RemoveVolumeOptions { force: true })).await;
    removal.record(format!("volume {volume}"), removed);
}

/// Remove what deploy created (by label), nothing else: containers, volumes, and the podman
/// secrets of both Quadlet units. Every removal is tried; each one is reported as removed only
/// when podman removed it, and as failed (with podman's reason) otherwise.
pub async fn undeploy(docker: &Docker, removal: &mut super::Removal) -> Result<()> {
    for c in managed_containers(docker).await? {
        if let Some(id) = c.id {
            let name = c.names.and_then(|n| n.first().cloned()).unwrap_or(id.clone());
            let what = format!("container {}", name.trim_start_matches('/'));
            removal.record(what, force_remove(docker, &id).await);
        }
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters: Some(owner_filter()) }))
        .await
        .map_err(|e| Failure::environment(format!("listing volumes: {e}")))?;
    for v in volumes.volumes.unwrap_or_default() {
        let result = docker.remove_volume(&v.name, Some(RemoveVolumeOptions { force: true })).await;
        removal.record(format!("volume {}", v.name), result);
    }
    for name in crate::render::podman::secret_names() {
        let Ok(secret) = docker.inspect_secret(&name).await else {
            continue;
        };
        let ours = secret.spec.and_then(|s| s.labels).is_some_and(|l| l.get(OWNER_LABEL).map(String::as_str) == Some("true"));
        if ours {
            removal.record(format!("secret {name}"), docker.delete_secret(&name).await);
        }
    }
    Ok(())
}
