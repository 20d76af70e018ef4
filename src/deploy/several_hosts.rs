//! `deploy --target podman --host A --host B ...`: one relay per host, behind one name.
//!
//! Hosts are deployed one after another and each is verified, at its own address, before the
//! next is touched: a bad certificate or image stops at the first host while the others go on
//! serving. The engine has one `WebSocketProxy` address (a DNS name or virtual IP in front of
//! the hosts, docs/HA.md), so it is pointed once, after the last host.

use serde::Serialize;

use std::path::Path;

use super::podman_plan::PodmanPlan;
use super::{to_podman, DeployOptions, DeployReport, Removal};
use crate::error::Result;
use crate::output::Output;
use crate::spec::DeploySpec;

/// What deploy did on each host, in order.
#[derive(Debug, Serialize)]
pub struct SeveralHostsReport {
    pub hosts: Vec<DeployReport>,
    pub ok: bool,
}

impl std::fmt::Display for SeveralHostsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last = self.hosts.len().saturating_sub(1);
        for (i, r) in self.hosts.iter().enumerate() {
            writeln!(f, "host {} of {}: {}", i + 1, self.hosts.len(), r.host)?;
            match (&r.verify, i == last) {
                // The engine lines are the same for every host: shown once, with the last.
                (_, true) => write!(f, "{r}")?,
                (Some(v), false) => write!(f, "{v}")?,
                (None, false) => {}
            }
        }
        Ok(())
    }
}

/// Where verification connects for a podman host: the ssh host itself, or this machine for a
/// local socket.
pub fn address_of(host: &str) -> Result<String> {
    if host.starts_with("unix://") {
        return Ok("127.0.0.1".into());
    }
    Ok(super::ssh_transport::parse(host)?.host)
}

/// Deploy to every host in turn (see the module doc).
pub async fn to_podman_hosts(spec: &DeploySpec, hosts: &[String], opts: &DeployOptions, out: &Output) -> Result<SeveralHostsReport> {
    if opts.configure_engine {
        super::engine::check_this_is_the_engine(spec.engine_fqdn.as_deref())?;
    }
    let addresses = hosts.iter().map(|h| address_of(h)).collect::<Result<Vec<_>>>()?;
    let mut reports: Vec<DeployReport> = Vec::new();
    for (i, (host, address)) in hosts.iter().zip(addresses).enumerate() {
        out.step(&format!("==> host {} of {}: {host}", i + 1, hosts.len()));
        let mut spec = spec.clone();
        spec.podman.host = Some(host.clone());
        let mut opts = opts.clone();
        opts.verify_connect_to = Some(address);
        opts.configure_engine = opts.configure_engine && i + 1 == hosts.len();
        match to_podman(&spec, &opts, out).await {
            Ok(report) => reports.push(report),
            Err(e) => {
                let done: Vec<&str> = reports.iter().map(|r| r.host.as_str()).collect();
                let untouched = &hosts[i + 1..];
                return Err(e.context(format!(
                    "host {host} ({} of {}) failed; {}; {}",
                    i + 1,
                    hosts.len(),
                    if done.is_empty() {
                        "no host was deployed before it".to_string()
                    } else {
                        format!("deployed and verified before it: {}", done.join(", "))
                    },
                    if untouched.is_empty() { "it was the last".to_string() } else { format!("not touched: {}", untouched.join(", ")) }
                )));
            }
        }
    }
    Ok(SeveralHostsReport { hosts: reports, ok: true })
}

/// `deploy --dry-run` on each host: what each would get (read only).
pub async fn plans(spec: &DeploySpec, hosts: &[String], opts: &DeployOptions, out: &Output) -> Result<Vec<PodmanPlan>> {
    let mut plans = Vec::new();
    for host in hosts {
        let mut spec = spec.clone();
        spec.podman.host = Some(host.clone());
        plans.push(super::podman_plan::plan(&spec, opts, out).await.map_err(|e| e.context(format!("host {host}")))?);
    }
    Ok(plans)
}

/// `undeploy --target podman` on each host given (the local one when none is); every host is
/// tried, and each object removed or not is named with its host.
pub async fn undeploy(hosts: &[String], identity: Option<&Path>, quadlet_dir: Option<&str>) -> Result<Removal> {
    if hosts.len() > 1 {
        let mut all = Removal::default();
        for host in hosts {
            match super::undeploy_podman(Some(host), identity, quadlet_dir).await {
                Ok(r) => {
                    all.removed.extend(r.removed.into_iter().map(|what| format!("{what} on {host}")));
                    all.failed.extend(r.failed.into_iter().map(|what| format!("{what} (on {host})")));
                }
                Err(e) => all.failed.push(format!("everything on {host}: {e}")),
            }
        }
        return Ok(all);
    }
    super::undeploy_podman(hosts.first().map(String::as_str), identity, quadlet_dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_host_is_verified_where_it_is() {
        assert_eq!(address_of("ssh://root@proxy-a.example.com").unwrap(), "proxy-a.example.com");
        assert_eq!(address_of("ssh://root@[2001:db8::7]:2222").unwrap(), "2001:db8::7");
        assert_eq!(address_of("unix:///run/podman/podman.sock").unwrap(), "127.0.0.1");
        assert!(address_of("ssh://-oProxyCommand=x").is_err());
    }
}
