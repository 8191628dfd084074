//! Tokens per caller for `on_behalf_of: caller` clients: one [`TokenSlot`]
//! per (client, scopes, caller), made on the caller's first request and
//! found by a small key (the caller's keyed hash), kept in a bounded LRU
//! and dropped when idle. A slot of a caller is an ordinary slot — single
//! flight, backoff, refresh tokens, the fleet's shared cache — with a
//! [`CallerSeat`] that says whose token it is. It has no refresher: a token
//! used inside its renewal window is renewed in the background on use,
//! and an idle caller's token is left to expire.

mod guard;
mod sweep;

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderValue};
use lru::LruCache;
use prometheus::{IntCounter, IntGauge};
use serde::Serialize;

pub use super::caller_identity::{CallerCredential, CallerHasher, CallerKey, CallerRef};
use super::error::FetchError;
use super::seat::GrantGuard;
pub use super::seat::{Attempt, CallerSeat};
use super::shared::SharedCache;
use super::slot::{SlotParts, TokenSlot, Unavailable};
use crate::access::{caller_name, with_basic_credentials, CallerSubjects, Denial};
use crate::config::{CallerPolicy, ClientConfig, Grant};
use crate::metrics::metrics;
use guard::{AttemptCeiling, RefusedPasswords};
pub use sweep::spawn_sweeper;

struct Seat {
    slot: Arc<TokenSlot>,
    last_used: Instant,
}

/// Handles resolved once per family.
struct FamilyMetrics {
    callers: IntGauge,
    evicted_lru: IntCounter,
    evicted_idle: IntCounter,
    idp_refused: IntCounter,
    remembered: IntCounter,
    attempt_limit: IntCounter,
}

impl FamilyMetrics {
    fn new(client: &str) -> Self {
        let m = metrics();
        FamilyMetrics {
            callers: m.callers.with_label_values(&[client]),
            evicted_lru: m.caller_evictions.with_label_values(&[client, "lru"]),
            evicted_idle: m.caller_evictions.with_label_values(&[client, "idle"]),
            idp_refused: m
                .caller_refusals
                .with_label_values(&[client, "idp_refused"]),
            remembered: m.caller_refusals.with_label_values(&[client, "remembered"]),
            attempt_limit: m
                .caller_refusals
                .with_label_values(&[client, "attempt_limit"]),
        }
    }
}

/// The callers of one client and scope set.
pub struct CallerSlots {
    pub client: Arc<ClientConfig>,
    pub scopes: Vec<String>,
    /// The client's fingerprint when the family was made (a reload keeps
    /// the family, and its callers' tokens, only for an identical client).
    pub(super) fingerprint: [u8; 32],
    policy: CallerPolicy,
    /// Swapped by a reload that re-read `caller_subjects_file`.
    subjects: ArcSwapOption<CallerSubjects>,
    /// What each caller's slot is made of (one endpoint, one set of
    /// metric handles for all of them).
    parts: SlotParts,
    shared: Option<Arc<SharedCache>>,
    /// `server.upstream_timeout`: how long a caller waits for its first token.
    first_wait: Duration,
    hasher: CallerHasher,
    seats: Mutex<LruCache<CallerKey, Seat>>,
    refused: RefusedPasswords,
    attempts: AttemptCeiling,
    metrics: FamilyMetrics,
    me: Weak<CallerSlots>,
}

impl CallerSlots {
    /// The family of `parts`' client (an `on_behalf_of: caller` client
    /// with `policy`); its callers' slots are made from clones of `parts`.
    pub(super) fn new(
        parts: SlotParts,
        policy: CallerPolicy,
        shared: Option<Arc<SharedCache>>,
        first_wait: Duration,
    ) -> Arc<Self> {
        let hasher = match &shared {
            Some(shared) => CallerHasher::new(&shared.caller_hash_key()),
            None => CallerHasher::random(),
        };
        let capacity = NonZeroUsize::new(policy.max_callers).unwrap_or(NonZeroUsize::MIN);
        let client = parts.client().clone();
        Arc::new_cyclic(|me| CallerSlots {
            fingerprint: *parts.fingerprint(),
            metrics: FamilyMetrics::new(&client.name),
            subjects: ArcSwapOption::new(policy.subjects.clone()),
            attempts: AttemptCeiling::new(policy.password_attempts_per_minute),
            refused: RefusedPasswords::default(),
            seats: Mutex::new(LruCache::new(capacity)),
            scopes: parts.scopes().to_vec(),
            policy,
            client,
            parts,
            shared,
            first_wait,
            hasher,
            me: me.clone(),
        })
    }

