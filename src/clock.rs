//! Wall-clock helpers for what people read (status, metrics). Expiry logic
//! itself runs on monotonic `Instant`s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// RFC 3339 with second precision, e.g. `2026-11-23T10:00:00Z`.
pub fn rfc3339(unix: f64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}
