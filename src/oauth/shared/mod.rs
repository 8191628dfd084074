//! The Redis-backed slot store that lets a fleet of replicas share one
//! token per slot. The request path never comes here: it reads the
//! in-process `ArcSwap` as before. Redis is touched on a miss, a renewal,
//! or when another replica published a newer token.
//!
//! One fetch per slot for the whole fleet: before fetching, a replica
//! takes the slot's lock (`SET NX PX lock_ttl`, random owner, released
//! only by its owner); the others wait for the new entry (a pub/sub
//! notification, with a bounded poll as fallback) and adopt it. Refresh
//! tokens are used only by the lock holder, and the rotated one is written
//! back before the lock is released, so rotation never races. Any Redis
//! trouble — down, slow, garbage — and the replica fetches on its own, as
//! without a shared cache, until Redis answers again.

mod listener;
pub(crate) mod seal;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use serde::Serialize;
use sha2::Digest as _;
use tokio::sync::Notify;

use super::error::FetchError;
use super::token::TokenResponse;
use crate::config::{RedisSettings, Secret};
use crate::metrics::metrics;
pub use seal::Entry;
use seal::{Keyring, OpenError};
use store::{Store, StoreError};

/// How often a replica waiting for another's fetch looks at Redis when no
/// notification arrives (a lost message, a pub/sub connection that is down).
const POLL: Duration = Duration::from_millis(200);

/// What a fleet-wide fetch produced.
pub enum Obtained {
    /// A token another replica (or an earlier fetch) put in Redis.
    Adopted(Entry),
    /// Fetched here, holding the lock; published when it succeeded.
    Fetched(Result<TokenResponse, FetchError>, Instant),
    /// Redis could not help: fetch locally, as without a shared cache.
    Unavailable,
}

/// The fleet's Redis: connection, keys, health.
pub struct SharedCache {
    store: Store,
    /// Swapped by a reload (key rotation); everything else needs a restart.
    keyring: arc_swap::ArcSwap<Keyring>,
    settings: Arc<RedisSettings>,
    healthy: AtomicBool,
    last_error: Mutex<Option<&'static str>>,
    /// Per slot channel, the replicas' waiters.
    waiters: Mutex<std::collections::HashMap<String, Arc<Notify>>>,
    take_attempt: redis::Script,
    forget_attempt: redis::Script,
}

/// A password attempt for a user, if fewer than ARGV[1] were made in the
/// last minute (each a member scored by when it was made).
const TAKE_ATTEMPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return {0}
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
return {1}
";

const FORGET_ATTEMPT: &str = "return {redis.call('ZREM', KEYS[1], ARGV[1])}";

/// What `/status` shows of the shared cache.
#[derive(Debug, Serialize)]
pub struct SharedStatus {
    pub backend: &'static str,
    pub url: String,
    pub key_prefix: String,
    pub healthy: bool,
    pub last_error: Option<&'static str>,
}

impl SharedCache {
    pub fn new(settings: Arc<RedisSettings>) -> Result<Arc<Self>, redis::RedisError> {
        Ok(Arc::new(SharedCache {
            store: Store::new(&settings)?,
            keyring: arc_swap::ArcSwap::from_pointee(Keyring::new(&settings.keys)),
            settings,
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            waiters: Mutex::new(std::collections::HashMap::new()),
            take_attempt: redis::Script::new(TAKE_ATTEMPT),
            forget_attempt: redis::Script::new(FORGET_ATTEMPT),
        }))
    }

