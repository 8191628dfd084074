//! The headers the proxy sets: on every forwarded request (Host, the
//! token, X-Forwarded-*, the request id) and on every answer passed back.

use std::net::IpAddr;

use http::header::{AUTHORIZATION, HOST};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::snapshot::LiveRoute;
use super::{limits, request_id};

/// The host the client asked for: the absolute-form authority, else `Host`.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
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
pub fn rewrite_for_upstream(
    session: &Session,
    head: &mut RequestHeader,
    ctx: &RequestCtx,
    route: &LiveRoute,
    authorization: Option<&HeaderValue>,
) -> pingora::Result<()> {
    let original_host = request_host(session.req_header()).map(str::to_owned);
    rewrite_upstream_headers(
        head,
        &UpstreamHeaders {
            host: &route.host_header,
            authorization,
            original_host: original_host.as_deref(),
            client_ip: client_ip(session),
            request_id: &ctx.request_id,
            downstream_tls: ctx.downstream_tls,
            strip: route.access.api_key_header(),
        },
    )
}

pub fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// What every answer passed on from the upstream gets: hop-by-hop headers
/// removed, the request id added.
pub fn finish_response_head(head: &mut ResponseHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    limits::strip_hop_by_hop(head);
    head.insert_header(request_id::HEADER, ctx.request_id.clone())?;
    Ok(())
}
