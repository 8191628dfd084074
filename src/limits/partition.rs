//! Partition keys: whose requests share one count of a limit. A caller or
//! an address is kept only as a keyed hash (HMAC-SHA-256, cut to 16
//! bytes), so neither reaches Redis, a metric or `/status`; on a fleet the
//! key is derived from the shared-cache key, so every replica computes the
//! same hash. The state per key lives in a bounded LRU map.

use std::net::IpAddr;
use std::num::NonZeroUsize;

use hmac::{Hmac, Mac};
use lru::LruCache;
use sha2::Sha256;

use crate::config::LimitPer;

/// One partition of a limit: all requests (`[0; 16]`), or one caller's or
/// address's keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionKey(pub [u8; 16]);

impl PartitionKey {
    pub const ALL: PartitionKey = PartitionKey([0; 16]);

    /// Lower-case hex: the partition's part of a Redis key.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a request offers to name its partition.
pub struct Who<'a> {
    /// The name the route's access rule admitted (`user:…`, a key name,
    /// `cert:…`).
    pub caller: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// Keyed hashes of callers and addresses.
#[derive(Clone)]
pub struct Partitioner {
    keyed: Hmac<Sha256>,
}

impl Partitioner {
    pub fn new(key: &[u8; 32]) -> Self {
        Partitioner {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"),
        }
    }

    /// A key random to this process (memory backend).
    pub fn random() -> Self {
        Self::new(&rand::random())
    }

    /// The partition of a request under `per`. A caller-less request on a
    /// `per: caller` limit (impossible once validated) shares one partition.
    pub fn key(&self, per: LimitPer, who: &Who<'_>) -> PartitionKey {
        let mut mac = self.keyed.clone();
        match per {
            LimitPer::All => return PartitionKey::ALL,
            LimitPer::Caller => {
                mac.update(b"caller\0");
                mac.update(who.caller.unwrap_or_default().as_bytes());
            }
            LimitPer::ClientIp => {
                mac.update(b"ip\0");
                match who.client_ip {
                    Some(IpAddr::V4(a)) => mac.update(&a.octets()),
                    Some(IpAddr::V6(a)) => mac.update(&a.octets()),
                    None => {}
                }
            }
        }
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        PartitionKey(out)
    }
}

/// Each partition's state, at most `max` partitions; the least recently
/// used is forgotten first.
pub struct Partitions<T> {
    map: LruCache<PartitionKey, T>,
}

impl<T> Partitions<T> {
    pub fn new(max: usize) -> Self {
        Partitions {
            map: LruCache::new(NonZeroUsize::new(max.max(1)).expect("at least one")),
        }
    }

    /// The partition's state, made by `init` when it is new.
    pub fn get_or_insert(&mut self, key: PartitionKey, init: impl FnOnce() -> T) -> &mut T {
        self.map.get_or_insert_mut(key, init)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_and_addresses_get_distinct_stable_keys() {
        let p = Partitioner::new(&[7; 32]);
        let who = |caller: &'static str, ip: &str| Who {
            caller: Some(caller),
            client_ip: ip.parse().ok(),
        };
        let alice = p.key(LimitPer::Caller, &who("alice", "10.0.0.1"));
        assert_eq!(alice, p.key(LimitPer::Caller, &who("alice", "10.0.0.2")));
        assert_ne!(alice, p.key(LimitPer::Caller, &who("bob", "10.0.0.1")));
        let ip = p.key(LimitPer::ClientIp, &who("alice", "10.0.0.1"));
        assert_ne!(ip, p.key(LimitPer::ClientIp, &who("alice", "10.0.0.2")));
        assert_eq!(
            p.key(LimitPer::All, &who("x", "10.0.0.9")),
            PartitionKey::ALL
        );
        let other_key = Partitioner::new(&[8; 32]);
        assert_ne!(
            alice,
            other_key.key(LimitPer::Caller, &who("alice", "10.0.0.1"))
        );
        assert!(!alice.hex().contains("616c696365"), "no name in the key");
    }

    #[test]
    fn partitions_forget_the_least_recently_used_beyond_the_bound() {
        let mut parts: Partitions<u32> = Partitions::new(2);
        *parts.get_or_insert(PartitionKey([1; 16]), || 0) += 1;
        *parts.get_or_insert(PartitionKey([2; 16]), || 0) += 1;
        *parts.get_or_insert(PartitionKey([1; 16]), || 0) += 1;
        *parts.get_or_insert(PartitionKey([3; 16]), || 0) += 1;
        assert_eq!(parts.len(), 2);
        assert_eq!(*parts.get_or_insert(PartitionKey([1; 16]), || 0), 2);
        assert_eq!(
            *parts.get_or_insert(PartitionKey([2; 16]), || 0),
            0,
            "2 was evicted"
        );
    }
}
