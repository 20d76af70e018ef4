//! Prometheus metrics: plain atomics rendered in the text exposition format.
//!
//! Why no metrics crate: the set is small and fixed, the hot path only does relaxed atomic
//! adds, and the static image stays lean.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

// The leaf module of end reasons (it depends only on wsframe), not the session above it.
use crate::end_reason::EndReason;

/// Ticket rejection reasons, in the order of [`Metrics::ticket_rejections`]; labels from
/// [`crate::ticket::TicketError::reason`] plus the relay's own refusals.
pub const REJECT_REASONS: &[&str] = &[
    "malformed",
    "unsigned_fields",
    "bad_signature",
    "legacy_sha1_disabled",
    "expired",
    "not_yet_valid",
    "bad_data",
    "reused",
    "target_not_allowed",
];

/// Why targets could not be reached, in the order of [`Metrics::target_connect_failures`].
pub const CONNECT_FAILURES: &[&str] = &["timeout", "unreachable", "not_allowed", "negotiation"];

/// Upper bounds (seconds) of the target connect latency histogram.
const CONNECT_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Why a connection was refused before it became a session.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    Capacity,
    PerIpLimit,
    HandshakeTimeout,
    TlsFailed,
    BadRequest,
    /// More connections in handshake than WSPROXY_MAX_HANDSHAKES: closed at once.
    HandshakeLimit,
    /// The replay store could not say whether the ticket was used (503, fail closed).
    ReplayStoreUnavailable,
    /// A trusted proxy's connection without a valid PROXY protocol header (closed).
    ProxyHeader,
}

impl Refusal {
    /// Every cause, in the order of the metric's counters.
    pub const ALL: [Refusal; 8] = [
        Refusal::Capacity,
        Refusal::PerIpLimit,
        Refusal::HandshakeTimeout,
        Refusal::TlsFailed,
        Refusal::BadRequest,
        Refusal::HandshakeLimit,
        Refusal::ReplayStoreUnavailable,
        Refusal::ProxyHeader,
    ];

    /// The `cause` label of `wsproxy_connections_refused_total` (and the audit record's reason).
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Capacity => "capacity",
            Refusal::PerIpLimit => "per_ip_limit",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::TlsFailed => "tls_failed",
            Refusal::BadRequest => "bad_request",
            Refusal::HandshakeLimit => "handshake_limit",
            Refusal::ReplayStoreUnavailable => "replay_store_unavailable",
            Refusal::ProxyHeader => "proxy_header",
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    pub sessions_active: AtomicU64,
    /// Sessions polled by the bulk lane (streaming; `crate::runtime`).
    pub sessions_bulk_lane: AtomicU64,
    pub sessions_total: AtomicU64,
    pub bytes_to_target: AtomicU64,
    pub bytes_to_browser: AtomicU64,
    pub ticket_rejections: [AtomicU64; 9],
    pub target_connect_failures: [AtomicU64; 4],
    pub sessions_ended: [AtomicU64; EndReason::ALL.len()],
    refused: [AtomicU64; Refusal::ALL.len()],
    replay_store_errors: AtomicU64,
    connect_buckets: [AtomicU64; 14],
    connect_count: AtomicU64,
    connect_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn reject_ticket(&self, reason: &str) {
        if let Some(i) = REJECT_REASONS.iter().position(|r| *r == reason) {
            self.ticket_rejections[i].fetch_add(1, Relaxed);
        }
    }

    /// Count a session's end under its reason.
    pub fn session_ended(&self, reason: EndReason) {
        self.sessions_ended[reason as usize].fetch_add(1, Relaxed);
    }

    /// Count a failed target connection under one of [`CONNECT_FAILURES`].
    pub fn connect_failed(&self, cause: &str) {
        if let Some(i) = CONNECT_FAILURES.iter().position(|r| *r == cause) {
            self.target_connect_failures[i].fetch_add(1, Relaxed);
        }
    }

