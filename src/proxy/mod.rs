//! The pingora `ProxyHttp` implementation: short hooks that delegate to
//! the route table, the access rules, the token cache and the refusals.
//! What the hooks read is a [`Snapshot`]; what they set upstream is in
//! [`headers`]; every answer the proxy makes itself is a [`Refusal`].

pub(crate) mod admit;
pub mod answer;
pub(crate) mod body_copy;
pub mod ctx;
pub mod headers;
mod limits;
pub(crate) mod path_policy;
pub mod record;
pub mod refusal;
mod replay;
pub mod request_id;
mod snapshot;
pub(crate) mod unauthorized;
pub mod view;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};

use crate::downstream_tls::CertSubject;
use crate::metrics::metrics;
use body_copy::Replay;
pub use ctx::RequestCtx;
use headers::{finish_response_head, rewrite_for_upstream};
use refusal::{refuse, Refusal};
pub use snapshot::{LiveRoute, Snapshot, SnapshotError};
use view::client_ip;

pub struct BearerProxy {
    /// Swapped whole by a reload.
    pub current: Arc<ArcSwap<Snapshot>>,
}

/// An upstream 401 the slot wants renewed ([`answer::judge`]): the
/// request is replayed once with a new token — by pingora from its retry
/// buffer, or by the proxy for longer bodies; a body too large to keep
/// passes the 401 to the client.
fn after_unauthorized(
    session: &Session,
    answer: &ResponseHeader,
    ctx: &mut RequestCtx,
) -> pingora::Result<()> {
    let snapshot = ctx.snapshot.clone();
    let route = snapshot.route(ctx.route)?;
    ctx.replay = replay::plan(
        &ctx.body_copy,
        snapshot.limits.max_replay_body_bytes,
        limits::declared_length(session.req_header()),
        session.as_ref().retry_buffer_truncated(),
    );
    match ctx.replay {
        Replay::No => {
            unauthorized::too_large_to_replay(route, ctx);
            return Ok(());
        }
        // Passed on after all if the body turns out too long; counted
        // when the proxy's replay goes out or does not.
        Replay::ByProxy => ctx.refusal = Some(Box::new(answer.clone())),
        // pingora resends the body from the start through
        // request_body_filter, which counts it again.
        Replay::ByPingora => {
            ctx.body_bytes = 0;
            unauthorized::count(route, unauthorized::REPLAYED);
        }
    }
    metrics()
        .upstream_unauthorized_retries
        .with_label_values(&[route.name.as_str()])
        .inc();
    // The upstream refused before acting on the request, so replaying is
    // safe whatever the method.
    let mut e = Error::explain(
        ErrorType::HTTPStatus(401),
        "upstream answered 401; replaying with a new token",
    );
    // pingora retries from its buffer; the proxy's own replay happens in
    // fail_to_proxy.
    e.set_retry(ctx.replay == Replay::ByPingora);
    Err(e)
}

/// What went wrong while proxying, as the client hears it; `None` when the
/// client is gone and there is nobody to answer.
fn refusal_for_failure(e: &Error, ctx: &mut RequestCtx) -> Option<Refusal> {
    if let Some(unavailable) = ctx.token_failure.take() {
        return Some(Refusal::Token(unavailable));
    }
    Some(match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(413)) => Refusal::BodyTooLarge,
        (_, ErrorType::HTTPStatus(code)) if (400..600).contains(code) => {
            Refusal::Unprocessable(*code)
        }
        (ErrorSource::Upstream, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
            Refusal::UpstreamTimeout
        }
        (ErrorSource::Upstream, _) | (_, ErrorType::ConnectNoRoute) => Refusal::UpstreamUnavailable,
        (
            ErrorSource::Downstream,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
        ) => return None,
        (ErrorSource::Downstream, _) => Refusal::MalformedRequest,
        _ => Refusal::Internal("the proxy failed to handle the request"),
    })
}

/// The current upstream attempt failed without an answer.
fn trace_failure(ctx: &mut RequestCtx, e: &Error) {
    if !ctx.trace.is_active() {
        return;
    }
    let snapshot = ctx.snapshot.clone();
    if let Ok(route) = snapshot.route(ctx.route) {
        ctx.trace.failed(e.etype().as_str(), &route.upstream.target);
    }
}