    /// A reload re-read the client's `caller_subjects_file`.
    pub(super) fn set_subjects(&self, subjects: Option<Arc<CallerSubjects>>) {
        self.subjects.store(subjects);
    }

    fn is_password(&self) -> bool {
        matches!(self.client.grant, Grant::CallerPassword)
    }

    /// The request's caller as the identity service knows it, passed to
    /// `f`: its Basic credentials (decoded on the stack), or its name
    /// (mapped through `caller_subjects_file`).
    fn with_caller<R>(
        &self,
        who: &str,
        headers: &HeaderMap,
        f: impl FnOnce(CallerRef<'_>) -> Result<R, Denial>,
    ) -> Result<R, Denial> {
        if self.is_password() {
            let found = with_basic_credentials(headers, |username, password| {
                (!username.is_empty()).then(|| f(CallerRef::Password { username, password }))
            });
            return found
                .flatten()
                .unwrap_or_else(|| Err(self.denial(401, "no_credentials")));
        }
        let name = caller_name(who).ok_or_else(|| self.denial(403, "no_subject"))?;
        match self.subjects.load().as_deref() {
            None => f(CallerRef::Subject(name)),
            Some(map) => match map.subject(name) {
                Some(subject) => f(CallerRef::Subject(subject)),
                None => Err(self.denial(403, "no_subject")),
            },
        }
    }

    /// The slot of the request's caller (`who`: the access check's name
    /// for it), made on its first request. A user+password the identity
    /// service refused lately is answered here, without a token request.
    /// A hit allocates nothing: the caller is hashed from borrowed parts.
    pub fn slot_for(&self, who: &str, headers: &HeaderMap) -> Result<Arc<TokenSlot>, Denial> {
        self.with_caller(who, headers, |caller| self.seat(&caller))
    }

    fn seat(&self, caller: &CallerRef<'_>) -> Result<Arc<TokenSlot>, Denial> {
        let key = self.hasher.key(caller);
        let now = Instant::now();
        {
            let mut seats = lock(&self.seats);
            if let Some(seat) = seats.get_mut(&key) {
                if now.duration_since(seat.last_used) < self.policy.idle_timeout {
                    seat.last_used = now;
                    return Ok(seat.slot.clone());
                }
                seats.pop(&key);
                self.metrics.evicted_idle.inc();
                self.metrics.callers.set(seats.len() as i64);
            }
        }
        if self.is_password() && self.refused.is_remembered(&key) {
            self.metrics.remembered.inc();
            return Err(self.denial(401, "remembered"));
        }
        // Made outside the lock; a concurrent first request of the same
        // caller may have made one too: the first in the map is kept.
        let slot = Arc::new(self.new_slot(key, caller.to_credential()));
        let mut seats = lock(&self.seats);
        if let Some(seat) = seats.get_mut(&key) {
            return Ok(seat.slot.clone());
        }
        let seat = Seat {
            slot: slot.clone(),
            last_used: now,
        };
        if seats.push(key, seat).is_some() {
            self.metrics.evicted_lru.inc();
        }
        self.metrics.callers.set(seats.len() as i64);
        Ok(slot)
    }

    fn new_slot(&self, key: CallerKey, credential: CallerCredential) -> TokenSlot {
        let fleet = self.shared.as_ref().map(|s| {
            s.slot(
                &self.client.name,
                &self.fingerprint,
                &self.scopes,
                Some(&key),
            )
        });
        TokenSlot::for_caller(
            self.parts.clone(),
            fleet,
            CallerSeat {
                key,
                credential,
                family: self.me.clone() as std::sync::Weak<dyn GrantGuard>,
                first_wait: self.first_wait,
                proven: Default::default(),
            },
        )
    }

    /// A 401 (with the Basic challenge for the password flavour) or 403.
    fn denial(&self, status: u16, reason: &'static str) -> Denial {
        let challenge = (status == 401)
            .then(|| HeaderValue::from_static("Basic realm=\"bearer-proxy\", charset=\"UTF-8\""));
        Denial {
            status,
            reason,
            challenge,
        }
    }

    /// The caller's token, waiting at most `wait` for a first one. A
    /// caller the identity service refuses is denied (401 for a password,
    /// 403 for an unknown user), not answered as a broken client.
    pub async fn authorization(
        &self,
        slot: &Arc<TokenSlot>,
        wait: Duration,
    ) -> Result<HeaderValue, CallerFailure> {
        if let Some(h) = slot.cached_authorization_renewing() {
            return Ok(h);
        }
        match tokio::time::timeout(wait, slot.authorization()).await {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(unavailable)) => Err(self.failure(unavailable)),
            Err(_) => Err(CallerFailure::Token(Unavailable {
                client: self.client.name.clone(),
                error: FetchError::Queued,
                retry_after: Duration::from_secs(1),
            })),
        }
    }

