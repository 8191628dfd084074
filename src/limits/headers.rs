//! `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-12):
//! one list member per rate or message limit of the route. A token bucket
//! maps onto the draft as: `q` the requests per window and `w` the window
//! in seconds (the steady rate), `r` the whole requests the bucket would
//! admit at once now, `t` the seconds until it is full again. A message
//! quota: `q` messages per calendar window of `w` seconds, `r` messages
//! left, `t` seconds until the window ends.

use http::HeaderValue;

use crate::config::{LimitConfig, LimitKind};

/// The route's `RateLimit-Policy` value, built once; `None` when it has no
/// rate or message limit.
pub fn policy(limits: &[&LimitConfig]) -> Option<HeaderValue> {
    let items: Vec<String> = limits
        .iter()
        .filter_map(|l| match l.kind {
            LimitKind::Rate {
                count, window_secs, ..
            } => Some(format!("\"{}\";q={count};w={window_secs}", l.name)),
            LimitKind::Messages { count, window_secs } => {
                Some(format!("\"{}\";q={count};w={window_secs}", l.name))
            }
            LimitKind::Concurrency { .. } => None,
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    HeaderValue::try_from(items.join(", ")).ok()
}

/// One `RateLimit` member: remaining `r`, seconds `t`.
pub fn state_item(name: &str, remaining: u64, reset_secs: u64) -> String {
    format!("\"{name}\";r={remaining};t={reset_secs}")
}

/// The `RateLimit` value of the members gathered for one request.
pub fn state(items: &[String]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    HeaderValue::try_from(items.join(", ")).ok()
}

/// Microseconds up to whole seconds, at least one (`Retry-After`, `t`).
pub fn whole_secs(us: u64) -> u64 {
    us.div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitPer;

    #[test]
    fn policy_lists_rate_and_message_limits_in_the_drafts_syntax() {
        let rate = LimitConfig {
            name: "per-consumer".into(),
            kind: LimitKind::Rate {
                count: 20,
                window_secs: 1,
                burst: 40,
            },
            per: LimitPer::Caller,
        };
        let billing = LimitConfig {
            name: "billing".into(),
            kind: LimitKind::Messages {
                count: 5000,
                window_secs: 3600,
            },
            per: LimitPer::All,
        };
        let sync = LimitConfig {
            name: "sync".into(),
            kind: LimitKind::Concurrency {
                max: 3,
                queue_timeout: std::time::Duration::ZERO,
            },
            per: LimitPer::All,
        };
        assert_eq!(
            policy(&[&sync, &rate, &billing]).unwrap(),
            "\"per-consumer\";q=20;w=1, \"billing\";q=5000;w=3600"
        );
        assert_eq!(policy(&[&sync]), None);
        assert_eq!(
            state(&[state_item("per-consumer", 0, 3)]).unwrap(),
            "\"per-consumer\";r=0;t=3"
        );
        assert_eq!(whole_secs(1), 1);
        assert_eq!(whole_secs(1_000_001), 2);
        assert_eq!(whole_secs(0), 1);
    }
}
