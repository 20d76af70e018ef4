//! `deploy` and `undeploy`: put the relay where the spec says, verify it as a browser would,
//! and tell the engine. Each step prints one line when it starts and one when it ends; a failed
//! step names itself, the cause and the fix, and nothing is left half-deployed without saying so.

pub mod engine;
pub mod host_shell;
pub mod k8s;
pub mod logs;
pub mod podman;
pub mod podman_plan;
pub mod quadlet;
pub mod several_hosts;
pub mod ssh_transport;
pub mod status;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Failure, Result};
use crate::output::Output;
use crate::pki::bundle::Bundle;
use crate::render::podman::Slot;
use crate::spec::DeploySpec;
use crate::steps::{StepReport, Steps};
use crate::verify;

/// How the relay is installed on a podman host.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Quadlet when the host runs systemd, else the container directly.
    #[default]
    Auto,
    Quadlet,
    Container,
}

/// Options of `deploy` beyond the spec.
#[derive(Debug, Default, Clone)]
pub struct DeployOptions {
    pub install: Install,
    pub quadlet_dir: Option<String>,
    pub image_archive: Option<PathBuf>,
    pub no_verify: bool,
    pub verify_engine_key: Option<PathBuf>,
    pub verify_vnc: Option<String>,
    /// Verify at this host instead of where the proxy's name resolves (one of several hosts).
    pub verify_connect_to: Option<String>,
    pub rollback_on_failure: bool,
    pub configure_engine: bool,
}

#[derive(Debug, Serialize)]
pub struct DeployReport {
    pub target: String,
    pub host: String,
    /// podman: "quadlet" (a systemd unit) or "container" (started through the API).
    pub mode: Option<String>,
    pub change: Option<podman::Change>,
    pub steps: Vec<StepReport>,
    pub verify: Option<verify::Report>,
    pub engine: Vec<String>,
    /// Whether `engine` lines report what was done on the engine (--configure-engine) or
    /// what the operator should run there.
    pub engine_configured: bool,
    pub ok: bool,
}

