//! The headers the proxy sets: on every forwarded request (Host, the
//! token, X-Forwarded-*, the request id) and on every answer passed back.

use std::net::IpAddr;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

use super::ctx::RequestCtx;
use super::snapshot::LiveRoute;
use super::view::RequestView;
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
    /// The host the client asked for (X-Forwarded-Host).
    pub original_host: Option<HeaderValue>,
    pub client_ip: Option<IpAddr>,
    pub request_id: &'a HeaderValue,
    /// The client reached us over TLS.
    pub downstream_tls: bool,
    /// The route's API-key header: the client's key must not travel on.
    pub strip: Option<&'a http::HeaderName>,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static HTTPS: HeaderValue = HeaderValue::from_static("https");
static HTTP: HeaderValue = HeaderValue::from_static("http");

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
///
/// The head is rebuilt from its parts rather than edited with
/// `insert_header`: pingora's editing API re-parses every name and keeps a
/// second map of the client's spelling, which made these seven edits a
/// tenth of the proxy's work per request. Names go upstream in lower (or
/// pingora's title) case, and an absolute-form target in origin form,
/// which is what a reverse proxy owes its upstream anyway.
pub fn rewrite_upstream_headers(req: &mut RequestHeader, h: &UpstreamHeaders<'_>) {
    // Moved out, not cloned: the stand-in left behind allocates nothing.
    let stand_in = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, stand_in));
    let headers = &mut parts.headers;
    // Room for the five forwarding headers: one grow instead of several.
    headers.reserve(5);
    if let Some(original) = &h.original_host {
        headers.insert(X_FORWARDED_HOST.clone(), original.clone());
    }
    headers.insert(HOST, h.host.clone());
    match h.authorization {
        Some(auth) => headers.insert(AUTHORIZATION, auth.clone()),
        None => headers.remove(AUTHORIZATION),
    };
    if let Some(ip) = h.client_ip {
        let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            // `prior` passed `to_str`, so the joined value is valid too; a
            // failure would only lose the chain, never the request.
            Some(prior) if !prior.trim().is_empty() => {
                HeaderValue::try_from(format!("{prior}, {ip}")).unwrap_or_else(|_| ip_header(ip))
            }
            _ => ip_header(ip),
        };
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    let proto = if h.downstream_tls { &HTTPS } else { &HTTP };
    headers.insert(X_FORWARDED_PROTO.clone(), proto.clone());
    headers.insert(request_id::NAME.clone(), h.request_id.clone());
    if let Some(name) = h.strip {
        headers.remove(name);
    }
    *req = RequestHeader::from(parts);
}

/// [`rewrite_upstream_headers`] for this request and route, with
/// `authorization` as the token header.
pub fn rewrite_for_upstream(
    view: &RequestView<'_>,
    head: &mut RequestHeader,
    ctx: &RequestCtx,
    route: &LiveRoute,
    authorization: Option<&HeaderValue>,
) {
    rewrite_upstream_headers(
        head,
        &UpstreamHeaders {
            host: &route.host_header,
            authorization,
            original_host: original_host(view.head),
            client_ip: view.client_ip,
            request_id: &ctx.request_id,
            downstream_tls: ctx.downstream_tls,
            strip: route.access.api_key_header(),
        },
    )
}

/// [`request_host`] as a header value: the client's own `Host` value when
/// that is where it came from (no copy).
fn original_host(req: &RequestHeader) -> Option<HeaderValue> {
    match req.uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => req
            .headers
            .get(HOST)
            .filter(|v| v.to_str().is_ok())
            .cloned(),
    }
}

/// What every answer passed on from the upstream gets: hop-by-hop headers
/// removed, the request id added.
pub fn finish_response_head(head: &mut ResponseHeader, ctx: &RequestCtx) -> pingora::Result<()> {
    limits::strip_hop_by_hop(head);
    head.insert_header(request_id::HEADER, ctx.request_id.clone())?;
    if let Some(admission) = &ctx.admission {
        if let Some(policy) = &admission.policy {
            head.insert_header("ratelimit-policy", policy.clone())?;
        }
        if let Some(state) = &admission.state {
            head.insert_header("ratelimit", state.clone())?;
        }
    }
    Ok(())
}
