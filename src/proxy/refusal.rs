//! Every answer the proxy makes by itself, as one enum, and the one place
//! that maps each to its status, stable `error` code, message and extra
//! fields. Clients branch on the code; operators grep for it.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::{json, Map, Value};

use crate::access::Denial;
use crate::oauth::{FetchError, Unavailable};

/// Why the proxy answered instead of the upstream.
#[derive(Debug)]
pub enum Refusal {
    /// No route matches the host and path.
    NoRoute,
    /// The route's access rules refused the caller.
    AccessDenied(Denial),
    /// No token for the route's client: refused (502) or not to be had (503).
    Token(Unavailable),
    /// The upstream could not be reached or its answer not passed on.
    UpstreamUnavailable,
    UpstreamTimeout,
    /// Both Content-Length and Transfer-Encoding.
    AmbiguousFraming,
    ConflictingLength,
    /// pingora refused the request with this status.
    Unprocessable(u16),
    /// The client sent something pingora could not read.
    MalformedRequest,
    /// Our own reading of the head or its first chunks refused it; the
    /// message says why.
    BadHead(&'static str),
    /// A path an upstream could read as another path; the reason says why.
    BadPath(&'static str),
    /// The method is never forwarded, or not on this route; the `Allow` value.
    MethodNotAllowed(HeaderValue),
    BodyTooLarge,
    /// Too many or too large request headers; the message says which.
    HeadersTooLarge(String),
    /// A traffic limit refused the request (rate, messages, or no place).
    Limited(Box<crate::limits::LimitRefusal>),
    /// A bug or an impossible state; the message says where.
    Internal(&'static str),
}

/// A refusal rendered: what goes on the wire.
pub struct ErrorReply {
    pub status: u16,
    pub code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    /// `WWW-Authenticate` for a 401.
    challenge: Option<HeaderValue>,
    /// `Allow` for a 405.
    allow: Option<HeaderValue>,
    /// `RateLimit-Policy` and `RateLimit` of a limit's refusal.
    rate_limit: Option<(Option<HeaderValue>, Option<HeaderValue>)>,
    extra: Map<String, Value>,
}

impl Refusal {
    /// The stable `error` code (also the access log's `error` field).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoRoute => "no_route",
            Refusal::AccessDenied(_) => "access_denied",
            Refusal::Token(u) => token_code(u),
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::AmbiguousFraming
            | Refusal::ConflictingLength
            | Refusal::Unprocessable(_)
            | Refusal::MalformedRequest
            | Refusal::BadHead(_) => "bad_request",
            Refusal::BadPath(_) => "bad_path",
            Refusal::MethodNotAllowed(_) => "method_not_allowed",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::HeadersTooLarge(_) => "headers_too_large",
            Refusal::Limited(l) => limit_code(l),
            Refusal::Internal(_) => "internal_error",
        }
    }

    /// Status, code, message and extra fields of this refusal.
    pub fn reply(&self) -> ErrorReply {
        let code = self.code();
        let plain = |status, message: &str| ErrorReply::new(status, code, message.into());
        match self {
            Refusal::NoRoute => plain(404, "no route matches this host and path"),
            Refusal::AccessDenied(denial) => {
                let mut r = plain(
                    denial.status,
                    "this route does not accept the request's credentials or address",
                );
                r.challenge = denial.challenge.clone();
                r.extra.insert("reason".into(), denial.reason.into());
                r
            }
            Refusal::Token(unavailable) => token_reply(unavailable),
            Refusal::UpstreamUnavailable => plain(502, "the upstream could not be reached"),
            Refusal::UpstreamTimeout => plain(504, "the upstream did not answer in time"),
            Refusal::AmbiguousFraming => plain(
                400,
                "both Content-Length and Transfer-Encoding: the body's framing is ambiguous",
            ),
            Refusal::ConflictingLength => plain(400, "conflicting Content-Length headers"),
            Refusal::Unprocessable(status) => plain(*status, "the request could not be processed"),
            Refusal::MalformedRequest => plain(400, "malformed request"),
            Refusal::BadHead(why) => plain(400, why),
            Refusal::BadPath(why) => plain(400, &format!("the request path is refused: {why}")),
            Refusal::MethodNotAllowed(allow) => {
                let mut r = plain(405, "this method is not forwarded on this route");
                r.allow = Some(allow.clone());
                r
            }
            Refusal::BodyTooLarge => {
                plain(413, "the request body is larger than this route accepts")
            }
            Refusal::HeadersTooLarge(why) => plain(431, why),
            Refusal::Limited(l) => limit_reply(l),
            Refusal::Internal(what) => plain(500, what),
        }
    }
}

/// `rate_limited` (429), `quota_exceeded` (429) or `upstream_busy` (503).
fn limit_code(l: &crate::limits::LimitRefusal) -> &'static str {
    use crate::limits::Reason;
    match l.reason {
        Reason::Rate => "rate_limited",
        Reason::Messages => "quota_exceeded",
        Reason::Busy | Reason::Gone => "upstream_busy",
    }
}

