//! A request-rate ceiling per token endpoint, so that no configuration —
//! many clients, short tokens, a failing identity service — can hammer an
//! identity domain (the free tier allows 10 requests/s).
//!
//! A sliding one-second window: at most `per_second` requests in any
//! second. Callers reserve their send time in order and wait for it;
//! nothing fails.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so tests can run it paused.
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(1);

pub struct RateCeiling {
    per_window: usize,
    /// Send times of the last `per_window` requests (reserved, maybe future).
    sent: Mutex<VecDeque<Instant>>,
}

impl RateCeiling {
    /// Rates below one per second still allow one request per second.
    pub fn new(per_second: f64) -> Self {
        RateCeiling {
            per_window: (per_second.floor() as usize).max(1),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a request may be sent; returns how long that took.
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let at = {
            let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            let at = if sent.len() < self.per_window {
                now
            } else {
                (sent[sent.len() - self.per_window] + WINDOW).max(now)
            };
            sent.push_back(at);
            while sent.len() > self.per_window {
                sent.pop_front();
            }
            at
        };
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        at - now
    }
}

/// One ceiling per token URL, shared by every client that uses it.
#[derive(Default)]
pub struct RateCeilings {
    by_url: Mutex<HashMap<String, Arc<RateCeiling>>>,
}

impl RateCeilings {
    pub fn for_url(&self, url: &url::Url, per_second: f64) -> Arc<RateCeiling> {
        self.by_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(url.as_str().to_string())
            .or_insert_with(|| Arc::new(RateCeiling::new(per_second)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_rate_in_any_second() {
        let c = RateCeiling::new(5.0);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..15 {
            c.acquire().await;
            at.push(start.elapsed());
        }
        assert!(
            at[..5].iter().all(|d| *d < Duration::from_millis(1)),
            "{at:?}"
        );
        for i in 5..15 {
            assert!(at[i] - at[i - 5] >= WINDOW, "{i}: {at:?}");
        }
        assert!(
            at[14] < Duration::from_millis(2100),
            "no slower than needed: {at:?}"
        );
    }
}
