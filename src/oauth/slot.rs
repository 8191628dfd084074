//! One token slot (a client and its scopes): the cached token the request
//! path reads through an `ArcSwap` — no lock, no I/O — and the one fetch at
//! a time that fills it. Concurrent misses share that fetch (single-flight);
//! fetches run on the token runtime (the refresher's), so the
//! identity-service connection pool lives in one place.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use prometheus::{Gauge, Histogram, IntCounter};
use tokio::runtime::Handle;
use tokio::sync::watch;

mod fleet;
mod parts;
mod status;

pub(crate) use parts::SlotParts;

use super::backoff::{backoff, REJECTION_MEMORY};
use super::error::FetchError;
use super::grant::{self, Step};
use super::seat::CallerSeat;
use super::token::{AccessToken, TokenResponse};
use super::transport::TokenEndpoint;
use super::unauthorized::{Episode, Unauthorized, Verdict};
use crate::config::{ClientConfig, Secret};
use crate::metrics::metrics;

/// Why a request got no token.
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub client: String,
    pub error: FetchError,
    /// When trying again makes sense.
    pub retry_after: Duration,
}

type FetchResult = Result<Arc<AccessToken>, FetchError>;

#[derive(Debug, Default)]
struct SlotState {
    consecutive_failures: u32,
    retry_not_before: Option<Instant>,
    last_error: Option<FetchError>,
    last_fetch_unix: Option<f64>,
    last_outcome: Option<&'static str>,
    successes: u64,
    failures: u64,
    /// Fetches the token URL's rate ceiling made wait.
    rate_waits: u64,
}

/// Metric handles resolved once per slot, so a cache hit touches no label map.
#[derive(Clone)]
struct SlotMetrics {
    hit: IntCounter,
    miss: IntCounter,
    coalesced: IntCounter,
    refresh_fallback: IntCounter,
    fetch_duration: Histogram,
    expiry: Gauge,
}

pub struct TokenSlot {
    pub client: Arc<ClientConfig>,
    /// Scopes in configured order, as sent to the identity service.
    pub scopes: Vec<String>,
    endpoint: Arc<TokenEndpoint>,
    current: ArcSwapOption<AccessToken>,
    /// The newest refresh token (they may be single use).
    refresh_token: Mutex<Option<Secret>>,
    inflight: Mutex<Option<watch::Receiver<Option<FetchResult>>>>,
    state: Mutex<SlotState>,
    /// Bumped after every fetch so the refresher re-plans.
    changed: watch::Sender<u64>,
    /// The client's fingerprint when the slot was made (reloads reuse a
    /// slot only for an identical client).
    pub(super) fingerprint: [u8; 32],
    /// What the upstream's 401s have shown (see `unauthorized`).
    unauthorized: Mutex<Unauthorized>,
    /// A replacement token awaits its first answer: the only time a
    /// response touches `unauthorized`.
    watching: std::sync::atomic::AtomicBool,
    /// The fleet's copy of this slot, with the `cache.backend: redis`.
    shared: Option<super::shared::SharedSlot>,
    /// Fetch time of the token last purged for an upstream 401: never
    /// adopted again from the shared cache.
    refused_fetched_at: Mutex<Option<f64>>,
    /// Where the current token came from: `idp` or `shared`.
    source: Mutex<&'static str>,
    /// Set when a reload dropped the slot: its refresher stops.
    retired: std::sync::atomic::AtomicBool,
    metrics: SlotMetrics,
    runtime: Arc<OnceLock<Handle>>,
    /// Set on a slot of one caller of an `on_behalf_of: caller` client.
    caller: Option<CallerSeat>,
    /// The span of the latest fetch, which requests that waited link to.
    fetch_span: Mutex<Option<opentelemetry::trace::SpanContext>>,
}

impl TokenSlot {
    pub(super) fn new(parts: SlotParts, shared: Option<super::shared::SharedSlot>) -> Self {
        Self::build(parts, shared, None)
    }

