//! Rate limits as GCRA (the generic cell rate algorithm, a token bucket
//! kept as one instant): each request moves the partition's "theoretical
//! arrival time" one emission interval on; a request that would move it
//! beyond `burst` intervals ahead of now is refused and moves nothing, so
//! a client that keeps retrying while refused does not stay refused (the
//! failure Tyk's sliding log has). The same arithmetic runs in Redis
//! (`fleet::RATE`) for a fleet.

/// A rate in the units GCRA works in: microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Microseconds between two requests at the steady rate.
    pub interval_us: u64,
    /// How far ahead of now the arrival time may run: `burst` intervals.
    pub capacity_us: u64,
}

/// What one request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateAnswer {
    pub admitted: bool,
    /// Refused: microseconds until this request would be admitted.
    pub retry_after_us: u64,
    /// How far the arrival time runs ahead of now after this request:
    /// the bucket is full again after this long.
    pub backlog_us: u64,
}

impl Gcra {
    /// `count` requests per `window_secs`, `burst` at once; `share` divides
    /// both (a replica's part while the fleet's Redis is away), never
    /// below one request.
    pub fn new(count: u32, window_secs: u64, burst: u32, share: u32) -> Self {
        let share = share.max(1) as u64;
        let count = (count as u64 / share).max(1);
        let burst = (burst as u64 / share).max(1);
        let interval_us = (window_secs * 1_000_000 / count).max(1);
        Gcra {
            interval_us,
            capacity_us: interval_us * burst,
        }
    }

    /// One request at `now_us` against the arrival time `tat_us`
    /// (updated only when admitted).
    pub fn take(&self, tat_us: &mut u64, now_us: u64) -> RateAnswer {
        let tat = (*tat_us).max(now_us);
        let next = tat + self.interval_us;
        if next - now_us > self.capacity_us {
            return RateAnswer {
                admitted: false,
                retry_after_us: next - now_us - self.capacity_us,
                backlog_us: tat - now_us,
            };
        }
        *tat_us = next;
        RateAnswer {
            admitted: true,
            retry_after_us: 0,
            backlog_us: next - now_us,
        }
    }

    /// Whole requests that could still be admitted at once after `answer`.
    pub fn remaining(&self, answer: &RateAnswer) -> u64 {
        self.capacity_us.saturating_sub(answer.backlog_us) / self.interval_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_one_request_per_interval() {
        let g = Gcra::new(20, 1, 40, 1);
        assert_eq!(g.interval_us, 50_000);
        let mut tat = 0;
        let now = 1_000_000_000;
        for i in 0..40 {
            assert!(g.take(&mut tat, now).admitted, "request {i} of the burst");
        }
        let refused = g.take(&mut tat, now);
        assert!(!refused.admitted);
        assert_eq!(refused.retry_after_us, 50_000);
        assert_eq!(g.remaining(&refused), 0);
        assert!(g.take(&mut tat, now + 50_000).admitted);
        assert!(!g.take(&mut tat, now + 50_000).admitted);
    }

    #[test]
    fn refused_requests_consume_nothing() {
        let g = Gcra::new(1, 1, 1, 1);
        let mut tat = 0;
        assert!(g.take(&mut tat, 0).admitted);
        let before = tat;
        for _ in 0..1000 {
            assert!(!g.take(&mut tat, 10).admitted);
        }
        assert_eq!(tat, before, "a refusal moves nothing");
        assert!(g.take(&mut tat, 1_000_000).admitted);
    }

    #[test]
    fn a_share_divides_rate_and_burst_but_leaves_at_least_one() {
        let g = Gcra::new(30, 60, 30, 3);
        assert_eq!(g.interval_us, 6_000_000);
        assert_eq!(g.capacity_us, 60_000_000);
        let tiny = Gcra::new(2, 1, 2, 5);
        assert_eq!(tiny.capacity_us, tiny.interval_us);
    }

    #[test]
    fn remaining_counts_whole_requests_left_in_the_bucket() {
        let g = Gcra::new(10, 1, 10, 1);
        let mut tat = 0;
        let first = g.take(&mut tat, 5_000_000);
        assert_eq!(g.remaining(&first), 9);
    }
}
