//! Session timers: pings and the idle check share one housekeeping timer, and what it
//! decides on each tick. A leaf beside [`super::ending`].

use std::time::{Duration, Instant};

use super::ending::{End, EndReason};
use crate::wsframe::code;

/// Session timing knobs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ping_interval: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// Absolute lifetime, counted from when relaying starts (WSPROXY_MAX_SESSION_SECONDS).
    pub max_lifetime: Option<Duration>,
}

/// The session's end of life, when it has one: no timer at all otherwise.
pub(crate) fn lifetime(timing: Timing) -> Option<std::pin::Pin<Box<tokio::time::Sleep>>> {
    timing.max_lifetime.map(|d| Box::pin(tokio::time::sleep(d)))
}

/// Completes when the lifetime is over; never without one.
pub(crate) async fn expired(lifetime: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match lifetime {
        Some(sleep) => sleep.await,
        None => std::future::pending().await,
    }
}

/// Periodic housekeeping: pings and the idle check share one timer.
pub(crate) fn housekeeping(timing: Timing) -> Option<tokio::time::Interval> {
    let period = match (timing.ping_interval, timing.idle_timeout) {
        (Some(p), _) => p,
        (None, Some(idle)) => (idle / 4).max(Duration::from_secs(1)),
        (None, None) => return None,
    };
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(interval)
}

pub(crate) async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What housekeeping decided.
pub(crate) enum Tick {
    Continue,
    Ping,
    End(End),
}

/// `last_browser`: when the browser was last heard, or last waited for (time spent waiting
/// on a slow target is not the browser's silence).
pub(crate) fn on_tick(timing: Timing, last_data: Instant, last_browser: Instant) -> Tick {
    if let Some(idle) = timing.idle_timeout {
        if last_data.elapsed() >= idle {
            return Tick::End(End::close(code::NORMAL, "idle timeout (WSPROXY_IDLE_TIMEOUT)", EndReason::IdleTimeout));
        }
    }
    if let Some(ping) = timing.ping_interval {
        if last_browser.elapsed() >= ping * 2 + Duration::from_secs(1) {
            return Tick::End(End::close(code::AWAY, "browser stopped answering pings", EndReason::PingTimeout));
        }
        return Tick::Ping;
    }
    Tick::Continue
}
