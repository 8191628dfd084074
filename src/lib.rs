//! bearer-proxy: a reverse proxy that adds Oracle identity-domain access
//! tokens to requests bound for Oracle Integration.
//!
//! # Layout
//!
//! - [`cli`] — `run`, `check`, `token`, `reload`, `doctor`, `demo`,
//!   `emulator`; `token_cmd` — the `token` command; `doctor` — the
//!   onboarding checks; `keygen` — a shared-cache key; `logging` —
//!   tracing set-up.
//! - [`config`] — YAML → raw structs → validated [`config::Config`]
//!   (`config::validate`, one file per section; every default in
//!   [`config::defaults`]; `Secret`, which redacts itself).
//! - `route_table` — host + longest-prefix route table (pure, benchmarked).
//! - `access` — per-route access rules (API keys, Basic users, CIDRs,
//!   client certificates, Basic passed to the identity service) and
//!   `caller_subjects_file`.
//! - `oauth` — token endpoint client, token slots with single-flight
//!   fetches, the token cache, background renewal, per-caller slots
//!   (`oauth::callers`).
//! - `limits` — traffic limits in front of the upstream: concurrency
//!   ceilings with a queue, rate limits, message quotas; shared by a fleet
//!   through Redis.
//! - `proxy` — the pingora `ProxyHttp` hooks; the request-path
//!   `Snapshot`, header rewrite, limits, typed refusals, 401 replay.
//! - `upstream` — upstream peers: background DNS, TLS trust;
//!   `downstream_tls` — TLS listeners and client certificates.
//! - `connections` — the connection ceiling around pingora's proxy app.
//! - `server` — assembles pingora services and runs them; `reload` —
//!   live configuration reload.
//! - `admin` — `/metrics`, `/healthz`, `/readyz`, `/status`, `/reload`.
//! - `metrics` — every metric, one struct registered once.
//! - `telemetry` — OpenTelemetry traces of requests, upstream attempts,
//!   token fetches and shared-cache operations, exported over OTLP/HTTP.
//! - [`emulator`] (feature `emulator`, on by default) — the bundled
//!   identity-service emulator and echo upstream used by the demo, the
//!   tests and the benchmarks.
//! - `scope`, `tls`, `clock`, `runtime` — small shared helpers.
//!
//! Modules are private; the few items tests, benches and fuzz targets use
//! are re-exported below.

mod access;
mod admin;
pub mod cli;
mod clock;
pub mod config;
mod connections;
mod doctor;
mod downstream_tls;
#[cfg(feature = "emulator")]
pub mod emulator;
#[doc(hidden)]
pub mod fastpath;
#[doc(hidden)]
pub mod fuzzing;
mod keygen;
mod launch;
mod limits;
mod logging;
mod metrics;
mod oauth;
mod onboard;
mod proxy;
mod reload;
mod route_table;
mod runtime;
mod scope;
mod server;
mod telemetry;
mod tls;
mod token_cmd;
mod upstream;
mod upstream_pool;

pub use access::{api_key_line, AccessPolicy, ApiKeys, BasicUsers, Caller, Decision};
pub use clock::unix_now;
pub use oauth::transport::classify;
pub use oauth::TokenCache;
pub use proxy::headers::{rewrite_upstream_headers, UpstreamHeaders};
pub use route_table::RouteTable;
pub use tls::install_crypto_provider;
