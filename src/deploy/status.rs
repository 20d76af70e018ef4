//! `wsproxyctl status`: is the relay up where deploy put it, which image and version, since
//! when, how often it restarted, and how long the certificate it serves has left, read from a
//! TLS handshake with the relay (what browsers get, not what files say). Not running, not
//! ready, or a certificate ending within 30 days is a failed check (exit 1).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::error::{Failure, Result};
use crate::https_get::bracketed;
use crate::render::podman::{ADMIN_PORT_LABEL, CONTAINER_NAME, OWNER_LABEL, PORT_LABEL, UNIT_LABEL};

/// Days a served certificate must still have; fewer is a failed check (as `certs inspect`).
pub const CERTIFICATE_MIN_DAYS: i64 = 30;

/// What `status` reports.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub target: String,
    /// The podman host, or the namespace.
    pub place: String,
    /// `quadlet` or `container` on podman; `N/M ready` on Kubernetes.
    pub mode: String,
    /// The systemd service the relay runs from (podman, Quadlet: `wsproxy.service`,
    /// `wsproxy-b.service`, ...; each redeploy hands over to the next).
    pub unit: Option<String>,
    /// Earlier relays still draining their open consoles after a hand-over (podman).
    pub draining: Vec<String>,
    pub running: bool,
    pub image: Option<String>,
    /// The relay's version (the image's org.opencontainers.image.version label).
    pub version: Option<String>,
    pub started: Option<String>,
    pub restarts: i64,
    /// Where the certificate was read, and its days left.
    pub certificate_from: Option<String>,
    pub certificate_days_left: Option<i64>,
    /// The open sessions, counted through the relay's admin listener (`--admin`), and its URL.
    pub open_sessions: Option<usize>,
    pub sessions_from: Option<String>,
    /// Where the deployed relay's admin listener is (podman: from the container's labels).
    pub admin_listener: Option<String>,
    /// Why the check failed (empty: ok).
    pub problems: Vec<String>,
    pub ok: bool,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        let unit = self.unit.as_ref().map(|u| format!(" ({u})")).unwrap_or_default();
        writeln!(f, "{} ({}): {}, {}{unit}", self.place, self.target, if self.running { "running" } else { "not running" }, self.mode)?;
        if !self.draining.is_empty() {
            writeln!(f, "  draining after a redeploy: {}", self.draining.join(", "))?;
        }
        writeln!(f, "  image {} (relay {})", or(&self.image), or(&self.version))?;
        writeln!(f, "  started {}, {} restart(s)", or(&self.started), self.restarts)?;
        match (&self.certificate_from, self.certificate_days_left) {
            (Some(at), Some(days)) => writeln!(f, "  certificate served at {at}: {days} days left")?,
            (Some(at), None) => writeln!(f, "  certificate: could not be read at {at}")?,
            _ => writeln!(f, "  certificate: no address to read it from (pass --connect-to HOST:PORT)")?,
        }
        match (&self.sessions_from, self.open_sessions) {
            (Some(at), Some(n)) => writeln!(f, "  {n} open session(s), from the admin listener at {at}")?,
            (Some(at), None) => writeln!(f, "  open sessions: could not be read at {at}")?,
            _ => match &self.admin_listener {
                Some(url) => writeln!(f, "  open sessions: pass --admin {url} and its credentials to count them")?,
                None => writeln!(f, "  open sessions: pass --admin URL (the relay's WSPROXY_ADMIN_LISTEN) to count them")?,
            },
        }
        for p in &self.problems {
            writeln!(f, "  problem: {p}")?;
        }
        Ok(())
    }
}

impl Status {
    /// Count the open sessions through the relay's admin listener; a listener that cannot be
    /// read is a problem (the check fails), like a certificate that cannot.
    pub async fn count_sessions(mut self, admin: &crate::sessions::AdminOptions) -> Status {
        self.sessions_from = Some(admin.url.clone());
        match crate::sessions::list(admin).await {
            Ok(listing) => self.open_sessions = Some(listing.sessions.len()),
            Err(e) => {
                self.problems.push(format!("the open sessions could not be read from the admin listener: {}", e.message));
                self.ok = false;
            }
        }
        self
    }

    fn conclude(mut self) -> Status {
        if !self.running {
            self.problems.push("the relay is not running".into());
        }
        if let Some(days) = self.certificate_days_left.filter(|d| *d < CERTIFICATE_MIN_DAYS) {
            self.problems.push(format!("the served certificate ends in {days} days: renew it (`wsproxyctl certs issue`, then deploy)"));
        }
        self.ok = self.problems.is_empty();
        self
    }
}

