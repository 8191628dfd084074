//! Obtaining and keeping access tokens: the token endpoint client
//! (`transport`, `client_auth`, `grant`), parsed tokens (`token`), error
//! classification (`error`), one slot per client and scopes with its
//! single-flight fetch (`slot`, `backoff`), the cache of slots (`cache`)
//! and background renewal (`refresher`).

pub(crate) mod assertion;
mod backoff;
mod cache;
pub(crate) mod caller_identity;
pub(crate) mod callers;
mod client_auth;
mod error;
pub(crate) mod grant;
mod rate;
pub(crate) mod refresher;
mod seat;
pub(crate) mod shared;
mod slot;
pub(crate) mod token;
pub(crate) mod transport;
mod unauthorized;

pub use cache::{fetch_missing, CacheError, RouteTokens, TokenCache};
pub use callers::{spawn_sweeper, CallerFailure};
pub use error::FetchError;
pub use shared::SharedCache;
pub use slot::{TokenSlot, Unavailable};
pub use unauthorized::{Episode, Verdict};