/// Verify the deployed proxy as a browser would (retrying briefly while it starts).
async fn verify_deployed(spec: &DeploySpec, opts: &DeployOptions) -> Result<verify::Report> {
    let args = || verify::VerifyOptions {
        proxy: format!("wss://{}:{}", spec.proxy_fqdn, spec.port),
        connect_to: opts.verify_connect_to.clone(),
        ca: Some(spec.certs.join(crate::pki::CA_FILE)),
        engine_cert: None,
        engine_key: opts.verify_engine_key.clone(),
        vnc: opts.verify_vnc.clone(),
        timeout: Duration::from_secs(10),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let report = verify::run(args()).await?;
        if report.ok || Instant::now() > deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The certificate check that starts both targets.
async fn check_certificates(steps: &mut Steps<'_>, spec: &DeploySpec) -> Result<Bundle> {
    steps
        .run("check certificates", async {
            let b = Bundle::load(&spec.certs)?;
            Ok((b, format!("{} complete, key matches, chains to the CA, no CA key", spec.certs.display())))
        })
        .await
}

/// The verify step of both targets; a failed report is also shown to people.
async fn verify_step(steps: &mut Steps<'_>, spec: &DeploySpec, opts: &DeployOptions) -> Result<verify::Report> {
    let report = steps
        .run("verify", async {
            let r = verify_deployed(spec, opts).await?;
            let summary = if r.ok { "a browser can reach consoles through it".to_string() } else { "FAILED".to_string() };
            Ok((r, summary))
        })
        .await?;
    if !report.ok {
        if let Some(out) = steps.out() {
            out.report_text(&report.to_string());
        }
    }
    Ok(report)
}

/// The podman host a deploy works on: its API, a shell on it, its init system, and where a
/// Quadlet unit goes.
struct PodmanHost {
    name: String,
    docker: bollard::Docker,
    shell: host_shell::HostShell,
    init: quadlet::HostInit,
    unit_dir: String,
}

/// `deploy --target podman`.
pub async fn to_podman(spec: &DeploySpec, opts: &DeployOptions, out: &Output) -> Result<DeployReport> {
    spec.check_podman()?;
    if opts.configure_engine {
        engine::check_this_is_the_engine(spec.engine_fqdn.as_deref())?;
    }
    let mut steps = Steps::new(out);
    let bundle = check_certificates(&mut steps, spec).await?;
    let host = open_podman_host(&mut steps, spec, opts).await?;
    let use_quadlet = choose_quadlet(opts.install, &host.name, &host.init, spec.podman.auto_update)?;
    let mut plan = crate::render::podman::plan(spec, &bundle, crate::render::podman::Placement::HandOver);
    if use_quadlet {
        plan.labels.insert(quadlet::UNIT_DIR_LABEL.into(), host.unit_dir.clone());
    }
    let (change, unit) = install_relay(&mut steps, &host, &plan, use_quadlet).await?;
    let mut report = DeployReport {
        target: "podman".into(),
        host: host.name.clone(),
        mode: Some(if use_quadlet { "quadlet" } else { "container" }.into()),
        change: Some(change),
        steps: Vec::new(),
        verify: None,
        engine: Vec::new(),
        engine_configured: opts.configure_engine,
        ok: true,
    };
    if !opts.no_verify {
        report.verify = Some(verify_podman(&mut steps, spec, opts, &host, &plan, (change, unit)).await?);
    }
    report.engine = engine_step(&mut steps, spec, opts).await?;
    report.steps = steps.done;
    Ok(report)
}

/// Connect the host's podman API, make sure the image is there, and learn its init system.
async fn open_podman_host(steps: &mut Steps<'_>, spec: &DeploySpec, opts: &DeployOptions) -> Result<PodmanHost> {
    let (name, docker) = connect_podman(steps, spec).await?;
    steps
        .run("image", async {
            let detail = podman::ensure_image(&docker, &spec.image, opts.image_archive.as_deref(), spec.image_is_registry()).await?;
            Ok(((), detail))
        })
        .await?;
    learn_host(steps, spec, opts, name, docker).await
}

/// The podman API of the spec's host, checked to answer (read only).
async fn connect_podman(steps: &mut Steps<'_>, spec: &DeploySpec) -> Result<(String, bollard::Docker)> {
    let name = podman::describe_host(spec.podman.host.as_deref());
    let docker = steps
        .run(&format!("connect to podman at {name}"), async {
            let d = podman::connect(spec.podman.host.as_deref(), spec.podman.identity.as_deref()).await?;
            Ok((d, "API answers".to_string()))
        })
        .await?;
    Ok((name, docker))
}

/// The host's init system and where a unit goes (read only).
async fn learn_host(
    steps: &mut Steps<'_>,
    spec: &DeploySpec,
    opts: &DeployOptions,
    name: String,
    docker: bollard::Docker,
) -> Result<PodmanHost> {
    let shell = host_shell::HostShell::for_host(&name, spec.podman.identity.as_deref())?;
    let init = steps
        .run("host init system", async {
            let init = quadlet::detect(&shell).await?;
            let systemd = if init.systemd { "systemd" } else { "no systemd" };
            let quadlet = match &init.quadlet {
                Some(path) => format!("Quadlet at {path}"),
                None => "no Quadlet generator (podman 4.4 or later ships it)".into(),
            };
            let detail = format!("{systemd} ({}), {quadlet}, user id {}", init.state, init.uid);
            Ok((init, detail))
        })
        .await?;
    let unit_dir = opts.quadlet_dir.clone().unwrap_or_else(|| init.default_unit_dir());
    Ok(PodmanHost { name, docker, shell, init, unit_dir })
}

/// Quadlet when asked for or (by default) when the host runs systemd and its podman has the
/// Quadlet generator (4.4 and later); otherwise the container through the API (the "host init
/// system" step says why).
fn choose_quadlet(install: Install, host: &str, init: &quadlet::HostInit, auto_update: bool) -> Result<bool> {
    let quadlet = quadlet_or_container(install, host, init)?;
    if auto_update && !quadlet {
        return Err(Failure::usage(format!(
            "podman.autoUpdate works through a Quadlet unit (podman auto-update restarts systemd services), and {host} gets the \
             container directly: drop autoUpdate, or deploy where systemd and podman 4.4 or later run"
        )));
    }
    if quadlet && init.uid != 0 && init.linger == Some(false) {
        return Err(Failure::environment(format!(
            "{user} on {host} has no lingering: a rootless Quadlet unit would stop when {user} logs out and not start at boot. \
             Run `sudo loginctl enable-linger {user}` there and deploy again, or pass --no-quadlet",
            user = init.user,
        )));
    }
    Ok(quadlet)
}

fn quadlet_or_container(install: Install, host: &str, init: &quadlet::HostInit) -> Result<bool> {
    let can = init.systemd && init.quadlet.is_some();
    match install {
        Install::Auto => Ok(can),
        Install::Container => Ok(false),
        Install::Quadlet if can => Ok(true),
        Install::Quadlet if init.systemd => Err(Failure::environment(format!(
            "--quadlet: podman on {host} has no Quadlet generator (none at {} or on PATH; podman 4.4 or later ships it): \
             upgrade podman, or drop --quadlet to create the container directly",
            quadlet::QUADLET_PATHS.join(", ")
        ))),
        Install::Quadlet => Err(Failure::environment(format!(
            "--quadlet: {host} does not run systemd (systemctl is-system-running: {}); drop --quadlet to create the container directly",
            init.state
        ))),
    }
}

impl PodmanHost {
    fn units(&self) -> quadlet::QuadletHost<'_> {
        quadlet::QuadletHost { shell: &self.shell, docker: &self.docker, init: &self.init, dir: &self.unit_dir }
    }
}

/// Install the relay as a Quadlet unit or as a plain container: what changed, and the unit it
/// runs from.
async fn install_relay(
    steps: &mut Steps<'_>,
    host: &PodmanHost,
    plan: &crate::render::podman::ContainerPlan,
    use_quadlet: bool,
) -> Result<(podman::Change, Option<Slot>)> {
    let describe = |change: &podman::Change, what: &str| {
        match change {
        podman::Change::Unchanged => "already running with these certificates and settings: nothing changed".to_string(),
        podman::Change::Created => format!("created and started {what} (port {})", plan.host_port),
        podman::Change::Replaced => "certificates or settings changed: replaced and restarted".to_string(),
        podman::Change::HandedOver => format!(
            "certificates or settings changed: the new {what} took port {} over; the old one drains its open consoles (up to {} s), then exits",
            plan.host_port,
            plan.drain_secs()
        ),
    }
    };
    if use_quadlet {
        steps
            .run(&format!("Quadlet unit in {} (systemd)", host.unit_dir), async {
                let (change, slot) = quadlet::install(&host.units(), plan).await?;
                let detail = format!("{}: {}", slot.unit_file(), describe(&change, &slot.service()));
                Ok(((change, Some(slot)), detail))
            })
            .await
    } else {
        steps
            .run("relay container", async {
                let change = container_from_units(host, plan).await?;
                let detail = describe(&change, &plan.name);
                Ok(((change, None), detail))
            })
            .await
    }
}

/// The relay as a container through the API where a Quadlet unit may have run it (a switch of
/// mode, `--no-quadlet`): a relay that shares its port hands it over and drains on, its unit
/// file removed so that it cannot come back; any other unit is stopped first, as it would
/// restart what the container replaces.
async fn container_from_units(host: &PodmanHost, plan: &crate::render::podman::ContainerPlan) -> Result<podman::Change> {
    let units = if host.init.systemd { Some(quadlet::unit_state(&host.shell, &host.init, &host.unit_dir).await?) } else { None };
    let had_unit = units.as_ref().is_some_and(|u| u.current().is_some());
    let hands_over = podman::ours(&host.docker, &plan.name).await?.is_some_and(|f| f.hands_over_to(plan));
    if had_unit && !hands_over {
        quadlet::uninstall(&host.shell, &host.init, &host.unit_dir).await?;
    }
    let change = podman::apply(&host.docker, plan, &podman::Extras::default()).await?;
    if had_unit && hands_over {
        quadlet::forget(&host.shell, &host.init, &host.unit_dir).await?;
    }
    Ok(change)
}

/// Verify as a browser would; on failure roll back when asked, and say what the relay logged.
/// After a hand-over the rollback removes only the new relay: the old one is draining by then
/// and keeps its open consoles to the end of its drain.
async fn verify_podman(
    steps: &mut Steps<'_>,
    spec: &DeploySpec,
    opts: &DeployOptions,
    host: &PodmanHost,
    plan: &crate::render::podman::ContainerPlan,
    (change, unit): (podman::Change, Option<Slot>),
) -> Result<verify::Report> {
    let verified = verify_step(steps, spec, opts).await?;
    if verified.ok {
        return Ok(verified);
    }
    let logs = podman::logs(&host.docker, &plan.name).await;
    let mut message = format!("verify failed for wss://{}:{}", spec.proxy_fqdn, spec.port);
    if opts.rollback_on_failure && change == podman::Change::HandedOver {
        let mut removed = Removal::default();
        match unit {
            Some(slot) => quadlet::roll_back_hand_over(&host.units(), plan, slot, &mut removed).await,
            None => podman::roll_back_hand_over(&host.docker, plan, &mut removed).await,
        }
        message.push_str(&format!(
            "; rolled back the new relay ({}). The previous relay had already been told to drain when the new one took \
             the port: it serves its open consoles to their end (up to its drain) but takes no new ones. Deploy the \
             previous certificates and settings again to serve new consoles",
            removed.summary()
        ));
    } else if opts.rollback_on_failure {
        let removed = remove_podman_deployment(&host.docker, &host.shell, &host.init, vec![host.unit_dir.clone()]).await?;
        message.push_str(&format!("; rolled back ({})", removed.summary()));
    } else {
        message.push_str("; the relay is left running for inspection (`wsproxyctl undeploy --target podman` removes it)");
    }
    if !logs.trim().is_empty() {
        message.push_str(&format!("\nrelay log:\n{logs}"));
    }
    Err(Failure::check(message))
}

/// The last step of both targets: point the engine at the proxy (`--configure-engine`), or the
/// commands that do it, for the report.
async fn engine_step(steps: &mut Steps<'_>, spec: &DeploySpec, opts: &DeployOptions) -> Result<Vec<String>> {
    if !opts.configure_engine {
        return Ok(engine::commands(&spec.proxy_fqdn, spec.port).to_vec());
    }
    let line = steps
        .run("configure the engine", async {
            let msg = engine::configure(&spec.proxy_fqdn, spec.port)?;
            Ok((msg.clone(), msg))
        })
        .await?;
    Ok(vec![line])
}

/// `undeploy --target podman`: the unit (if deploy installed one), then every container,
/// volume and secret labelled as ours.
pub async fn undeploy_podman(host: Option<&str>, identity: Option<&std::path::Path>, quadlet_dir: Option<&str>) -> Result<Removal> {
    let uri = podman::describe_host(host);
    let docker = podman::connect(host, identity).await?;
    let shell = host_shell::HostShell::for_host(&uri, identity)?;
    let init = quadlet::detect(&shell).await?;
    // Units where the running relay says they are, then where we were told or the default.
    let mut dirs = podman::managed_label_values(&docker, quadlet::UNIT_DIR_LABEL).await?;
    dirs.push(quadlet_dir.map(str::to_string).unwrap_or_else(|| init.default_unit_dir()));
    remove_podman_deployment(&docker, &shell, &init, dirs).await
}

/// Remove a podman deployment: its relays killed, our units in `unit_dirs` (systemd would
/// otherwise restart what is removed), then every container, volume and secret labelled as ours.
async fn remove_podman_deployment(
    docker: &bollard::Docker,
    shell: &host_shell::HostShell,
    init: &quadlet::HostInit,
    mut unit_dirs: Vec<String>,
) -> Result<Removal> {
    unit_dirs.sort();
    unit_dirs.dedup();
    let mut removal = Removal::default();
    // Killed first: a unit's stop waits for its relay's drain, up to an hour.
    let killed = podman::kill_managed(docker).await?;
    for dir in unit_dirs {
        match quadlet::uninstall(shell, init, &dir).await {
            Ok(units) => removal.removed.extend(units),
            Err(e) => removal.failed.push(format!("unit in {dir}: {e}")),
        }
    }
    // A unit's container is removed as it stops (Quadlet runs it with --rm); the rest below.
    removal.removed.extend(podman::gone(docker, killed).await.into_iter().map(|name| format!("container {name}")));
    podman::undeploy(docker, &mut removal).await?;
    Ok(removal)
}

/// What `undeploy` (or a rollback) removed, and what it tried to remove and could not.
#[derive(Debug, Default, Serialize)]
pub struct Removal {
    pub removed: Vec<String>,
    /// "WHAT: why", one per object that is still there.
    pub failed: Vec<String>,
}

impl Removal {
    /// Count `what` as removed when `result` is Ok, else as failed with the error.
    pub fn record<E: std::fmt::Display>(&mut self, what: String, result: std::result::Result<(), E>) {
        match result {
            Ok(()) => self.removed.push(what),
            Err(e) => self.failed.push(format!("{what}: {e}")),
        }
    }

    /// One line for a rollback message.
    pub fn summary(&self) -> String {
        let mut s = format!("removed {}", if self.removed.is_empty() { "nothing".into() } else { self.removed.join(", ") });
        if !self.failed.is_empty() {
            s.push_str(&format!("; could NOT remove {}", self.failed.join("; ")));
        }
        s
    }
}

/// The text `undeploy` prints.
impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s: String = self.removed.iter().map(|r| format!("removed {r}\n")).collect();
        for f in &self.failed {
            s.push_str(&format!("could NOT remove {f}\n"));
        }
        if s.is_empty() {
            s.push_str("nothing to remove: nothing created by wsproxyctl was found there\n");
        }
        f.write_str(&s)
    }
}

