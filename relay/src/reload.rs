//! Values loaded from files and re-read when the files change.
//!
//! Why: on Kubernetes a rotated Secret appears as new files behind the same paths; on a podman
//! host an operator replaces the files. Either way the relay must pick up the new certificate
//! without a restart and without touching open sessions, and must keep the last good value if
//! the new files are broken (half-copied, wrong key). Polling file metadata is used rather than
//! inotify because Secret volumes swap a symlink, which inotify on the file does not see.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// A value built from some files, swapped atomically when they change.
pub struct Reloadable<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Reloadable<T> {
    pub fn new(value: T) -> Self {
        Self { current: RwLock::new(Arc::new(value)) }
    }

    /// The current value. Cheap: clones an `Arc`.
    pub fn get(&self) -> Arc<T> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, value: T) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

/// What identifies a version of a file: modification time, size and inode (a symlink swap
/// changes the inode even when time and size match).
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

fn stamp(paths: &[PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    paths.iter().map(|p| std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino()))).collect()
}

/// Watch `paths` every `interval`; when any changes, call `load` and swap the value in on
/// success. `what` names the value in log lines. Returns the watcher task.
pub fn watch<T, F>(
    target: Arc<Reloadable<T>>,
    paths: Vec<PathBuf>,
    interval: Duration,
    what: &'static str,
    load: F,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    F: Fn() -> Result<T, String> + Send + 'static,
{
    tokio::spawn(async move {
        let mut last = stamp(&paths);
        let mut failed_stamp: Option<Stamp> = None;
        loop {
            tokio::time::sleep(interval).await;
            let now = stamp(&paths);
            if now == last || failed_stamp.as_ref() == Some(&now) {
                continue;
            }
            match load() {
                Ok(value) => {
                    target.set(value);
                    last = now;
                    failed_stamp = None;
                    tracing::info!(what, files = ?paths, "reloaded after the files changed");
                }
                Err(why) => {
                    tracing::warn!(what, files = ?paths, error = %why, "files changed but cannot be loaded; keeping the last good version");
                    failed_stamp = Some(now);
                }
            }
        }
    })
}
