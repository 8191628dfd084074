//! Admission: the checks a request passes before it is forwarded, each
//! passing or naming its `Refusal` — head limits and framing, path and
//! method policy, the route, the body limit, the access rules, the traffic
//! limits, the token. The hooks in `mod.rs` call [`admit`] once.

use std::sync::Arc;

use http::HeaderValue;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::headers::{client_ip, request_host};
use super::refusal::{self, Refusal};
use super::snapshot::LiveRoute;
use super::{limits, path_policy};
use crate::access::{Caller, Decision, Denial};
use crate::limits::{Admission, LimitRequest, Who};
use crate::metrics::metrics;
use crate::oauth::{CallerFailure, RouteTokens, TokenSlot};

/// Everything a request must pass before it is forwarded, in order:
/// limits on the head, a route, the body limit, the access rules, the
/// traffic limits, a token. Each step either passes or names its refusal.
pub async fn admit(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Refusal> {
    let snapshot = &*ctx.snapshot;
    let req = session.req_header();
    limits::check_request_head(
        req,
        || {
            let h1 = session.as_downstream().as_http1()?;
            Some(h1.get_headers_raw_bytes())
        },
        &snapshot.limits,
    )?;
    path_policy::check_never_forwarded(&req.method, &snapshot.default_allow)?;
    path_policy::check_path(req)?;
    let index = snapshot
        .table
        .find(request_host(req), req.uri.path())
        .ok_or(Refusal::NoRoute)?;
    ctx.route = Some(index);
    let route = &snapshot.routes[index];
    ctx.trace.matched(&req.method, &route.name);
    if !route.methods.contains(&req.method) {
        return Err(Refusal::MethodNotAllowed(route.allow.clone()));
    }
    limits::check_declared_length(req, route.max_body_bytes)?;
    ctx.caller = Some(check_access(session, ctx, route).await?);
    if !route.limits.is_empty() {
        ctx.admission = Some(pass_limits(session, ctx, route).await?);
    }
    let (authorization, caller_slot) = token_for(session, ctx, route).await?;
    ctx.authorization = Some(authorization);
    ctx.caller_slot = caller_slot;
    Ok(())
}

/// The caller's name when the route's access rules let it through.
async fn check_access(
    session: &Session,
    ctx: &RequestCtx,
    route: &LiveRoute,
) -> Result<Arc<str>, Refusal> {
    let caller = Caller {
        headers: &session.req_header().headers,
        address: client_ip(session),
        cert_subject: ctx.cert_subject.as_deref(),
    };
    match route.access.check(&caller).await {
        Decision::Allow { who } => Ok(who),
        Decision::Deny(denial) => Err(denied(session, ctx, route, denial)),
    }
}

/// The route's traffic limits: rate and message limits, then a place in
/// each concurrency queue. A bodiless request whose client leaves while
/// queued leaves the queue (pingora's own idle read sees the close; a
/// request with an unread body cannot be watched without reading it, and
/// waits out its `queue_timeout`).
async fn pass_limits(
    session: &mut Session,
    ctx: &RequestCtx,
    route: &LiveRoute,
) -> Result<Admission, Refusal> {
    let req = session.req_header();
    let body_len = if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
        None
    } else {
        Some(limits::declared_length(req).unwrap_or(0))
    };
    let request = LimitRequest {
        who: Who {
            caller: ctx.caller.as_deref(),
            client_ip: client_ip(session),
        },
        body_len,
    };
    let downstream = session.as_downstream_mut();
    let watch = downstream.is_body_empty();
    // Boxed: pingora's read future nested in the queue's is deeper than
    // the compiler's layout limit.
    let gone: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> =
        Box::pin(async move {
            if watch {
                let _ = downstream.read_body_or_idle(true).await;
            } else {
                std::future::pending::<()>().await
            }
        });
    let refusal = match route.limits.admit(&request, gone).await {
        Ok(admission) => return Ok(admission),
        Err(refusal) => refusal,
    };
    tracing::info!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        route = route.name.as_str(),
        limit = refusal.limit.as_str(),
        reason = ?refusal.reason,
        trace_id = ctx.trace.log_id(),
        "refused by a traffic limit"
    );
    Err(Refusal::Limited(Box::new(refusal)))
}

/// Counts and logs a refused caller.
fn denied(session: &Session, ctx: &RequestCtx, route: &LiveRoute, denial: Denial) -> Refusal {
    metrics()
        .access_denied
        .with_label_values(&[route.name.as_str(), denial.reason])
        .inc();
    tracing::warn!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        route = route.name.as_str(),
        reason = denial.reason,
        caller = ctx.caller.as_deref(),
        trace_id = ctx.trace.log_id(),
        client_ip = client_ip(session).map(|a| a.to_string()),
        "access denied"
    );
    Refusal::AccessDenied(denial)
}

/// The route's `Authorization` value: cached, or from a (shared) fetch;
/// on a per-caller route, the caller's own, with the caller's slot.
async fn token_for(
    session: &Session,
    ctx: &RequestCtx,
    route: &LiveRoute,
) -> Result<(HeaderValue, Option<Arc<TokenSlot>>), Refusal> {
    let unavailable = match &route.tokens {
        RouteTokens::One(slot) => {
            let waits = waits_for_fetch(ctx, slot);
            let result = slot.authorization().await;
            if waits {
                ctx.link_fetch(slot);
            }
            match result {
                Ok(value) => return Ok((value, None)),
                Err(unavailable) => unavailable,
            }
        }
        RouteTokens::PerCaller(family) => {
            let who = ctx.caller.as_deref().unwrap_or_default();
            let headers = &session.req_header().headers;
            let slot = family
                .slot_for(who, headers)
                .map_err(|d| denied(session, ctx, route, d))?;
            let wait = ctx.snapshot.limits.caller_token_wait;
            let waits = waits_for_fetch(ctx, &slot);
            let result = family.authorization(&slot, wait).await;
            if waits {
                ctx.link_fetch(&slot);
            }
            match result {
                Ok(value) => return Ok((value, Some(slot))),
                Err(CallerFailure::Denied(d)) => return Err(denied(session, ctx, route, d)),
                Err(CallerFailure::Token(unavailable)) => unavailable,
            }
        }
    };
    tracing::warn!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        route = route.name.as_str(),
        client = unavailable.client.as_str(),
        trace_id = ctx.trace.log_id(),
        error = refusal::token_code(&unavailable),
        cause = %unavailable.error,
        "no token for request"
    );
    Err(Refusal::Token(unavailable))
}

/// Whether a recorded request is about to wait for `slot`'s fetch (it
/// holds no usable token); nothing is looked at when traces are off.
fn waits_for_fetch(ctx: &RequestCtx, slot: &TokenSlot) -> bool {
    ctx.trace.is_active() && !slot.has_usable_token()
}