    /// The slot store for one client and scope set, and for one caller of
    /// an `on_behalf_of: caller` client (`caller`: the caller's keyed hash).
    /// The Redis key is a hash of the client's fingerprint (every setting
    /// and secret), the scopes and the caller's key: a changed client gets
    /// a new key, and neither the client id, its secret, nor a user name or
    /// password appears in Redis.
    pub fn slot(
        self: &Arc<Self>,
        client: &str,
        fingerprint: &[u8; 32],
        scopes: &[String],
        caller: Option<&[u8; 32]>,
    ) -> SharedSlot {
        let mut h = sha2::Sha256::new();
        h.update(fingerprint);
        for s in scopes {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        if let Some(caller) = caller {
            h.update(b"caller");
            h.update(caller);
        }
        let id = hex16(&h.finalize());
        let prefix = &self.settings.key_prefix;
        let channel = format!("{prefix}renewed:{id}");
        let notify = lock(&self.waiters)
            .entry(channel.clone())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        let counter = |result| metrics().shared_cache.with_label_values(&[client, result]);
        SharedSlot {
            cache: self.clone(),
            key: format!("{prefix}slot:{id}"),
            lock_key: format!("{prefix}lock:{id}"),
            channel,
            notify,
            counts: SharedCounts {
                hit: counter("hit"),
                miss: counter("miss"),
                lock_acquired: counter("lock_acquired"),
                lock_waited: counter("lock_waited"),
                published: counter("published"),
                fallback: counter("fallback"),
            },
        }
    }

    /// A traffic limit's atomic operation (`limits::fleet`): the script's
    /// integers, or `Err` when Redis did not answer in time.
    pub async fn limit_script(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Vec<i64>, &'static str> {
        self.store
            .script_ints(script, keys, args)
            .await
            .map_err(StoreError::label)
    }

    /// The fleet's key prefix in Redis.
    pub fn key_prefix(&self) -> &str {
        &self.settings.key_prefix
    }

    /// The key that makes callers' keyed hashes the same on every replica:
    /// derived from the current encryption key (HKDF-SHA-256), so it is as
    /// secret as that key and never stored.
    pub fn caller_hash_key(&self) -> [u8; 32] {
        self.keyring.load().derive(b"bearer-proxy caller key v1")
    }

    /// Whether a replica refused this user+password recently (`id`: a
    /// keyed hash, never the credentials). Redis trouble answers `false`:
    /// the local memory and attempt ceiling still hold.
    pub async fn refusal_remembered(&self, id: &[u8; 32]) -> bool {
        let key = self.refusal_key(id);
        matches!(self.checked(self.store.get(&key).await), Ok(Some(_)))
    }

    /// Tells the fleet that the identity service refused this
    /// user+password, for `memory`.
    pub async fn remember_refusal(&self, id: &[u8; 32], memory: Duration) {
        let key = self.refusal_key(id);
        let _ = self.checked(self.store.set(&key, b"1".to_vec(), memory).await);
    }

    /// Takes one of the fleet's `ceiling` password attempts a minute for
    /// the user whose keyed hash is `user` (an attempt is a grant in flight
    /// or refused in the last minute); `member` names it for
    /// [`Self::settle_attempt`]. `Err`: Redis did not answer.
    pub async fn take_attempt(
        &self,
        user: &[u8; 32],
        member: &str,
        ceiling: u32,
    ) -> Result<bool, ()> {
        let keys = [self.attempts_key(user)];
        let args = [ceiling.to_string(), member.to_string()];
        let answer = self.checked(
            self.store
                .script_ints(&self.take_attempt, &keys, &args)
                .await,
        )?;
        Ok(answer.first() == Some(&1))
    }

    /// A grant that succeeded does not count against the user's ceiling.
    pub async fn settle_attempt(&self, user: &[u8; 32], member: &str) {
        let keys = [self.attempts_key(user)];
        let args = [member.to_string()];
        let _ = self.checked(
            self.store
                .script_ints(&self.forget_attempt, &keys, &args)
                .await,
        );
    }

    fn attempts_key(&self, user: &[u8; 32]) -> String {
        format!("{}attempts:{}", self.settings.key_prefix, hex16(user))
    }

    fn refusal_key(&self, id: &[u8; 32]) -> String {
        format!("{}refused:{}", self.settings.key_prefix, hex16(id))
    }

    /// The keys of a reloaded configuration: the first seals from now on.
    pub fn set_keys(&self, keys: &[crate::config::EncryptionKey]) {
        self.keyring.store(Arc::new(Keyring::new(keys)));
    }

    /// Starts the pub/sub listener on the current runtime.
    pub fn listen(self: &Arc<Self>) {
        tokio::spawn(listener::run(self.clone()));
    }

    pub fn status(&self) -> SharedStatus {
        SharedStatus {
            backend: "redis",
            url: self.settings.target.to_string(),
            key_prefix: self.settings.key_prefix.clone(),
            healthy: self.healthy.load(Ordering::Relaxed),
            last_error: *lock(&self.last_error),
        }
    }

    fn waiter(&self, channel: &str) -> Option<Arc<Notify>> {
        lock(&self.waiters).get(channel).cloned()
    }

    /// Counts a failure; logs once per episode.
    fn failed(&self, kind: &'static str) {
        metrics()
            .shared_cache_errors
            .with_label_values(&[kind])
            .inc();
        *lock(&self.last_error) = Some(kind);
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = kind,
                url = %self.settings.target,
                "shared token cache unavailable; each replica fetches its own tokens until it answers again"
            );
        }
    }

    fn answered(&self) {
        if !self.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(url = %self.settings.target, "shared token cache answering again");
        }
    }

    fn checked<T>(&self, result: Result<T, StoreError>) -> Result<T, ()> {
        match result {
            Ok(v) => {
                self.answered();
                Ok(v)
            }
            Err(e) => {
                self.failed(e.label());
                Err(())
            }
        }
    }
}

/// Counters resolved once per slot.
struct SharedCounts {
    hit: IntCounter,
    miss: IntCounter,
    lock_acquired: IntCounter,
    lock_waited: IntCounter,
    published: IntCounter,
    fallback: IntCounter,
}

/// One slot's keys in Redis.
pub struct SharedSlot {
    cache: Arc<SharedCache>,
    key: String,
    lock_key: String,
    channel: String,
    notify: Arc<Notify>,
    counts: SharedCounts,
}

impl SharedSlot {
    /// A notification that another replica published this slot's token.
    pub fn notify(&self) -> &Arc<Notify> {
        &self.notify
    }

