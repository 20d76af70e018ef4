//! Single use: each ticket opens at most one console. The record of used tickets lives in this
//! process by default; with `WSPROXY_REPLAY_STORE` it lives in Redis or Valkey, so several
//! relays behind one address refuse a ticket used on any of them.
//!
//! The store is asked once per session, after the ticket's signature has been checked (an
//! unauthenticated client can never make the relay talk to the store). One atomic command:
//! `SET wsproxy:ticket:<id> 1 NX EX <seconds until validTo + skew>`: the first relay to set the
//! key opens the console, every later one finds it set. When the store cannot be reached, new
//! sessions are refused with 503 (fail closed) unless `WSPROXY_REPLAY_STORE_FAIL_OPEN` says
//! otherwise; open sessions never depend on it. A lost connection is re-made on the next check
//! (at most one attempt per second), so the relay recovers without a restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ReplayStoreConfig;

/// What the store says about a ticket.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before: recorded now, the session may open.
    First,
    /// Already used and still remembered.
    Reused,
    /// The store could not answer (why, for the log and the 503).
    Unavailable(String),
}

/// Where used tickets are recorded.
pub enum ReplayStore {
    Local(LocalStore),
    Redis(Box<RedisStore>),
}

impl ReplayStore {
    /// The store the configuration asks for. Reads the password and CA files (start-up I/O).
    pub fn open(config: Option<&ReplayStoreConfig>) -> Result<ReplayStore, String> {
        match config {
            None => Ok(ReplayStore::Local(LocalStore::default())),
            Some(c) => RedisStore::open(c).map(|r| ReplayStore::Redis(Box::new(r))),
        }
    }

    /// Record ticket `id` as used until `keep_until` (unix seconds: validTo plus the skew, as
    /// long as the ticket could still be accepted), unless it is already recorded.
    pub async fn first_use(&self, id: [u8; 32], keep_until: i64, now: i64) -> Verdict {
        match self {
            ReplayStore::Local(local) => local.first_use(id, keep_until, now),
            ReplayStore::Redis(redis) => redis.first_use(id, keep_until, now).await,
        }
    }

    /// What the relay's start-up log says about it (never the password).
    pub fn describe(&self) -> String {
        match self {
            ReplayStore::Local(_) => "in this process".into(),
            ReplayStore::Redis(r) => r.describe.clone(),
        }
    }
}

/// Used tickets in this process: enough for one relay.
#[derive(Default)]
pub struct LocalStore {
    /// Ticket id -> keep until (unix seconds).
    used: Mutex<HashMap<[u8; 32], i64>>,
}

impl LocalStore {
    fn first_use(&self, id: [u8; 32], keep_until: i64, now: i64) -> Verdict {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.len() > 1024 {
            used.retain(|_, until| *until >= now);
        }
        match used.get(&id) {
            Some(until) if *until >= now => Verdict::Reused,
            _ => {
                used.insert(id, keep_until);
                Verdict::First
            }
        }
    }
}

/// Used tickets in Redis or Valkey, shared by every relay that points at it.
pub struct RedisStore {
    client: redis::Client,
    /// The shared (multiplexed) connection, made on first use and re-made after an error. A
    /// plain lock, held only to clone it: the hot path never waits on a connection attempt.
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Held while a connection is made, so one attempt runs at a time.
    connecting: tokio::sync::Mutex<()>,
    /// When the last connection attempt failed: no new attempt within a second of it.
    failed_at: Mutex<Option<Instant>>,
    timeout: Duration,
    describe: String,
}

/// Between two connection attempts to an unreachable store.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

