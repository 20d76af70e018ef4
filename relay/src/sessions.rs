//! Session accounting: global and per-client-address limits, and the count that SIGTERM
//! draining waits on. (Single use is [`crate::replay`]'s.)
//!
//! A [`Slot`] is taken before the upgrade and released when it is dropped, so every exit path
//! (error, panic, shutdown) gives the slot back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::metrics::Metrics;

pub struct Sessions {
    max: usize,
    max_per_ip: usize,
    inner: Mutex<Inner>,
    /// Signalled whenever a slot is released.
    pub released: Notify,
    pub metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Inner {
    active: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why no slot was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    Global,
    PerIp,
}

impl Sessions {
    pub fn new(max: usize, max_per_ip: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self { max, max_per_ip, inner: Mutex::new(Inner::default()), released: Notify::new(), metrics })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a session slot for a client address.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let mut inner = self.lock();
        if inner.active >= self.max {
            return Err(Full::Global);
        }
        let count = inner.per_ip.entry(ip).or_insert(0);
        if self.max_per_ip > 0 && *count >= self.max_per_ip {
            return Err(Full::PerIp);
        }
        *count += 1;
        inner.active += 1;
        self.metrics.sessions_active.fetch_add(1, Relaxed);
        Ok(Slot { sessions: self.clone(), ip })
    }

    /// Open sessions now.
    pub fn active(&self) -> usize {
        self.lock().active
    }
}

/// A held session slot.
pub struct Slot {
    sessions: Arc<Sessions>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut inner = self.sessions.lock();
            inner.active -= 1;
            if let Some(count) = inner.per_ip.get_mut(&self.ip) {
                *count -= 1;
                if *count == 0 {
                    inner.per_ip.remove(&self.ip);
                }
            }
        }
        self.sessions.metrics.sessions_active.fetch_sub(1, Relaxed);
        self.sessions.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let s = Sessions::new(3, 2, Arc::new(Metrics::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = s.acquire(a).unwrap();
        let _s2 = s.acquire(a).unwrap();
        assert_eq!(s.acquire(a).err(), Some(Full::PerIp));
        let _s3 = s.acquire(b).unwrap();
        assert_eq!(s.acquire(b).err(), Some(Full::Global));
        drop(s1);
        assert_eq!(s.active(), 2);
        assert!(s.acquire(a).is_ok());
    }
}
