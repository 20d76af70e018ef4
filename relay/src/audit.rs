//! Audit records: who opened which console, when and over what, how it ended, and who was
//! refused and why. One record per event in the relay's log stream, told from the other lines
//! by their `record` field (log target `wsproxy::audit`): a JSON line each with
//! `WSPROXY_LOG_FORMAT=json`, one text line each otherwise. The fields are documented in
//! docs/AUDIT.md.
//!
//! Nothing secret is written: not the ticket (it would open the console while valid) and not a
//! KubeVirt token, but the ticket's fingerprint, the SHA-256 of its signature bytes, which is
//! also what single use keys on: a refused reuse carries the fingerprint of the session that
//! used the ticket first.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::session::Outcome;
use crate::ticket::Target;

/// A session's id: this process's prefix (from its start time and pid, so replicas and
/// restarts do not repeat each other's ids) and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionId(u64);

impl SessionId {
    pub fn next() -> SessionId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        SessionId(COUNTER.fetch_add(1, Ordering::Relaxed))
    }
}

fn process_prefix() -> u32 {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        use sha2::Digest;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let digest = sha2::Sha256::digest(format!("{nanos}/{}", std::process::id()));
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    })
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{}", process_prefix(), self.0)
    }
}

/// A ticket's fingerprint (the SHA-256 of its signature), as hex.
pub struct Fingerprint<'a>(pub &'a [u8; 32]);

impl fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// What every record of one session carries.
pub struct Session<'a> {
    pub id: SessionId,
    pub ticket: &'a [u8; 32],
    pub client: SocketAddr,
    pub target: &'a Target,
    /// "TLSv1.3", "TLSv1.2" or "none" (plain websocket).
    pub tls: &'static str,
}

/// The browser got its 101 and the target is being connected.
pub fn session_start(s: &Session) {
    tracing::info!(
        record = %"session_start",
        session = %s.id,
        ticket = %Fingerprint(s.ticket),
        client = %s.client,
        target = %s.target,
        tls = %s.tls,
        "session started"
    );
}

/// The session is over (its target never answered, either side closed, or a limit ended it).
pub fn session_end(s: &Session, outcome: &Outcome, duration: Duration) {
    tracing::info!(
        record = %"session_end",
        session = %s.id,
        ticket = %Fingerprint(s.ticket),
        client = %s.client,
        target = %s.target,
        tls = %s.tls,
        to_target = outcome.to_target,
        to_browser = outcome.to_browser,
        duration_ms = duration.as_millis() as u64,
        end = outcome.label.as_str(),
        reason = %outcome.reason,
        "session closed"
    );
}

/// A console request answered 403 or 503: the status, the reason's label (as in the metrics)
/// and its text; the fingerprint once the ticket's signature has checked out.
pub fn refused(client: SocketAddr, tls: &'static str, status: u16, reason: &str, detail: &str, ticket: Option<&[u8; 32]>) {
    tracing::warn!(
        record = %"refused",
        client = %client,
        tls = %tls,
        status = status,
        reason = %reason,
        detail = %detail,
        // Left out of the record (not written as empty) when there is none.
        ticket = ticket.map(|t| tracing::field::display(Fingerprint(t))),
        "console refused"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_in_a_process_and_prefixed_by_it() {
        let (a, b) = (SessionId::next().to_string(), SessionId::next().to_string());
        assert_ne!(a, b);
        assert_eq!(a.split_once('-').unwrap().0, b.split_once('-').unwrap().0);
        assert_eq!(Fingerprint(&[0xab; 32]).to_string(), "ab".repeat(32));
    }
}