/// A limit's refusal: its name, `Retry-After`, and the `RateLimit` fields.
fn limit_reply(l: &crate::limits::LimitRefusal) -> ErrorReply {
    use crate::limits::Reason;
    let (status, message) = match l.reason {
        Reason::Rate => (429, "too many requests: this route's rate limit is reached"),
        Reason::Messages => (
            429,
            "this route's Oracle Integration message quota for the current window is used up",
        ),
        Reason::Busy | Reason::Gone => (
            503,
            "the upstream's concurrency limit is reached and no place freed in time",
        ),
    };
    let mut r = ErrorReply::new(status, limit_code(l), message.into());
    r.retry_after_secs = Some(l.retry_after_secs.max(1));
    r.rate_limit = Some((l.policy.clone(), l.state.clone()));
    r.extra
        .insert("limit".into(), Value::String(l.limit.clone()));
    r
}

/// `token_rejected` when the identity service refused the client (its
/// answer will not change until the configuration does), else
/// `token_unavailable`.
pub fn token_code(u: &Unavailable) -> &'static str {
    match u.error {
        FetchError::Rejected { .. } => "token_rejected",
        _ => "token_unavailable",
    }
}

/// 502 when the identity service refused the client's credentials or
/// scopes (only its error code is passed on); 503 with `Retry-After` when
/// it could not be asked or answered nonsense.
fn token_reply(u: &Unavailable) -> ErrorReply {
    let mut reply = match &u.error {
        FetchError::Rejected { idp, .. } => {
            let message = format!(
                "the identity service rejected client \"{}\": {}",
                u.client, idp.code
            );
            let mut r = ErrorReply::new(502, token_code(u), message);
            r.extra
                .insert("idp_error".into(), Value::String(idp.code.clone()));
            r
        }
        other => {
            let why = match other {
                FetchError::RateLimited { .. } => "rate limited by the identity service",
                FetchError::InvalidResponse(_) => {
                    "the identity service sent an invalid token response"
                }
                FetchError::Timeout => "the identity service timed out",
                FetchError::ServerError { .. } => "the identity service failed",
                _ => "the identity service is unreachable",
            };
            let message = format!("no access token for client \"{}\": {why}", u.client);
            ErrorReply::new(503, token_code(u), message)
        }
    };
    reply.retry_after_secs = Some(u.retry_after.as_secs_f64().ceil().max(1.0) as u64);
    reply
        .extra
        .insert("client".into(), Value::String(u.client.clone()));
    reply
}

impl ErrorReply {
    fn new(status: u16, code: &'static str, message: String) -> Self {
        ErrorReply {
            status,
            code,
            message,
            retry_after_secs: None,
            challenge: None,
            allow: None,
            rate_limit: None,
            extra: Map::new(),
        }
    }

    pub fn body(&self, request_id: &HeaderValue) -> Bytes {
        let mut body = json!({
            "error": self.code,
            "message": self.message,
            "request_id": request_id.to_str().unwrap_or_default(),
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extra.clone());
        }
        Bytes::from(body.to_string())
    }

    /// The answer's head for a body of `body_len` bytes (both transports
    /// write this head; each adds its own `Date` and `Connection`).
    pub fn head(
        &self,
        body_len: usize,
        request_id: &HeaderValue,
    ) -> pingora::Result<ResponseHeader> {
        let mut header = ResponseHeader::build(self.status, Some(5))?;
        header.insert_header("content-type", "application/json")?;
        header.insert_header("content-length", body_len.to_string())?;
        header.insert_header("cache-control", "no-store")?;
        header.insert_header(super::request_id::HEADER, request_id.clone())?;
        if let Some(c) = &self.challenge {
            header.insert_header("www-authenticate", c.clone())?;
        }
        if let Some(a) = &self.allow {
            header.insert_header("allow", a.clone())?;
        }
        if let Some(s) = self.retry_after_secs {
            header.insert_header("retry-after", s.to_string())?;
        }
        if let Some((policy, state)) = &self.rate_limit {
            if let Some(p) = policy {
                header.insert_header("ratelimit-policy", p.clone())?;
            }
            if let Some(s) = state {
                header.insert_header("ratelimit", s.clone())?;
            }
        }
        Ok(header)
    }

    /// Writes the response; the request ends here.
    pub async fn send(
        &self,
        session: &mut Session,
        request_id: &HeaderValue,
    ) -> pingora::Result<()> {
        let body = self.body(request_id);
        let header = self.head(body.len(), request_id)?;
        if !session.as_downstream_mut().is_body_empty() {
            // An unread request body would corrupt the next request on this connection.
            session.set_keepalive(None);
        }
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session.write_response_body(Some(body), true).await
    }
}

/// Answers a request from `request_filter`: writes the refusal and ends
/// the filter chain (`Ok(true)`); returns the code for the access log.
pub async fn refuse(
    session: &mut Session,
    request_id: &HeaderValue,
    refusal: Refusal,
) -> (&'static str, pingora::Result<bool>) {
    let reply = refusal.reply();
    if session.req_header().method == http::Method::CONNECT {
        // Whatever the client meant to send next is tunnel data, not HTTP.
        session.set_keepalive(None);
    }
    let sent = reply.send(session, request_id).await.map(|()| true);
    (reply.code, sent)
}
