//! The connection ceiling (`server.max_connections`): client connections
//! held at once, all listeners together. Two checks read one gate:
//! pingora's connection filter ([`GateFilter`], right after `accept()`,
//! before any TLS work) reserves a place or drops the connection, so a
//! flood beyond the ceiling costs no handshake; then an app of ours around
//! pingora's `HttpProxy` claims the reservation when the stream (after its
//! handshake) reaches it, and the connection holds its place for its whole
//! life — pingora's keep-alive loop runs inside it — so a freed place
//! admits the next. A reservation whose handshake never completes lapses
//! after `RESERVATION_LAPSE`.
//!
//! Between requests an admitted HTTP/1 connection is parked small
//! (`keepalive`); HTTP/2 connections run pingora's own loop.

mod keepalive;

pub use keepalive::Timing;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};
use serde::Serialize;

use crate::metrics::metrics;

/// One listener's handles.
struct Listener {
    address: SocketAddr,
    open: IntGauge,
    refused: IntCounter,
}

/// How long a place reserved by the filter waits for its connection's
/// handshake before it is given to another. pingora tells us nothing when
/// a handshake fails, so a connection that never completes one holds its
/// reservation this long: short, because a flood of bare TCP connects
/// could otherwise keep the ceiling full; a slower handshake that
/// outlives it is still admitted by the app's own check.
const RESERVATION_LAPSE: Duration = Duration::from_secs(3);

/// Open connections against the ceiling, per listener and in all.
pub struct ConnectionGate {
    max: usize,
    open: AtomicUsize,
    /// Places the filter reserved for connections still in their
    /// handshake, by when (oldest first).
    reserved: Mutex<VecDeque<Instant>>,
    listeners: Vec<Listener>,
    /// Connections the filter dropped: pingora's filter is not told which
    /// listener accepted them.
    refused_unattributed: IntCounter,
}

/// What `/status` shows.
#[derive(Debug, Serialize)]
pub struct ConnectionStatus {
    pub open: usize,
    pub max: usize,
    pub refused: u64,
}

impl ConnectionGate {
    /// `listeners`: every listen address (plain and TLS), as configured.
    pub fn new(max: usize, listeners: &[SocketAddr]) -> Arc<Self> {
        let m = metrics();
        Arc::new(ConnectionGate {
            max,
            open: AtomicUsize::new(0),
            reserved: Mutex::new(VecDeque::new()),
            refused_unattributed: m.connections_refused.with_label_values(&["any"]),
            listeners: listeners
                .iter()
                .map(|a| {
                    let label = a.to_string();
                    Listener {
                        address: *a,
                        open: m.connections.with_label_values(&[&label]),
                        refused: m.connections_refused.with_label_values(&[&label]),
                    }
                })
                .collect(),
        })
    }

    /// The listener a connection came in on: by its local address, or by
    /// port for a listener bound to an unspecified address.
    fn listener_of(&self, local: Option<SocketAddr>) -> Option<&Listener> {
        let local = local?;
        self.listeners
            .iter()
            .find(|l| l.address == local)
            .or_else(|| {
                self.listeners
                    .iter()
                    .find(|l| l.address.ip().is_unspecified() && l.address.port() == local.port())
            })
    }

    /// The filter's check: a place reserved for a connection about to
    /// begin its handshake, or `false` (and counted) at the ceiling.
    fn reserve(&self) -> bool {
        let now = Instant::now();
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        while reserved
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RESERVATION_LAPSE)
        {
            reserved.pop_front();
        }
        if self.open.load(Ordering::Acquire) + reserved.len() >= self.max {
            self.refused_unattributed.inc();
            return false;
        }
        reserved.push_back(now);
        true
    }

    /// The app's claim of a reservation the filter made (the oldest).
    fn claim(&self) {
        self.reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
    }

    /// A place for a new connection, or `None` at the ceiling.
    fn admit(self: &Arc<Self>, local: Option<SocketAddr>) -> Option<Place> {
        self.claim();
        let listener = self
            .listener_of(local)
            .map(|l| (l.open.clone(), l.refused.clone()));
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        match (taken, listener) {
            (true, l) => {
                if let Some((open, _)) = &l {
                    open.inc();
                }
                Some(Place {
                    gate: self.clone(),
                    open: l.map(|(open, _)| open),
                })
            }
            (false, l) => {
                if let Some((_, refused)) = l {
                    refused.inc();
                }
                None
            }
        }
    }

    pub fn status(&self) -> ConnectionStatus {
        ConnectionStatus {
            open: self.open.load(Ordering::Relaxed),
            max: self.max,
            refused: self.listeners.iter().map(|l| l.refused.get()).sum::<u64>()
                + self.refused_unattributed.get(),
        }
    }
}

/// pingora's connection filter over the gate: runs after `accept()` and
/// before any TLS work, on every listener.
#[derive(Debug)]
pub struct GateFilter(pub Arc<ConnectionGate>);

impl std::fmt::Debug for ConnectionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionGate")
            .field("max", &self.max)
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish()
    }
}

#[async_trait]
impl pingora::listeners::ConnectionFilter for GateFilter {
    async fn should_accept(&self, _peer: Option<&SocketAddr>) -> bool {
        let accepted = self.0.reserve();
        if !accepted {
            tracing::debug!("connection dropped before its handshake: max_connections reached");
        }
        accepted
    }
}

/// An admitted connection's place, given back when it closes.
struct Place {
    gate: Arc<ConnectionGate>,
    open: Option<IntGauge>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(open) = &self.open {
            open.dec();
        }
    }
}

/// `inner` (pingora's `HttpProxy`) behind the gate.
pub struct GatedApp<A> {
    pub inner: Arc<A>,
    pub gate: Arc<ConnectionGate>,
    /// The current settings of the wait between requests and of the
    /// head's reading, read afresh for every request so a reload applies
    /// to connections already open.
    pub timing: Box<dyn Fn() -> keepalive::Timing + Send + Sync>,
    /// Plain HTTP/1 requests served by our own transport
    /// (`server.fast_path`); `None`: all by pingora's.
    pub fast: Option<crate::fastpath::serve::FastPath>,
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for GatedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        let Some(_place) = self.gate.admit(local) else {
            tracing::debug!("connection refused: max_connections reached");
            return None;
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // HTTP/2 multiplexes its requests: pingora's loop, in the place.
            let mut next = Some(stream);
            while let Some(stream) = next {
                next = ServerApp::process_new(&self.inner, stream, shutdown).await;
            }
        } else {
            keepalive::serve_http1(
                &self.inner,
                stream,
                &*self.timing,
                self.fast.as_ref(),
                shutdown,
            )
            .await;
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await
    }
}
