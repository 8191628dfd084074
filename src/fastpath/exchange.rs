//! One request on the fast path, from its parsed head to its last byte:
//! the admit pipeline (the same as pingora's path), the upstream
//! connection from the thread's pool, the head and body sent, the answer
//! judged (the same judgement), a 401 replayed once from the kept body,
//! and the answer streamed back. Whatever the proxy answers itself is the
//! same `Refusal`, rendered as on pingora's path.

use std::sync::Arc;

use bytes::BytesMut;
use http::header::{CONNECTION, DATE};
use http::{Method, Version};
use pingora::http::ResponseHeader;
use pingora::protocols::http::date::get_cached_date;
use tokio::io::AsyncWriteExt;

use super::body::{BodyReader, Framing};
use super::request::FastRequest;
use super::upstream::{self, Failure, Upstream};
use super::{head, response};
use crate::proxy::answer::{self, Judged};
use crate::proxy::body_copy::Replay;
use crate::proxy::refusal::Refusal;
use crate::proxy::{record, LiveRoute, RequestCtx, Snapshot};

/// The client connection's facts, the same for each of its requests.
#[derive(Debug, Clone, Default)]
pub struct Conn {
    pub tls: bool,
    pub cert_subject: Option<String>,
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum After {
    /// Serve the next request; these bytes (maybe none) are its start.
    KeepAlive(BytesMut),
    Close,
}

/// How a request ended.
struct Done {
    status: u16,
    keep: bool,
    failed: bool,
}

impl Done {
    fn closed(status: u16, failed: bool) -> Self {
        Done {
            status,
            keep: false,
            failed,
        }
    }
}

/// Serves one request whose head is `req`.
pub async fn serve(snapshot: Arc<Snapshot>, mut req: FastRequest<'_>, conn: &Conn) -> After {
    let mut ctx = RequestCtx::new(snapshot);
    ctx.request_id = crate::proxy::request_id::from_headers(&req.head.headers);
    ctx.trace = crate::telemetry::RequestTrace::start(&req.head.headers, &req.head.method);
    ctx.downstream_tls = conn.tls;
    ctx.cert_subject = conn.cert_subject.clone();
    let done = match crate::proxy::admit::admit(&mut req, &mut ctx).await {
        Ok(()) => forward(&mut req, &mut ctx).await,
        Err(Refusal::Limited(l)) if l.reason == crate::limits::Reason::Gone => {
            ctx.error_code = Some("client_gone");
            Done::closed(0, false)
        }
        Err(refusal) => refuse(&mut req, &mut ctx, refusal, true).await,
    };
    let served = record::Served {
        method: &req.head.method,
        path: req.head.uri.path(),
        status: done.status,
        client_ip: req.client_ip,
        failed: done.failed,
    };
    record::finish(&served, &mut ctx);
    // The request's places and in-flight count end here, before the
    // connection waits for its next request.
    drop(ctx);
    if done.keep {
        After::KeepAlive(std::mem::take(&mut req.pending))
    } else {
        After::Close
    }
}

/// Whether the client asked to keep the connection: HTTP/1.1 unless it
/// said `close`, HTTP/1.0 only if it said `keep-alive`.
fn client_keeps_alive(req: &FastRequest<'_>) -> bool {
    let says = |option: &str| {
        req.head.headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(option)))
        })
    };
    req.keep_alive_ok
        && match req.head.version {
            Version::HTTP_11 => !says("close"),
            _ => says("keep-alive"),
        }
}

/// Answers with the proxy's own refusal, as pingora's path renders it.
/// `may_keep`: the connection may serve another request after it (not
/// after a failed proxy attempt, as on pingora's path; never with a
/// request body left unread).
async fn refuse(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    refusal: Refusal,
    may_keep: bool,
) -> Done {
    let reply = refusal.reply();
    ctx.error_code = Some(reply.code);
    let body = reply.body(&ctx.request_id);
    let Ok(mut head) = reply.head(body.len(), &ctx.request_id) else {
        return Done::closed(0, true);
    };
    let keep = may_keep
        && req.framing == head::Framing::None
        && client_keeps_alive(req)
        && req.head.method != Method::CONNECT;
    finish_connection_headers(&mut head, keep);
    let mut out = BytesMut::with_capacity(512 + body.len());
    response::to_wire(&head, &mut out);
    out.extend_from_slice(&body);
    let written = req.stream.write_all(&out).await.is_ok() && req.stream.flush().await.is_ok();
    Done {
        status: reply.status,
        keep: keep && written,
        failed: !written,
    }
}

/// `Date` and `Connection`, as pingora's server adds them to every answer.
fn finish_connection_headers(head: &mut ResponseHeader, keep: bool) {
    let _ = head.insert_header(DATE, get_cached_date());
    let _ = head.insert_header(CONNECTION, if keep { "keep-alive" } else { "close" });
}

