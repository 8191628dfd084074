//! The token cache: one [`TokenSlot`] per distinct (client, scopes) that
//! some route uses — or, for an `on_behalf_of: caller` client, one family
//! of callers' slots ([`CallerSlots`]) — rebuilt on reload keeping the
//! slots and families of unchanged clients.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;

use super::callers::CallerSlots;
use super::rate::RateCeilings;
use super::shared::{SharedCache, SharedStatus};
use super::slot::{SlotParts, TokenSlot};
use super::transport::TransportError;
use crate::config::{CacheSettings, CallerPolicy, ClientConfig, Config, RouteConfig};

/// The cache could not be built from a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A client's HTTP client failed to build.
    #[error("client {client}: {source}")]
    Client {
        client: String,
        #[source]
        source: TransportError,
    },
    /// The Redis client could not be set up (it connects on first use).
    #[error("shared cache: {0}")]
    Redis(String),
}

/// Identifies a slot: the client and its sorted, de-duplicated scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub client: String,
    pub scopes: Vec<String>,
}

impl SlotKey {
    pub fn new(client: &str, scopes: &[String]) -> Self {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        SlotKey {
            client: client.to_string(),
            scopes,
        }
    }
}

/// Where a route's tokens come from.
#[derive(Clone)]
pub enum RouteTokens {
    /// One identity for every caller.
    One(Arc<TokenSlot>),
    /// Each caller as itself.
    PerCaller(Arc<CallerSlots>),
}

impl RouteTokens {
    /// The client whose tokens these are.
    pub fn client(&self) -> &ClientConfig {
        match self {
            RouteTokens::One(slot) => &slot.client,
            RouteTokens::PerCaller(family) => &family.client,
        }
    }
}

/// What slots and families are made with, and the cache they may be
/// carried over from.
struct Parts<'a> {
    previous: Option<&'a TokenCache>,
    runtime: &'a Arc<OnceLock<Handle>>,
    ceilings: &'a Arc<RateCeilings>,
    shared: &'a Option<Arc<SharedCache>>,
    /// The token URL's ceiling: per second, per minute.
    rates: (f64, u32),
    /// How long a caller's request waits for its first token.
    caller_wait: Duration,
}

impl Parts<'_> {
    fn ceiling(&self, route: &RouteConfig) -> Arc<super::rate::RateCeiling> {
        let (per_second, per_minute) = self.rates;
        self.ceilings
            .for_url(&route.client.token_url, per_second, per_minute)
    }

    /// The slot of a single-identity route: the previous one when the
    /// client is unchanged (it keeps its token), else a new one.
    fn slot(
        &self,
        route: &RouteConfig,
        scopes: Vec<String>,
    ) -> Result<Arc<TokenSlot>, TransportError> {
        let key = SlotKey::new(&route.client.name, &scopes);
        let fingerprint = route.client.fingerprint();
        if let Some(slot) = self
            .previous
            .and_then(|p| p.slots.get(&key))
            .filter(|s| s.fingerprint == fingerprint)
        {
            return Ok(slot.clone());
        }
        let fleet = self
            .shared
            .as_ref()
            .map(|s| s.slot(&route.client.name, &fingerprint, &scopes, None));
        let parts = SlotParts::new(
            route.client.clone(),
            scopes,
            self.runtime.clone(),
            self.ceiling(route),
        )?;
        let slot = TokenSlot::new(parts, fleet);
        Ok(Arc::new(slot))
    }

    /// The caller family of a route's client: the previous one when the
    /// client is unchanged (its callers keep their tokens; a re-read
    /// `caller_subjects_file` is swapped in), else a new one.
    fn family(
        &self,
        route: &RouteConfig,
        scopes: Vec<String>,
        policy: &CallerPolicy,
    ) -> Result<Arc<CallerSlots>, TransportError> {
        let key = SlotKey::new(&route.client.name, &scopes);
        if let Some(family) = self
            .previous
            .and_then(|p| p.callers.get(&key))
            .filter(|f| f.fingerprint == route.client.fingerprint())
        {
            family.set_subjects(policy.subjects.clone());
            return Ok(family.clone());
        }
        let parts = SlotParts::new(
            route.client.clone(),
            scopes,
            self.runtime.clone(),
            self.ceiling(route),
        )?;
        Ok(CallerSlots::new(
            parts,
            policy.clone(),
            self.shared.clone(),
            self.caller_wait,
        ))
    }
}

/// All slots of a configuration.
pub struct TokenCache {
    slots: HashMap<SlotKey, Arc<TokenSlot>>,
    /// The caller families of `on_behalf_of: caller` clients.
    callers: HashMap<SlotKey, Arc<CallerSlots>>,
    runtime: Arc<OnceLock<Handle>>,
    /// Shared across reloads, so one token URL never has two ceilings.
    ceilings: Arc<RateCeilings>,
    /// The fleet's Redis (`cache.backend: redis`); kept across reloads
    /// (changed cache settings apply after a restart).
    shared: Option<Arc<SharedCache>>,
}

impl TokenCache {
    /// One slot per distinct (client, scopes) used by a route.
    pub fn new(config: &Config) -> Result<Self, CacheError> {
        Self::build(config, None)
    }

    /// The cache for a reloaded configuration: slots whose client is
    /// unchanged (same fingerprint) are carried over with their tokens.
    pub fn rebuild(config: &Config, previous: &TokenCache) -> Result<Self, CacheError> {
        Self::build(config, Some(previous))
    }

