//! Whose token a caller's slot holds, and what the slot asks before and
//! after a grant. The slot knows its caller's family only through
//! [`GrantGuard`], so the family (`callers`), which makes slots, stands
//! above the slot instead of beside it.

use std::sync::atomic::AtomicBool;
use std::sync::Weak;
use std::time::Duration;

use async_trait::async_trait;

use super::caller_identity::{CallerCredential, CallerKey};
use super::error::FetchError;

/// Whose token a slot holds, and the family that answers for it.
pub struct CallerSeat {
    pub key: CallerKey,
    pub credential: CallerCredential,
    pub family: Weak<dyn GrantGuard>,
    /// How far ahead the first fetch may book the token URL's rate
    /// ceiling: as long as the caller's request waits, no longer.
    pub first_wait: Duration,
    /// The identity service accepted this credential once: its renewals
    /// are not held back by the user's attempt ceiling (which the stale
    /// or guessed passwords of others may have filled).
    pub proven: AtomicBool,
}

/// A password grant counted against its user's ceiling until it is known
/// not to have been refused.
pub struct Attempt {
    pub user: CallerKey,
    pub id: u64,
    /// Counted by the fleet in Redis (else by this replica).
    pub fleet: bool,
}

/// What a caller's slot asks its family around a grant.
#[async_trait]
pub trait GrantGuard: Send + Sync {
    /// Before a grant: a refusal the fleet remembers, or the user's
    /// attempt ceiling, holds it back; else the attempt it counts as.
    async fn before_grant(&self, seat: &CallerSeat) -> Result<Option<Attempt>, FetchError>;
    /// The grant succeeded: the credential is proven, the attempt given back.
    async fn succeeded(&self, seat: &CallerSeat, attempt: Option<Attempt>);
    /// An attempt that was not refused stops counting.
    async fn give_back(&self, attempt: Option<Attempt>);
    /// The grant failed with `error`.
    async fn failed(&self, seat: &CallerSeat, error: &FetchError);
}
