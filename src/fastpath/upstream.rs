//! The fast path's side of the upstream: a connection from the thread's
//! pool (or a new one through pingora's connector, with the route's TLS
//! verification, SNI and CA list), the rewritten head and the body sent,
//! the answer's head read (1xx passed on), and the answer's body relayed.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::CONNECTION;
use http::{StatusCode, Version};
use pingora::connectors::TransportConnector;
use pingora::http::ResponseHeader;
use pingora::protocols::http::v1::client::http_req_header_to_wire;
use pingora::protocols::Stream;
use pingora::upstreams::peer::Peer;
use tokio::io::AsyncWriteExt;

use super::body::{self, BodyReader, Framing, ReadFault};
use super::request::FastRequest;
use super::response::{self, HeadFault};
use super::{chunk, pool, sanitize};
use crate::proxy::headers::{finish_response_head, rewrite_for_upstream};
use crate::proxy::refusal::Refusal;
use crate::proxy::view::Downstream;
use crate::proxy::{LiveRoute, RequestCtx};

/// Why an exchange ended without an answer to pass on.
#[derive(Debug)]
pub enum Failure {
    /// The client left (or broke its body): nobody to answer.
    ClientGone,
    /// The proxy answers this itself.
    Refuse(Refusal),
}

/// One upstream connection in use.
pub struct Upstream {
    stream: Stream,
    /// The peer's pool key.
    key: u64,
    /// Bytes read from the upstream and not yet used.
    buf: BytesMut,
    /// Still fit to carry another request once this one is done.
    pub reusable: bool,
    reused: bool,
    read_timeout: Duration,
    write_timeout: Duration,
}

impl Upstream {
    /// Back to the thread's pool when nothing is left over, else closed.
    pub fn give_back(self) {
        if self.reusable && self.buf.is_empty() {
            pool::put(self.key, self.stream);
        }
    }
}

/// pingora's connector, used only for new connections (its own pool is
/// never asked).
fn connector() -> &'static TransportConnector {
    static CONNECTOR: OnceLock<TransportConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| TransportConnector::new(None))
}

/// A connection to the route's upstream: a live idle one of this
/// thread's, else a new one.
async fn connect(
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    fresh: bool,
) -> Result<Upstream, Failure> {
    let Some(peer) = route.upstream.peer.load_full() else {
        ctx.trace.failed("ConnectNoRoute", &route.upstream.target);
        return Err(Failure::Refuse(Refusal::UpstreamUnavailable));
    };
    let key = peer.reuse_hash();
    let o = &peer.options;
    let idle = o.idle_timeout.unwrap_or(Duration::from_secs(60));
    let taken = if fresh {
        None
    } else {
        Some(pool::take(key, idle))
    };
    route
        .connections
        .discarded(taken.as_ref().map_or(0, |t| t.discarded));
    let (stream, reused) = match taken.and_then(|t| t.stream) {
        Some(stream) => (stream, true),
        None => match connector().new_stream(&*peer).await {
            Ok(stream) => (stream, false),
            Err(e) => {
                tracing::debug!(error = %e, route = route.name.as_str(), "upstream connect failed");
                ctx.trace.failed(e.etype().as_str(), &route.upstream.target);
                return Err(Failure::Refuse(Refusal::UpstreamUnavailable));
            }
        },
    };
    route.connections.connected(reused);
    Ok(Upstream {
        stream,
        key,
        buf: BytesMut::new(),
        reusable: true,
        reused,
        read_timeout: o.read_timeout.unwrap_or(Duration::from_secs(60)),
        write_timeout: o.write_timeout.unwrap_or(Duration::from_secs(60)),
    })
}

/// The request's head as it goes upstream (pingora's preparation and
/// the same rewrite as pingora's path), on the wire.
fn upstream_head(
    req: &FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
) -> Result<BytesMut, Failure> {
    let malformed = || Failure::Refuse(Refusal::MalformedRequest);
    let mut head = req.head.clone();
    sanitize::before_rewrite(&mut head).map_err(|_| malformed())?;
    rewrite_for_upstream(
        &req.view(),
        &mut head,
        ctx,
        route,
        ctx.authorization.as_ref(),
    );
    sanitize::after_rewrite(&mut head, req.framing != super::head::Framing::None);
    ctx.trace.attempt(&mut head, &route.upstream.target);
    ctx.upstream_started = Some(Instant::now());
    http_req_header_to_wire(&head).ok_or_else(malformed)
}

