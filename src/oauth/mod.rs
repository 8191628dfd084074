//! Obtaining and keeping access tokens: the token endpoint client
//! (`transport`, `client_auth`, `grant`), parsed tokens (`token`), error
//! classification (`error`), the shared cache (`cache`) and background
//! renewal (`refresher`).

pub mod assertion;
pub mod cache;
pub mod client_auth;
pub mod error;
pub mod grant;
pub mod rate;
pub mod refresher;
pub mod token;
pub mod transport;

pub use cache::{TokenCache, TokenSlot, Unavailable};
pub use error::{FetchError, IdpError};
