//! A slot's fetch when the fleet shares a cache (`cache.backend: redis`):
//! adopt a newer token another replica published, or fetch it here under
//! the fleet-wide lock, or — Redis being of no help — fetch locally.

use std::sync::Arc;
use std::time::Instant;

use super::{lock, FetchResult, TokenSlot};
use crate::oauth::shared::{Entry, Obtained, SharedSlot};
use crate::oauth::token::AccessToken;

/// Two entries with fetch times this close are the same fetch (the lock
/// holder dates its own token a moment before the entry it writes).
const SAME_FETCH_S: f64 = 0.5;

impl TokenSlot {
    pub(super) async fn fetch_via_fleet(
        self: &Arc<Self>,
        shared: &SharedSlot,
        started: Instant,
    ) -> FetchResult {
        let adoptable = self.adoptable();
        let fetch = |refresh| self.obtain(refresh);
        match shared.obtain(adoptable, fetch).await {
            Obtained::Adopted(entry) => match self.adopt(&entry) {
                Some(token) => Ok(token),
                None => self.fetch_locally(started).await,
            },
            Obtained::Fetched(result, sent) => self.complete(result, started, sent),
            Obtained::Unavailable => self.fetch_locally(started).await,
        }
    }

    async fn fetch_locally(&self, started: Instant) -> FetchResult {
        let (result, sent) = self.obtain(self.local_refresh()).await;
        self.complete(result, started, sent)
    }

    /// An entry will do when it is usable for a while yet, newer than the
    /// token held here, and not the token just refused by the upstream.
    fn adoptable(&self) -> impl Fn(&Entry) -> bool {
        let mine = self.current.load().as_ref().map(|t| t.fetched_at_unix);
        let refused = *lock(&self.refused_fetched_at);
        move |entry: &Entry| {
            let now = crate::clock::unix_now();
            let lifetime = entry.expires_at - entry.fetched_at;
            let usable = entry.expires_at - now > (lifetime / 10.0).min(5.0);
            let same = |t: f64| (entry.fetched_at - t).abs() < SAME_FETCH_S;
            usable
                && !refused.is_some_and(same)
                && mine.is_none_or(|m| entry.fetched_at > m + SAME_FETCH_S)
        }
    }

    /// Makes another replica's token this slot's.
    fn adopt(&self, entry: &Entry) -> Option<Arc<AccessToken>> {
        let token = Arc::new(AccessToken::from_shared(
            &entry.access_token,
            entry.fetched_at,
            entry.expires_at,
            self.client.refresh_before,
        )?);
        self.current.store(Some(token.clone()));
        if let Some(seat) = &self.caller {
            // Another replica's grant with this credential succeeded.
            seat.proven
                .store(true, std::sync::atomic::Ordering::Release);
        }
        if lock(&self.unauthorized).stored(token.header()) {
            self.watching
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if self.caller.is_none() {
            self.metrics.expiry.set(token.expires_at_unix);
        }
        *lock(&self.source) = "shared";
        let mut state = lock(&self.state);
        state.consecutive_failures = 0;
        state.retry_not_before = None;
        state.last_error = None;
        state.last_outcome = Some("shared");
        drop(state);
        tracing::info!(
            client = self.client.name.as_str(),
            expires_in_s = (entry.expires_at - crate::clock::unix_now()).max(0.0) as u64,
            "token taken from the shared cache"
        );
        Some(token)
    }

    /// Another replica published this slot's token: take it if it is newer.
    /// Never fetches (a replica's own publication comes back here too).
    pub async fn adopt_if_newer(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let adoptable = self.adoptable();
        if let Ok(Some(entry)) = shared.read().await {
            if adoptable(&entry) && self.adopt(&entry).is_some() {
                self.changed.send_modify(|g| *g += 1);
            }
        }
    }

    /// Wakes when another replica publishes this slot's token.
    pub fn shared_notify(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.shared.as_ref().map(|s| s.notify().clone())
    }
}
