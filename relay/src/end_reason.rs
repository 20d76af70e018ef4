//! Why a session ended: one enum of the reasons, so a misspelt label cannot vanish from the
//! metrics. Its own leaf module (it depends on nothing), so the metrics and the session both
//! use it without either importing the other.

/// Why a session ended: the `reason` label of `wsproxy_sessions_ended_total` and the
/// session's log line. Each limit that ends a session has its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndReason {
    BrowserClosed,
    /// The browser vanished (reset, write error); also what a session reports until its pump
    /// says otherwise.
    #[default]
    BrowserGone,
    TargetClosed,
    TargetError,
    IdleTimeout,
    PingTimeout,
    MessageTooBig,
    ProtocolError,
    Shutdown,
    /// WSPROXY_MAX_SESSION_SECONDS ran out.
    MaxLifetime,
    /// Ended through the admin listener.
    Killed,
}

impl EndReason {
    /// Every reason, in the order of the metric's counters.
    pub const ALL: [EndReason; 11] = [
        EndReason::BrowserClosed,
        EndReason::BrowserGone,
        EndReason::TargetClosed,
        EndReason::TargetError,
        EndReason::IdleTimeout,
        EndReason::PingTimeout,
        EndReason::MessageTooBig,
        EndReason::ProtocolError,
        EndReason::Shutdown,
        EndReason::MaxLifetime,
        EndReason::Killed,
    ];

    /// The stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::BrowserClosed => "browser_closed",
            EndReason::BrowserGone => "browser_gone",
            EndReason::TargetClosed => "target_closed",
            EndReason::TargetError => "target_error",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::PingTimeout => "ping_timeout",
            EndReason::MessageTooBig => "message_too_big",
            EndReason::ProtocolError => "protocol_error",
            EndReason::Shutdown => "shutdown",
            EndReason::MaxLifetime => "max_lifetime",
            EndReason::Killed => "killed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EndReason;

    #[test]
    fn every_reason_is_listed_once_with_its_own_label() {
        let labels: std::collections::BTreeSet<_> = EndReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), EndReason::ALL.len());
        for (i, r) in EndReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} is out of order in ALL");
        }
    }
}