/// Options of `deploy --target k8s`.
#[derive(Debug, Default, Clone)]
pub struct K8sOptions {
    pub context: Option<String>,
    pub kubeconfig: Option<std::path::PathBuf>,
    pub dry_run: bool,
    pub load_into_kind: Option<String>,
    pub timeout: Duration,
}

/// `deploy --target k8s`, with a client (a real cluster, or a scripted API in tests).
pub async fn to_kubernetes_with(
    client: &kube::Client,
    spec: &DeploySpec,
    opts: &DeployOptions,
    k8s_opts: &K8sOptions,
    out: &Output,
) -> Result<DeployReport> {
    spec.check_k8s()?;
    if opts.configure_engine {
        engine::check_this_is_the_engine(spec.engine_fqdn.as_deref())?;
    }
    let mut steps = Steps::new(out);
    let bundle = match &spec.cert_manager {
        // cert-manager makes the certificate; spec loading read and checked engine.cer.
        Some(_) => None,
        None => Some(check_certificates(&mut steps, spec).await?),
    };
    let objects = crate::render::k8s::objects(spec, bundle.as_ref());
    let mode = if k8s_opts.dry_run { "server-side dry run" } else { "server-side apply" };
    let applied = steps
        .run(&format!("{mode} (field manager {})", k8s::FIELD_MANAGER), async {
            let applied = k8s::apply(client, &spec.namespace, &objects, k8s_opts.dry_run).await?;
            let detail = applied.join(", ");
            Ok((applied, detail))
        })
        .await?;
    let mut report = DeployReport {
        target: "k8s".into(),
        host: format!("namespace {}", spec.namespace),
        mode: None,
        change: None,
        steps: Vec::new(),
        verify: None,
        engine: Vec::new(),
        engine_configured: opts.configure_engine,
        ok: true,
    };
    if k8s_opts.dry_run {
        report.steps = steps.done;
        report.engine = vec![format!("dry run: the API server accepted {} objects; nothing was changed", applied.len())];
        return Ok(report);
    }
    steps
        .run("wait for Deployment/wsproxy", async {
            let p = k8s::wait_available(client, &spec.namespace, k8s_opts.timeout, out).await?;
            Ok(((), p))
        })
        .await?;
    let address = steps
        .run("service address", async {
            let a = k8s::service_address(client, &spec.namespace).await?;
            Ok((a.clone(), a))
        })
        .await?;
    if !opts.no_verify {
        let verified = verify_step(&mut steps, spec, opts).await?;
        if !verified.ok {
            let mut message = format!(
                "verify failed for wss://{}:{} (the Service is at {address}): does {} resolve to it?",
                spec.proxy_fqdn, spec.port, spec.proxy_fqdn
            );
            if opts.rollback_on_failure {
                let removed = k8s::undeploy(client, &spec.namespace).await?;
                message.push_str(&format!("; rolled back ({})", removed.summary()));
            } else {
                message.push_str(&format!(
                    "; the objects are left for inspection (`wsproxyctl undeploy --target k8s --namespace {}` removes them)",
                    spec.namespace
                ));
            }
            return Err(Failure::check(message));
        }
        report.verify = Some(verified);
    }
    report.engine = engine_step(&mut steps, spec, opts).await?;
    report.steps = steps.done;
    Ok(report)
}

