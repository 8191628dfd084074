//! The pingora `ProxyHttp` implementation: short hooks that delegate to
//! the route table, the token cache and the response helpers.

pub mod ctx;
pub mod limits;
pub mod replay;
pub mod request_id;
pub mod respond;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::header::{AUTHORIZATION, HOST};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};
use prometheus::Histogram;

use crate::access::{AccessPolicy, Caller, Decision};
use crate::config::{Config, Limits};
use crate::downstream_tls::CertSubject;
use crate::metrics;
use crate::oauth::{TokenCache, TokenSlot};
use crate::route::RouteTable;
use crate::upstream::Upstream;
pub use ctx::RequestCtx;
use replay::Replay;
use respond::ErrorReply;

/// A route ready for the request path: its upstream, token slot and
/// pre-built header values and metric handles.
pub struct Route {
    pub name: String,
    pub max_body_bytes: Option<u64>,
    pub access: Arc<AccessPolicy>,
    pub slot: Arc<TokenSlot>,
    pub upstream: Upstream,
    host_header: HeaderValue,
    upstream_duration: Histogram,
}

/// Everything the request path reads, built once from a [`Config`].
pub struct Snapshot {
    pub limits: Limits,
    pub routes: Vec<Route>,
    pub table: RouteTable,
    pub cache: Arc<TokenCache>,
}

impl Snapshot {
    pub fn new(config: Config) -> Result<Self, String> {
        let cache = Arc::new(TokenCache::new(&config)?);
        Self::with_cache(config, cache)
    }

    /// A snapshot for a reloaded configuration, keeping the token slots of
    /// unchanged clients from `previous`.
    pub fn rebuild(config: Config, previous: &Snapshot) -> Result<Self, String> {
        let cache = Arc::new(TokenCache::rebuild(&config, &previous.cache)?);
        Self::with_cache(config, cache)
    }

    fn with_cache(config: Config, cache: Arc<TokenCache>) -> Result<Self, String> {
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut cas = crate::upstream::CaLists::default();
        for r in &config.routes {
            let slot = cache
                .slot_for(r)
                .expect("the cache has a slot for every route");
            let host_header = HeaderValue::try_from(r.upstream.authority.as_str())
                .map_err(|_| format!("route {}: upstream host is not a valid header", r.name))?;
            routes.push(Route {
                name: r.name.clone(),
                max_body_bytes: r.max_body_bytes,
                access: r.access.clone(),
                slot,
                upstream: Upstream::new(r, &config.server, &mut cas),
                host_header,
                upstream_duration: metrics::UPSTREAM_DURATION.with_label_values(&[&r.name]),
            });
        }
        Ok(Snapshot {
            limits: config.server.limits,
            routes,
            table: config.route_table,
            cache,
        })
    }
}

pub struct BearerProxy {
    /// Swapped whole by a reload.
    pub current: Arc<ArcSwap<Snapshot>>,
}

fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(HOST).and_then(|v| v.to_str().ok()))
}

/// What the proxy sets on every forwarded request.
pub struct UpstreamHeaders<'a> {
    pub host: &'a HeaderValue,
    pub authorization: Option<&'a HeaderValue>,
    pub original_host: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    pub request_id: &'a HeaderValue,
    /// The client reached us over TLS.
    pub downstream_tls: bool,
    /// The route's API-key header: the client's key must not travel on.
    pub strip: Option<&'a http::HeaderName>,
}

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

thread_local! {
    /// The last client address as a header value: clients usually send many
    /// requests (or sit behind one gateway), so this saves formatting it.
    static LAST_CLIENT_IP: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

fn ip_header(ip: IpAddr) -> HeaderValue {
    LAST_CLIENT_IP.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, value)) if *seen == ip => value.clone(),
            _ => {
                let value = HeaderValue::try_from(ip.to_string()).expect("an address is ASCII");
                *last = Some((ip, value.clone()));
                value
            }
        }
    })
}

/// Replaces `Host` and `Authorization` (never appends: the client's own
/// credentials must not reach the upstream), and sets the forwarding
/// headers. Runs again on a retry, so it only inserts.
pub fn rewrite_upstream_headers(
    req: &mut RequestHeader,
    h: &UpstreamHeaders<'_>,
) -> pingora::Result<()> {
    // Names as `&'static str`: pingora copies a `HeaderName` it has no
    // title-cased form for, but borrows a static string.
    if let Some(original) = h.original_host {
        req.insert_header("x-forwarded-host", original)?;
    }
    req.insert_header(HOST, h.host.clone())?;
    match h.authorization {
        Some(auth) => req.insert_header("authorization", auth.clone())?,
        None => {
            req.remove_header(&AUTHORIZATION);
        }
    }
    if let Some(ip) = h.client_ip {
        match req
            .headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(prior) if !prior.trim().is_empty() => {
                let value = format!("{prior}, {ip}");
                req.insert_header("x-forwarded-for", value)?
            }
            _ => req.insert_header("x-forwarded-for", ip_header(ip))?,
        }
    }
    req.insert_header(
        "x-forwarded-proto",
        if h.downstream_tls { "https" } else { "http" },
    )?;
    req.insert_header(request_id::HEADER, h.request_id.clone())?;
    if let Some(name) = h.strip {
        req.remove_header(name);
    }
    Ok(())
}

