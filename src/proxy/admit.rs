//! Admission: the checks a request passes before it is forwarded, each
//! passing or naming its `Refusal` — head limits and framing, path and
//! method policy, the route, the body limit, the access rules, the traffic
//! limits, the token. Both transports call [`admit`] once per request,
//! through their [`Downstream`]: pingora's hooks with its `Session`, the
//! fast path with its own request.

use std::sync::Arc;

use http::HeaderValue;

use super::ctx::RequestCtx;
use super::headers::request_host;
use super::refusal::{self, Refusal};
use super::snapshot::LiveRoute;
use super::view::{Downstream, Gone};
use super::{limits, path_policy};
use crate::access::{Caller, Decision, Denial};
use crate::limits::{Admission, LimitRequest, Who};
use crate::metrics::metrics;
use crate::oauth::{CallerFailure, RouteTokens, TokenSlot};

/// Everything a request must pass before it is forwarded, in order:
/// limits on the head, a route, the body limit, the access rules, the
/// traffic limits, a token. Each step either passes or names its refusal.
pub async fn admit<D>(session: &mut D, ctx: &mut RequestCtx) -> Result<(), Refusal>
where
    D: Downstream + Send + Sync,
{
    let snapshot = &*ctx.snapshot;
    let req = session.view().head;
    limits::check_request_head(req, || session.raw_head(), &snapshot.limits)?;
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
async fn check_access<D: Downstream + Sync>(
    session: &D,
    ctx: &RequestCtx,
    route: &LiveRoute,
) -> Result<Arc<str>, Refusal> {
    let view = session.view();
    let caller = Caller {
        headers: &view.head.headers,
        address: view.client_ip,
        cert_subject: ctx.cert_subject.as_deref(),
    };
    match route.access.check(&caller).await {
        Decision::Allow { who } => Ok(who),
        Decision::Deny(denial) => Err(denied(view.client_ip, ctx, route, denial)),
    }
}

/// The route's traffic limits: rate and message limits, then a place in
/// each concurrency queue. A bodiless request whose client leaves while
/// queued leaves the queue (pingora's own idle read sees the close; a
/// request with an unread body cannot be watched without reading it, and
/// waits out its `queue_timeout`).
async fn pass_limits<D: Downstream + Send>(
    session: &mut D,
    ctx: &RequestCtx,
    route: &LiveRoute,
) -> Result<Admission, Refusal> {
    let view = session.view();
    let req = view.head;
    let body_len = if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
        None
    } else {
        Some(limits::declared_length(req).unwrap_or(0))
    };
    let request = LimitRequest {
        who: Who {
            caller: ctx.caller.as_deref(),
            client_ip: view.client_ip,
        },
        body_len,
    };
    // Boxed: pingora's read future nested in the queue's is deeper than
    // the compiler's layout limit.
    let gone: Gone<'_> = if session.body_empty() {
        session.gone()
    } else {
        Box::pin(std::future::pending::<()>())
    };
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
fn denied(
    client_ip: Option<std::net::IpAddr>,
    ctx: &RequestCtx,
    route: &LiveRoute,
    denial: Denial,
) -> Refusal {
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
        client_ip = client_ip.map(|a| a.to_string()),
        "access denied"
    );
    Refusal::AccessDenied(denial)
}

/// The route's `Authorization` value: cached, or from a (shared) fetch;
/// on a per-caller route, the caller's own, with the caller's slot.
async fn token_for<D: Downstream + Sync>(
    session: &D,
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
            let view = session.view();
            let slot = family
                .slot_for(who, &view.head.headers)
                .map_err(|d| denied(view.client_ip, ctx, route, d))?;
            let wait = ctx.snapshot.limits.caller_token_wait;
            let waits = waits_for_fetch(ctx, &slot);
            let result = family.authorization(&slot, wait).await;
            if waits {
                ctx.link_fetch(&slot);
            }
            match result {
                Ok(value) => return Ok((value, Some(slot))),
                Err(CallerFailure::Denied(d)) => {
                    return Err(denied(session.view().client_ip, ctx, route, d))
                }
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