/// `deploy --target k8s` against the cluster of the kubeconfig.
pub async fn to_kubernetes(spec: &DeploySpec, opts: &DeployOptions, k8s_opts: &K8sOptions, out: &Output) -> Result<DeployReport> {
    if let Some(cluster) = &k8s_opts.load_into_kind {
        let archive = opts
            .image_archive
            .as_ref()
            .ok_or_else(|| Failure::usage("--load-into-kind needs --image-archive (from `wsproxyctl image build`)"))?;
        out.step(&format!("==> kind load image-archive into {cluster} ..."));
        let status = std::process::Command::new("kind")
            .args(["load", "image-archive"])
            .arg(archive)
            .args(["--name", cluster])
            .status()
            .map_err(|e| Failure::environment(format!("cannot run kind: {e}: install kind or drop --load-into-kind")))?;
        if !status.success() {
            return Err(Failure::environment(format!("kind load image-archive into {cluster} failed")));
        }
    }
    let kube = k8s::client(k8s_opts.context.as_deref(), k8s_opts.kubeconfig.as_deref()).await?;
    // As kubectl: with no namespace from a flag or deploy.yaml, the context's.
    let mut spec = spec.clone();
    if let Some(namespace) = kube.namespace.filter(|_| !spec.namespace_given) {
        out.step(&format!("==> namespace {namespace} (the kubeconfig context's)"));
        spec.namespace = namespace;
    }
    to_kubernetes_with(&kube.client, &spec, opts, k8s_opts, out).await
}