/// [`rewrite_upstream_headers`] for this request and route, with
/// `authorization` as the token header.
fn rewrite_for_upstream(
    session: &Session,
    head: &mut RequestHeader,
    ctx: &RequestCtx,
    route: &Route,
    authorization: Option<&HeaderValue>,
) -> pingora::Result<()> {
    let original_host = request_host(session.req_header()).map(str::to_owned);
    let client_ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    rewrite_upstream_headers(
        head,
        &UpstreamHeaders {
            host: &route.host_header,
            authorization,
            original_host: original_host.as_deref(),
            client_ip,
            request_id: &ctx.request_id,
            downstream_tls: ctx.downstream_tls,
            strip: route.access.api_key_header(),
        },
    )
}

/// What every answer passed on from the upstream gets: hop-by-hop headers
/// removed, the request id added.
fn finish_response_head(head: &mut ResponseHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    limits::strip_hop_by_hop(head);
    head.insert_header(request_id::HEADER, ctx.request_id.clone())?;
    Ok(())
}

#[async_trait]
impl ProxyHttp for BearerProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.current.load_full())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let snapshot = &*ctx.snapshot;
        let limits = snapshot.limits;
        // Slow or idle clients cannot pin connections.
        session.set_read_timeout(Some(limits.client_read_timeout));
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(limits.client_idle_timeout.as_secs().max(1)));
        }
        // pingora drops Content-Length only when Transfer-Encoding is there.
        let smuggling = session
            .req_header()
            .headers
            .contains_key(http::header::TRANSFER_ENCODING)
            && session
                .as_downstream()
                .as_http1()
                .is_some_and(|h1| limits::raw_head_has_both_framings(&h1.get_headers_raw_bytes()));
        if let Some(tls) = session.digest().and_then(|d| d.ssl_digest.as_ref()) {
            ctx.downstream_tls = true;
            ctx.cert_subject = tls.extension.get::<CertSubject>().map(|s| s.0.clone());
        }
        let req = session.req_header();
        ctx.request_id = request_id::from_headers(&req.headers);
        let refused = if smuggling {
            Some(ErrorReply::new(
                400,
                "bad_request",
                "both Content-Length and Transfer-Encoding: the body's framing is ambiguous",
            ))
        } else {
            limits::check_request_head(req, &limits)
        };
        if let Some(reply) = refused {
            ctx.error = Some(reply.code);
            reply.send(session, &ctx.request_id).await?;
            return Ok(true);
        }
        let Some(index) = snapshot.table.find(request_host(req), req.uri.path()) else {
            let reply = ErrorReply::no_route();
            ctx.error = Some(reply.code);
            reply.send(session, &ctx.request_id).await?;
            return Ok(true);
        };
        ctx.route = Some(index);
        let route = &snapshot.routes[index];
        if let Some(reply) = limits::check_declared_length(req, route.max_body_bytes) {
            ctx.error = Some(reply.code);
            reply.send(session, &ctx.request_id).await?;
            return Ok(true);
        }
        let caller = Caller {
            headers: &req.headers,
            address: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            cert_subject: ctx.cert_subject.as_deref(),
        };
        match route.access.check(&caller).await {
            Decision::Allow { who } => ctx.caller = Some(who),
            Decision::Deny(denial) => {
                metrics::ACCESS_DENIED_TOTAL
                    .with_label_values(&[route.name.as_str(), denial.reason])
                    .inc();
                let mut reply = ErrorReply::new(
                    denial.status,
                    "access_denied",
                    "this route does not accept the request's credentials or address",
                );
                reply.challenge = denial.challenge;
                reply.extra.insert("reason".into(), denial.reason.into());
                ctx.error = Some(reply.code);
                tracing::warn!(
                    request_id = ctx.request_id.to_str().unwrap_or_default(),
                    route = route.name.as_str(),
                    reason = denial.reason,
                    client_ip = caller.address.map(|a| a.to_string()),
                    "access denied"
                );
                reply.send(session, &ctx.request_id).await?;
                return Ok(true);
            }
        }
        match route.slot.authorization().await {
            Ok(value) => {
                ctx.authorization = Some(value);
                Ok(false)
            }
            Err(unavailable) => {
                let reply = ErrorReply::token(&unavailable);
                ctx.error = Some(reply.code);
                tracing::warn!(
                    request_id = ctx.request_id.to_str().unwrap_or_default(),
                    route = route.name.as_str(),
                    client = unavailable.client.as_str(),
                    error = reply.code,
                    cause = %unavailable.error,
                    "no token for request"
                );
                reply.send(session, &ctx.request_id).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let route = &ctx.snapshot.routes[ctx.route.expect("request_filter set the route")];
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
        let snapshot = &*ctx.snapshot;
        let route = &snapshot.routes[ctx.route.expect("request_filter set the route")];
        if ctx.replay == Replay::ByPingora {
            // The token that drew the 401 was purged: this waits for (or
            // shares) the fetch of a new one.
            match route.slot.authorization().await {
                Ok(value) => ctx.authorization = Some(value),
                Err(unavailable) => {
                    ctx.token_failure = Some(unavailable);
                    return Error::e_explain(ErrorType::InternalError, "no token for the replay");
                }
            }
        }
        rewrite_for_upstream(
            session,
            upstream_request,
            ctx,
            route,
            ctx.authorization.as_ref(),
        )?;
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
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
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
            ctx.error = Some("body_too_large");
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over the route's max_body_bytes",
            );
        }
        Ok(())
    }

    /// An upstream 401 to a request sent with token T: purge T if it is
    /// still cached, and replay the request once with a new token when its
    /// body is held (pingora's retry buffer or the proxy's own copy). A
    /// second 401 goes to the client.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if upstream_response.status != http::StatusCode::UNAUTHORIZED || ctx.replay != Replay::No {
            return Ok(());
        }
        let snapshot = &*ctx.snapshot;
        let route = &snapshot.routes[ctx.route.expect("request_filter set the route")];
        if let Some(sent) = &ctx.authorization {
            route.slot.invalidate(sent);
        }
        ctx.replay = replay::plan(
            &ctx.body_copy,
            snapshot.limits.max_replay_body_bytes,
            limits::declared_length(session.req_header()),
            session.as_ref().retry_buffer_truncated(),
        );
        if ctx.replay == Replay::No {
            tracing::info!(
                request_id = ctx.request_id.to_str().unwrap_or_default(),
                route = route.name.as_str(),
                "upstream answered 401; body too large to replay, passing the 401 on"
            );
            return Ok(());
        }
        match ctx.replay {
            // Passed on after all if the body turns out too long.
            Replay::ByProxy => ctx.refusal = Some(Box::new(upstream_response.clone())),
            // pingora resends the body from the start through
            // request_body_filter, which counts it again.
            Replay::ByPingora => ctx.body_bytes = 0,
            Replay::No => {}
        }
        metrics::UPSTREAM_UNAUTHORIZED_RETRIES
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
        } else if !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
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
        let reply = match (e.esource(), e.etype()) {
            _ if ctx.token_failure.is_some() => {
                ErrorReply::token(ctx.token_failure.as_ref().expect("checked"))
            }
            (_, ErrorType::HTTPStatus(413)) => ErrorReply::body_too_large(),
            (_, ErrorType::HTTPStatus(code)) if (400..600).contains(code) => {
                ErrorReply::new(*code, "bad_request", "the request could not be processed")
            }
            (ErrorSource::Upstream, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => {
                ErrorReply::new(
                    504,
                    "upstream_timeout",
                    "the upstream did not answer in time",
                )
            }
            (ErrorSource::Upstream, _) | (_, ErrorType::ConnectNoRoute) => ErrorReply::new(
                502,
                "upstream_unavailable",
                "the upstream could not be reached",
            ),
            (
                ErrorSource::Downstream,
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
            ) => {
                // The client is gone; nobody to answer.
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                };
            }
            (ErrorSource::Downstream, _) => {
                ErrorReply::new(400, "bad_request", "malformed request")
            }
            _ => ErrorReply::new(
                500,
                "internal_error",
                "the proxy failed to handle the request",
            ),
        };
        ctx.error = Some(reply.code);
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
        ctx.replay_answered
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let snapshot = &*ctx.snapshot;
        let route = ctx.route.map(|i| &snapshot.routes[i]);
        let route_name = route.map_or(metrics::NO_ROUTE, |r| r.name.as_str());
        metrics::REQUESTS_TOTAL
            .with_label_values(&[route_name, metrics::status_label(status)])
            .inc();
        let upstream_ms = ctx.upstream_started.map(|t| {
            let d = t.elapsed();
            if let Some(r) = route {
                r.upstream_duration.observe(d.as_secs_f64());
            }
            d.as_secs_f64() * 1000.0
        });
        if tracing::enabled!(target: "bearer_proxy::access", tracing::Level::INFO) {
            let req = session.req_header();
            tracing::info!(
                target: "bearer_proxy::access",
                request_id = ctx.request_id.to_str().unwrap_or_default(),
                method = req.method.as_str(),
                // The path only: query strings can carry credentials.
                path = req.uri.path(),
                route = route_name,
                caller = ctx.caller.as_deref(),
                status,
                upstream_ms,
                total_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
                error = ctx
                    .error
                    .or(e.filter(|_| !ctx.replay_answered).map(|_| "proxy_error")),
                "request"
            );
        }
    }
}
