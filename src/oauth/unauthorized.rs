//! What a token slot remembers of upstream 401s. Oracle Integration
//! answers 401 not only for an expired or revoked token but also when the
//! confidential application lacks the ServiceInvoker role or the scope's
//! audience is not the instance's primary audience — and then every fresh
//! token is refused as well. Renewing on every 401 would turn each request
//! into a token request, until the identity domain's per-minute limit
//! stops every application in it. So: when the token that replaced one
//! purged for a 401 is refused too, the slot enters an episode "upstream
//! refuses fresh tokens" and lets 401s pass, without purging or renewing,
//! for a cool-down; afterwards one purge-renew-replay tries again.

use std::time::{Duration, Instant};

use http::HeaderValue;
use serde::Serialize;

/// What to do with an upstream 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token may have expired or been revoked: purge it (done), renew,
    /// replay once.
    Renew,
    /// The token that replaced a purged one was refused too: an episode
    /// starts now; pass the 401 on.
    EpisodeStarts,
    /// Within an episode's cool-down: pass the 401 on untouched.
    CoolingDown,
}

/// One episode, as `/status` shows it (never a token).
#[derive(Debug, Clone, Serialize)]
pub struct Episode {
    pub route: String,
    pub upstream_host: String,
    pub started_at: String,
    pub cooldown_until: String,
    pub status: u16,
    pub www_authenticate: Option<String>,
    /// The refused token's `aud` and `scope` claims (decoded, not verified).
    pub token_aud: Option<serde_json::Value>,
    pub token_scope: Option<String>,
    /// 401s passed on during the cool-down.
    pub passed_through: u64,
    /// The cool-down is still running.
    pub active: bool,
}

#[derive(Debug, Default)]
pub(super) struct Unauthorized {
    /// A token was purged after a 401: the next one stored replaces it.
    awaiting_replacement: bool,
    /// That replacement, until the upstream answers it with anything but 401.
    replacement: Option<HeaderValue>,
    cooldown_until: Option<Instant>,
    episode: Option<Episode>,
}

impl Unauthorized {
    /// The verdict on a 401 to `sent`; `purge` drops `sent` from the cache
    /// if it is still there and says whether it did.
    pub(super) fn refused(
        &mut self,
        sent: &HeaderValue,
        cooldown: Duration,
        purge: impl FnOnce() -> bool,
    ) -> Verdict {
        let now = Instant::now();
        if self.cooldown_until.is_some_and(|until| now < until) {
            if let Some(e) = &mut self.episode {
                e.passed_through += 1;
            }
            return Verdict::CoolingDown;
        }
        if self.replacement.as_ref() == Some(sent) {
            self.replacement = None;
            self.cooldown_until = Some(now + cooldown);
            return Verdict::EpisodeStarts;
        }
        if purge() {
            self.awaiting_replacement = true;
        }
        Verdict::Renew
    }

    /// A new token was stored; returns whether it is a 401's replacement
    /// (to be watched until its first answer).
    pub(super) fn stored(&mut self, header: &HeaderValue) -> bool {
        if !std::mem::take(&mut self.awaiting_replacement) {
            return false;
        }
        self.replacement = Some(header.clone());
        true
    }

    /// The upstream answered `sent` with something other than 401: if it is
    /// the watched replacement, the 401 was an expiry or a revocation after
    /// all, and any earlier episode is over. Returns whether to keep watching.
    pub(super) fn accepted(&mut self, sent: &HeaderValue) -> bool {
        if self.replacement.as_ref() == Some(sent) {
            self.replacement = None;
            self.episode = None;
            self.cooldown_until = None;
        }
        self.replacement.is_some()
    }

    pub(super) fn record(&mut self, mut episode: Episode) {
        if let Some(until) = self.cooldown_until {
            let left = until.saturating_duration_since(Instant::now());
            episode.cooldown_until =
                crate::clock::rfc3339(crate::clock::unix_now() + left.as_secs_f64());
        }
        self.episode = Some(episode);
    }

    pub(super) fn episode(&self) -> Option<Episode> {
        let now = Instant::now();
        self.episode.clone().map(|mut e| {
            e.active = self.cooldown_until.is_some_and(|until| now < until);
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u8) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer t{n}")).unwrap()
    }

    #[test]
    fn a_refused_replacement_starts_a_cool_down_and_then_one_renewal() {
        let mut u = Unauthorized::default();
        let cooldown = Duration::from_millis(50);
        assert_eq!(u.refused(&token(0), cooldown, || true), Verdict::Renew);
        assert!(
            u.stored(&token(1)),
            "the next token replaces the purged one"
        );
        assert_eq!(
            u.refused(&token(1), cooldown, || true),
            Verdict::EpisodeStarts
        );
        assert_eq!(
            u.refused(&token(1), cooldown, || true),
            Verdict::CoolingDown
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            u.refused(&token(1), cooldown, || true),
            Verdict::Renew,
            "after the cool-down"
        );
        assert!(u.stored(&token(2)));
        assert_eq!(
            u.refused(&token(2), cooldown, || true),
            Verdict::EpisodeStarts
        );
    }

    #[test]
    fn an_accepted_replacement_means_the_401_was_an_expiry() {
        let mut u = Unauthorized::default();
        let cooldown = Duration::from_secs(60);
        assert_eq!(u.refused(&token(0), cooldown, || true), Verdict::Renew);
        assert!(u.stored(&token(1)));
        assert!(!u.accepted(&token(1)), "watch over");
        // A later revocation of that token is an ordinary 401 again.
        assert_eq!(u.refused(&token(1), cooldown, || true), Verdict::Renew);
        assert!(u.stored(&token(9)), "its replacement is watched in turn");
    }

    #[test]
    fn only_the_request_that_purged_marks_the_next_token() {
        let mut u = Unauthorized::default();
        let cooldown = Duration::from_secs(60);
        assert_eq!(u.refused(&token(0), cooldown, || false), Verdict::Renew);
        assert!(
            !u.stored(&token(1)),
            "nothing was purged: a routine renewal"
        );
    }
}