    /// The slot of one caller, from its family's parts.
    pub(super) fn for_caller(
        parts: SlotParts,
        shared: Option<super::shared::SharedSlot>,
        seat: CallerSeat,
    ) -> Self {
        Self::build(parts, shared, Some(seat))
    }

    fn build(
        parts: SlotParts,
        shared: Option<super::shared::SharedSlot>,
        caller: Option<CallerSeat>,
    ) -> Self {
        let SlotParts {
            client,
            scopes,
            endpoint,
            runtime,
            fingerprint,
            metrics,
        } = parts;
        TokenSlot {
            metrics,
            client,
            scopes,
            endpoint,
            current: ArcSwapOption::empty(),
            refresh_token: Mutex::new(None),
            inflight: Mutex::new(None),
            state: Mutex::new(SlotState::default()),
            changed: watch::channel(0).0,
            fingerprint,
            retired: std::sync::atomic::AtomicBool::new(false),
            unauthorized: Mutex::new(Unauthorized::default()),
            shared,
            refused_fetched_at: Mutex::new(None),
            source: Mutex::new("idp"),
            watching: std::sync::atomic::AtomicBool::new(false),
            runtime,
            caller,
            fetch_span: Mutex::new(None),
        }
    }

    fn usable(&self, now: Instant) -> Option<HeaderValue> {
        let guard = self.current.load();
        guard
            .as_ref()
            .filter(|t| t.is_usable(now))
            .map(|t| t.header().clone())
    }

    /// The `Authorization` value for a request: from the cache when a
    /// usable token is there, else from a (shared) fetch.
    pub async fn authorization(self: &Arc<Self>) -> Result<HeaderValue, Unavailable> {
        if let Some(h) = self.cached_authorization() {
            return Ok(h);
        }
        let now = Instant::now();
        if let Some(unavailable) = self.backing_off(now) {
            return Err(unavailable);
        }
        let mut rx = {
            let mut inflight = lock(&self.inflight);
            if let Some(h) = self.usable(now) {
                self.metrics.hit.inc();
                return Ok(h);
            }
            match inflight.as_ref() {
                Some(rx) => {
                    self.metrics.coalesced.inc();
                    rx.clone()
                }
                None => {
                    self.metrics.miss.inc();
                    self.start_fetch(&mut inflight)
                }
            }
        };
        match wait(&mut rx).await {
            Ok(token) => Ok(token.header().clone()),
            Err(error) => Err(self.unavailable(error, Instant::now())),
        }
    }

    /// The fast path: a usable cached token, or `None`. Lock-free.
    pub fn cached_authorization(&self) -> Option<HeaderValue> {
        let h = self.usable(Instant::now())?;
        self.metrics.hit.inc();
        Some(h)
    }

    /// A caller's cached token; one used inside its renewal window starts
    /// a background renewal (callers' slots have no refresher, so an idle
    /// caller's token is never renewed).
    pub fn cached_authorization_renewing(self: &Arc<Self>) -> Option<HeaderValue> {
        let now = Instant::now();
        let guard = self.current.load();
        let token = guard.as_ref().filter(|t| t.is_usable(now))?;
        self.metrics.hit.inc();
        if now >= token.renew_at && self.backing_off(now).is_none() {
            let mut inflight = lock(&self.inflight);
            if inflight.is_none() {
                drop(self.start_fetch(&mut inflight));
            }
        }
        Some(token.header().clone())
    }

    /// The refresh token of this replica's own last fetch.
    fn local_refresh(&self) -> Option<Secret> {
        lock(&self.refresh_token).clone()
    }

