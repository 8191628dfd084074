//! Replaying a request once after an upstream 401.
//!
//! pingora resends a request itself only while its body fits pingora's
//! retry buffer (64 KiB); a longer body is not kept and the retry would
//! send none. So the proxy keeps its own copy of every body up to
//! `server.max_replay_body_bytes` as it streams, and when pingora cannot
//! replay, [`resend`] sends the request again outside pingora's proxy loop
//! with the new token and streams the answer back to the caller.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, Session};

pub use super::body_copy::{BodyCopy, Replay};
use super::ctx::RequestCtx;
use super::headers::{finish_response_head, rewrite_for_upstream};
use super::refusal::Refusal;
use super::snapshot::LiveRoute;
use super::unauthorized;
use super::view::Downstream;

/// Whether the request can be replayed after a 401, and by whom.
/// `declared`: the body's `Content-Length`, if any.
pub fn plan(
    copy: &BodyCopy,
    limit: u64,
    declared: Option<u64>,
    pingora_buffer_truncated: bool,
) -> Replay {
    if copy.kept_len().is_none() || declared.is_some_and(|n| n > limit) {
        return Replay::No;
    }
    if pingora_buffer_truncated {
        // The proxy reads whatever the client has still to send; a body
        // without a declared length may yet turn out too long.
        Replay::ByProxy
    } else {
        // pingora resends what it buffered and streams whatever is still to
        // come from the client.
        Replay::ByPingora
    }
}

/// Sends the request again with the route's new token, outside pingora's
/// proxy loop, and streams the answer to the caller. Called from
/// `fail_to_proxy`; pingora closes the client connection afterwards, so the
/// answer says `Connection: close`.
pub async fn resend(session: &mut Session, ctx: &mut RequestCtx) -> FailToProxy {
    let snapshot = ctx.snapshot.clone();
    session.set_keepalive(None);
    let route = match snapshot.route(ctx.route) {
        Ok(route) => route,
        Err(_) => {
            return answer_with(session, ctx, Refusal::Internal("a replay without a route")).await
        }
    };
    let Some(slot) = ctx.slot(route).cloned() else {
        return answer_with(
            session,
            ctx,
            Refusal::Internal("a replay without a token slot"),
        )
        .await;
    };
    let token = slot.authorization().await;
    ctx.link_fetch(&slot);
    let token = match token {
        Ok(value) => value,
        Err(unavailable) => return answer_with(session, ctx, Refusal::Token(unavailable)).await,
    };
    // The upstream may have refused before the client finished sending.
    let limit = snapshot.limits.max_replay_body_bytes;
    while !session.as_mut().is_body_done() {
        match session.as_mut().read_request_body().await {
            Ok(Some(chunk)) => ctx.body_copy.keep(&chunk, limit),
            Ok(None) => break,
            Err(_) => return gone(),
        }
    }
    if ctx.body_copy.kept_len().is_none() {
        unauthorized::too_large_to_replay(route, ctx);
        return pass_refusal_on(session, ctx).await;
    }
    unauthorized::count(route, unauthorized::REPLAYED);
    ctx.authorization = Some(token.clone());
    let response = match send(session, ctx, route, token).await {
        Ok(r) => r,
        Err(refusal) => return answer_with(session, ctx, refusal).await,
    };
    judge_replay(route, ctx, &response, snapshot.limits.upstream_401_cooldown);
    stream_back(session, ctx, response).await
}

/// The replay's answer: a 401 to the new token too may start an "upstream
/// refuses fresh tokens" episode; anything else ends the slot's watch.
fn judge_replay(
    route: &LiveRoute,
    ctx: &RequestCtx,
    response: &reqwest::Response,
    cooldown: std::time::Duration,
) {
    let Some(sent) = &ctx.authorization else {
        return;
    };
    if response.status() != http::StatusCode::UNAUTHORIZED {
        if let Some(slot) = ctx.slot(route) {
            slot.upstream_accepted(sent);
        }
        return;
    }
    let mut head = ResponseHeader::build(401, Some(1)).expect("401 is a status");
    if let Some(challenge) = response.headers().get(http::header::WWW_AUTHENTICATE) {
        let _ = head.insert_header(http::header::WWW_AUTHENTICATE, challenge.clone());
    }
    let outcome = match unauthorized::judge(route, ctx, &head, cooldown) {
        crate::oauth::Verdict::CoolingDown => unauthorized::COOLDOWN,
        _ => unauthorized::PASSED_THROUGH,
    };
    unauthorized::count(route, outcome);
}

async fn send(
    session: &Session,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    token: http::HeaderValue,
) -> Result<reqwest::Response, Refusal> {
    let client = route.upstream.direct_client().map_err(|e| {
        tracing::warn!(route = route.name.as_str(), error = %e, "cannot replay");
        Refusal::UpstreamUnavailable
    })?;
    let mut head = session.req_header().clone();
    rewrite_for_upstream(&session.view(), &mut head, ctx, route, Some(&token));
    ctx.trace.attempt(&mut head, &route.upstream.target);
    let mut headers = head.headers.clone();
    super::limits::strip_request_hop_by_hop(&mut headers);
    let path = head
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let url = format!("{}{path}", route.upstream.target.url());
    let sent = client
        .request(head.method.clone(), url)
        .headers(headers)
        .body(ctx.body_copy.concat())
        .send()
        .await;
    match sent {
        Ok(response) => {
            ctx.trace.answered(response.status().as_u16());
            Ok(response)
        }
        Err(e) => {
            tracing::warn!(
                request_id = ctx.request_id.to_str().unwrap_or_default(),
                route = route.name.as_str(),
                trace_id = ctx.trace.log_id(),
                error = %e,
                "replay after 401 failed"
            );
            let (kind, refusal) = if e.is_timeout() {
                ("ReadTimedout", Refusal::UpstreamTimeout)
            } else {
                ("ConnectError", Refusal::UpstreamUnavailable)
            };
            ctx.trace.failed(kind, &route.upstream.target);
            Err(refusal)
        }
    }
}

