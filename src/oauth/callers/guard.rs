//! What keeps a legacy client's stale or guessed password from locking its
//! user out of the identity domain: a refused user+password is not sent
//! again for `refused_password_memory`, and no user name gets more than
//! `password_attempts_per_minute` password grants in any sixty seconds.
//! Both are keyed by hashes, never by user names or passwords. Only grants
//! in flight and grants the identity service refused count: a success is
//! taken back, so a stale password being refused cannot hold back the
//! right one. With the redis backend the fleet counts together
//! (`SharedCache::take_attempt`); this count serves while Redis is away.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::oauth::caller_identity::CallerKey;

const MINUTE: Duration = Duration::from_secs(60);
/// Entries kept before expired ones are swept out.
const SWEEP_AT: usize = 50_000;
/// Hard bound: past it (after a sweep) the oldest half is forgotten.
const MAX_ENTRIES: usize = 200_000;

/// Refused user+password pairs, each until its memory ends.
#[derive(Default)]
pub struct RefusedPasswords {
    until: Mutex<HashMap<CallerKey, Instant>>,
}

impl RefusedPasswords {
    pub fn remember(&self, key: CallerKey, memory: Duration) {
        let now = Instant::now();
        let mut until = lock(&self.until);
        if until.len() >= SWEEP_AT {
            until.retain(|_, t| *t > now);
            if until.len() >= MAX_ENTRIES {
                let mut ends: Vec<Instant> = until.values().copied().collect();
                let (_, median, _) = ends.select_nth_unstable(MAX_ENTRIES / 2);
                let median = *median;
                until.retain(|_, t| *t > median);
            }
        }
        until.insert(key, now + memory);
    }

    pub fn is_remembered(&self, key: &CallerKey) -> bool {
        let now = Instant::now();
        let mut until = lock(&self.until);
        match until.get(key) {
            Some(t) if *t > now => true,
            Some(_) => {
                until.remove(key);
                false
            }
            None => false,
        }
    }
}

/// Password grants per user name over a rolling minute: in flight or
/// refused, each with the id it was taken under.
pub struct AttemptCeiling {
    per_minute: usize,
    sent: Mutex<HashMap<CallerKey, VecDeque<(Instant, u64)>>>,
}

impl AttemptCeiling {
    pub fn new(per_minute: u32) -> Self {
        AttemptCeiling {
            per_minute: per_minute.max(1) as usize,
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Takes attempt `id` for `user` if fewer than the ceiling were taken
    /// (and not given back) in the last sixty seconds; `false` when the
    /// ceiling is reached.
    pub fn try_take(&self, user: CallerKey, id: u64) -> bool {
        let now = Instant::now();
        let mut sent = lock(&self.sent);
        if sent.len() >= SWEEP_AT {
            sent.retain(|_, times| times.back().is_some_and(|(t, _)| now - *t < MINUTE));
            if sent.len() >= MAX_ENTRIES {
                sent.clear();
            }
        }
        let times = sent.entry(user).or_default();
        while times.front().is_some_and(|(t, _)| now - *t >= MINUTE) {
            times.pop_front();
        }
        if times.len() >= self.per_minute {
            return false;
        }
        times.push_back((now, id));
        true
    }

    /// Attempt `id` succeeded: it no longer counts.
    pub fn give_back(&self, user: &CallerKey, id: u64) {
        if let Some(times) = lock(&self.sent).get_mut(user) {
            times.retain(|(_, i)| *i != id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_remembered_for_its_memory_only() {
        let r = RefusedPasswords::default();
        r.remember([1; 32], Duration::from_secs(60));
        r.remember([2; 32], Duration::ZERO);
        assert!(r.is_remembered(&[1; 32]));
        assert!(!r.is_remembered(&[2; 32]), "expired");
        assert!(!r.is_remembered(&[3; 32]));
    }

    #[test]
    fn the_ceiling_counts_per_user() {
        let c = AttemptCeiling::new(3);
        assert!((0..3).all(|i| c.try_take([1; 32], i)));
        assert!(!c.try_take([1; 32], 3), "a fourth within the minute");
        assert!(c.try_take([2; 32], 4), "another user has its own");
    }

    #[test]
    fn a_success_given_back_frees_its_place() {
        let c = AttemptCeiling::new(2);
        assert!(c.try_take([1; 32], 1));
        assert!(c.try_take([1; 32], 2));
        assert!(!c.try_take([1; 32], 3));
        c.give_back(&[1; 32], 2);
        assert!(c.try_take([1; 32], 3), "the success no longer counts");
        assert!(!c.try_take([1; 32], 4));
    }
}
