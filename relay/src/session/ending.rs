//! How a session ends: what a pump hands back ([`End`]) and what the session's log line
//! reports ([`Outcome`]), each with its [`EndReason`]. A leaf: it depends only on
//! [`crate::wsframe`]'s close codes and the reasons.

pub use crate::end_reason::EndReason;
use crate::wsframe::{code, Violation};

/// How a session ended, for the close log line.
#[derive(Debug, Default)]
pub struct Outcome {
    pub to_target: u64,
    pub to_browser: u64,
    pub reason: String,
    pub label: EndReason,
}

/// How a pump ended.
pub(crate) enum End {
    /// Close the browser side with this code and reason; `log` goes to the session line,
    /// `label` to the metric.
    Close { code: u16, reason: String, log: String, label: EndReason },
    /// The browser closed; its answer is queued.
    BrowserClosed,
    /// The browser cannot be written to any more.
    Gone(String),
}

impl End {
    /// A close whose reason is also what the session's log line says.
    pub(crate) fn close(code: u16, why: impl Into<String>, label: EndReason) -> End {
        let why = why.into();
        End::Close { code, reason: why.clone(), log: why, label }
    }

    /// Text the session cannot take: a text message on a binary session, or bad base64.
    pub(crate) fn unsupported(why: impl Into<String>) -> End {
        End::close(code::UNSUPPORTED, why, EndReason::ProtocolError)
    }

    pub(crate) fn shutdown() -> End {
        End::Close { code: code::AWAY, reason: "proxy shutting down".into(), log: "proxy shutdown".into(), label: EndReason::Shutdown }
    }

    /// The session's absolute lifetime (WSPROXY_MAX_SESSION_SECONDS) is over: 1008, the
    /// relay's policy ends it, with the reason noVNC shows.
    pub(crate) fn max_lifetime() -> End {
        End::close(code::POLICY, "session lifetime reached (WSPROXY_MAX_SESSION_SECONDS): open the console again", EndReason::MaxLifetime)
    }

    /// An operator ended the session (the admin listener): 1008 with the reason noVNC shows.
    pub(crate) fn killed() -> End {
        End::close(code::POLICY, "session ended by the proxy's administrator", EndReason::Killed)
    }

    pub(crate) fn target_closed() -> End {
        End::Close {
            code: code::NORMAL,
            reason: "target closed the connection".into(),
            log: "target closed".into(),
            label: EndReason::TargetClosed,
        }
    }

    /// The end of a session whose browser broke RFC 6455.
    pub(crate) fn violation(v: Violation) -> End {
        let label = if v.code == code::TOO_BIG { EndReason::MessageTooBig } else { EndReason::ProtocolError };
        End::close(v.code, v.reason, label)
    }

    pub(crate) fn target_lost(e: impl std::fmt::Display, what: &str) -> End {
        End::Close {
            code: code::ERROR,
            reason: format!("target connection lost: {e}"),
            log: format!("target {what}: {e}"),
            label: EndReason::TargetError,
        }
    }
}
