//! `deploy --target podman` on hosts that run systemd: the relay as a Quadlet unit, the same
//! text `render --target podman` writes, with the certificates as podman secrets. systemd then
//! starts it at boot and restarts it on failure. Hosts without systemd get the container
//! directly through the API (`podman.rs`), with a restart policy.
//!
//! The API cannot write unit files or talk to systemd, so this goes through the host's shell
//! ([`super::host_shell`]): units are written to a temporary file and renamed, then
//! `systemctl daemon-reload` and `systemctl start`. Root uses the system unit directory and
//! `systemctl`, other users `~/.config/containers/systemd` and `systemctl --user`.
//!
//! A redeploy hands the port over: the new relay's unit goes into the next free [`Slot`] and
//! starts beside the running relay (both on the host's network with SO_REUSEPORT); once it is
//! ready the old relay is told to drain. The old unit file is removed first, so the old
//! service, running on until its last console ends, cannot start again, nor at boot.

use bollard::Docker;

use super::host_shell::{quote, HostShell};
use super::podman::{self, Change, Found};
use crate::error::{Failure, Result};
use crate::render::podman::{ContainerPlan, Slot};

/// Label on the container naming its unit's directory, so undeploy finds a unit installed
/// with `--quadlet-dir` without being told again.
pub const UNIT_DIR_LABEL: &str = "io.ovirt.wsproxyctl.quadlet-dir";
/// Text every unit we write carries, so undeploy removes only ours.
pub const MARKER: &str = "wsproxyctl";

/// What the host runs as init, and as whom we are there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInit {
    /// `systemctl is-system-running` said running/degraded/starting (not offline or absent).
    pub systemd: bool,
    /// What it said (for the report).
    pub state: String,
    pub uid: u32,
    pub home: String,
    /// Where the host's Quadlet generator is (podman 4.4 and later ship it); `None`: this
    /// podman cannot turn a `.container` unit into a service.
    pub quadlet: Option<String>,
    /// The user's name there (for the lingering command).
    pub user: String,
    /// Whether logind keeps the user's services running without a login session
    /// (`loginctl show-user --property=Linger`); `None` where loginctl could not say.
    pub linger: Option<bool>,
}

impl HostInit {
    pub fn default_unit_dir(&self) -> String {
        if self.uid == 0 {
            "/etc/containers/systemd".into()
        } else {
            format!("{}/.config/containers/systemd", self.home)
        }
    }

    fn systemctl(&self) -> &'static str {
        if self.uid == 0 {
            "systemctl"
        } else {
            "systemctl --user"
        }
    }

    /// Where the user's services log, for messages.
    fn journalctl(&self) -> &'static str {
        if self.uid == 0 {
            "journalctl"
        } else {
            "journalctl --user"
        }
    }
}

/// Where podman installs its Quadlet generator (Debian and Fedora, Arch and SUSE); on `PATH`
/// is looked at too.
pub const QUADLET_PATHS: [&str; 2] = ["/usr/libexec/podman/quadlet", "/usr/lib/podman/quadlet"];

/// Parse the detection script's output: uid, home, systemd state, user name, lingering,
/// Quadlet generator (lines).
fn parse_init(text: &str) -> Result<HostInit> {
    let mut lines = text.lines();
    let uid = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| Failure::environment(format!("could not read the user id on the podman host (got {text:?})")))?;
    let mut next = || lines.next().unwrap_or("").trim().to_string();
    let (home, state, user, linger, quadlet) = (next(), next(), next(), next(), next());
    let linger = match linger.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let quadlet = Some(quadlet).filter(|q| !q.is_empty());
    let systemd = matches!(state.as_str(), "running" | "degraded" | "starting" | "initializing" | "maintenance");
    Ok(HostInit { systemd, state: if state.is_empty() { "no systemctl".into() } else { state }, uid, home, quadlet, user, linger })
}

