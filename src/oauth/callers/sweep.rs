//! The idle sweep of a caller family, on the token runtime. It holds the
//! family weakly: a reload that drops the family ends its sweep.

use std::sync::Arc;

use tokio::sync::watch;

use super::CallerSlots;

/// Sweeps `family`'s idle callers until it is dropped or `shutdown` turns true.
pub fn spawn_sweeper(family: &Arc<CallerSlots>, mut shutdown: watch::Receiver<bool>) {
    let weak = Arc::downgrade(family);
    let interval = family.sweep_interval();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            match weak.upgrade() {
                Some(family) => {
                    family.sweep_idle();
                }
                None => return,
            }
        }
    });
}
