//! Message quotas as Oracle Integration meters them: one message per
//! started 50 KB of request body (at least one), counted in fixed
//! calendar windows (UTC hours or days). A request is admitted only when
//! the window's count plus its messages stays within the quota.

use crate::config::defaults::MESSAGE_BYTES;

/// Messages a body of `bytes` costs: one per started 51,200 bytes, at least one.
pub fn messages_for(bytes: u64) -> u64 {
    bytes.div_ceil(MESSAGE_BYTES).max(1)
}

/// A partition's count in its current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Which window (`unix seconds / window length`).
    pub index: u64,
    pub used: u64,
}

/// What one request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaAnswer {
    pub admitted: bool,
    /// Messages counted in the window after this request.
    pub used: u64,
    /// Seconds until the window ends.
    pub reset_secs: u64,
}

/// Counts `messages` in the window of `now_secs` when they fit in `quota`
/// (or always, with `check` false: the rest of a chunked body that was
/// already admitted).
pub fn take(
    window: &mut Window,
    quota: u64,
    window_secs: u64,
    now_secs: u64,
    messages: u64,
    check: bool,
) -> QuotaAnswer {
    let index = now_secs / window_secs;
    if window.index != index {
        *window = Window { index, used: 0 };
    }
    let reset_secs = (index + 1) * window_secs - now_secs;
    let admitted = !check || window.used + messages <= quota;
    if admitted {
        window.used += messages;
    }
    QuotaAnswer {
        admitted,
        used: window.used,
        reset_secs,
    }
}

/// Gives back messages counted for a request that was then refused by a
/// later step (it never reached Oracle Integration).
pub fn give_back(window: &mut Window, messages: u64) {
    window.used = window.used.saturating_sub(messages);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_started_50_kb() {
        assert_eq!(messages_for(0), 1);
        assert_eq!(messages_for(1), 1);
        assert_eq!(messages_for(51_200), 1);
        assert_eq!(messages_for(51_201), 2);
        assert_eq!(messages_for(40_000), 1);
        assert_eq!(messages_for(60_000), 2);
        assert_eq!(messages_for(120_000), 3);
    }

    #[test]
    fn a_request_is_admitted_only_when_it_fits_and_the_next_window_starts_afresh() {
        let mut w = Window::default();
        let hour = 3600;
        let now = 10 * hour + 100;
        assert!(take(&mut w, 5, hour, now, 3, true).admitted);
        let refused = take(&mut w, 5, hour, now, 3, true);
        assert!(!refused.admitted, "3 + 3 > 5");
        assert_eq!(refused.used, 3, "a refusal counts nothing");
        assert_eq!(refused.reset_secs, hour - 100);
        assert!(take(&mut w, 5, hour, now, 2, true).admitted);
        assert_eq!(
            take(&mut w, 5, hour, now, 4, false).used,
            9,
            "unchecked rest"
        );
        let next = take(&mut w, 5, hour, 11 * hour, 1, true);
        assert!(next.admitted);
        assert_eq!(next.used, 1);
        give_back(&mut w, 1);
        assert_eq!(w.used, 0);
    }
}