pub async fn detect(shell: &HostShell) -> Result<HostInit> {
    let script = format!(
        "id -u; printf '%s\\n' \"$HOME\"; echo \"$(systemctl is-system-running 2>/dev/null)\"; echo \"$(id -un 2>/dev/null)\"\n\
         echo \"$(loginctl show-user \"$(id -u)\" --property=Linger --value 2>/dev/null)\"\n\
         for q in {} \"$(command -v quadlet 2>/dev/null)\"; do [ -n \"$q\" ] && [ -x \"$q\" ] && {{ echo \"$q\"; exit 0; }}; done; echo\n",
        QUADLET_PATHS.join(" ")
    );
    let out = shell.run(&script).await?;
    if !out.ok {
        return Err(Failure::environment(format!("could not inspect the podman host: {}", out.stderr.trim())));
    }
    parse_init(&out.stdout)
}

/// Where the units go and how to reach the host.
pub struct QuadletHost<'a> {
    pub shell: &'a HostShell,
    pub docker: &'a Docker,
    pub init: &'a HostInit,
    pub dir: &'a str,
}

impl QuadletHost<'_> {
    pub fn path(&self, slot: Slot) -> String {
        unit_path(self.dir, slot)
    }

    /// Run a script on the host; `what` names it in the error, with where systemd's side is.
    async fn run(&self, script: &str, what: &str, slot: Slot) -> Result<()> {
        let out = self.shell.run(script).await?;
        if out.ok {
            return Ok(());
        }
        Err(Failure::environment(format!(
            "{what} failed: {}\n(see `{} status {service}` and `{} -u {service}` on the host)",
            out.stderr.trim(),
            self.init.systemctl(),
            self.init.journalctl(),
            service = slot.service(),
        )))
    }
}

/// Where the unit of `slot` is in `dir`.
fn unit_path(dir: &str, slot: Slot) -> String {
    format!("{dir}/{}", slot.unit_file())
}

/// Our units' files on the host and whether their services are active, as read.
#[derive(Debug, Default)]
pub struct Units {
    /// The unit files' text by slot, empty where there is none.
    text: Vec<String>,
    active: Vec<bool>,
}

impl Units {
    pub fn text(&self, slot: Slot) -> &str {
        self.text.get(slot.index()).map(String::as_str).unwrap_or("")
    }

    /// Whether the slot's service runs: the current relay's, or one still draining an earlier
    /// relay after its unit file was removed.
    pub fn active(&self, slot: Slot) -> bool {
        self.active.get(slot.index()).copied().unwrap_or(false)
    }

    /// Whether deploy wrote the slot's unit file (it carries [`MARKER`]).
    pub fn ours(&self, slot: Slot) -> bool {
        self.text(slot).contains(MARKER)
    }

    /// Our unit files on the host.
    pub fn installed(&self) -> impl Iterator<Item = Slot> + '_ {
        Slot::all().filter(|s| self.ours(*s))
    }

    /// The unit deploy installed last: only the current relay's unit file is kept (one whose
    /// service runs, should an interrupted deploy have left two).
    pub fn current(&self) -> Option<Slot> {
        self.installed().find(|&s| self.active(s)).or_else(|| self.installed().next())
    }

    /// The slot for the next relay: the first after the current one whose service is not still
    /// draining an earlier relay, and whose file, if there is one, deploy wrote.
    pub fn next(&self) -> Option<Slot> {
        let free = |s: &Slot| !self.active(*s) && (self.text(*s).trim().is_empty() || self.ours(*s));
        match self.current() {
            Some(current) => current.after().filter(|s| *s != current).find(free),
            None => Slot::all().find(free),
        }
    }
}

/// Read our units' files and whether their services are active (read only).
pub async fn unit_state(shell: &HostShell, init: &HostInit, dir: &str) -> Result<Units> {
    let systemctl = init.systemctl();
    let script: String = Slot::all()
        .map(|slot| {
            let path = quote(&unit_path(dir, slot));
            format!(
                "cat {path} 2>/dev/null; echo; echo '--state--'; {systemctl} is-active {} 2>/dev/null || true; echo '--end--'\n",
                slot.service()
            )
        })
        .collect();
    let out = shell.run(&script).await?;
    let mut units = Units::default();
    let mut rest = out.stdout.as_str();
    for _ in Slot::all() {
        let (part, after) = rest.split_once("\n--end--\n").unwrap_or((rest, ""));
        // `cat` prints the unit (ending in a newline), `echo` one more: the separator takes that one.
        let (text, active) = part.rsplit_once("\n--state--\n").unwrap_or((part, ""));
        units.text.push(text.to_string());
        units.active.push(active.trim() == "active");
        rest = after;
    }
    Ok(units)
}

