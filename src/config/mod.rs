//! Configuration: the YAML file is parsed into raw serde structs
//! ([`raw`]), then validated once into the typed values below
//! ([`validate`]). Nothing downstream re-checks a setting or handles a
//! "maybe": a [`Config`] that exists is usable.

pub mod env;
pub mod error;
pub mod raw;
pub mod secret;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

pub use error::{ConfigError, ConfigErrors};
pub use raw::{ClientAuthMethod, GrantKind, Issuer};
pub use secret::Secret;
pub use validate::{load_file, load_str};

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub server: ServerSettings,
    pub admin: AdminSettings,
    /// Clients sorted by name.
    pub clients: Vec<Arc<ClientConfig>>,
    /// Routes in file order.
    pub routes: Vec<RouteConfig>,
    /// Lookup over `routes`; indices point into it.
    pub route_table: crate::route::RouteTable,
    /// Non-fatal findings (unused clients, …) shown by `check` and logged by `run`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: Vec<SocketAddr>,
    pub threads: usize,
    /// Longest wait for the upstream between two reads or writes.
    pub upstream_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub shutdown_grace: Duration,
    /// How long start-up waits for the first tokens before serving anyway.
    pub startup_token_wait: Duration,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
}

/// One Oracle confidential application.
#[derive(Debug)]
pub struct ClientConfig {
    pub name: String,
    pub issuer: Issuer,
    pub token_url: url::Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub client_auth: ClientAuthMethod,
    pub grant: GrantKind,
    pub scopes: Vec<String>,
    pub refresh_before: Duration,
    /// Extra trust anchors for the identity service, added to the system roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

/// Exponential backoff bounds for failed token fetches.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Lower-case host name without port.
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

/// Where a route sends its traffic: fixed by configuration, never by the request.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The `Host` header value sent upstream (`host` or `host:port`).
    pub authority: String,
}

impl UpstreamTarget {
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

#[derive(Debug)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<HostPattern>,
    pub path_prefix: String,
    pub upstream: UpstreamTarget,
    /// Trust anchors for the upstream in addition to the system roots.
    pub upstream_ca: Vec<CertificateDer<'static>>,
    pub client: Arc<ClientConfig>,
    /// The scopes this route's token carries (the route's override or the client's).
    pub scopes: Vec<String>,
}