/// Human summary of a deploy.
impl std::fmt::Display for DeployReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self;
        let mut s = String::new();
        if let Some(v) = &r.verify {
            s.push_str(&v.to_string());
        }
        if r.engine_configured {
            for line in &r.engine {
                s.push_str(&format!("engine: {line}\n"));
            }
        } else {
            s.push_str("Now point the engine at the proxy (on the engine host):\n");
            for line in &r.engine {
                s.push_str(&format!("  {line}\n"));
            }
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(uid: u32, linger: Option<bool>) -> quadlet::HostInit {
        quadlet::HostInit {
            systemd: true,
            state: "running".into(),
            uid,
            home: if uid == 0 { "/root".into() } else { "/home/ops".into() },
            quadlet: Some("/usr/libexec/podman/quadlet".into()),
            user: if uid == 0 { "root".into() } else { "ops".into() },
            linger,
        }
    }

    #[test]
    fn a_rootless_unit_without_lingering_is_refused_with_the_command_that_enables_it() {
        let e = choose_quadlet(Install::Auto, "ssh://ops@proxy", &init(1000, Some(false)), false).unwrap_err();
        assert!(e.to_string().contains("Run `sudo loginctl enable-linger ops` there") && e.to_string().contains("--no-quadlet"), "{e}");
        // Lingering on, or not known (no loginctl): the unit; root needs none; the container
        // needs none.
        assert!(choose_quadlet(Install::Auto, "h", &init(1000, Some(true)), false).unwrap());
        assert!(choose_quadlet(Install::Auto, "h", &init(1000, None), false).unwrap());
        assert!(choose_quadlet(Install::Auto, "h", &init(0, Some(false)), false).unwrap());
        assert!(!choose_quadlet(Install::Container, "h", &init(1000, Some(false)), false).unwrap());
        // autoUpdate needs the unit.
        let e = choose_quadlet(Install::Container, "h", &init(0, None), true).unwrap_err();
        assert!(e.to_string().contains("podman.autoUpdate works through a Quadlet unit") && e.to_string().contains("h gets"), "{e}");
        let without = quadlet::HostInit { quadlet: None, ..init(0, None) };
        let e = choose_quadlet(Install::Quadlet, "h", &without, false).unwrap_err();
        assert!(e.to_string().contains("podman on h has no Quadlet generator"), "{e}");
    }
}