/// What deploying `plan` changes and which unit it goes into: nothing (the current unit is the
/// same and runs); a hand-over into the next unit (a relay that shares its port runs, from a
/// unit or started directly); else a replacement, or the first unit. Refused when every unit's
/// service is still draining an earlier relay.
pub fn unit_change(units: &Units, plan: &ContainerPlan, found: Option<&Found>) -> Result<(Change, Slot)> {
    let current = units.current();
    if let Some(slot) = current {
        if units.active(slot) && units.text(slot) == crate::render::podman::quadlet(plan, slot) {
            return Ok((Change::Unchanged, slot));
        }
    }
    let change = match found {
        Some(f) if f.hands_over_to(plan) => Change::HandedOver,
        None if current.is_none() => Change::Created,
        _ => Change::Replaced,
    };
    let slot = match (change, units.next()) {
        (_, Some(next)) => next,
        // Replaced in place: the current unit is stopped first, so its slot is free again.
        (Change::Replaced, None) if current.is_some() => current.unwrap_or(Slot::FIRST),
        _ => {
            let draining: Vec<String> = Slot::all().filter(|s| Some(*s) != current && units.active(*s)).map(Slot::service).collect();
            return Err(Failure::usage(format!(
                "{} earlier relays are still draining their open consoles ({}), one to a unit, and a host runs at most {} \
                 relays at once: deploy again once one has ended, or end one now with `systemctl stop SERVICE` (its consoles \
                 are closed)",
                draining.len(),
                draining.join(", "),
                Slot::COUNT
            )));
        }
    };
    Ok((change, slot))
}

/// Install the relay's unit and start it. Idempotent: the unit text carries the checksum of
/// certificates, configuration and image, so an unchanged unit on an active service means
/// nothing to do. Returns what changed and the unit the relay now runs from.
pub async fn install(host: &QuadletHost<'_>, plan: &ContainerPlan) -> Result<(Change, Slot)> {
    let units = unit_state(host.shell, host.init, host.dir).await?;
    // A foreign container of the relay's name is refused here.
    let found = podman::ours(host.docker, &plan.name).await?;
    let (change, slot) = unit_change(&units, plan, found.as_ref())?;
    match change {
        Change::Unchanged => return Ok((change, slot)),
        Change::HandedOver => hand_over(host, plan, &units, slot).await?,
        Change::Created | Change::Replaced => replace(host, plan, &units, slot).await?,
    }
    // What a relay started directly left: exited after its drain, and its certificates volume.
    podman::remove_drained(host.docker, &plan.name).await;
    podman::remove_unused_volumes(host.docker, plan).await;
    Ok((change, slot))
}

/// Shell lines writing `text` to the unit of `slot` through a temporary file beside it (never
/// half-written).
fn write_lines(dir: &str, slot: Slot, text: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let (path, tmp) = (unit_path(dir, slot), format!("{dir}/.{}.tmp", slot.unit_file()));
    format!(
        "mkdir -p {d}\nprintf '%s' {b} | base64 -d > {t}\nchmod 0644 {t}\nmv -f {t} {p}\n",
        d = quote(dir),
        b = quote(&encoded),
        t = quote(&tmp),
        p = quote(&path)
    )
}

