//! What the request path reads: routes ready to serve, the route table and
//! the token cache, built once per configuration and swapped whole by a
//! reload.

use std::sync::Arc;

use http::HeaderValue;
use pingora::{Error, ErrorType};
use prometheus::Histogram;

use crate::access::AccessPolicy;
use crate::config::{Config, Limits};
use crate::limits::{LimitSet, RouteLimits};
use crate::metrics::metrics;
use crate::oauth::{CacheError, RouteTokens, TokenCache};
use crate::route_table::RouteTable;
use crate::upstream::UpstreamPeer;

/// A configured route ready for the request path: its upstream, token slot
/// and pre-built header values and metric handles.
pub struct LiveRoute {
    pub name: String,
    /// The route's path prefix (a span's `http.route`).
    pub prefix: String,
    pub max_body_bytes: Option<u64>,
    pub access: Arc<AccessPolicy>,
    /// Where its tokens come from: one slot, or a family of callers' slots.
    pub tokens: RouteTokens,
    pub upstream: UpstreamPeer,
    /// The `Host` header sent upstream.
    pub host_header: HeaderValue,
    /// Methods forwarded, and the `Allow` value of a 405.
    pub methods: Vec<http::Method>,
    pub allow: HeaderValue,
    pub upstream_duration: Histogram,
    /// `bearer_proxy_upstream_connections_total` of this route.
    pub connections: crate::upstream_pool::RouteConnections,
    /// Its traffic limits, in the order it names them.
    pub limits: RouteLimits,
}

/// Everything the request path reads, built once from a [`Config`].
pub struct Snapshot {
    pub limits: Limits,
    /// When this configuration was loaded (RFC 3339), for `/status`.
    pub loaded_at: String,
    /// `Allow` of a 405 for TRACE or CONNECT: the default methods.
    pub default_allow: HeaderValue,
    pub routes: Vec<LiveRoute>,
    pub table: RouteTable,
    pub cache: Arc<TokenCache>,
    /// The `limits:` section's state; a reload keeps unchanged limits'.
    pub limit_set: LimitSet,
}

/// Why a snapshot could not be built from a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("route {0}: no token slot in the cache")]
    NoSlot(String),
    #[error("route {0}: upstream host is not a valid header value")]
    HostHeader(String),
}

impl Snapshot {
    pub fn new(config: Config) -> Result<Self, SnapshotError> {
        let cache = Arc::new(TokenCache::new(&config)?);
        Self::with_cache(config, cache, None)
    }

    /// A snapshot for a reloaded configuration, keeping the token slots of
    /// unchanged clients from `previous`.
    pub fn rebuild(config: Config, previous: &Snapshot) -> Result<Self, SnapshotError> {
        let cache = Arc::new(TokenCache::rebuild(&config, &previous.cache)?);
        Self::with_cache(config, cache, Some(previous))
    }

    fn with_cache(
        config: Config,
        cache: Arc<TokenCache>,
        previous: Option<&Snapshot>,
    ) -> Result<Self, SnapshotError> {
        let limit_set = LimitSet::new(
            &config.limits,
            previous.map(|p| &p.limit_set),
            cache.shared(),
        );
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut cas = crate::upstream::CaLists::default();
        for r in &config.routes {
            let tokens = cache
                .tokens_for(r)
                .ok_or_else(|| SnapshotError::NoSlot(r.name.clone()))?;
            let host_header = HeaderValue::try_from(r.upstream.authority.as_str())
                .map_err(|_| SnapshotError::HostHeader(r.name.clone()))?;
            routes.push(LiveRoute {
                name: r.name.clone(),
                prefix: r.path_prefix.clone(),
                max_body_bytes: r.max_body_bytes,
                access: r.access.clone(),
                tokens,
                upstream: UpstreamPeer::new(r, &config.server, &mut cas),
                host_header,
                allow: super::path_policy::allow_header(&r.methods),
                methods: r.methods.clone(),
                upstream_duration: metrics().upstream_duration.with_label_values(&[&r.name]),
                connections: crate::upstream_pool::RouteConnections::new(&r.name),
                limits: limit_set.for_route(&r.limits),
            });
        }
        publish_certificate_expiry(&config);
        let defaults: Vec<http::Method> = crate::config::defaults::METHODS
            .iter()
            .filter_map(|m| http::Method::from_bytes(m.as_bytes()).ok())
            .collect();
        Ok(Snapshot {
            loaded_at: crate::clock::rfc3339(crate::clock::unix_now()),
            default_allow: super::path_policy::allow_header(&defaults),
            limits: config.server.limits,
            routes,
            table: config.route_table,
            cache,
            limit_set,
        })
    }

    /// Every route's upstream, for `upstream::resolve_all`.
    pub fn upstreams(&self) -> impl Iterator<Item = &UpstreamPeer> {
        self.routes.iter().map(|r| &r.upstream)
    }

    /// The route a request matched. Hooks after `request_filter` only run
    /// for matched requests; should that ever not hold, the request fails
    /// with an internal error instead of a panic.
    pub fn route(&self, index: Option<usize>) -> pingora::Result<&LiveRoute> {
        match index.and_then(|i| self.routes.get(i)) {
            Some(route) => Ok(route),
            None => Error::e_explain(ErrorType::InternalError, "no route matched"),
        }
    }
}

/// `bearer_proxy_client_certificate_expiry_timestamp_seconds` for the
/// configuration's `tls_client_auth` clients (a removed client's series
/// goes with it).
fn publish_certificate_expiry(config: &Config) {
    let gauge = &metrics().client_certificate_expiry;
    gauge.reset();
    for client in &config.clients {
        if let crate::config::ClientAuth::TlsClientAuth { identity } = &client.auth {
            gauge
                .with_label_values(&[client.name.as_str()])
                .set(identity.not_after as f64);
        }
    }
}
