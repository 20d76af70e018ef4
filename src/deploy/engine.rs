//! Telling the engine where the proxy is: `engine-config -s WebSocketProxy=FQDN:PORT` and an
//! engine restart, run on the engine host with `--configure-engine`, printed otherwise.

use std::process::Command;

use crate::error::{Failure, Result};

/// The commands an admin runs on the engine host.
pub fn commands(fqdn: &str, port: u16) -> [String; 2] {
    [format!("engine-config -s WebSocketProxy={fqdn}:{port}"), "systemctl restart ovirt-engine".to_string()]
}

/// The engine's current WebSocketProxy value, from `engine-config -g WebSocketProxy`
/// (prints `WebSocketProxy: host:port version: general`).
pub fn parse_current(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("WebSocketProxy:"))
        .map(|rest| rest.split("version:").next().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty())
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| {
        Failure::environment(format!("cannot run {what}: {e}: run --configure-engine on the engine host, as root"))
    })?;
    if !out.status.success() {
        return Err(Failure::check(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Point the engine at the proxy. Says so when it already pointed elsewhere, and does nothing
/// (no restart) when it already points here.
pub fn configure(fqdn: &str, port: u16) -> Result<String> {
    let wanted = format!("{fqdn}:{port}");
    let current = parse_current(&run(Command::new("engine-config").args(["-g", "WebSocketProxy"]), "engine-config -g WebSocketProxy")?);
    if current.as_deref() == Some(wanted.as_str()) {
        return Ok(format!("the engine already sends consoles to {wanted}; nothing to change"));
    }
    run(Command::new("engine-config").args(["-s", &format!("WebSocketProxy={wanted}")]), "engine-config -s")?;
    run(Command::new("systemctl").args(["restart", "ovirt-engine"]), "systemctl restart ovirt-engine")?;
    Ok(match current {
        Some(old) => format!("the engine pointed to {old}; now to {wanted} (ovirt-engine restarted)"),
        None => format!("the engine now sends consoles to {wanted} (ovirt-engine restarted)"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_engine_config_output() {
        assert_eq!(super::parse_current("WebSocketProxy: engine.example:6100 version: general\n").as_deref(), Some("engine.example:6100"));
        assert_eq!(super::parse_current("WebSocketProxy:  version: general\n"), None);
        assert_eq!(super::parse_current("Error: no such key\n"), None);
    }
}
