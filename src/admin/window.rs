//! The status page's "last 5 minutes", kept on the server: every
//! `STEP` a background task reads the requests counter into a ring of
//! readings; `/status` serves the current counts minus the oldest reading
//! still inside the window. A page opened now shows the traffic of the
//! last minutes, not only what it saw since it opened, and the request
//! path pays nothing for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics;

/// How often the counter is read.
pub const STEP: Duration = Duration::from_secs(10);
/// The window the page shows.
const SPAN: Duration = Duration::from_secs(300);

/// Answers per route and status.
pub type Counts = BTreeMap<String, BTreeMap<String, u64>>;

static READINGS: LazyLock<Mutex<VecDeque<(Instant, Counts)>>> =
    LazyLock::new(|| Mutex::new(VecDeque::new()));

/// The requests counter now: answers per route and status since start.
pub fn current() -> Counts {
    use prometheus::core::Collector;
    let mut counts = Counts::new();
    for family in metrics::metrics().requests.collect() {
        for m in family.get_metric() {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            counts
                .entry(label("route"))
                .or_default()
                .insert(label("status"), m.get_counter().get_value() as u64);
        }
    }
    counts
}

/// Takes one reading; readings older than the window (but the newest of
/// those, the window's base) are dropped.
pub fn sample() {
    let now = Instant::now();
    let mut readings = READINGS.lock().unwrap_or_else(|p| p.into_inner());
    readings.push_back((now, current()));
    while readings.len() > 1 && now.duration_since(readings[1].0) >= SPAN {
        readings.pop_front();
    }
}

/// The window served in `/status`.
#[derive(Debug, Serialize)]
pub struct Window {
    /// How many seconds it covers: 300, or less while the process is younger.
    pub seconds: u64,
    pub routes: Counts,
}

/// Answers per route and status over the last five minutes (or since the
/// first reading, when that is more recent).
pub fn last_five_minutes() -> Window {
    let now = Instant::now();
    let readings = READINGS.lock().unwrap_or_else(|p| p.into_inner());
    let base = readings
        .iter()
        .find(|(at, _)| now.duration_since(*at) <= SPAN)
        .or(readings.front());
    let (seconds, before) = match base {
        Some((at, counts)) => (now.duration_since(*at).as_secs(), counts.clone()),
        None => (0, Counts::new()),
    };
    Window {
        seconds,
        routes: difference(current(), &before),
    }
}

/// `now - before`, keeping only the routes and statuses that moved.
fn difference(now: Counts, before: &Counts) -> Counts {
    let mut out = Counts::new();
    for (route, statuses) in now {
        for (status, n) in statuses {
            let was = before
                .get(&route)
                .and_then(|s| s.get(&status))
                .copied()
                .unwrap_or(0);
            if n > was {
                out.entry(route.clone())
                    .or_default()
                    .insert(status, n - was);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_difference_keeps_what_moved_only() {
        let counts = |v: &[(&str, &str, u64)]| {
            let mut c = Counts::new();
            for (r, s, n) in v {
                c.entry(r.to_string())
                    .or_default()
                    .insert(s.to_string(), *n);
            }
            c
        };
        let before = counts(&[("a", "200", 5), ("a", "404", 1)]);
        let now = counts(&[("a", "200", 9), ("a", "404", 1), ("b", "200", 2)]);
        assert_eq!(
            difference(now, &before),
            counts(&[("a", "200", 4), ("b", "200", 2)])
        );
    }
}