async fn stream_back(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut response: reqwest::Response,
) -> FailToProxy {
    let status = response.status().as_u16();
    let mut head = match response_head(status, response.headers(), session) {
        Ok(h) => h,
        // The upstream's answer could not be passed on.
        Err(_) => return answer_with(session, ctx, Refusal::UpstreamUnavailable).await,
    };
    if finish_response_head(&mut head, ctx).is_err() {
        return answer_with(
            session,
            ctx,
            Refusal::Internal("could not build the answer"),
        )
        .await;
    }
    ctx.replay_answered = true;
    if session
        .write_response_header(Box::new(head), false)
        .await
        .is_err()
    {
        return gone();
    }
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if session
                    .write_response_body(Some(chunk), false)
                    .await
                    .is_err()
                {
                    return gone();
                }
            }
            Ok(None) => break,
            Err(e) => {
                // Too late for an error answer: cut the response short.
                tracing::warn!(
                    request_id = ctx.request_id.to_str().unwrap_or_default(),
                    error = %e,
                    "upstream failed while the replayed answer streamed"
                );
                ctx.error_code = Some(Refusal::UpstreamUnavailable.code());
                return FailToProxy {
                    error_code: status,
                    can_reuse_downstream: false,
                };
            }
        }
    }
    let _ = session.write_response_body(None, true).await;
    FailToProxy {
        error_code: status,
        can_reuse_downstream: false,
    }
}

/// The upstream's status and headers as a pingora response head, with the
/// body framing the client connection needs.
fn response_head(
    status: u16,
    headers: &HeaderMap,
    session: &Session,
) -> pingora::Result<ResponseHeader> {
    let mut head = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (name, value) in headers {
        head.append_header(name.clone(), value.clone())?;
    }
    let framed =
        head.headers.contains_key(CONTENT_LENGTH) || head.headers.contains_key(TRANSFER_ENCODING);
    if !framed && !session.as_downstream().is_http2() {
        head.insert_header(TRANSFER_ENCODING, "chunked")?;
    }
    Ok(head)
}

/// The upstream's 401 head, kept when the replay was planned, goes to the
/// client after all (its body was never read).
async fn pass_refusal_on(session: &mut Session, ctx: &mut RequestCtx) -> FailToProxy {
    let Some(mut head) = ctx.refusal.take() else {
        let refusal = Refusal::Internal("the upstream's 401 was not kept");
        return answer_with(session, ctx, refusal).await;
    };
    head.remove_header(&TRANSFER_ENCODING);
    ctx.replay_answered = true;
    if head.insert_header(CONTENT_LENGTH, "0").is_err()
        || finish_response_head(&mut head, ctx).is_err()
        || session.write_response_header(head, true).await.is_err()
    {
        return gone();
    }
    FailToProxy {
        error_code: 401,
        can_reuse_downstream: false,
    }
}

async fn answer_with(session: &mut Session, ctx: &mut RequestCtx, refusal: Refusal) -> FailToProxy {
    let reply = refusal.reply();
    ctx.error_code = Some(reply.code);
    ctx.replay_answered = true;
    if let Err(e) = reply.send(session, &ctx.request_id).await {
        tracing::debug!(error = %e, "could not send error response");
    }
    FailToProxy {
        error_code: reply.status,
        can_reuse_downstream: false,
    }
}

/// The client went away; there is nobody to answer.
fn gone() -> FailToProxy {
    FailToProxy {
        error_code: 0,
        can_reuse_downstream: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::body_copy::copy_of;

    #[test]
    fn pingora_replays_while_its_buffer_holds_the_body() {
        let c = copy_of(&[10_000], 1 << 20);
        assert_eq!(plan(&c, 1 << 20, None, false), Replay::ByPingora);
        assert_eq!(plan(&c, 1 << 20, Some(10_000), false), Replay::ByPingora);
    }

    #[test]
    fn the_proxy_replays_longer_bodies_that_may_fit() {
        let c = copy_of(&[100_000], 1 << 20);
        assert_eq!(plan(&c, 1 << 20, None, true), Replay::ByProxy);
        assert_eq!(plan(&c, 1 << 20, Some(500_000), true), Replay::ByProxy);
        assert_eq!(plan(&c, 1 << 20, Some(2 << 20), true), Replay::No);
    }

    #[test]
    fn a_body_over_the_limit_is_never_replayed() {
        let c = copy_of(&[100], 50);
        assert_eq!(plan(&c, 50, None, false), Replay::No);
        assert_eq!(plan(&copy_of(&[10], 50), 50, Some(51), false), Replay::No);
        let empty = BodyCopy::default();
        assert_eq!(plan(&empty, 0, Some(0), false), Replay::ByPingora);
    }
}
