//! Background renewal: one task per slot that sleeps until the token's
//! renewal time (or the end of a failure backoff) and fetches again, so a
//! warm cache never makes a request wait for the identity service. With a
//! shared cache it also takes the tokens other replicas publish.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::slot::TokenSlot;

/// Starts renewing `slot` on the current runtime until `shutdown` turns
/// true or the slot is retired by a reload.
pub fn spawn(slot: Arc<TokenSlot>, shutdown: watch::Receiver<bool>) {
    tokio::spawn(renew_forever(slot, shutdown));
}

async fn renew_forever(slot: Arc<TokenSlot>, mut shutdown: watch::Receiver<bool>) {
    let mut changed = slot.subscribe();
    // With a shared cache: another replica published this slot's token.
    let published = slot.shared_notify();
    loop {
        if *shutdown.borrow() || slot.is_retired() {
            return;
        }
        changed.borrow_and_update();
        let due = slot.next_action(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {
                // Another fetch may have landed just now; only act if still due.
                if slot.next_action(Instant::now()) <= Instant::now() {
                    let _ = slot.refresh().await;
                }
            }
            // A request-path fetch finished: re-plan from its result.
            _ = changed.changed() => {}
            _ = async { match &published {
                Some(notify) => notify.notified().await,
                None => std::future::pending().await,
            } } => slot.adopt_if_newer().await,
            _ = shutdown.changed() => {}
        }
    }
}