impl RedisStore {
    fn open(c: &ReplayStoreConfig) -> Result<RedisStore, String> {
        use redis::IntoConnectionInfo as _;
        let mut info = c.url.as_str().into_connection_info().map_err(|e| format!("WSPROXY_REPLAY_STORE: {e}"))?;
        if let Some(path) = &c.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read WSPROXY_REPLAY_STORE_PASSWORD_FILE {}: {e}", path.display()))?;
            let password = text.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(format!("WSPROXY_REPLAY_STORE_PASSWORD_FILE {} is empty", path.display()));
            }
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = match &c.ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("cannot read WSPROXY_REPLAY_STORE_CA {}: {e}", path.display()))?;
                redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(pem) })
            }
            None => redis::Client::open(info),
        }
        .map_err(|e| format!("WSPROXY_REPLAY_STORE: {e}"))?;
        let describe = format!("{}{}", c.url, if c.password_file.is_some() { " (password from file)" } else { "" });
        Ok(RedisStore {
            client,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            failed_at: Mutex::new(None),
            timeout: c.timeout,
            describe,
        })
    }

    async fn first_use(&self, id: [u8; 32], keep_until: i64, now: i64) -> Verdict {
        let mut key = String::with_capacity(15 + 64);
        key.push_str("wsproxy:ticket:");
        for b in id {
            key.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            key.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        let seconds = (keep_until - now).max(1);
        let attempt = async {
            // A kept connection may have gone stale (the store restarted): one more try on a
            // new connection before the store counts as unreachable.
            loop {
                let (mut connection, kept) = self.connection().await?;
                let set: redis::RedisResult<Option<String>> =
                    redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("EX").arg(seconds).query_async(&mut connection).await;
                match set {
                    Ok(set) => return Ok::<_, String>(if set.is_some() { Verdict::First } else { Verdict::Reused }),
                    Err(e) => {
                        self.forget_connection(!kept);
                        if !kept {
                            return Err(format!("replay store: {e}"));
                        }
                    }
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(why)) => Verdict::Unavailable(why),
            Err(_) => {
                self.forget_connection(true);
                Verdict::Unavailable(format!("replay store: no answer within {:?} (WSPROXY_REPLAY_STORE_TIMEOUT)", self.timeout))
            }
        }
    }

    /// The shared connection and whether it was kept from before, made now if there is none
    /// (unless an attempt failed within the last second: then fail at once instead of
    /// queueing every browser behind a dead store).
    async fn connection(&self) -> Result<(redis::aio::MultiplexedConnection, bool), String> {
        if let Some(c) = self.kept() {
            return Ok((c, true));
        }
        let _one_attempt = self.connecting.lock().await;
        if let Some(c) = self.kept() {
            return Ok((c, true));
        }
        let recent = self.failed_at.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|at| at.elapsed() < RECONNECT_PAUSE);
        if recent {
            return Err("replay store unreachable (retrying)".into());
        }
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(self.timeout)).set_response_timeout(None);
        match self.client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(c) => {
                *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tracing::info!(store = %self.describe, "replay store connected");
                Ok((c, false))
            }
            Err(e) => {
                *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                Err(format!("replay store unreachable: {e}"))
            }
        }
    }

    fn kept(&self) -> Option<redis::aio::MultiplexedConnection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Drop the shared connection after an error; the next check makes a new one. `failed`:
    /// a new connection failed too, so the store is down (pause before the next attempt).
    fn forget_connection(&self, failed: bool) {
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if failed {
            *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_store_keeps_a_ticket_as_long_as_it_could_be_accepted() {
        let s = LocalStore::default();
        assert_eq!(s.first_use([1; 32], 100, 90), Verdict::First);
        assert_eq!(s.first_use([1; 32], 100, 95), Verdict::Reused);
        assert_eq!(s.first_use([2; 32], 100, 95), Verdict::First);
        // Kept as long as the ticket could be accepted (validTo + skew), even after a purge.
        for i in 0..2000u16 {
            let mut id = [0; 32];
            id[..2].copy_from_slice(&i.to_be_bytes());
            id[2] = 9;
            s.first_use(id, 50, 99);
        }
        assert_eq!(s.first_use([1; 32], 100, 100), Verdict::Reused);
    }
}
