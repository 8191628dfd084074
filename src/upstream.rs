//! Turning a route's fixed upstream into pingora peers: address resolution
//! (done in the background, never on the request path — pingora's own
//! lookup blocks and panics on failure) and TLS trust.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use rustls::pki_types::CertificateDer;

use crate::config::{RouteConfig, ServerSettings, UpstreamTarget};

/// A route's upstream with its current peer. `peer` is empty until the host
/// name first resolves.
pub struct UpstreamPeer {
    pub target: UpstreamTarget,
    pub peer: ArcSwapOption<HttpPeer>,
    template: HttpPeer,
    /// The route's CA file, for [`UpstreamPeer::direct_client`].
    ca_file: Vec<CertificateDer<'static>>,
    /// Built on first use and kept while the address stays the same.
    direct: Mutex<Option<(SocketAddr, reqwest::Client)>>,
}

/// CA lists already built for this configuration, by the route's CA file.
/// Routes usually share one (10,000 routes building their own lists, when
/// the lists still held every system root, took 25 s and 8 GiB).
#[derive(Default)]
pub struct CaLists(HashMap<Vec<CertificateDer<'static>>, Arc<[WrappedX509]>>);

impl CaLists {
    fn get(&mut self, extra: &[CertificateDer<'static>]) -> Arc<[WrappedX509]> {
        self.0
            .entry(extra.to_vec())
            .or_insert_with(|| ca_list(extra))
            .clone()
    }
}

impl UpstreamPeer {
    pub fn new(route: &RouteConfig, server: &ServerSettings, cas: &mut CaLists) -> Self {
        let target = route.upstream.clone();
        let unspecified = SocketAddr::from(([0, 0, 0, 0], target.port));
        let mut template = HttpPeer::new(unspecified, target.tls, target.host.clone());
        let o = &mut template.options;
        o.connection_timeout = Some(server.upstream_connect_timeout);
        o.total_connection_timeout = Some(server.upstream_connect_timeout);
        o.read_timeout = Some(server.upstream_timeout);
        o.write_timeout = Some(server.upstream_timeout);
        o.idle_timeout = Some(Duration::from_secs(60));
        o.verify_cert = true;
        o.verify_hostname = true;
        if target.tls && !route.upstream_ca.is_empty() {
            o.ca = Some(cas.get(&route.upstream_ca));
        }
        let upstream = UpstreamPeer {
            peer: ArcSwapOption::empty(),
            template,
            target,
            ca_file: route.upstream_ca.clone(),
            direct: Mutex::new(None),
        };
        if let Ok(ip) = upstream.target.host.parse::<IpAddr>() {
            upstream.set_address(SocketAddr::new(ip, upstream.target.port));
        }
        upstream
    }

    pub fn needs_resolution(&self) -> bool {
        self.target.host.parse::<IpAddr>().is_err()
    }

    fn set_address(&self, addr: SocketAddr) {
        let mut peer = self.template.clone();
        peer._address = pingora::protocols::l4::socket::SocketAddr::Inet(addr);
        self.peer.store(Some(Arc::new(peer)));
    }

    /// Points the peer at `addr` if it is not there already.
    pub fn use_address(&self, addr: SocketAddr) {
        let current = self.peer.load().as_ref().map(|p| p._address.clone());
        if current.as_ref().and_then(|a| a.as_inet()) != Some(&addr) {
            self.set_address(addr);
        }
    }

    /// An HTTP client for requests sent outside pingora (a 401 replay of a
    /// body longer than pingora's retry buffer), with the same trust, host
    /// name check, time-outs and resolved address as the pingora peer.
    /// Environment proxy settings are ignored, as pingora ignores them.
    pub fn direct_client(&self) -> Result<reqwest::Client, DirectClientError> {
        let addr = self
            .peer
            .load()
            .as_ref()
            .and_then(|p| p._address.as_inet().copied())
            .ok_or_else(|| DirectClientError::Unresolved(self.target.host.clone()))?;
        let mut direct = self.direct.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, client)) = direct.as_ref() {
            if *at == addr {
                return Ok(client.clone());
            }
        }
        let o = &self.template.options;
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .resolve(&self.target.host, addr);
        if let Some(t) = o.connection_timeout {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = o.read_timeout {
            builder = builder.read_timeout(t);
        }
        if self.target.tls {
            builder = builder
                .tls_backend_preconfigured(crate::tls::upstream_client_config(&self.ca_file));
        }
        let client = builder
            .build()
            .map_err(|e| DirectClientError::Build(self.target.host.clone(), e))?;
        *direct = Some((addr, client.clone()));
        Ok(client)
    }
}

/// Why the proxy's own client for an upstream is not to be had.
#[derive(Debug, thiserror::Error)]
pub enum DirectClientError {
    #[error("upstream host {0} has not resolved yet")]
    Unresolved(String),
    #[error("cannot build a client for {0}: {1}")]
    Build(String, #[source] reqwest::Error),
}

/// The address to use for `host:port`. Routes that share an upstream host
/// share one lookup (see `resolve_all`): with 1,000 routes to one
/// host, a lookup per route every 30 s was 33 `getaddrinfo` calls a second.
pub async fn lookup(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    // Prefer IPv4: loopback names often resolve to ::1 first while
    // servers listen on 127.0.0.1 only.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| std::io::Error::other("no address"))
}

/// The route's CA file, in pingora's per-peer CA form: it replaces the
/// system roots for this upstream ([`crate::tls::upstream_client_config`]).
/// Certificates that pingora's parser would reject are left out rather than
/// allowed to panic a connection.
fn ca_list(ca_file: &[CertificateDer<'static>]) -> Arc<[WrappedX509]> {
    ca_file
        .iter()
        .filter(|c| x509_parser::parse_x509_certificate(c.as_ref()).is_ok())
        .map(|c| {
            WrappedX509::new(c.as_ref().to_vec(), |raw| {
                pingora::utils::tls::parse_x509(raw)
            })
        })
        .collect::<Vec<_>>()
        .into()
}

/// Looks up every host-name upstream among `upstreams` (the routes' of a
/// snapshot) again: once per distinct host and port, however many routes
/// lead there. Returns the number of lookups made. Takes the peers, not
/// the snapshot that holds them, so this module stays below `proxy`.
pub async fn resolve_all<'a>(upstreams: impl IntoIterator<Item = &'a UpstreamPeer>) -> usize {
    let mut by_target: std::collections::HashMap<(&str, u16), Vec<&UpstreamPeer>> =
        std::collections::HashMap::new();
    for upstream in upstreams.into_iter().filter(|u| u.needs_resolution()) {
        let t = &upstream.target;
        by_target
            .entry((t.host.as_str(), t.port))
            .or_default()
            .push(upstream);
    }
    let lookups = by_target.len();
    for ((host, port), upstreams) in by_target {
        match lookup(host, port).await {
            Ok(addr) => upstreams.iter().for_each(|u| u.use_address(addr)),
            Err(e) => tracing::error!(
                host,
                port,
                routes = upstreams.len(),
                error = %e,
                "cannot resolve upstream host"
            ),
        }
    }
    lookups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_the_same_trust_share_one_ca_list() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        use crate::config::raw::{RawConfig, RawRoute};
        let mut raw = RawConfig::example();
        for (name, ca) in [("a", true), ("b", true), ("c", false)] {
            let mut route =
                RawRoute::open(name, &format!("/{name}/"), "https://oic.example.com", "c");
            route.upstream_ca_file = ca.then(|| "client-cert.pem".into());
            raw = raw.with_route(route);
        }
        let config = crate::config::load_str(&raw.to_yaml(), &dir, &|_| None).unwrap();
        let mut cas = CaLists::default();
        let built: Vec<UpstreamPeer> = config
            .routes
            .iter()
            .map(|r| UpstreamPeer::new(r, &config.server, &mut cas))
            .collect();
        let a = built[0].template.options.ca.clone().unwrap();
        let b = built[1].template.options.ca.clone().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one list for both routes");
        assert_eq!(a.len(), 1, "the CA file alone, not the system roots");
        assert!(built[2].template.options.ca.is_none(), "system roots only");
        assert_eq!(cas.0.len(), 1);
    }
}
