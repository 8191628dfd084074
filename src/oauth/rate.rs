//! A request-rate ceiling per token endpoint, so that no configuration —
//! many clients, short tokens, a failing identity service — can hammer an
//! identity domain. Oracle limits the token group per identity domain per
//! second *and* per minute (free tier: 10/s and 150/min) and does not say
//! whether its windows are fixed or sliding, so the ceiling is a rolling
//! bound on both: at most `per_second` requests in any one second and at
//! most `per_minute` in any sixty seconds. Callers reserve their send time
//! in order and wait for it; nothing fails.
//!
//! Hand-written rather than a GCRA limiter (`governor`): GCRA with a burst
//! lets up to about twice the rate through in a rolling window, which is
//! exactly what must not happen here; keeping the last `per_minute` send
//! times gives the exact bound for a few hundred bytes per token URL.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so tests can run it paused.
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

pub struct RateCeiling {
    per_second: usize,
    per_minute: usize,
    /// Send times of the last `max(per_second, per_minute)` requests,
    /// oldest first (reserved, so some may lie in the future).
    sent: Mutex<VecDeque<Instant>>,
}

impl RateCeiling {
    /// Rates below one per second still allow one request per second.
    pub fn new(per_second: f64, per_minute: u32) -> Self {
        RateCeiling {
            per_second: (per_second.floor() as usize).max(1),
            per_minute: (per_minute as usize).max(1),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until a request may be sent; returns how long that took.
    pub async fn acquire(&self) -> Duration {
        let (now, at) = self
            .reserve(None)
            .expect("an unbounded reservation always succeeds");
        Self::wait(now, at).await
    }

    /// [`Self::acquire`] if the request may be sent within `max_wait`;
    /// otherwise books nothing and answers `None` at once.
    pub async fn acquire_within(&self, max_wait: Duration) -> Option<Duration> {
        let (now, at) = self.reserve(Some(max_wait))?;
        Some(Self::wait(now, at).await)
    }

    async fn wait(now: Instant, at: Instant) -> Duration {
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        at - now
    }

    /// Books the earliest send time the bounds allow (not later than
    /// `limit` from now, if given).
    fn reserve(&self, limit: Option<Duration>) -> Option<(Instant, Instant)> {
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let len = sent.len();
        let mut at = now;
        // The request `per_second` sends back must be a second old, the
        // one `per_minute` back a minute old.
        for (n, window) in [(self.per_second, SECOND), (self.per_minute, MINUTE)] {
            if len >= n {
                at = at.max(sent[len - n] + window);
            }
        }
        if limit.is_some_and(|limit| at - now > limit) {
            return None;
        }
        sent.push_back(at);
        while sent.len() > self.per_second.max(self.per_minute) {
            sent.pop_front();
        }
        Some((now, at))
    }
}

/// One ceiling per token URL, shared by every client that uses it.
#[derive(Default)]
pub struct RateCeilings {
    by_url: Mutex<HashMap<String, Arc<RateCeiling>>>,
}

impl RateCeilings {
    pub fn for_url(&self, url: &url::Url, per_second: f64, per_minute: u32) -> Arc<RateCeiling> {
        self.by_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(url.as_str().to_string())
            .or_insert_with(|| Arc::new(RateCeiling::new(per_second, per_minute)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send offsets from the first acquisition, `n` requests in a row.
    async fn sends(c: &RateCeiling, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..n {
            c.acquire().await;
            at.push(start.elapsed());
        }
        at
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_rate_in_any_second() {
        let at = sends(&RateCeiling::new(5.0, 1000), 15).await;
        assert!(
            at[..5].iter().all(|d| *d < Duration::from_millis(1)),
            "{at:?}"
        );
        for i in 5..15 {
            assert!(at[i] - at[i - 5] >= SECOND, "{i}: {at:?}");
        }
        assert!(
            at[14] < Duration::from_millis(2100),
            "no slower than needed: {at:?}"
        );
    }

    /// The rolling bound with timestamps: every window of one second holds
    /// at most 5 sends and every window of sixty seconds at most 12,
    /// wherever the window starts; and sends are not held back longer than
    /// the bound requires.
    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_rate_in_any_second_or_any_minute() {
        let at = sends(&RateCeiling::new(5.0, 12), 40).await;
        for (i, t) in at.iter().enumerate() {
            let in_second = at.iter().filter(|u| **u >= *t && **u < *t + SECOND).count();
            let in_minute = at.iter().filter(|u| **u >= *t && **u < *t + MINUTE).count();
            assert!(in_second <= 5, "send {i}: {in_second} in a second: {at:?}");
            assert!(in_minute <= 12, "send {i}: {in_minute} in a minute: {at:?}");
        }
        // 12 in the first 3 seconds (5, 5, 2), then none until a minute
        // after the first: the per-minute bound, not a fixed window.
        assert!(at[11] < Duration::from_secs(3), "{at:?}");
        assert_eq!(at[12], MINUTE, "{at:?}");
        assert!(at[39] < Duration::from_secs(183), "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_acquisition_books_nothing_beyond_its_bound() {
        let c = RateCeiling::new(2.0, 1000);
        for _ in 0..2 {
            assert_eq!(c.acquire_within(SECOND / 2).await, Some(Duration::ZERO));
        }
        assert_eq!(
            c.acquire_within(SECOND / 2).await,
            None,
            "next send is a second out"
        );
        assert_eq!(
            c.acquire_within(SECOND).await,
            Some(SECOND),
            "within its bound it waits"
        );
        // Refused ones booked nothing: the next free time is unchanged.
        let start = Instant::now();
        c.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "{:?}", start.elapsed());
    }
}