    fn failure(&self, unavailable: Unavailable) -> CallerFailure {
        match &unavailable.error {
            FetchError::CallerRefused { reason } => CallerFailure::Denied(self.denial(401, reason)),
            e if e.is_invalid_grant() && self.is_password() => {
                CallerFailure::Denied(self.denial(401, "idp_refused"))
            }
            e if e.is_invalid_grant() => CallerFailure::Denied(self.denial(403, "idp_refused")),
            _ => CallerFailure::Token(unavailable),
        }
    }

    /// One of the user's attempts: the fleet's (Redis), or this replica's
    /// while Redis does not answer; `None` at the ceiling.
    async fn take_attempt(&self, user: CallerKey) -> Option<Attempt> {
        let id: u64 = rand::random();
        let ceiling = self.policy.password_attempts_per_minute;
        if let Some(shared) = &self.shared {
            match shared
                .take_attempt(&user, &format!("{id:016x}"), ceiling)
                .await
            {
                Ok(true) => {
                    return Some(Attempt {
                        user,
                        id,
                        fleet: true,
                    })
                }
                Ok(false) => return None,
                Err(()) => {}
            }
        }
        self.attempts.try_take(user, id).then_some(Attempt {
            user,
            id,
            fleet: false,
        })
    }

    fn forget(&self, key: &CallerKey) {
        let mut seats = lock(&self.seats);
        seats.pop(key);
        self.metrics.callers.set(seats.len() as i64);
    }

    /// Drops callers unseen for `caller_idle_timeout`; they are the least
    /// recently used, so the sweep stops at the first recent one.
    pub fn sweep_idle(&self) -> usize {
        let now = Instant::now();
        let mut seats = lock(&self.seats);
        let mut dropped = 0;
        while let Some((_, seat)) = seats.peek_lru() {
            if now.duration_since(seat.last_used) < self.policy.idle_timeout {
                break;
            }
            seats.pop_lru();
            dropped += 1;
        }
        self.metrics.evicted_idle.inc_by(dropped as u64);
        self.metrics.callers.set(seats.len() as i64);
        dropped
    }

