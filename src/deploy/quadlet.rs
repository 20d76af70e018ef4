//! `deploy --target podman` on hosts that run systemd: the relay as a Quadlet unit, the same
//! `wsproxy.container` text `render --target podman` writes, with the certificates as podman
//! secrets. systemd then starts it at boot and restarts it on failure. Hosts without systemd
//! get the container directly through the API (`podman.rs`), with a restart policy.
//!
//! The API cannot write unit files or talk to systemd, so this goes through the host's shell
//! ([`super::host_shell`]): the unit is written to a temporary file and renamed, then
//! `systemctl daemon-reload` and `systemctl restart wsproxy.service`. Root uses the system
//! unit directory and `systemctl`, other users `~/.config/containers/systemd` and
//! `systemctl --user`.

use bollard::Docker;

use super::host_shell::{quote, HostShell};
use super::podman::{self, Change};
use crate::error::{Failure, Result};
use crate::render::podman::ContainerPlan;

pub const UNIT_FILE: &str = "wsproxy.container";
/// Label on the container naming its unit's directory, so undeploy finds a unit installed
/// with `--quadlet-dir` without being told again.
pub const UNIT_DIR_LABEL: &str = "io.ovirt.wsproxyctl.quadlet-dir";
pub const SERVICE: &str = "wsproxy.service";
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

/// Install or update the unit and (re)start it. Idempotent: the unit text carries the
/// checksum of certificates, configuration and image, so an unchanged unit on an active
/// service means nothing to do.
/// The unit file on the host now (empty when there is none) and whether its service is active:
/// read only.
pub async fn unit_state(shell: &HostShell, init: &HostInit, dir: &str) -> Result<(String, bool)> {
    let path = format!("{dir}/{UNIT_FILE}");
    let systemctl = init.systemctl();
    let state = shell
        .run(&format!("cat {} 2>/dev/null; echo; echo '--state--'; {systemctl} is-active {SERVICE} 2>/dev/null || true\n", quote(&path)))
        .await?;
    // `cat` prints the unit (ending in a newline), `echo` one more: the separator takes that one.
    let (existing, active) = state.stdout.rsplit_once("\n--state--\n").unwrap_or((&state.stdout, ""));
    Ok((existing.to_string(), active.trim() == "active"))
}

/// What installing `unit` would change, given [`unit_state`].
pub fn unit_change(existing: &str, active: bool, unit: &str) -> Change {
    if existing == unit && active {
        Change::Unchanged
    } else if existing.trim().is_empty() {
        Change::Created
    } else {
        Change::Replaced
    }
}

pub async fn install(shell: &HostShell, docker: &Docker, plan: &ContainerPlan, init: &HostInit, dir: &str) -> Result<Change> {
    use base64::Engine as _;
    let unit = crate::render::podman::quadlet(plan);
    let path = format!("{dir}/{UNIT_FILE}");
    let systemctl = init.systemctl();
    let (existing, active) = unit_state(shell, init, dir).await?;
    let change = unit_change(&existing, active, &unit);
    if change == Change::Unchanged {
        return Ok(change);
    }
    // A foreign container of that name is refused; the same relay started directly by an
    // earlier deploy (before systemd was there) is removed.
    podman::make_way_for_unit(docker, &plan.name).await?;
    shell.run(&format!("{systemctl} stop {SERVICE} 2>/dev/null || true\n")).await?;
    podman::replace_secrets(docker, plan).await?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(unit.as_bytes());
    let tmp = format!("{dir}/.{UNIT_FILE}.tmp");
    let script = format!(
        "set -e\nmkdir -p {d}\nprintf '%s' {b} | base64 -d > {t}\nchmod 0644 {t}\nmv -f {t} {p}\n{systemctl} daemon-reload\n{systemctl} restart {SERVICE}\n",
        d = quote(dir),
        b = quote(&encoded),
        t = quote(&tmp),
        p = quote(&path),
    );
    let out = shell.run(&script).await?;
    if !out.ok {
        return Err(Failure::environment(format!(
            "installing {path} and starting {SERVICE} failed: {}\n(see `{systemctl} status {SERVICE}` and `journalctl {}-u {SERVICE}` on the host)",
            out.stderr.trim(),
            if init.uid == 0 { "" } else { "--user " }
        )));
    }
    podman::wait_running(docker, &plan.name).await?;
    Ok(change)
}

/// Stop the service and remove the unit, if it is ours. Returns what was removed.
pub async fn uninstall(shell: &HostShell, init: &HostInit, dir: &str) -> Result<Option<String>> {
    let path = format!("{dir}/{UNIT_FILE}");
    let systemctl = init.systemctl();
    let out = shell.run(&format!("grep -q {} {} 2>/dev/null && echo ours || true\n", quote(MARKER), quote(&path))).await?;
    if out.stdout.trim() != "ours" {
        return Ok(None);
    }
    let out = shell
        .run(&format!(
            "{systemctl} stop {SERVICE} 2>/dev/null || true\nrm -f {}\n{systemctl} daemon-reload 2>/dev/null || true\n",
            quote(&path)
        ))
        .await?;
    if !out.ok {
        return Err(Failure::environment(format!("removing {path}: {}", out.stderr.trim())));
    }
    Ok(Some(format!("unit {path}")))
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

    #[test]
    fn the_rendered_unit_carries_the_marker() {
        // undeploy removes only units containing the marker: the rendered header has it.
        let plan = ContainerPlan {
            name: "wsproxy".into(),
            placement: crate::render::podman::Placement::InPlace,
            image: "localhost/wsproxy:test".into(),
            args: vec![],
            host_port: 6100,
            container_port: 6100,
            admin_port: None,
            secrets: vec![],
            labels: Default::default(),
            auto_update: false,
            stop_timeout: 40,
            checksum: String::new(),
        };
        assert!(crate::render::podman::quadlet(&plan).contains(MARKER));
    }
}
