//! bearer-proxy: a reverse proxy that adds Oracle identity-domain access
//! tokens to requests bound for Oracle Integration.
//!
//! # Layout
//!
//! - [`cli`] — `run`, `check`, `token`, `demo`; [`token_cmd`] — the `token`
//!   command; [`logging`] — tracing set-up.
//! - [`config`] — YAML → raw structs → validated [`config::Config`]; the
//!   [`config::Secret`] type that redacts itself.
//! - [`route`] — host + longest-prefix route table (pure, benchmarked).
//! - [`access`] — per-route access rules (API keys, Basic users, CIDRs,
//!   client certificates).
//! - [`oauth`] — token endpoint client, token cache with single-flight,
//!   background refresher.
//! - [`proxy`] — the pingora `ProxyHttp` hooks and JSON error responses.
//! - [`upstream`] — upstream peers: background DNS, TLS trust;
//!   [`downstream_tls`] — TLS listeners and client certificates.
//! - [`server`] — assembles pingora services and runs them; [`reload`] —
//!   live configuration reload.
//! - [`admin`] — `/metrics`, `/healthz`, `/readyz`, `/status`.
//! - [`metrics`] — every metric, registered once.
//! - [`emulator`] — the bundled identity-service emulator and echo upstream
//!   used by the demo, the tests and the benchmarks.
//! - [`scope`], [`tls`], [`clock`], [`runtime`] — small shared helpers.

pub mod access;
pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod downstream_tls;
pub mod emulator;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod runtime;
pub mod scope;
pub mod server;
pub mod tls;
pub mod token_cmd;
pub mod upstream;
