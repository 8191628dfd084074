//! Per-request state shared across the proxy hooks.

use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;

use super::body_copy::{BodyCopy, Replay};
use super::snapshot::{LiveRoute, Snapshot};
use crate::metrics::metrics;
use crate::oauth::{RouteTokens, TokenSlot};

/// Counts a request as in flight for as long as its context lives, which is
/// what graceful shutdown waits on.
pub struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics().in_flight.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics().in_flight.dec();
    }
}

pub struct RequestCtx {
    /// The configuration this request started under; a reload does not
    /// change it mid-request.
    pub snapshot: Arc<Snapshot>,
    pub request_id: HeaderValue,
    /// Index of the matched route in the snapshot ([`Snapshot::route`]).
    pub route: Option<usize>,
    pub authorization: Option<HeaderValue>,
    pub started: Instant,
    pub upstream_started: Option<Instant>,
    /// Stable error code when the proxy answered the request itself.
    pub error_code: Option<&'static str>,
    /// Who passed the access check (a key or user name; never a credential).
    pub caller: Option<std::sync::Arc<str>>,
    /// Subject of the verified client certificate, on mTLS listeners.
    pub cert_subject: Option<String>,
    /// The client reached us over TLS.
    pub downstream_tls: bool,
    /// Whether (and by whom) the request is being replayed once with a new
    /// token after an upstream 401.
    pub replay: Replay,
    /// The body as it streamed, kept for a replay while within the limit.
    pub body_copy: BodyCopy,
    /// The upstream's 401 head, for a replay that turns out impossible.
    pub refusal: Option<Box<pingora::http::ResponseHeader>>,
    /// The proxy's own replay wrote the answer (or an error) to the client.
    pub replay_answered: bool,
    /// Request body bytes seen so far (counted only for routes with a limit).
    pub body_bytes: u64,
    /// The new token could not be had for the replay.
    pub token_failure: Option<crate::oauth::Unavailable>,
    /// The caller's own slot, on a route whose client acts as each caller.
    pub caller_slot: Option<Arc<TokenSlot>>,
    /// The request's spans (empty when traces are off).
    pub trace: crate::telemetry::RequestTrace,
    /// What the route's traffic limits granted: places held until the
    /// request ends (dropped with the context), the `RateLimit` fields.
    pub admission: Option<crate::limits::Admission>,
    _in_flight: InFlight,
}

impl RequestCtx {
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        RequestCtx {
            snapshot,
            request_id: HeaderValue::from_static(""),
            route: None,
            authorization: None,
            started: Instant::now(),
            upstream_started: None,
            error_code: None,
            caller: None,
            cert_subject: None,
            downstream_tls: false,
            replay: Replay::No,
            body_copy: BodyCopy::default(),
            replay_answered: false,
            refusal: None,
            token_failure: None,
            body_bytes: 0,
            caller_slot: None,
            trace: Default::default(),
            admission: None,
            _in_flight: InFlight::enter(),
        }
    }

    /// A request that found no usable token waited for a fetch: its span
    /// links to the fetch's.
    pub fn link_fetch(&self, slot: &TokenSlot) {
        if let Some(fetch) = slot.fetch_link() {
            self.trace.link(fetch);
        }
    }

    /// The slot whose token this request carries: the route's, or on a
    /// per-caller route the caller's (once the token step found it).
    pub fn slot<'a>(&'a self, route: &'a LiveRoute) -> Option<&'a Arc<TokenSlot>> {
        match &route.tokens {
            RouteTokens::One(slot) => Some(slot),
            RouteTokens::PerCaller(_) => self.caller_slot.as_ref(),
        }
    }
}