#[async_trait]
impl ProxyHttp for BearerProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.current.load_full())
    }

    /// No downstream modules: pingora's default installs a response
    /// compression module that is disabled yet still runs on every
    /// request. The proxy never compresses (the upstream's encoding passes
    /// through untouched).
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    /// Per-connection and per-request set-up that every later hook relies
    /// on: client time-outs, TLS facts, the request id.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let limits = ctx.snapshot.limits;
        // Slow or idle clients cannot pin connections.
        session.set_read_timeout(Some(limits.client_read_timeout));
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(limits.client_idle_timeout.as_secs().max(1)));
        }
        if let Some(tls) = session.digest().and_then(|d| d.ssl_digest.as_ref()) {
            ctx.downstream_tls = true;
            ctx.cert_subject = tls.extension.get::<CertSubject>().map(|s| s.0.clone());
        }
        let req = session.req_header();
        ctx.request_id = request_id::from_headers(&req.headers);
        ctx.trace = crate::telemetry::RequestTrace::start(&req.headers, &req.method);
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        match admit::admit(session, ctx).await {
            Ok(()) => Ok(false),
            Err(Refusal::Limited(l)) if l.reason == crate::limits::Reason::Gone => {
                // Left while queued: nobody to answer.
                ctx.error_code = Some("client_gone");
                Error::e_explain(ErrorType::ConnectionClosed, "client left while queued")
            }
            Err(refusal) => {
                let (code, answered) = refuse(session, &ctx.request_id, refusal).await;
                ctx.error_code = Some(code);
                answered
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let route = ctx.snapshot.route(ctx.route)?;
        match route.upstream.peer.load().as_ref() {
            Some(peer) => Ok(Box::new(HttpPeer::clone(peer))),
            None => Error::e_explain(
                ErrorType::ConnectNoRoute,
                format!(
                    "upstream host {} has not resolved yet",
                    route.upstream.target.host
                ),
            ),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let snapshot = ctx.snapshot.clone();
        let route = snapshot.route(ctx.route)?;
        if ctx.replay == Replay::ByPingora {
            let Some(slot) = ctx.slot(route).cloned() else {
                return Error::e_explain(ErrorType::InternalError, "a replay without a token slot");
            };
            // The token that drew the 401 was purged: this waits for (or
            // shares) the fetch of a new one.
            let result = slot.authorization().await;
            ctx.link_fetch(&slot);
            match result {
                Ok(value) => ctx.authorization = Some(value),
                Err(unavailable) => {
                    ctx.token_failure = Some(unavailable);
                    return Error::e_explain(ErrorType::InternalError, "no token for the replay");
                }
            }
        }
        rewrite_for_upstream(
            &view::Downstream::view(session),
            upstream_request,
            ctx,
            route,
            ctx.authorization.as_ref(),
        );
        ctx.trace.attempt(upstream_request, &route.upstream.target);
        ctx.upstream_started = Some(Instant::now());
        Ok(())
    }

    /// Keeps a copy of the body for a replay after a 401, and counts body
    /// bytes as they stream for routes with `max_body_bytes` (a chunked
    /// body declares no length up front).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(admission) = ctx.admission.as_mut().filter(|a| a.counts_body()) {
            admission.saw(body.as_ref().map_or(0, |b| b.len()));
            if end_of_stream {
                admission.body_ended().await;
            }
        }
        let Some(chunk) = body.as_ref() else {
            return Ok(());
        };
        if ctx.replay == Replay::No {
            ctx.body_copy
                .keep(chunk, ctx.snapshot.limits.max_replay_body_bytes);
        }
        let Some(limit) = ctx
            .route
            .and_then(|i| ctx.snapshot.routes[i].max_body_bytes)
        else {
            return Ok(());
        };
        ctx.body_bytes += chunk.len() as u64;
        if ctx.body_bytes > limit {
            ctx.error_code = Some(Refusal::BodyTooLarge.code());
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over the route's max_body_bytes",
            );
        }
        Ok(())
    }

    /// Every upstream answer: anything but 401 tells the slot its token
    /// works (ending the watch on a token that replaced a refused one); a
    /// 401 goes to [`after_unauthorized`].
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let snapshot = ctx.snapshot.clone();
        let route = snapshot.route(ctx.route)?;
        match answer::judge(route, ctx, upstream_response) {
            answer::Judged::PassOn => Ok(()),
            answer::Judged::Renew => after_unauthorized(session, upstream_response, ctx),
        }
    }

    /// Counts the connection by route: new, reused, and the reusable ones
    /// pingora's pool discarded for this request on the way.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Ok(route) = ctx.snapshot.route(ctx.route) {
            route.connections.connected(reused);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        trace_failure(ctx, &e);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.replay != Replay::No && matches!(e.etype(), ErrorType::HTTPStatus(401)) {
            // Our own replay signal: keep it.
            e.set_retry(ctx.replay == Replay::ByPingora);
            return e;
        }
        trace_failure(ctx, &e);
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        finish_response_head(upstream_response, ctx)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if ctx.replay == Replay::ByProxy && !ctx.replay_answered {
            return replay::resend(session, ctx).await;
        }
        let Some(refusal) = refusal_for_failure(e, ctx) else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        let reply = refusal.reply();
        ctx.error_code = Some(reply.code);
        if session.response_written().is_none() {
            // pingora closes the connection after a failed proxy attempt;
            // say so, or a keep-alive client sends its next request into
            // a closing socket.
            session.set_keepalive(None);
            if let Err(write_err) = reply.send(session, &ctx.request_id).await {
                tracing::debug!(error = %write_err, "could not send error response");
            }
        }
        FailToProxy {
            error_code: reply.status,
            can_reuse_downstream: false,
        }
    }

    /// The proxy's own replay after a 401 ends pingora's attempt with an
    /// error that is not one; whatever went wrong in the replay is logged
    /// there.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        ctx.replay_answered || ctx.error_code == Some("client_gone")
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let req = session.req_header();
        let served = record::Served {
            method: &req.method,
            path: req.uri.path(),
            status,
            client_ip: client_ip(session),
            failed: e.is_some(),
        };
        record::finish(&served, ctx);
    }
}