/// Sends the request (its body from the client, or `kept` for a replay)
/// and reads the answer's head. A reused connection that fails before
/// any answer is retried once on a new one where pingora's path would
/// retry: an idempotent request whose body is at hand again.
pub async fn exchange(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    body: &mut BodyReader,
    kept: Option<Bytes>,
) -> Result<(Upstream, ResponseHeader), Failure> {
    let mut up = connect(ctx, route, false).await?;
    let wire = upstream_head(req, ctx, route)?;
    let retry_ok = req.head.method.is_idempotent()
        && (kept.is_some() || req.framing == super::head::Framing::None);
    match attempt(req, ctx, route, &mut up, &wire, body, kept.clone()).await {
        Err(Failure::Refuse(Refusal::UpstreamUnavailable)) if up.reused && retry_ok => {
            let mut up = connect(ctx, route, true).await?;
            let wire = upstream_head(req, ctx, route)?;
            let answer = attempt(req, ctx, route, &mut up, &wire, body, kept).await?;
            Ok((up, answer))
        }
        Err(failure) => Err(failure),
        Ok(answer) => Ok((up, answer)),
    }
}

/// One try on one connection.
async fn attempt(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    up: &mut Upstream,
    wire: &[u8],
    body: &mut BodyReader,
    kept: Option<Bytes>,
) -> Result<ResponseHeader, Failure> {
    write(up, wire).await?;
    let framing = Framing::of_request(req.framing);
    let sent_all = match kept {
        Some(kept) => {
            let mut out = BytesMut::with_capacity(kept.len() + 32);
            if !kept.is_empty() {
                body::frame(framing, &kept, &mut out);
            }
            if framing == Framing::Chunked {
                out.extend_from_slice(chunk::LAST);
            }
            write(up, &out).await.is_ok()
        }
        None => send_body(req, ctx, route, body, up, framing).await?,
    };
    up.reusable &= sent_all;
    read_answer(req, ctx, up).await
}

async fn write(up: &mut Upstream, bytes: &[u8]) -> Result<(), Failure> {
    match tokio::time::timeout(up.write_timeout, up.stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Failure::Refuse(Refusal::UpstreamUnavailable)),
        Err(_) => Err(Failure::Refuse(Refusal::UpstreamTimeout)),
    }
}

/// Streams the client's body upstream, piece by piece; `false` when the
/// upstream stopped taking it (its answer may already be on the way).
async fn send_body(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    body: &mut BodyReader,
    up: &mut Upstream,
    framing: Framing,
) -> Result<bool, Failure> {
    let timeout = ctx.snapshot.limits.client_read_timeout;
    let mut out = BytesMut::new();
    while let Some(piece) = body
        .next(req.stream, &mut req.pending, timeout)
        .await
        .map_err(client_fault)?
    {
        account(ctx, route, &piece)?;
        out.clear();
        body::frame(framing, &piece, &mut out);
        if write(up, &out).await.is_err() {
            return Ok(false);
        }
    }
    if let Some(admission) = ctx.admission.as_mut().filter(|a| a.counts_body()) {
        admission.body_ended().await;
    }
    Ok(framing != Framing::Chunked || write(up, chunk::LAST).await.is_ok())
}

/// A piece of the request body: counted against the route's
/// `max_body_bytes` and the message quota, kept for a replay.
fn account(ctx: &mut RequestCtx, route: &LiveRoute, piece: &Bytes) -> Result<(), Failure> {
    if let Some(admission) = ctx.admission.as_mut().filter(|a| a.counts_body()) {
        admission.saw(piece.len());
    }
    if ctx.replay == crate::proxy::body_copy::Replay::No {
        ctx.body_copy
            .keep(piece, ctx.snapshot.limits.max_replay_body_bytes);
    }
    if let Some(limit) = route.max_body_bytes {
        ctx.body_bytes += piece.len() as u64;
        if ctx.body_bytes > limit {
            return Err(Failure::Refuse(Refusal::BodyTooLarge));
        }
    }
    Ok(())
}

