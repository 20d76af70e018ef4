//! The open sessions, as the admin listener shows them and ends them.
//!
//! Each session registers when its target is connected and is removed when its entry is
//! dropped, on every way out. An entry holds what an operator asks about (who, to which VM,
//! since when, how much) and a way to end the session: a [`Notify`] its pump waits on beside
//! its other ends. Byte counts are written by the pump as it relays (one relaxed store on a
//! line only that session touches), so a listing is current without a lock on the hot path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

/// Bytes a session has relayed so far, each way.
#[derive(Default)]
pub struct LiveBytes {
    pub to_target: AtomicU64,
    pub to_browser: AtomicU64,
}

/// What a session's pump is given: where to write its byte counts, and what ends it.
#[derive(Clone, Default)]
pub struct Control {
    pub bytes: Arc<LiveBytes>,
    pub kill: Arc<Notify>,
}

struct Entry {
    client: SocketAddr,
    target: String,
    started: SystemTime,
    ticket: String,
    control: Control,
}

/// One session as the admin listener lists it (and `wsproxyctl sessions list` reads it: one
/// definition of the wire format).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    pub client: String,
    pub target: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub to_target: u64,
    pub to_browser: u64,
    /// SHA-256 of the ticket's signature, as in the audit records (never the ticket).
    pub ticket: String,
}

/// Which sessions to end: any that matches one of the given fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selector {
    pub id: Option<String>,
    pub target: Option<String>,
    pub client: Option<IpAddr>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.target.is_none() && self.client.is_none()
    }

    fn matches(&self, id: &str, entry: &Entry) -> bool {
        self.id.as_deref() == Some(id) || self.target.as_deref() == Some(&entry.target) || self.client == Some(entry.client.ip())
    }
}

#[derive(Default)]
pub struct Registry {
    open: Mutex<HashMap<String, Entry>>,
}

/// A session's place in the registry; dropping it removes the session.
pub struct Registered {
    registry: Arc<Registry>,
    id: String,
    pub control: Control,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(self: &Arc<Self>, id: String, client: SocketAddr, target: String, ticket: String) -> Registered {
        let control = Control::default();
        let entry = Entry { client, target, started: SystemTime::now(), ticket, control: control.clone() };
        self.lock().insert(id.clone(), entry);
        Registered { registry: self.clone(), id, control }
    }

    /// The open sessions, oldest first.
    pub fn list(&self) -> Vec<SessionView> {
        let open = self.lock();
        let mut views: Vec<(SystemTime, SessionView)> = open
            .iter()
            .map(|(id, e)| {
                let view = SessionView {
                    id: id.clone(),
                    client: e.client.to_string(),
                    target: e.target.clone(),
                    started: rfc3339(e.started),
                    to_target: e.control.bytes.to_target.load(Relaxed),
                    to_browser: e.control.bytes.to_browser.load(Relaxed),
                    ticket: e.ticket.clone(),
                };
                (e.started, view)
            })
            .collect();
        views.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        views.into_iter().map(|(_, v)| v).collect()
    }

    /// End every session `selector` matches; how many were told to end.
    pub fn kill(&self, selector: &Selector) -> usize {
        let open = self.lock();
        let mut told = 0;
        for (id, entry) in open.iter().filter(|(id, e)| selector.matches(id, e)) {
            tracing::info!(session = %id, client = %entry.client, target = %entry.target, "ending the session at the admin listener's request");
            // A permit is kept if the pump is not waiting right now: it ends at its next turn.
            entry.control.kill.notify_one();
            told += 1;
        }
        told
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t).format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_while_registered_and_ended_by_id_target_or_client() {
        let registry = Arc::new(Registry::default());
        let a = registry.register("p-1".into(), "192.0.2.1:5000".parse().unwrap(), "tcp://10.0.0.1:5900".into(), "aa".into());
        let b = registry.register("p-2".into(), "192.0.2.2:5000".parse().unwrap(), "tcp://10.0.0.2:5900".into(), "bb".into());
        a.control.bytes.to_browser.store(42, Relaxed);
        let listed = registry.list();
        assert_eq!(listed.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["p-1", "p-2"]);
        assert_eq!((listed[0].to_browser, listed[0].client.as_str(), listed[0].ticket.as_str()), (42, "192.0.2.1:5000", "aa"));

        assert_eq!(registry.kill(&Selector { target: Some("tcp://10.0.0.2:5900".into()), ..Default::default() }), 1);
        assert_eq!(registry.kill(&Selector { client: Some("192.0.2.1".parse().unwrap()), ..Default::default() }), 1);
        assert_eq!(registry.kill(&Selector { id: Some("p-3".into()), ..Default::default() }), 0);
        // The kill is kept until the pump looks (a permit), so a session never misses it.
        let waited = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(1), b.control.kill.notified()).await.is_ok() });
        assert!(waited);
        drop((a, b));
        assert!(registry.list().is_empty());
    }
}