/// The relay deploy created on a podman host.
pub async fn podman(host: Option<&str>, identity: Option<&std::path::Path>, connect_to: Option<&str>) -> Result<Status> {
    let docker = super::podman::connect(host, identity).await?;
    let place = super::podman::describe_host(host);
    let mut status = Status { target: "podman".into(), place: place.clone(), ..Default::default() };
    let inspected = match docker.inspect_container(CONTAINER_NAME, None).await {
        Ok(c) => c,
        Err(_) => {
            status.mode = "not deployed".into();
            status.problems.push(format!("no relay on {place}: `wsproxyctl deploy --target podman` first"));
            return Ok(status.conclude());
        }
    };
    let labels = inspected.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
    if labels.get(OWNER_LABEL).map(String::as_str) != Some("true") {
        return Err(Failure::check(format!("the container {CONTAINER_NAME} on {place} was not made by wsproxyctl: not reporting on it")));
    }
    status.mode = if labels.contains_key(super::quadlet::UNIT_DIR_LABEL) { "quadlet" } else { "container" }.into();
    status.unit = labels.get(UNIT_LABEL).map(|file| file.replace(".container", ".service"));
    status.draining = super::podman::draining(&docker, CONTAINER_NAME).await;
    let state = inspected.state.unwrap_or_default();
    status.running = state.running.unwrap_or(false);
    status.started = state.started_at;
    status.restarts = inspected.restart_count.unwrap_or(0);
    status.image = inspected.config.and_then(|c| c.image);
    if let Some(image) = &status.image {
        if let Ok(i) = docker.inspect_image(image).await {
            status.version = i.config.and_then(|c| c.labels).and_then(|l| l.get("org.opencontainers.image.version").cloned());
        }
    }
    let address = match (connect_to, labels.get(PORT_LABEL)) {
        (Some(at), _) => Some(at.to_string()),
        (None, Some(port)) => Some(format!("{}:{port}", bracketed(&super::several_hosts::address_of(&place)?))),
        (None, None) => None,
    };
    if let Some(port) = labels.get(ADMIN_PORT_LABEL) {
        status.admin_listener = Some(format!("https://{}:{port}", bracketed(&super::several_hosts::address_of(&place)?)));
    }
    if let (Some(at), true) = (&address, status.running) {
        status.certificate_days_left = served_certificate_days(at).await;
    }
    status.certificate_from = address;
    Ok(status.conclude())
}

/// The relay's Deployment and pods in `namespace`.
pub async fn kubernetes(client: &kube::Client, namespace: &str, connect_to: Option<&str>) -> Result<Status> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let mut status = Status { target: "k8s".into(), place: format!("namespace {namespace}"), ..Default::default() };
    let Some(d) =
        deployments.get_opt(crate::render::NAME).await.map_err(|e| Failure::environment(format!("reading Deployment/wsproxy: {e}")))?
    else {
        status.mode = "not deployed".into();
        status.problems.push(format!("no Deployment/wsproxy in {namespace}: `wsproxyctl deploy --target k8s` first (or -n NAMESPACE)"));
        return Ok(status.conclude());
    };
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    status.mode = format!("{ready}/{wanted} ready");
    status.running = ready > 0;
    if ready < wanted {
        status.problems.push(format!("{ready} of {wanted} replicas ready"));
    }
    status.image = d.spec.and_then(|s| s.template.spec).and_then(|p| p.containers.into_iter().next()).and_then(|c| c.image);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = ListParams::default().labels(&crate::render::pod_selector());
    let list = pods.list(&selector).await.map_err(|e| Failure::environment(format!("listing the relay's pods: {e}")))?;
    for pod in list.items {
        let pod_status = pod.status.unwrap_or_default();
        let containers = pod_status.container_statuses.unwrap_or_default();
        status.restarts += containers.iter().map(|c| i64::from(c.restart_count)).sum::<i64>();
        let started = pod_status.start_time.map(|t| t.0.to_string());
        // The oldest pod's start: how long the deployment has served without a full restart.
        if status.started.is_none() || started < status.started {
            status.started = started;
        }
    }
    if let Some(at) = connect_to {
        status.certificate_days_left = served_certificate_days(at).await;
        status.certificate_from = Some(at.to_string());
    }
    Ok(status.conclude())
}

/// The days left on the certificate the relay at `address` (HOST:PORT) presents, read from a
/// TLS handshake that accepts any certificate (it only reads it; nothing is sent).
pub async fn served_certificate_days(address: &str) -> Option<i64> {
    let config = wsproxy::tls::target_client_config(None).ok()?;
    let host = address.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))?;
    let name = wsproxy::tls::server_name(host).ok()?;
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(address)).await.ok()?.ok()?;
    let tls = tokio::time::timeout(Duration::from_secs(5), tokio_rustls::TlsConnector::from(config).connect(name, tcp)).await.ok()?.ok()?;
    let der = tls.get_ref().1.peer_certificates()?.first()?.clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(crate::pki::days_left(&cert))
}
