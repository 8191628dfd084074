//! How long a slot waits after a failed fetch.

use std::time::Duration;

/// Exponential backoff with full jitter (uniform over the capped window),
/// so clients that failed together do not retry together; never below
/// 50 ms.
pub fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let capped = exp.min(max);
    capped
        .mul_f64(rand::random::<f64>())
        .max(MIN_BACKOFF.min(capped))
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// A credential or scope rejection is remembered at least this long:
/// requests fail fast instead of asking the identity service again, since
/// the answer will not change until the configuration does.
pub const REJECTION_MEMORY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let i = Duration::from_secs(1);
        let m = Duration::from_secs(60);
        for n in 1..40 {
            let d = backoff(i, m, n);
            let full = (i * 2u32.pow((n - 1).min(20))).min(m);
            assert!(d <= full && d >= Duration::from_millis(50), "n={n} d={d:?}");
        }
    }
}