    /// Drops the cached token if it is still the one that was sent as
    /// `sent`: after an upstream 401, only the first request to notice
    /// purges it; later ones find a new token already there (no purge
    /// storm, one fetch).
    pub fn invalidate(&self, sent: &HeaderValue) -> bool {
        let current = self.current.load_full();
        match current {
            Some(token) if token.header() == sent => {
                let previous = self.current.compare_and_swap(&Some(token.clone()), None);
                let purged = previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &token));
                if purged {
                    *lock(&self.refused_fetched_at) = Some(token.fetched_at_unix);
                    tracing::info!(
                        client = self.client.name.as_str(),
                        "token refused by the upstream; fetching a new one"
                    );
                }
                purged
            }
            _ => false,
        }
    }

    /// The verdict on an upstream 401 to `sent`: purge and renew, or (when
    /// a fresh token is refused too) pass 401s on for `cooldown`.
    pub fn upstream_refused(&self, sent: &HeaderValue, cooldown: Duration) -> Verdict {
        lock(&self.unauthorized).refused(sent, cooldown, || self.invalidate(sent))
    }

    /// The upstream answered `sent` with something other than 401. One
    /// atomic load, unless a replacement token is being watched.
    pub fn upstream_accepted(&self, sent: &HeaderValue) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.watching.load(Relaxed) {
            let keep = lock(&self.unauthorized).accepted(sent);
            self.watching.store(keep, Relaxed);
        }
    }

    /// The details of an episode that just started, for `/status`.
    pub fn record_episode(&self, episode: Episode) {
        lock(&self.unauthorized).record(episode);
    }

    /// After a failure, requests fail fast until the backoff has passed
    /// instead of each sending its own request to the identity service.
    fn backing_off(&self, now: Instant) -> Option<Unavailable> {
        let state = lock(&self.state);
        let not_before = state.retry_not_before?;
        let error = state.last_error.clone()?;
        (now < not_before).then(|| Unavailable {
            client: self.client.name.clone(),
            error,
            retry_after: not_before - now,
        })
    }

    fn unavailable(&self, error: FetchError, now: Instant) -> Unavailable {
        let state = lock(&self.state);
        let retry_after = state
            .retry_not_before
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(1));
        Unavailable {
            client: self.client.name.clone(),
            error,
            retry_after,
        }
    }

    /// Fetches now unless a fetch is already running; either way waits for
    /// its result. Used by the refresher and at start-up.
    pub async fn refresh(self: &Arc<Self>) -> FetchResult {
        let mut rx = {
            let mut inflight = lock(&self.inflight);
            match inflight.as_ref() {
                Some(rx) => rx.clone(),
                None => self.start_fetch(&mut inflight),
            }
        };
        wait(&mut rx).await
    }

    /// Spawns the fetch; the caller holds the `inflight` lock.
    fn start_fetch(
        self: &Arc<Self>,
        inflight: &mut Option<watch::Receiver<Option<FetchResult>>>,
    ) -> watch::Receiver<Option<FetchResult>> {
        let (tx, rx) = watch::channel(None);
        *inflight = Some(rx.clone());
        let slot = self.clone();
        let trace = crate::telemetry::FetchTrace::start(&self.client);
        *lock(&self.fetch_span) = trace.span_context();
        let context = trace.context();
        let task = async move {
            let started = Instant::now();
            let outcome = match &slot.shared {
                Some(shared) => slot.fetch_via_fleet(shared, started).await,
                None => {
                    let (result, sent) = slot.obtain(slot.local_refresh()).await;
                    slot.complete(result, started, sent)
                }
            };
            match &outcome {
                Ok(_) => trace.finish(lock(&slot.state).last_outcome.unwrap_or("success"), None),
                Err(e) => trace.finish(e.outcome(), Some(e)),
            }
            // The token is stored before the in-flight marker goes away, so a
            // request that finds no fetch running will find the token.
            *lock(&slot.inflight) = None;
            let _ = tx.send(Some(outcome));
            slot.changed.send_modify(|g| *g += 1);
        };
        // The fetch's span is current while it runs: shared-cache
        // operations become its children.
        let task = opentelemetry::context::FutureExt::with_context(task, context);
        match self.runtime.get() {
            Some(handle) => drop(handle.spawn(task)),
            None => drop(tokio::spawn(task)),
        }
        rx
    }

    /// The span of the latest fetch, when traces are on.
    pub fn fetch_link(&self) -> Option<opentelemetry::trace::SpanContext> {
        lock(&self.fetch_span).clone()
    }

    /// Renews with the refresh token when there is one; if the identity
    /// service refuses it, falls back to the configured grant once.
    /// Also returns when the last request was sent.
    async fn obtain(
        &self,
        refresh: Option<Secret>,
    ) -> (Result<TokenResponse, FetchError>, Instant) {
        if let Some(token) = refresh.filter(|_| self.client.refresh_token) {
            match self.attempt(&Step::Refresh(&token)).await {
                (Ok(response), sent) => return (Ok(response), sent),
                (Err(e), _) if e.is_rejection() => {
                    *lock(&self.refresh_token) = None;
                    self.metrics.refresh_fallback.inc();
                    tracing::warn!(
                        client = self.client.name.as_str(),
                        idp_error = e.idp().map(|i| i.code.as_str()),
                        grant = grant::kind_label(self.client.grant.kind()),
                        "refresh token refused; falling back to the configured grant"
                    );
                }
                failed => return failed,
            }
        }
        let Some(seat) = &self.caller else {
            return self.attempt(&Step::Primary).await;
        };
        let family = seat.family.upgrade();
        let mut counted = None;
        if let Some(family) = &family {
            match family.before_grant(seat).await {
                Ok(attempt) => counted = attempt,
                Err(held_back) => return (Err(held_back), Instant::now()),
            }
        }
        let (result, sent) = self.attempt(&Step::Caller(&seat.credential)).await;
        match (&result, &family) {
            (Ok(_), Some(family)) => family.succeeded(seat, counted).await,
            (Err(e), Some(family)) => {
                if !e.is_invalid_grant() {
                    family.give_back(counted).await;
                }
                family.failed(seat, e).await
            }
            (_, None) => {}
        }
        (result, sent)
    }

    /// One request to the identity service, counted by grant and outcome;
    /// returns when it was sent (after the rate ceiling let it go).
    async fn attempt(&self, step: &Step<'_>) -> (Result<TokenResponse, FetchError>, Instant) {
        // A caller's first token: the ceiling is not booked beyond the
        // caller's wait, so a spray of new callers cannot push everyone's
        // fetches (the fixed clients' renewals too) ever further out.
        let first_wait = self
            .caller
            .as_ref()
            .filter(|_| self.current.load().is_none())
            .map(|seat| seat.first_wait);
        let waited = match first_wait {
            Some(wait) => match self.endpoint.pace_within(wait).await {
                Some(waited) => waited,
                None => return (Err(FetchError::Queued), Instant::now()),
            },
            None => self.endpoint.pace().await,
        };
        if waited {
            lock(&self.state).rate_waits += 1;
        }
        let sent = Instant::now();
        let result = self.endpoint.send(step, &self.scopes).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(e) => e.outcome(),
        };
        metrics()
            .token_fetch
            .with_label_values(&[
                self.client.name.as_str(),
                grant::label(&self.client, step),
                outcome,
            ])
            .inc();
        (result, sent)
    }

    /// `started`: when the fetch began (for the duration metric); `sent`:
    /// when its request left, from which the token's lifetime counts.
    fn complete(
        &self,
        result: Result<TokenResponse, FetchError>,
        started: Instant,
        sent: Instant,
    ) -> FetchResult {
        let elapsed = started.elapsed();
        self.metrics.fetch_duration.observe(elapsed.as_secs_f64());
        let mut state = lock(&self.state);
        state.last_fetch_unix = Some(crate::clock::unix_now());
        match result {
            Ok(response) => {
                *lock(&self.source) = "idp";
                Ok(self.store(&mut state, response, sent, elapsed))
            }
            Err(error) => {
                self.record_failure(&mut state, &error);
                Err(error)
            }
        }
    }

    /// Publishes a new token (and its refresh token) and clears the backoff.
    fn store(
        &self,
        state: &mut SlotState,
        response: TokenResponse,
        sent: Instant,
        elapsed: Duration,
    ) -> Arc<AccessToken> {
        let name = self.client.name.as_str();
        let token = Arc::new(AccessToken::new(
            &response,
            self.client.refresh_before,
            sent,
        ));
        self.current.store(Some(token.clone()));
        if lock(&self.unauthorized).stored(token.header()) {
            self.watching
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if self.client.refresh_token {
            if let Some(refresh) = response.refresh_token {
                *lock(&self.refresh_token) = Some(refresh);
            }
        }
        if self.caller.is_none() {
            self.metrics.expiry.set(token.expires_at_unix);
        }
        state.consecutive_failures = 0;
        state.retry_not_before = None;
        state.last_error = None;
        state.last_outcome = Some("success");
        state.successes += 1;
        if let Some(claimed) = response.clamped_from {
            tracing::warn!(
                client = name,
                claimed_expires_in_s = claimed,
                "identity service claimed a token lifetime over a day; treating it as one day"
            );
        }
        tracing::info!(
            client = name,
            trace_id = crate::telemetry::current_trace_id(),
            expires_in_s = token.lifetime.as_secs(),
            fetch_ms = elapsed.as_millis() as u64,
            "token obtained"
        );
        token
    }

    /// Sets the backoff after a failed fetch: exponential with jitter, at
    /// least the identity service's `Retry-After`, and at least
    /// [`REJECTION_MEMORY`] for a refusal.
    fn record_failure(&self, state: &mut SlotState, error: &FetchError) {
        let outcome = error.outcome();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        let mut delay = backoff(
            self.client.retry.initial,
            self.client.retry.max,
            state.consecutive_failures,
        );
        match error {
            FetchError::RateLimited {
                retry_after: Some(ra),
            } => delay = delay.max(*ra),
            FetchError::Rejected { .. } => delay = delay.max(REJECTION_MEMORY),
            _ => {}
        }
        state.retry_not_before = Some(Instant::now() + delay);
        state.last_error = Some(error.clone());
        state.last_outcome = Some(outcome);
        state.failures += 1;
        let idp = error.idp();
        tracing::warn!(
            client = self.client.name.as_str(),
            outcome,
            error = %error,
            idp_error = idp.map(|i| i.code.as_str()),
            idp_description = idp.and_then(|i| i.description.as_deref()),
            ecid = idp.and_then(|i| i.ecid.as_deref()),
            retry_in_ms = delay.as_millis() as u64,
            serving_cached_token = self.has_usable_token(),
            trace_id = crate::telemetry::current_trace_id(),
            "token fetch failed"
        );
    }

    /// When the refresher should act next: renewal time, or the end of the
    /// backoff after a failure, or now when the slot is empty.
    pub fn next_action(&self, now: Instant) -> Instant {
        let state = lock(&self.state);
        if let Some(t) = state.retry_not_before {
            return t;
        }
        drop(state);
        match self.current.load().as_ref() {
            Some(token) => token.renew_at,
            None => now,
        }
    }

    /// Stops the slot's background renewal (a reload dropped it).
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.changed.send_modify(|g| *g += 1);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn has_usable_token(&self) -> bool {
        self.usable(Instant::now()).is_some()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn wait(rx: &mut watch::Receiver<Option<FetchResult>>) -> FetchResult {
    match rx.wait_for(Option::is_some).await {
        Ok(value) => value.clone().expect("waited for Some"),
        // The fetch task was dropped: its runtime is shutting down.
        Err(_) => Err(FetchError::Unreachable(
            "token fetch cancelled by shutdown".into(),
        )),
    }
}
