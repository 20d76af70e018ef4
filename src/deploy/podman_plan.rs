//! `deploy --target podman --dry-run`: what a deploy would create, replace, remove or leave
//! alone on the podman host, and why, found with read-only calls (the podman API's inspect and
//! list calls, `cat` and `systemctl is-active` over the host shell). Nothing on the host
//! changes: no image is loaded or pulled, no secret, volume, container or unit is written.

use serde::Serialize;

use super::{check_certificates, choose_quadlet, connect_podman, learn_host, podman, quadlet, DeployOptions, PodmanHost};
use crate::error::{Failure, Result};
use crate::output::Output;
use crate::render::podman::{ContainerPlan, Slot};
use crate::spec::DeploySpec;
use crate::steps::{StepReport, Steps};

/// What deploy would do to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Replace,
    Keep,
    Remove,
    Load,
    Pull,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Remove => "remove",
            Action::Load => "load",
            Action::Pull => "pull",
        }
    }
}

/// One object and what deploy would do to it.
#[derive(Debug, Serialize)]
pub struct Planned {
    pub action: Action,
    pub object: String,
    pub why: String,
}

/// The whole plan.
#[derive(Debug, Serialize)]
pub struct PodmanPlan {
    pub target: String,
    pub host: String,
    /// "quadlet" (a systemd unit) or "container" (started through the API).
    pub mode: String,
    pub actions: Vec<Planned>,
    /// The read-only steps that found it.
    pub steps: Vec<StepReport>,
    pub dry_run: bool,
}

impl std::fmt::Display for PodmanPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "dry run on {} ({}): nothing was changed; deploy would", self.host, self.mode)?;
        for p in &self.actions {
            writeln!(f, "  {:<8} {}: {}", p.action.as_str(), p.object, p.why)?;
        }
        Ok(())
    }
}

/// Read the host and say what `deploy --target podman` would do there.
pub async fn plan(spec: &DeploySpec, opts: &DeployOptions, out: &Output) -> Result<PodmanPlan> {
    spec.check_podman()?;
    let mut steps = Steps::new(out);
    let bundle = check_certificates(&mut steps, spec).await?;
    let (name, docker) = connect_podman(&mut steps, spec).await?;
    let mut actions = vec![image_action(&docker, spec, opts).await?];
    let host = learn_host(&mut steps, spec, opts, name, docker).await?;
    let use_quadlet = choose_quadlet(opts.install, &host.name, &host.init, spec.podman.auto_update)?;
    let mut container = crate::render::podman::plan(spec, &bundle, crate::render::podman::Placement::HandOver);
    if use_quadlet {
        container.labels.insert(quadlet::UNIT_DIR_LABEL.into(), host.unit_dir.clone());
        actions.extend(unit_actions(&host, &container).await?);
    } else {
        actions.extend(container_actions(&host, &container).await?);
    }
    Ok(PodmanPlan {
        target: "podman".into(),
        host: host.name.clone(),
        mode: if use_quadlet { "quadlet" } else { "container" }.into(),
        actions,
        steps: steps.done,
        dry_run: true,
    })
}

/// The image: loaded from the archive, pulled, or already there (refused as deploy would
/// refuse it when it can be neither).
async fn image_action(docker: &bollard::Docker, spec: &DeploySpec, opts: &DeployOptions) -> Result<Planned> {
    let object = format!("image {}", spec.image);
    if let Some(path) = &opts.image_archive {
        std::fs::metadata(path).map_err(|e| Failure::usage(format!("cannot read --image-archive {}: {e}", path.display())))?;
        return Ok(Planned { action: Action::Load, object, why: format!("from {}", path.display()) });
    }
    if docker.inspect_image(&spec.image).await.is_ok() {
        return Ok(Planned { action: Action::Keep, object, why: "already on the host".into() });
    }
    if spec.image_is_registry() {
        return Ok(Planned { action: Action::Pull, object, why: "not on the host; a registry reference".into() });
    }
    Err(podman::image_missing(&spec.image))
}