    fn build(config: &Config, previous: Option<&TokenCache>) -> Result<Self, CacheError> {
        let runtime = previous.map_or_else(|| Arc::new(OnceLock::new()), |p| p.runtime.clone());
        let ceilings = previous.map_or_else(Arc::default, |p| p.ceilings.clone());
        let shared = match previous {
            Some(p) => {
                if let (Some(shared), CacheSettings::Redis(settings)) = (&p.shared, &config.cache) {
                    shared.set_keys(&settings.keys);
                }
                p.shared.clone()
            }
            None => match &config.cache {
                CacheSettings::Memory => None,
                CacheSettings::Redis(settings) => Some(
                    SharedCache::new(settings.clone())
                        .map_err(|e| CacheError::Redis(e.to_string()))?,
                ),
            },
        };
        let parts = Parts {
            previous,
            runtime: &runtime,
            ceilings: &ceilings,
            shared: &shared,
            rates: (
                config.server.token_requests_per_second,
                config.server.token_requests_per_minute,
            ),
            caller_wait: config.server.limits.caller_token_wait,
        };
        let mut slots = HashMap::new();
        let mut callers = HashMap::new();
        for route in &config.routes {
            let scopes = Self::requested_scopes(route);
            let key = SlotKey::new(&route.client.name, &scopes);
            let failed = |source| CacheError::Client {
                client: route.client.name.clone(),
                source,
            };
            if let Some(policy) = &route.client.callers {
                if let Entry::Vacant(entry) = callers.entry(key) {
                    entry.insert(parts.family(route, scopes, policy).map_err(failed)?);
                }
            } else if let Entry::Vacant(entry) = slots.entry(key) {
                entry.insert(parts.slot(route, scopes).map_err(failed)?);
            }
        }
        Ok(TokenCache {
            slots,
            callers,
            runtime,
            ceilings,
            shared,
        })
    }

    /// Runs fetches on `handle` from now on (the refresher's runtime).
    pub fn set_runtime(&self, handle: Handle) {
        if self.runtime.set(handle.clone()).is_ok() {
            if let Some(shared) = &self.shared {
                let _enter = handle.enter();
                shared.listen();
            }
        }
    }

    /// The fleet's Redis; `None` with the memory backend.
    pub fn shared(&self) -> Option<&Arc<SharedCache>> {
        self.shared.as_ref()
    }

    /// The shared cache's state for `/status`; `None` with the memory backend.
    pub fn shared_status(&self) -> Option<SharedStatus> {
        self.shared.as_ref().map(|s| s.status())
    }

    fn requested_scopes(route: &RouteConfig) -> Vec<String> {
        route
            .client
            .requested_scopes(&route.scopes, route.client.refresh_token)
    }

    /// The slot whose token a route injects.
    pub fn slot_for(&self, route: &RouteConfig) -> Option<Arc<TokenSlot>> {
        let key = SlotKey::new(&route.client.name, &Self::requested_scopes(route));
        self.slots.get(&key).cloned()
    }

    /// Where a route's tokens come from.
    pub fn tokens_for(&self, route: &RouteConfig) -> Option<RouteTokens> {
        let key = SlotKey::new(&route.client.name, &Self::requested_scopes(route));
        match self.callers.get(&key) {
            Some(family) => Some(RouteTokens::PerCaller(family.clone())),
            None => self.slots.get(&key).cloned().map(RouteTokens::One),
        }
    }

    /// The slots of single-identity clients (callers' slots are not listed).
    pub fn slots(&self) -> impl Iterator<Item = &Arc<TokenSlot>> {
        self.slots.values()
    }

    /// The caller families of `on_behalf_of: caller` clients.
    pub fn caller_families(&self) -> impl Iterator<Item = &Arc<CallerSlots>> {
        self.callers.values()
    }

    /// Whether this very family (not an equal one) is part of the cache.
    pub fn holds_family(&self, family: &Arc<CallerSlots>) -> bool {
        self.callers.values().any(|f| Arc::ptr_eq(f, family))
    }

    /// Whether this very slot (not an equal one) is part of the cache.
    pub fn holds(&self, slot: &Arc<TokenSlot>) -> bool {
        self.slots.values().any(|s| Arc::ptr_eq(s, slot))
    }

    /// Every slot holds a usable token.
    pub fn is_ready(&self) -> bool {
        self.slots.values().all(|s| s.has_usable_token())
    }

    /// Fetches every slot's first token, waiting at most `bound`.
    pub async fn warm_up(&self, bound: Duration) -> bool {
        fetch_missing(self.slots.values().cloned().collect(), bound).await && self.is_ready()
    }
}

/// Fetches the tokens of `slots` (those without one), waiting at most
/// `bound`; true when all arrived in time.
pub async fn fetch_missing(slots: Vec<Arc<TokenSlot>>, bound: Duration) -> bool {
    let missing: Vec<_> = slots
        .into_iter()
        .filter(|s| !s.has_usable_token())
        .collect();
    tokio::time::timeout(bound, join_refreshes(missing))
        .await
        .is_ok()
}

async fn join_refreshes(slots: Vec<Arc<TokenSlot>>) {
    let mut set = tokio::task::JoinSet::new();
    for slot in slots {
        set.spawn(async move {
            let _ = slot.refresh().await;
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_keys_ignore_scope_order_and_duplicates() {
        let a = SlotKey::new("c", &["b".into(), "a".into(), "a".into()]);
        let b = SlotKey::new("c", &["a".into(), "b".into()]);
        assert_eq!(a, b);
    }
}