/// Proxies an admitted request: the upstream's answer, or the refusal
/// its failure maps to.
async fn forward(req: &mut FastRequest<'_>, ctx: &mut RequestCtx) -> Done {
    let snapshot = ctx.snapshot.clone();
    let Ok(route) = snapshot.route(ctx.route) else {
        return refuse(req, ctx, Refusal::Internal("no route matched"), false).await;
    };
    let mut body = BodyReader::new(Framing::of_request(req.framing));
    let first = upstream::exchange(req, ctx, route, &mut body, None).await;
    let (mut up, mut answer) = match first {
        Ok(got) => got,
        Err(failure) => return fail(req, ctx, route, failure).await,
    };
    if answer::judge(route, ctx, &answer) == Judged::Renew {
        match replay(req, ctx, route, &mut body).await {
            Ok(Some(got)) => {
                (up, answer) = got;
                // A replay's own 401 passes on (counted by the judgement).
                answer::judge(route, ctx, &answer);
            }
            Ok(None) => {}
            Err(failure) => return fail(req, ctx, route, failure).await,
        }
    }
    respond(req, ctx, route, up, answer, &body).await
}

/// After a 401 the slot wants renewed: the request again with a new
/// token and the kept body, once. `None` when it cannot be replayed (the
/// body was longer than `max_replay_body_bytes`): the 401 passes on.
async fn replay(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    body: &mut BodyReader,
) -> Result<Option<(Upstream, ResponseHeader)>, Failure> {
    use crate::proxy::unauthorized;
    // A body the upstream refused before reading it is read to its end
    // (and kept), so the replay can send it whole.
    upstream::read_rest(req, ctx, route, body).await?;
    if ctx.body_copy.kept_len().is_none() {
        unauthorized::too_large_to_replay(route, ctx);
        return Ok(None);
    }
    ctx.replay = Replay::ByProxy;
    unauthorized::count(route, unauthorized::REPLAYED);
    crate::metrics::metrics()
        .upstream_unauthorized_retries
        .with_label_values(&[route.name.as_str()])
        .inc();
    let Some(slot) = ctx.slot(route).cloned() else {
        return Err(Failure::Refuse(Refusal::Internal(
            "a replay without a token slot",
        )));
    };
    // The token that drew the 401 was purged: this waits for (or shares)
    // the fetch of a new one.
    let token = slot.authorization().await;
    ctx.link_fetch(&slot);
    ctx.authorization = Some(token.map_err(|u| Failure::Refuse(Refusal::Token(u)))?);
    let kept = ctx.body_copy.concat();
    upstream::exchange(req, ctx, route, body, Some(kept))
        .await
        .map(Some)
}

/// Streams the upstream's answer to the client and gives the upstream
/// connection back to the thread's pool when both ends allow it.
async fn respond(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    mut up: Upstream,
    mut answer: ResponseHeader,
    body: &BodyReader,
) -> Done {
    let status = answer.status.as_u16();
    let Some(framing) = response::framing(&answer, req.head.method == Method::HEAD) else {
        return fail(
            req,
            ctx,
            route,
            Failure::Refuse(Refusal::UpstreamUnavailable),
        )
        .await;
    };
    up.reusable &= upstream::keeps_alive(&answer) && framing != Framing::Close;
    // As pingora's path: a body until close goes to the client chunked
    // (HTTP/1.1), so the client's connection can stay; bytes of another
    // request read with this one (pipelining) close it after the answer.
    let to_client = if framing == Framing::Close {
        answer.set_version(Version::HTTP_11);
        let _ = answer.insert_header(http::header::TRANSFER_ENCODING, "chunked");
        Framing::Chunked
    } else {
        framing
    };
    let keep = body.done() && client_keeps_alive(req) && req.pending.is_empty();
    if crate::proxy::headers::finish_response_head(&mut answer, ctx).is_err() {
        return Done::closed(0, true);
    }
    finish_connection_headers(&mut answer, keep);
    let mut out = BytesMut::with_capacity(1024);
    response::to_wire(&answer, &mut out);
    match upstream::relay_answer(req, &mut up, (framing, to_client), out).await {
        Ok(()) => {
            up.give_back();
            let _ = req.stream.flush().await;
            Done {
                status,
                keep,
                failed: false,
            }
        }
        Err(fault) => {
            tracing::debug!(?fault, route = route.name.as_str(), "answer cut short");
            Done::closed(status, true)
        }
    }
}

/// A failed exchange, as the client hears it (when it can still hear):
/// the same refusal pingora's path maps the failure to.
async fn fail(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    failure: Failure,
) -> Done {
    let refusal = match failure {
        Failure::ClientGone => return Done::closed(0, true),
        Failure::Refuse(refusal) => refusal,
    };
    let unanswered = matches!(
        refusal,
        Refusal::UpstreamUnavailable | Refusal::UpstreamTimeout
    );
    if ctx.upstream_started.is_some() && unanswered {
        // An attempt that got no answer (a failed connect is traced there).
        let what = match refusal {
            Refusal::UpstreamTimeout => "ReadTimedout",
            _ => "ConnectionClosed",
        };
        ctx.trace.failed(what, &route.upstream.target);
    }
    // As on pingora's path, a failed proxy attempt closes the connection.
    refuse(req, ctx, refusal, false).await
}