    /// The entry in Redis, if it can be read and opened.
    pub async fn read(&self) -> Result<Option<Entry>, ()> {
        let cache = &self.cache;
        let Some(sealed) = cache.checked(cache.store.get(&self.key).await)? else {
            return Ok(None);
        };
        match cache.keyring.load().open(self.key.as_bytes(), &sealed) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) => {
                // Garbage or another key's entry: fetch and overwrite.
                let kind = if e == OpenError::Decrypt {
                    "decrypt"
                } else {
                    "malformed"
                };
                metrics()
                    .shared_cache_errors
                    .with_label_values(&[kind])
                    .inc();
                Ok(None)
            }
        }
    }

    /// A token for this slot, fetched once for the whole fleet. `adoptable`
    /// says whether an entry found in Redis will do (newer than ours, not
    /// the one just refused); `fetch` asks the identity service, given the
    /// entry's refresh token.
    pub async fn obtain<A, F, Fut>(&self, adoptable: A, fetch: F) -> Obtained
    where
        A: Fn(&Entry) -> bool,
        F: FnOnce(Option<Secret>) -> Fut,
        Fut: std::future::Future<Output = (Result<TokenResponse, FetchError>, Instant)>,
    {
        let deadline = Instant::now() + 2 * self.cache.settings.lock_ttl;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.read().await {
                Err(()) => return self.fallback(),
                Ok(Some(entry)) if adoptable(&entry) => {
                    self.counts.hit.inc();
                    return Obtained::Adopted(entry);
                }
                Ok(_) => self.counts.miss.inc(),
            }
            let owner = format!("{:032x}", rand::random::<u128>());
            let ttl = self.cache.settings.lock_ttl;
            match self
                .cache
                .checked(self.cache.store.try_lock(&self.lock_key, &owner, ttl).await)
            {
                Err(()) => return self.fallback(),
                Ok(true) => {
                    self.counts.lock_acquired.inc();
                    return self.fetch_locked(&owner, adoptable, fetch).await;
                }
                Ok(false) => self.counts.lock_waited.inc(),
            }
            if Instant::now() >= deadline {
                return self.fallback();
            }
            // Another replica is fetching: wait for its notification, or
            // look again after a short while.
            let _ = tokio::time::timeout(POLL, notified).await;
        }
    }

    fn fallback(&self) -> Obtained {
        self.counts.fallback.inc();
        Obtained::Unavailable
    }

    /// Holding the lock: look once more, fetch, write the entry (with the
    /// rotated refresh token) and publish it, then release the lock.
    async fn fetch_locked<A, F, Fut>(&self, owner: &str, adoptable: A, fetch: F) -> Obtained
    where
        A: Fn(&Entry) -> bool,
        F: FnOnce(Option<Secret>) -> Fut,
        Fut: std::future::Future<Output = (Result<TokenResponse, FetchError>, Instant)>,
    {
        let previous = self.read().await.ok().flatten();
        if let Some(entry) = previous.as_ref().filter(|e| adoptable(e)) {
            self.release(owner).await;
            self.counts.hit.inc();
            return Obtained::Adopted(entry.clone());
        }
        let old_refresh = previous.and_then(|e| e.refresh_token);
        let (result, sent) = fetch(old_refresh.clone().map(Secret::new)).await;
        if let Ok(response) = &result {
            self.publish(response, old_refresh).await;
        }
        self.release(owner).await;
        Obtained::Fetched(result, sent)
    }

    async fn publish(&self, response: &TokenResponse, old_refresh: Option<String>) {
        let now = crate::clock::unix_now();
        let entry = Entry {
            access_token: response.access_token.expose().to_string(),
            expires_at: now + response.expires_in.as_secs_f64(),
            fetched_at: now,
            refresh_token: response
                .refresh_token
                .as_ref()
                .map(|r| r.expose().to_string())
                .or(old_refresh),
        };
        let cache = &self.cache;
        let sealed = cache.keyring.load().seal(self.key.as_bytes(), &entry);
        if cache
            .checked(
                cache
                    .store
                    .set(&self.key, sealed, response.expires_in)
                    .await,
            )
            .is_ok()
            && cache
                .checked(cache.store.publish(&self.channel, "renewed").await)
                .is_ok()
        {
            self.counts.published.inc();
        }
    }

    async fn release(&self, owner: &str) {
        let _ = self
            .cache
            .checked(self.cache.store.unlock(&self.lock_key, owner).await);
    }
}

/// A per-caller slot comes and goes with its caller: its channel's waiter
/// goes with the last slot that listens on it.
impl Drop for SharedSlot {
    fn drop(&mut self) {
        let mut waiters = lock(&self.cache.waiters);
        // The map's reference and this one: nobody else listens.
        if Arc::strong_count(&self.notify) <= 2 {
            waiters.remove(&self.channel);
        }
    }
}

/// The first 16 bytes of a digest, in hex: a Redis key's id.
fn hex16(digest: &[u8]) -> String {
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
