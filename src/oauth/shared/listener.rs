//! One pub/sub connection per replica, subscribed to every slot's
//! "renewed" channel: a notification wakes the replica's waiters and
//! renewal task for that slot, which then read the new entry. Reconnects
//! with backoff; while it is down, waiters fall back to polling.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::SharedCache;

pub async fn run(cache: Arc<SharedCache>) {
    let pattern = format!("{}renewed:*", cache.settings.key_prefix);
    let mut backoff = Duration::from_millis(200);
    loop {
        let pubsub = match cache.store.client().await {
            Ok(client) => client.get_async_pubsub().await.ok(),
            Err(_) => None,
        };
        if let Some(mut pubsub) = pubsub {
            if pubsub.psubscribe(&pattern).await.is_ok() {
                backoff = Duration::from_millis(200);
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Some(notify) = cache.waiter(message.get_channel_name()) {
                        notify.notify_waiters();
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