/// Container mode: the relay container and its certificates volume; a unit an earlier deploy
/// installed would be removed.
async fn container_actions(host: &PodmanHost, plan: &ContainerPlan) -> Result<Vec<Planned>> {
    let object = format!("container {}", plan.name);
    let volume = format!("volume {}", podman::volume_of(plan));
    let mut out = match podman::ours(&host.docker, &plan.name).await? {
        Some(f) if f.running && f.checksum == plan.checksum && !f.from_unit => vec![
            Planned { action: Action::Keep, object, why: "running with these certificates and settings".into() },
            Planned { action: Action::Keep, object: volume, why: "holds these certificates".into() },
        ],
        Some(f) if f.hands_over_to(plan) => vec![
            Planned {
                action: Action::Replace,
                object,
                why: format!(
                    "certificates or settings changed: hand-over (the new relay starts on port {} first, then the old one drains its open consoles for up to {} s)",
                    plan.host_port,
                    plan.drain_secs()
                ),
            },
            Planned { action: Action::Create, object: volume, why: "the new relay's certificates (the old relay keeps its own)".into() },
        ],
        Some(f) => {
            let why = if f.checksum != plan.checksum { "certificates or settings changed: stopped, then started" } else { "not running" };
            vec![
                Planned { action: Action::Replace, object, why: why.into() },
                Planned { action: Action::Create, object: volume, why: "the certificates, read-only in the container".into() },
            ]
        }
        None => vec![
            Planned { action: Action::Create, object, why: format!("no relay container yet; port {}", plan.host_port) },
            Planned { action: Action::Create, object: volume, why: "the certificates, read-only in the container".into() },
        ],
    };
    if host.init.systemd {
        let units = quadlet::unit_state(&host.shell, &host.init, &host.unit_dir).await?;
        for slot in units.installed() {
            out.push(Planned {
                action: Action::Remove,
                object: format!("unit {}/{}", host.unit_dir, slot.unit_file()),
                why: "installed by an earlier deploy; the container replaces it (--no-quadlet)".into(),
            });
        }
    }
    Ok(out)
}

/// Quadlet mode: the unit, the podman secrets it names, the other unit (removed: its relay
/// hands the port over, or is stopped), and a relay an earlier deploy started directly.
async fn unit_actions(host: &PodmanHost, plan: &ContainerPlan) -> Result<Vec<Planned>> {
    let units = quadlet::unit_state(&host.shell, &host.init, &host.unit_dir).await?;
    let found = podman::ours(&host.docker, &plan.name).await?;
    let (change, slot) = quadlet::unit_change(&units, plan, found.as_ref())?;
    let object = |slot: Slot| format!("unit {}/{}", host.unit_dir, slot.unit_file());
    let start = format!("then start {}", slot.service());
    let mut out = vec![match change {
        podman::Change::Unchanged => {
            return Ok(vec![Planned { action: Action::Keep, object: object(slot), why: "the same unit, service active".into() }])
        }
        podman::Change::HandedOver => Planned {
            action: Action::Create,
            object: object(slot),
            why: format!(
                "{start} beside the running relay (hand-over: the new relay takes port {} first, then the old one drains its open consoles for up to {} s)",
                plan.host_port,
                plan.drain_secs()
            ),
        },
        podman::Change::Created | podman::Change::Replaced => {
            Planned { action: if units.ours(slot) { Action::Replace } else { Action::Create }, object: object(slot), why: start }
        }
    }];
    for installed in units.installed().filter(|s| *s != slot) {
        let why = if change == podman::Change::HandedOver {
            "its relay drains on without it, then its service ends; it does not start again"
        } else {
            "stopped first: certificates or settings changed"
        };
        out.push(Planned { action: Action::Remove, object: object(installed), why: why.into() });
    }
    for secret in &plan.secrets {
        let name = slot.secret_name(&secret.name);
        let exists = host.docker.inspect_secret(&name).await.is_ok();
        out.push(Planned {
            action: if exists { Action::Replace } else { Action::Create },
            object: format!("secret {name}"),
            why: format!("the certificates and configuration of {}", slot.unit_file()),
        });
    }
    if found.is_some() && units.current().is_none() && change != podman::Change::HandedOver {
        out.push(Planned {
            action: Action::Remove,
            object: format!("container {}", plan.name),
            why: "started directly by an earlier deploy; the unit's container takes over".into(),
        });
    }
    Ok(out)
}