    pub fn refuse(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// The replay store failed to answer a single-use check.
    pub fn replay_store_error(&self) {
        self.replay_store_errors.fetch_add(1, Relaxed);
    }

    pub fn observe_connect(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in CONNECT_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.connect_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.connect_count.fetch_add(1, Relaxed);
        self.connect_sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        gauge("wsproxy_sessions_active", "gauge", "Open console sessions.", self.sessions_active.load(Relaxed));
        gauge(
            "wsproxy_sessions_bulk_lane",
            "gauge",
            "Open sessions that stream (2 MB/s or more), relayed at a lower priority than interactive ones.",
            self.sessions_bulk_lane.load(Relaxed),
        );
        gauge("wsproxy_sessions_total", "counter", "Console sessions started.", self.sessions_total.load(Relaxed));
        let _ = writeln!(out, "# HELP wsproxy_target_connect_failures_total Targets that could not be reached, by cause.\n# TYPE wsproxy_target_connect_failures_total counter");
        for (cause, count) in CONNECT_FAILURES.iter().zip(&self.target_connect_failures) {
            let _ = writeln!(out, "wsproxy_target_connect_failures_total{{cause=\"{cause}\"}} {}", count.load(Relaxed));
        }
        let _ =
            writeln!(out, "# HELP wsproxy_sessions_ended_total Sessions ended, by reason.\n# TYPE wsproxy_sessions_ended_total counter");
        for (reason, count) in EndReason::ALL.iter().zip(&self.sessions_ended) {
            let _ = writeln!(out, "wsproxy_sessions_ended_total{{reason=\"{}\"}} {}", reason.as_str(), count.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP wsproxy_bytes_total Bytes relayed, by direction.\n# TYPE wsproxy_bytes_total counter");
        let _ = writeln!(out, "wsproxy_bytes_total{{direction=\"to_target\"}} {}", self.bytes_to_target.load(Relaxed));
        let _ = writeln!(out, "wsproxy_bytes_total{{direction=\"to_browser\"}} {}", self.bytes_to_browser.load(Relaxed));
        let _ = writeln!(
            out,
            "# HELP wsproxy_ticket_rejections_total Tickets refused, by reason.\n# TYPE wsproxy_ticket_rejections_total counter"
        );
        for (reason, count) in REJECT_REASONS.iter().zip(&self.ticket_rejections) {
            let _ = writeln!(out, "wsproxy_ticket_rejections_total{{reason=\"{reason}\"}} {}", count.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP wsproxy_connections_refused_total Connections refused before a session, by cause.\n# TYPE wsproxy_connections_refused_total counter");
        for (cause, count) in Refusal::ALL.iter().zip(&self.refused) {
            let _ = writeln!(out, "wsproxy_connections_refused_total{{cause=\"{}\"}} {}", cause.as_str(), count.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP wsproxy_replay_store_errors_total Single-use checks the replay store (WSPROXY_REPLAY_STORE) did not answer.\n\
             # TYPE wsproxy_replay_store_errors_total counter\nwsproxy_replay_store_errors_total {}",
            self.replay_store_errors.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP wsproxy_target_connect_seconds Time to connect and negotiate with targets.\n# TYPE wsproxy_target_connect_seconds histogram");
        for (bound, count) in CONNECT_BUCKETS.iter().zip(&self.connect_buckets) {
            let _ = writeln!(out, "wsproxy_target_connect_seconds_bucket{{le=\"{bound}\"}} {}", count.load(Relaxed));
        }
        let count = self.connect_count.load(Relaxed);
        let _ = writeln!(out, "wsproxy_target_connect_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "wsproxy_target_connect_seconds_sum {}", self.connect_sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "wsproxy_target_connect_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_cause_is_listed_once_in_order() {
        let labels: std::collections::BTreeSet<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Refusal::ALL.len());
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} is out of order in ALL");
        }
    }

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.reject_ticket("expired");
        m.reject_ticket("unknown-reason-is-ignored");
        m.observe_connect(Duration::from_millis(3));
        m.refuse(Refusal::Capacity);
        let text = m.render();
        assert!(text.contains("wsproxy_ticket_rejections_total{reason=\"expired\"} 1"));
        assert!(text.contains("wsproxy_target_connect_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("wsproxy_target_connect_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("wsproxy_connections_refused_total{cause=\"capacity\"} 1"));
        assert_eq!(REJECT_REASONS.len(), m.ticket_rejections.len());
        assert_eq!(CONNECT_FAILURES.len(), m.target_connect_failures.len());
        m.session_ended(EndReason::IdleTimeout);
        m.connect_failed("timeout");
        let text = m.render();
        assert!(text.contains("wsproxy_sessions_ended_total{reason=\"idle_timeout\"} 1"), "{text}");
        assert!(text.contains("wsproxy_target_connect_failures_total{cause=\"timeout\"} 1"), "{text}");
    }
}
