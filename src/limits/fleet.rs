//! Sharing limits across a fleet through its Redis (`cache.backend:
//! redis`). Every operation is one Lua script, atomic in Redis, so no
//! replica reads a count and writes it back after another did:
//!
//! - rate: GCRA on one key (the arrival time), Redis's own clock;
//! - messages: one counter per calendar window, checked and added at once;
//! - places: a sorted set per partition whose members are the places held,
//!   scored by their lease's end; a place is taken only while fewer than
//!   the ceiling are unexpired, and given back with `ZREM`. Each replica
//!   renews the leases of the places it holds every `HEARTBEAT`, so a
//!   replica that dies gives its places back within `LIMIT_PLACE_LEASE`.
//!
//! Replicas announce themselves per limit (a sorted set of random replica
//! ids, nothing secret); while Redis does not answer, each enforces the
//! limit ÷ the replicas it last saw, at least 1, and asks Redis again
//! after `RETRY_AFTER_FAILURE`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::partition::PartitionKey;
use super::quota::QuotaAnswer;
use super::rate::{Gcra, RateAnswer};
use crate::config::defaults::LIMIT_PLACE_LEASE;
use crate::oauth::SharedCache;

/// How often a replica announces itself and renews its places' leases.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// After a failed Redis call, limits stay local this long before asking again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nxt = tat + interval
if nxt - now > capacity then
  return {0, nxt - now - capacity, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
return {1, 0, nxt - now}
";

const MESSAGES: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if ARGV[3] == '1' and used + n > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {1, used}
";

const TAKE_PLACE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return {0}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return {1}
";

const RELEASE_PLACE: &str = r"
return {redis.call('ZREM', KEYS[1], ARGV[1])}
";

/// ARGV[1] the lease in ms; then pairs of KEYS[i] / ARGV[i + 1].
const RENEW_PLACES: &str = r"
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', until_ms, ARGV[i + 1])
  redis.call('PEXPIRE', key, tonumber(ARGV[1]) * 2)
end
return {#KEYS}
";

/// ARGV: replica id, how long an announcement counts (ms).
const ANNOUNCE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return {redis.call('ZCARD', KEYS[1])}
";

struct Scripts {
    rate: redis::Script,
    messages: redis::Script,
    take_place: redis::Script,
    release_place: redis::Script,
    renew_places: redis::Script,
    announce: redis::Script,
}

/// The fleet side of every limit of a process: Redis, this replica's id,
/// the places it holds, the replica counts it last saw.
pub struct Fleet {
    redis: Arc<SharedCache>,
    scripts: Scripts,
    replica: String,
    next_place: AtomicU64,
    /// Place member → its sorted set, for the lease renewal.
    held: Mutex<HashMap<String, String>>,
    /// Limit name → replicas that announced themselves for it.
    replicas: Mutex<HashMap<String, u32>>,
    /// While `Some` and in the future, limits are enforced locally.
    down_until: Mutex<Option<Instant>>,
    /// The last call answered (what `/status` says).
    answered: std::sync::atomic::AtomicBool,
}

/// A place taken in Redis; given back by [`Fleet::release`].
pub struct FleetPlace {
    key: String,
    member: String,
}

impl Fleet {
    pub fn new(redis: Arc<SharedCache>) -> Arc<Self> {
        Arc::new(Fleet {
            redis,
            scripts: Scripts {
                rate: redis::Script::new(RATE),
                messages: redis::Script::new(MESSAGES),
                take_place: redis::Script::new(TAKE_PLACE),
                release_place: redis::Script::new(RELEASE_PLACE),
                renew_places: redis::Script::new(RENEW_PLACES),
                announce: redis::Script::new(ANNOUNCE),
            },
            replica: format!("{:016x}", rand::random::<u64>()),
            next_place: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            replicas: Mutex::new(HashMap::new()),
            down_until: Mutex::new(None),
            answered: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The partition's Redis key.
    fn key(&self, limit: &str, kind: &str, partition: &PartitionKey) -> String {
        format!(
            "{}limit:{limit}:{kind}:{}",
            self.redis.key_prefix(),
            partition.hex()
        )
    }

    /// Whether Redis is to be asked now.
    pub fn available(&self) -> bool {
        lock(&self.down_until).is_none_or(|until| Instant::now() >= until)
    }

    /// Whether the last call to Redis was answered.
    pub fn answering(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// The replica's part of a limit while Redis is away.
    pub fn share(&self, limit: &str) -> u32 {
        lock(&self.replicas).get(limit).copied().unwrap_or(1).max(1)
    }

    /// Runs a script; a failure turns limits local for a while.
    async fn call(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Option<Vec<i64>> {
        if !self.available() {
            return None;
        }
        // Boxed: redis-rs's futures nested in the request path's are
        // deeper than the compiler's layout limit.
        let answer: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
            Box::pin(self.redis.limit_script(script, keys, args));
        match answer.await {
            Ok(answer) => {
                self.answered.store(true, Ordering::Relaxed);
                if lock(&self.down_until).take().is_some() {
                    tracing::info!("limits: Redis answers again; limits are shared by the fleet");
                }
                Some(answer)
            }
            Err(kind) => {
                self.answered.store(false, Ordering::Relaxed);
                let mut down = lock(&self.down_until);
                if down.is_none() {
                    tracing::warn!(
                        error = kind,
                        "limits: Redis did not answer; each replica enforces its share until it does"
                    );
                }
                *down = Some(Instant::now() + RETRY_AFTER_FAILURE);
                None
            }
        }
    }

    /// One request against a fleet rate; `None`: Redis is away.
    pub async fn rate(&self, limit: &str, key: &PartitionKey, gcra: &Gcra) -> Option<RateAnswer> {
        let keys = [self.key(limit, "rate", key)];
        let args = [gcra.interval_us.to_string(), gcra.capacity_us.to_string()];
        let answer = self.call(&self.scripts.rate, &keys, &args).await?;
        let at = |i: usize| answer.get(i).copied().unwrap_or(0).max(0) as u64;
        Some(RateAnswer {
            admitted: at(0) == 1,
            retry_after_us: at(1),
            backlog_us: at(2),
        })
    }

    /// Messages counted in the fleet's window (`check`: only if they fit).
    pub async fn messages(
        &self,
        limit: &str,
        key: &PartitionKey,
        quota: u64,
        window_secs: u64,
        messages: u64,
        check: bool,
    ) -> Option<QuotaAnswer> {
        let now = crate::clock::unix_now() as u64;
        let index = now / window_secs;
        let keys = [format!("{}:{index}", self.key(limit, "messages", key))];
        let args = [
            messages.to_string(),
            quota.to_string(),
            if check { "1" } else { "0" }.to_string(),
            (window_secs + 60).to_string(),
        ];
        let answer = self.call(&self.scripts.messages, &keys, &args).await?;
        Some(QuotaAnswer {
            admitted: answer.first() == Some(&1),
            used: answer.get(1).copied().unwrap_or(0).max(0) as u64,
            reset_secs: (index + 1) * window_secs - now,
        })
    }

    /// Gives back messages of a request refused by a later step.
    pub async fn give_back_messages(
        &self,
        limit: &str,
        key: &PartitionKey,
        window_secs: u64,
        messages: u64,
    ) {
        let index = crate::clock::unix_now() as u64 / window_secs;
        let keys = [format!("{}:{index}", self.key(limit, "messages", key))];
        let args = [
            format!("-{messages}"),
            "0".into(),
            "0".into(),
            (window_secs + 60).to_string(),
        ];
        let _ = self.call(&self.scripts.messages, &keys, &args).await;
    }

    /// A place under the fleet's ceiling: `Some(Some)` taken, `Some(None)`
    /// full, `None` Redis is away.
    pub async fn take_place(
        &self,
        limit: &str,
        key: &PartitionKey,
        max: u32,
    ) -> Option<Option<FleetPlace>> {
        let place = FleetPlace {
            key: self.key(limit, "places", key),
            member: format!(
                "{}:{}",
                self.replica,
                self.next_place.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let keys = [place.key.clone()];
        let args = [
            max.to_string(),
            place.member.clone(),
            LIMIT_PLACE_LEASE.as_millis().to_string(),
        ];
        let answer = self.call(&self.scripts.take_place, &keys, &args).await?;
        if answer.first() != Some(&1) {
            return Some(None);
        }
        lock(&self.held).insert(place.member.clone(), place.key.clone());
        Some(Some(place))
    }

    /// Gives a place back (in the background: the request has ended).
    pub fn release(self: &Arc<Self>, place: FleetPlace) {
        lock(&self.held).remove(&place.member);
        let fleet = self.clone();
        let release = async move {
            let keys = [place.key];
            let args = [place.member];
            // Redis away: the lease ends the place.
            let _ = fleet
                .redis
                .limit_script(&fleet.scripts.release_place, &keys, &args)
                .await;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(release);
        }
    }

    /// Announces this replica for `limits` and renews its places' leases;
    /// every [`HEARTBEAT`], from the background runtime.
    pub async fn heartbeat(&self, limits: &[String]) {
        let window = (HEARTBEAT * 3).as_millis().to_string();
        for name in limits {
            let keys = [format!("{}limit:{name}:replicas", self.redis.key_prefix())];
            let args = [self.replica.clone(), window.clone()];
            if let Ok(answer) = self
                .redis
                .limit_script(&self.scripts.announce, &keys, &args)
                .await
            {
                let seen = answer
                    .first()
                    .copied()
                    .unwrap_or(1)
                    .clamp(1, u32::MAX as i64);
                lock(&self.replicas).insert(name.clone(), seen as u32);
            }
        }
        let (keys, members): (Vec<String>, Vec<String>) = lock(&self.held)
            .iter()
            .map(|(member, key)| (key.clone(), member.clone()))
            .unzip();
        if keys.is_empty() {
            return;
        }
        let mut args = vec![LIMIT_PLACE_LEASE.as_millis().to_string()];
        args.extend(members);
        let _ = self
            .redis
            .limit_script(&self.scripts.renew_places, &keys, &args)
            .await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
