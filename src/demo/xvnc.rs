//! Xvnc (TigerVNC) as the demo's VM console, when it is installed.

use std::path::Path;
use std::process::Stdio;

use des::cipher::{BlockEncrypt, KeyInit};
use tokio::process::{Child, Command};

use crate::error::{Failure, Result};

/// Whether a program is on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

/// The VNC password file format: the password DES-encrypted with VNC's fixed key. VNC's DES
/// takes key bytes with their bits reversed, so the fixed key is reversed for standard DES.
pub fn password_file(password: &str) -> [u8; 8] {
    const FIXED: [u8; 8] = [23, 82, 107, 6, 35, 78, 88, 7];
    let key = FIXED.map(u8::reverse_bits);
    let cipher = des::Des::new_from_slice(&key).expect("8-byte key");
    let mut block = [0u8; 8];
    for (b, p) in block.iter_mut().zip(password.bytes()) {
        *b = p;
    }
    cipher.encrypt_block((&mut block).into());
    block
}

/// A running Xvnc. Dropping it stops it with SIGTERM, so Xvnc removes its /tmp/.X<n>-lock and
/// X socket itself (SIGKILL would leave both behind); killed only if not gone within 2 s.
pub struct Xvnc {
    child: Child,
    /// The X display it serves: X clients can draw on the demo's "VM" screen.
    pub display: u16,
}

impl Drop for Xvnc {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            for _ in 0..100 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.start_kill();
    }
}

/// Start Xvnc on 127.0.0.1:`port` with VNC password authentication; paint the root window
/// oVirt green when xsetroot is installed.
pub async fn start(dir: &Path, port: u16, password: &str) -> Result<Xvnc> {
    let passwd = dir.join("vnc-passwd");
    crate::fsutil::write_atomic(&passwd, &password_file(password), 0o600)?;
    let display = free_display(port);
    let child = Command::new("Xvnc")
        .arg(format!(":{display}"))
        .args(["-rfbport", &port.to_string(), "-interface", "127.0.0.1", "-geometry", "640x400", "-depth", "24"])
        .args(["-SecurityTypes", "VncAuth", "-nolisten", "tcp", "-AlwaysShared", "-PasswordFile"])
        .arg(&passwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::environment(format!("cannot start Xvnc: {e}; or use --builtin-vnc")))?;
    let mut xvnc = Xvnc { child, display };
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            if on_path("xsetroot") {
                let _ = Command::new("xsetroot").env("DISPLAY", format!(":{display}")).args(["-solid", "#3c8d2f"]).status().await;
            }
            return Ok(xvnc);
        }
        if let Ok(Some(status)) = xvnc.child.try_wait() {
            return Err(Failure::environment(format!(
                "Xvnc exited as it started ({status}) on display :{display}: run `Xvnc :{display}` to see why, or use --builtin-vnc"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(Failure::environment(format!("Xvnc did not start listening on 127.0.0.1:{port} within 5 s; use --builtin-vnc")))
}

/// An X display number between 100 and 899 that no X server holds (no lock file, no socket),
/// starting from one derived from the port so that concurrent demos rarely race for it.
fn free_display(port: u16) -> u16 {
    let first = port % 800;
    (0..800)
        .map(|i| 100 + (first + i) % 800)
        .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists() && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .unwrap_or(100 + first)
}

#[cfg(test)]
mod tests {
    #[test]
    fn password_file_matches_vncpasswd() {
        // `printf 'secret\nsecret\n' | vncpasswd -f | xxd -p` on TigerVNC 1.12.
        assert_eq!(super::password_file("secret").iter().map(|b| format!("{b:02x}")).collect::<String>(), "2e2dbf576eb06c9e");
    }
}
