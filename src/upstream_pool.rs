//! pingora's upstream connection pool, counted per route: each upstream
//! connection a request used was `new` or `reused`, and each reusable one
//! pingora threw away was `discarded`
//! (`bearer_proxy_upstream_connections_total{route,outcome}`).
//!
//! pingora 0.9's global pool loses a reusable connection when its
//! idle-watch task on another thread still holds the connection's `Arc`
//! (`connectors::reused_stream`: `Arc::try_unwrap` fails), and says so
//! with an ERROR line per request ("failed to acquire reusable stream")
//! that operators would chase. The log layer turns that line into a count
//! instead ([`pool_discard`]); the request it happened to is known through
//! a task-local scope around the request ([`scope`]), read when pingora
//! reports the connection the request got (`connected_to_upstream`).

use std::cell::Cell;
use std::future::Future;

use prometheus::IntCounter;

use crate::metrics::{self, metrics};

tokio::task_local! {
    /// Discards seen by the request this task is serving, not yet counted.
    static DISCARDS: Cell<u32>;
}

/// pingora's log target and message of a discarded reusable connection.
pub const DISCARD_TARGET: &str = "pingora_core::connectors";
pub const DISCARD_MESSAGE: &str = "failed to acquire reusable stream";

/// Runs a connection's requests (`fut`) where discards can be told apart.
pub fn scope<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    DISCARDS.scope(Cell::new(0), fut)
}

/// A discard reported by pingora's log: kept for the request in scope,
/// or counted at once without a route (HTTP/2, served outside a scope).
pub fn pool_discard() {
    if DISCARDS.try_with(|d| d.set(d.get() + 1)).is_err() {
        outcome(metrics::NO_ROUTE, "discarded").inc();
    }
}

fn outcome(route: &str, outcome: &str) -> IntCounter {
    metrics()
        .upstream_connections
        .with_label_values(&[route, outcome])
}

/// A route's three counters, resolved once per snapshot.
pub struct RouteConnections {
    new: IntCounter,
    reused: IntCounter,
    discarded: IntCounter,
}

impl RouteConnections {
    pub fn new(route: &str) -> Self {
        RouteConnections {
            new: outcome(route, "new"),
            reused: outcome(route, "reused"),
            discarded: outcome(route, "discarded"),
        }
    }

    /// The connection a request of this route got, and the discards the
    /// request saw on the way.
    pub fn connected(&self, reused: bool) {
        if reused {
            self.reused.inc();
        } else {
            self.new.inc();
        }
        let discards = DISCARDS.try_with(|d| d.replace(0)).unwrap_or(0);
        if discards > 0 {
            self.discarded.inc_by(u64::from(discards));
        }
    }

    /// Reusable connections the fast path's pool found closed and dropped.
    pub fn discarded(&self, n: u64) {
        if n > 0 {
            self.discarded.inc_by(n);
        }
    }
}
