//! Files written the safe way: to a temporary file in the same directory, flushed, then
//! renamed over the target, so a crash or a full disk never leaves a half-written certificate
//! or key. Private keys get mode 0600 from the moment they exist.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Failure, Result};

/// Atomically write `contents` to `path` with `mode` (e.g. 0o600 for keys, 0o644 for
/// certificates).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |e: std::io::Error| Failure::environment(format!("cannot write {}: {e}", path.display()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Create a directory (and parents) if needed.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::environment(format!("cannot create {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        write_atomic(&key, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        write_atomic(&key, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn failure_leaves_nothing() {
        let e = write_atomic(Path::new("/nonexistent-dir/x"), b"x", 0o644).unwrap_err();
        assert!(e.message.contains("/nonexistent-dir/x"));
    }
}