/// No relay to hand the port over from (none runs, or it runs from a unit written before
/// hand-overs, which publishes the port): stop what runs, then install the unit and start it.
async fn replace(host: &QuadletHost<'_>, plan: &ContainerPlan, units: &Units, slot: Slot) -> Result<()> {
    let systemctl = host.init.systemctl();
    let stop: String = units.installed().map(|s| format!("{systemctl} stop {} 2>/dev/null || true\n", s.service())).collect();
    host.shell.run(&stop).await?;
    // The relay an earlier deploy started directly (before systemd was there) is removed.
    podman::make_way_for_unit(host.docker, &plan.name).await?;
    podman::replace_secrets(host.docker, plan, slot).await?;
    let mut script = String::from("set -e\n");
    script += &write_lines(host.dir, slot, &crate::render::podman::quadlet(plan, slot));
    for other in units.installed().filter(|s| *s != slot) {
        script += &format!("rm -f {}\n", quote(&host.path(other)));
    }
    script += &format!("{systemctl} daemon-reload\n{systemctl} restart {}\n", slot.service());
    host.run(&script, &format!("installing {} and starting {}", host.path(slot), slot.service()), slot).await?;
    podman::wait_running(host.docker, &plan.name).await
}

/// Start the new relay from the next unit beside the running one, and once it is ready tell the
/// old relay to drain (its unit file is removed as the new unit is written). Should the new relay not come up, its
/// unit goes, the old unit file comes back, and the old relay, never stopped, gets its name back.
async fn hand_over(host: &QuadletHost<'_>, plan: &ContainerPlan, units: &Units, slot: Slot) -> Result<()> {
    let systemctl = host.init.systemctl();
    // The new unit's own secrets: the old relay's stay as they are.
    podman::replace_secrets(host.docker, plan, slot).await?;
    let old = podman::draining_name(&plan.name);
    podman::rename(host.docker, &plan.name, &old).await?;
    let previous = units.current().filter(|s| *s != slot);
    let mut script = String::from("set -e\n");
    script += &write_lines(host.dir, slot, &crate::render::podman::quadlet(plan, slot));
    // Gone before the new relay starts: the old service, running on without its file, cannot
    // start again (its ExecStart would --replace the new relay's container), nor at boot.
    if let Some(previous) = previous {
        script += &format!("rm -f {}\n", quote(&host.path(previous)));
    }
    script += &format!("{systemctl} daemon-reload\n{systemctl} start {}\n", slot.service());
    let started = async {
        host.run(&script, &format!("installing {} and starting {}", host.path(slot), slot.service()), slot).await?;
        podman::wait_ready(host.docker, &plan.name).await
    };
    let Err(e) = started.await else {
        return podman::tell_to_drain(host.docker, &old).await;
    };
    podman::kill(host.docker, &plan.name).await;
    let mut back = format!("{systemctl} stop {} 2>/dev/null || true\nrm -f {}\n", slot.service(), quote(&host.path(slot)));
    if let Some(previous) = previous {
        back += &write_lines(host.dir, previous, units.text(previous));
    }
    back += &format!("{systemctl} daemon-reload\n");
    let restored = host.shell.run(&back).await.map(|o| o.ok).unwrap_or(false);
    let renamed = podman::rename(host.docker, &old, &plan.name).await;
    let mut trouble = String::new();
    if !restored {
        trouble += &format!("; removing {} or restoring the previous unit failed", host.path(slot));
    }
    if let Err(e) = renamed {
        trouble += &format!("; {e}");
    }
    Err(Failure::environment(format!(
        "{e}\n(a unit's container is removed as it exits; its log: `{} -u {}` on the host)\nthe running relay was left serving \
         (as before){trouble}",
        host.init.journalctl(),
        slot.service()
    )))
}

/// Roll back a hand-over whose new relay failed verification: its container and unit go. The
/// old relay was told to drain when the new one took the port and its unit file is gone: it
/// serves its open consoles to the end of its drain, then its service ends.
pub async fn roll_back_hand_over(host: &QuadletHost<'_>, plan: &ContainerPlan, slot: Slot, removal: &mut super::Removal) {
    podman::kill(host.docker, &plan.name).await;
    let systemctl = host.init.systemctl();
    let path = host.path(slot);
    let script = format!("{systemctl} stop {} 2>/dev/null || true\nrm -f {}\n{systemctl} daemon-reload\n", slot.service(), quote(&path));
    match host.shell.run(&script).await {
        Ok(o) if o.ok => removal.removed.push(format!("unit {path} and its relay")),
        Ok(o) => removal.failed.push(format!("unit {path}: {}", o.stderr.trim())),
        Err(e) => removal.failed.push(format!("unit {path}: {e}")),
    }
}