/// Reads what is left of the client's body without sending it (the
/// upstream answered before taking it all), keeping it for a replay.
pub async fn read_rest(
    req: &mut FastRequest<'_>,
    ctx: &mut RequestCtx,
    route: &LiveRoute,
    body: &mut BodyReader,
) -> Result<(), Failure> {
    let timeout = ctx.snapshot.limits.client_read_timeout;
    while let Some(piece) = body
        .next(req.stream, &mut req.pending, timeout)
        .await
        .map_err(client_fault)?
    {
        account(ctx, route, &piece)?;
    }
    Ok(())
}

/// The answer's head; interim (1xx) answers are passed to the client as
/// they come. A protocol switch was never asked for: refused.
async fn read_answer(
    req: &mut FastRequest<'_>,
    ctx: &RequestCtx,
    up: &mut Upstream,
) -> Result<ResponseHeader, Failure> {
    loop {
        let (head, ambiguous) = response::read_head(&mut up.stream, &mut up.buf, up.read_timeout)
            .await
            .map_err(|f| match f {
                HeadFault::Read(ReadFault::TimedOut) => Failure::Refuse(Refusal::UpstreamTimeout),
                _ => Failure::Refuse(Refusal::UpstreamUnavailable),
            })?;
        up.reusable &= !ambiguous;
        if head.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Failure::Refuse(Refusal::UpstreamUnavailable));
        }
        if !head.status.is_informational() {
            return Ok(head);
        }
        let mut head = head;
        // The same finish as every answer (hop-by-hop fields, the id).
        if finish_response_head(&mut head, ctx).is_err() {
            return Err(Failure::ClientGone);
        }
        let mut out = BytesMut::with_capacity(256);
        response::to_wire(&head, &mut out);
        if req.stream.write_all(&out).await.is_err() || req.stream.flush().await.is_err() {
            return Err(Failure::ClientGone);
        }
    }
}

/// Whether the upstream keeps its connection open after this answer.
pub fn keeps_alive(answer: &ResponseHeader) -> bool {
    let says_close = answer.headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    });
    answer.version == Version::HTTP_11 && !says_close
}

/// Writes `out` (the answer's head) and the answer's body to the client,
/// each piece as it arrives: read in the upstream's framing, written in
/// the client's (`framing`: from, to).
pub async fn relay_answer(
    req: &mut FastRequest<'_>,
    up: &mut Upstream,
    (from, framing): (Framing, Framing),
    mut out: BytesMut,
) -> Result<(), ReadFault> {
    let mut reader = BodyReader::new(from);
    let mut data = BytesMut::new();
    loop {
        let piece = match reader
            .next(&mut up.stream, &mut up.buf, up.read_timeout)
            .await
        {
            Ok(Some(piece)) => {
                data.extend_from_slice(&piece);
                reader.take_more(&mut up.buf, &mut data).map(|()| true)
            }
            Ok(None) => Ok(false),
            Err(fault) => Err(fault),
        };
        let more = match piece {
            Ok(more) => more,
            Err(fault) => {
                // What arrived goes out; the client sees the cut as a close.
                let _ = req.stream.write_all(&out).await;
                up.reusable = false;
                return Err(fault);
            }
        };
        if !data.is_empty() {
            body::frame(framing, &data, &mut out);
            data.clear();
        }
        let ended = !more || reader.done();
        if ended && framing == Framing::Chunked {
            out.extend_from_slice(chunk::LAST);
        }
        if req.stream.write_all(&out).await.is_err() {
            up.reusable = false;
            return Err(ReadFault::Closed);
        }
        out.clear();
        if ended {
            return Ok(());
        }
    }
}

/// A read fault of the client's body, as pingora's path answers it.
pub fn client_fault(fault: ReadFault) -> Failure {
    match fault {
        ReadFault::Closed => Failure::ClientGone,
        ReadFault::TimedOut => Failure::Refuse(Refusal::MalformedRequest),
        ReadFault::Bad(f) => Failure::Refuse(Refusal::BadHead(f.message())),
    }
}
