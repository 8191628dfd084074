//! What the slots of one client and scope set are made of.

use std::sync::{Arc, OnceLock};

use tokio::runtime::Handle;

use super::SlotMetrics;
use crate::config::ClientConfig;
use crate::metrics::metrics;
use crate::oauth::rate::RateCeiling;
use crate::oauth::transport::{TokenEndpoint, TransportError};

/// What the slots of one client and scope set share: built once for a
/// single-identity slot, and once per caller family (each caller's slot
/// takes a clone: no fingerprint hashing or label lookups per caller).
#[derive(Clone)]
pub(crate) struct SlotParts {
    pub(super) client: Arc<ClientConfig>,
    pub(super) scopes: Vec<String>,
    /// One HTTP client and rate ceiling for all of a family's callers.
    pub(super) endpoint: Arc<TokenEndpoint>,
    pub(super) runtime: Arc<OnceLock<Handle>>,
    pub(super) fingerprint: [u8; 32],
    pub(super) metrics: SlotMetrics,
}

impl SlotParts {
    pub(crate) fn new(
        client: Arc<ClientConfig>,
        scopes: Vec<String>,
        runtime: Arc<OnceLock<Handle>>,
        ceiling: Arc<RateCeiling>,
    ) -> Result<Self, TransportError> {
        let endpoint = Arc::new(TokenEndpoint::new(client.clone(), Some(ceiling))?);
        let name = client.name.as_str();
        let m = metrics();
        Ok(SlotParts {
            metrics: SlotMetrics {
                hit: m.token_cache.with_label_values(&[name, "hit"]),
                miss: m.token_cache.with_label_values(&[name, "miss"]),
                coalesced: m.token_cache.with_label_values(&[name, "coalesced"]),
                refresh_fallback: m.token_refresh_fallback.with_label_values(&[name]),
                fetch_duration: m.token_fetch_duration.with_label_values(&[name]),
                expiry: m.token_expiry.with_label_values(&[name]),
            },
            fingerprint: client.fingerprint(),
            client,
            scopes,
            endpoint,
            runtime,
        })
    }

    pub(crate) fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    pub(crate) fn client(&self) -> &Arc<ClientConfig> {
        &self.client
    }

    pub(crate) fn scopes(&self) -> &[String] {
        &self.scopes
    }
}