    /// How often the idle sweep runs: a quarter of the idle time-out.
    pub fn sweep_interval(&self) -> Duration {
        (self.policy.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    /// What `/status` shows: counts only, never a user name.
    pub fn status(&self) -> CallersStatus {
        CallersStatus {
            client: self.client.name.clone(),
            scopes: self.scopes.clone(),
            grant: crate::oauth::grant::kind_label(self.client.grant.kind()),
            cached_callers: lock(&self.seats).len(),
            max_callers: self.policy.max_callers,
            refusals: CallerRefusals {
                idp_refused: self.metrics.idp_refused.get(),
                remembered: self.metrics.remembered.get(),
                attempt_limit: self.metrics.attempt_limit.get(),
            },
            evictions_lru: self.metrics.evicted_lru.get(),
            evictions_idle: self.metrics.evicted_idle.get(),
        }
    }
}

/// Why a caller got no token.
pub enum CallerFailure {
    /// The caller is refused (401/403 `access_denied`).
    Denied(Denial),
    /// No token to be had now (`token_unavailable` / `token_rejected`).
    Token(Unavailable),
}

/// One `on_behalf_of: caller` client in `/status`.
#[derive(Debug, Serialize)]
pub struct CallersStatus {
    pub client: String,
    pub scopes: Vec<String>,
    pub grant: &'static str,
    pub cached_callers: usize,
    pub max_callers: usize,
    pub refusals: CallerRefusals,
    pub evictions_lru: u64,
    pub evictions_idle: u64,
}

#[derive(Debug, Serialize)]
pub struct CallerRefusals {
    pub idp_refused: u64,
    pub remembered: u64,
    pub attempt_limit: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl GrantGuard for CallerSlots {
    /// Called by a caller's slot before it sends a password grant: a
    /// refusal the fleet remembers, or the user's attempt ceiling, holds
    /// it back.
    async fn before_grant(&self, seat: &CallerSeat) -> Result<Option<Attempt>, FetchError> {
        let CallerCredential::Password { username, .. } = &seat.credential else {
            return Ok(None);
        };
        let remembered = match &self.shared {
            Some(shared) => shared.refusal_remembered(&seat.key).await,
            None => false,
        };
        if remembered {
            self.refused
                .remember(seat.key, self.policy.refused_password_memory);
            self.forget(&seat.key);
            self.metrics.remembered.inc();
            return Err(FetchError::CallerRefused {
                reason: "remembered",
            });
        }
        if seat.proven.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(None);
        }
        let user = self.hasher.user_key(username);
        let Some(attempt) = self.take_attempt(user).await else {
            self.forget(&seat.key);
            self.metrics.attempt_limit.inc();
            tracing::warn!(
                client = self.client.name.as_str(),
                user = username.as_str(),
                per_minute = self.policy.password_attempts_per_minute,
                "password grants for this user held back by the attempt ceiling"
            );
            return Err(FetchError::CallerRefused {
                reason: "attempt_limit",
            });
        };
        Ok(Some(attempt))
    }

    /// Called by a caller's slot when its password grant succeeded: the
    /// credential is proven, and the attempt no longer counts.
    async fn succeeded(&self, seat: &CallerSeat, attempt: Option<Attempt>) {
        seat.proven
            .store(true, std::sync::atomic::Ordering::Release);
        self.give_back(attempt).await;
    }

    /// An attempt that was not refused (it succeeded, or the identity
    /// service could not answer) stops counting.
    async fn give_back(&self, attempt: Option<Attempt>) {
        let Some(a) = attempt else {
            return;
        };
        match (&self.shared, a.fleet) {
            (Some(shared), true) => {
                shared
                    .settle_attempt(&a.user, &format!("{:016x}", a.id))
                    .await
            }
            _ => self.attempts.give_back(&a.user, a.id),
        }
    }

    /// Called by a caller's slot when its grant failed. Refused by the
    /// identity service: the caller loses its slot, and a refused password
    /// is remembered here and by the fleet. Not sent because the rate
    /// ceiling is booked beyond the caller's wait: the caller holds no
    /// place (its next request starts afresh). Anything else: the slot
    /// keeps its backoff.
    async fn failed(&self, seat: &CallerSeat, error: &FetchError) {
        if matches!(error, FetchError::Queued) {
            self.forget(&seat.key);
            return;
        }
        if !error.is_invalid_grant() {
            return;
        }
        self.forget(&seat.key);
        self.metrics.idp_refused.inc();
        let memory = self.policy.refused_password_memory;
        if matches!(seat.credential, CallerCredential::Password { .. }) {
            self.refused.remember(seat.key, memory);
            if let Some(shared) = &self.shared {
                shared.remember_refusal(&seat.key, memory).await;
            }
        }
        tracing::warn!(
            client = self.client.name.as_str(),
            user = seat.credential.user(),
            idp_error = error.idp().map(|i| i.code.as_str()),
            ecid = error.idp().and_then(|i| i.ecid.as_deref()),
            "identity service refused this caller"
        );
    }
}