/// Stop our units' services and remove their files. Returns what was removed. A stop waits for
/// the relay's drain: whoever wants it gone now kills the relays first (undeploy does).
pub async fn uninstall(shell: &HostShell, init: &HostInit, dir: &str) -> Result<Vec<String>> {
    remove_units(shell, init, dir, true).await
}

/// Remove our units' files but leave their services running: after a hand-over to a relay
/// started directly, the old relay drains on and its unit must not bring it back.
pub async fn forget(shell: &HostShell, init: &HostInit, dir: &str) -> Result<Vec<String>> {
    remove_units(shell, init, dir, false).await
}

async fn remove_units(shell: &HostShell, init: &HostInit, dir: &str, stop: bool) -> Result<Vec<String>> {
    let units = unit_state(shell, init, dir).await?;
    let systemctl = init.systemctl();
    let mut script = String::new();
    let mut removed = Vec::new();
    for slot in units.installed() {
        let path = unit_path(dir, slot);
        if stop {
            script += &format!("{systemctl} stop {} 2>/dev/null || true\n", slot.service());
        }
        script += &format!("rm -f {}\n", quote(&path));
        removed.push(format!("unit {path}"));
    }
    if removed.is_empty() {
        return Ok(removed);
    }
    script += &format!("{systemctl} daemon-reload 2>/dev/null || true\n");
    let out = shell.run(&script).await?;
    if !out.ok {
        return Err(Failure::environment(format!("removing the units in {dir}: {}", out.stderr.trim())));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lingering_is_read_for_rootless_units() {
        let ops = parse_init("1000\n/home/ops\nrunning\nops\nno\n/usr/libexec/podman/quadlet\n").unwrap();
        assert_eq!((ops.user.as_str(), ops.linger, ops.quadlet.as_deref()), ("ops", Some(false), Some("/usr/libexec/podman/quadlet")));
        assert_eq!(parse_init("1000\n/home/ops\nrunning\nops\nyes\n\n").unwrap().linger, Some(true));
        assert_eq!(parse_init("1000\n/home/ops\nrunning\nops\n\n\n").unwrap().linger, None, "no loginctl: unknown");
    }

    #[test]
    fn systemd_is_recognised_by_its_state() {
        let root = parse_init("0\n/root\nrunning\n").unwrap();
        assert!(root.systemd);
        assert_eq!(root.default_unit_dir(), "/etc/containers/systemd");
        let user = parse_init("1000\n/home/ops\ndegraded\n").unwrap();
        assert!(user.systemd);
        assert_eq!(user.default_unit_dir(), "/home/ops/.config/containers/systemd");
        assert_eq!(user.systemctl(), "systemctl --user");
        // In a container or a chroot, systemctl exists but systemd is not PID 1.
        assert!(!parse_init("0\n/root\noffline\n").unwrap().systemd);
        let none = parse_init("0\n/root\n").unwrap();
        assert!(!none.systemd);
        assert_eq!(none.state, "no systemctl");
        assert!(parse_init("").is_err());
        // podman before 4.4 has no Quadlet generator.
        assert_eq!(root.quadlet, None);
        let with = parse_init("0\n/root\nrunning\nroot\n\n/usr/libexec/podman/quadlet\n").unwrap();
        assert_eq!(with.quadlet.as_deref(), Some("/usr/libexec/podman/quadlet"));
    }

    fn plan() -> ContainerPlan {
        ContainerPlan {
            name: "wsproxy".into(),
            placement: crate::render::podman::Placement::HandOver,
            image: "localhost/wsproxy:test".into(),
            args: vec![],
            host_port: 6100,
            container_port: 6100,
            admin_port: None,
            secrets: vec![],
            labels: Default::default(),
            auto_update: false,
            stop_timeout: 3610,
            checksum: "new".into(),
        }
    }

    /// Units as read: `(unit text, service active)` by slot.
    fn units(slots: &[(&str, bool)]) -> Units {
        let mut u = Units::default();
        for (text, active) in slots {
            u.text.push(text.to_string());
            u.active.push(*active);
        }
        u
    }

    #[test]
    fn each_new_relay_gets_a_unit_no_earlier_relay_still_drains_in() {
        let plan = plan();
        let sharing = Found { checksum: "old".into(), running: true, hand_over: true, from_unit: true };
        let slot = |i: usize| Slot::all().nth(i).unwrap();
        let written = |i: usize| crate::render::podman::quadlet(&plan, slot(i));
        // Nothing there yet: the first unit.
        assert_eq!(unit_change(&units(&[]), &plan, None).unwrap(), (Change::Created, Slot::FIRST));
        // The same unit, running: nothing to do.
        assert_eq!(unit_change(&units(&[(&written(0), true)]), &plan, Some(&sharing)).unwrap(), (Change::Unchanged, Slot::FIRST));
        // Another unit running a relay that shares its port: handed over to the next unit.
        let old = units(&[("# wsproxyctl old", true)]);
        assert_eq!(unit_change(&old, &plan, Some(&sharing)).unwrap(), (Change::HandedOver, slot(1)));
        // ... past a unit whose service still drains an earlier relay (its file already gone).
        let draining = units(&[("", true), ("", false), ("# wsproxyctl old", true)]);
        assert_eq!(unit_change(&draining, &plan, Some(&sharing)).unwrap(), (Change::HandedOver, slot(3)));
        let wrapped = units(&[("", false), ("", true), ("", false), ("# wsproxyctl old", true)]);
        assert_eq!(unit_change(&wrapped, &plan, Some(&sharing)).unwrap(), (Change::HandedOver, slot(0)));
        // A relay from a unit that publishes its port cannot share it: replaced.
        let in_place = Found { checksum: "old".into(), running: true, hand_over: false, from_unit: true };
        assert_eq!(unit_change(&old, &plan, Some(&in_place)).unwrap(), (Change::Replaced, slot(1)));
        // Every other unit still draining: refused, naming them, rather than cutting consoles.
        let full = units(&[("# wsproxyctl old", true), ("", true), ("", true), ("", true)]);
        let Err(e) = unit_change(&full, &plan, Some(&sharing)) else { panic!("a fifth relay") };
        assert!(e.to_string().contains("wsproxy-b.service, wsproxy-c.service, wsproxy-d.service"), "{e}");
        // A unit not written by deploy is not ours to take over, nor to overwrite.
        assert_eq!(unit_change(&units(&[("[Container]\n", false)]), &plan, None).unwrap(), (Change::Created, slot(1)));
        let foreign_next = units(&[("# wsproxyctl old", true), ("[Container]\n", false)]);
        assert_eq!(unit_change(&foreign_next, &plan, Some(&sharing)).unwrap(), (Change::HandedOver, slot(2)));
    }

    #[test]
    fn each_unit_has_its_own_secrets_under_the_same_names_inside() {
        let mut plan = plan();
        plan.secrets = vec![crate::render::podman::SecretMount { name: "wsproxy-tls-key".into(), data: vec![] }];
        let first = crate::render::podman::quadlet(&plan, Slot::FIRST);
        assert!(first.contains("Secret=wsproxy-tls-key,uid=65532,gid=65532,mode=0400\n"), "{first}");
        let third = crate::render::podman::quadlet(&plan, Slot::all().nth(2).unwrap());
        assert!(third.contains("Secret=wsproxy-c-tls-key,uid=65532,gid=65532,mode=0400,target=wsproxy-tls-key\n"), "{third}");
        assert!(third.contains("ContainerName=wsproxy\n") && third.contains("Network=host\n") && !third.contains("PublishPort"), "{third}");
        assert!(third.contains("Label=io.ovirt.wsproxyctl.quadlet-unit=wsproxy-c.container\n"), "{third}");
    }

    #[test]
    fn the_rendered_unit_carries_the_marker() {
        // undeploy removes only units containing the marker: the rendered header has it.
        let plan = plan();
        for slot in Slot::all() {
            assert!(crate::render::podman::quadlet(&plan, slot).contains(MARKER));
        }
    }
}
