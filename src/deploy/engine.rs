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
    let out = cmd
        .output()
        .map_err(|e| Failure::environment(format!("cannot run {what}: {e}: run --configure-engine on the engine host, as root")))?;
    if !out.status.success() {
        return Err(Failure::check(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// This machine's host name (gethostname).
pub fn this_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether `host` (a host name, short or fully qualified) names the engine `engine_fqdn`.
pub fn is_engine_host(host: &str, engine_fqdn: &str) -> bool {
    let (host, engine) = (host.trim_end_matches('.'), engine_fqdn.trim_end_matches('.'));
    if host.contains('.') {
        host.eq_ignore_ascii_case(engine)
    } else {
        engine.split('.').next().is_some_and(|first| first.eq_ignore_ascii_case(host))
    }
}

/// `--configure-engine` runs engine-config on this machine. With `engineFqdn` in the spec, this
/// machine must be that engine: checked before anything is deployed, so a deploy started on the
/// wrong machine changes nothing.
pub fn check_this_is_the_engine(engine_fqdn: Option<&str>) -> Result<()> {
    let Some(engine) = engine_fqdn else {
        return Ok(());
    };
    let here = this_host();
    if is_engine_host(&here, engine) {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "--configure-engine runs engine-config on this machine ({here}), but engineFqdn says the engine is {engine}: \
         run the deploy on {engine}, or drop --configure-engine and run the printed engine-config command there"
    )))
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
        Some(old) => {
            format!("the engine pointed to {old}; now to {wanted} (ovirt-engine restarted)")
        }
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

    #[test]
    fn engine_host_names_match_short_or_full() {
        assert!(super::is_engine_host("engine.example.com", "ENGINE.example.com."));
        assert!(super::is_engine_host("engine", "engine.example.com"));
        assert!(!super::is_engine_host("proxy", "engine.example.com"));
        assert!(!super::is_engine_host("engine.other.org", "engine.example.com"));
        assert!(!super::is_engine_host("", "engine.example.com"));
    }
}
