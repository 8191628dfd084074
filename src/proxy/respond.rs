//! The proxy's own answers: JSON bodies with a stable `error` code, so
//! clients can branch on the code and operators can grep for it.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::{json, Map, Value};

use crate::oauth::{FetchError, Unavailable};

/// One error response.
pub struct ErrorReply {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// `WWW-Authenticate` for a 401.
    pub challenge: Option<HeaderValue>,
    pub extra: Map<String, Value>,
}

impl ErrorReply {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ErrorReply {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            challenge: None,
            extra: Map::new(),
        }
    }

    pub fn body_too_large() -> Self {
        ErrorReply::new(
            413,
            "body_too_large",
            "the request body is larger than this route accepts",
        )
    }

    pub fn no_route() -> Self {
        ErrorReply::new(404, "no_route", "no route matches this host and path")
    }

    /// 502 when the identity service refused the client's credentials or
    /// scopes (only its error code is passed on); 503 with `Retry-After`
    /// when it could not be asked or answered nonsense.
    pub fn token(u: &Unavailable) -> Self {
        let mut reply = match &u.error {
            FetchError::Rejected { idp, .. } => {
                let mut r = ErrorReply::new(
                    502,
                    "token_rejected",
                    format!(
                        "the identity service rejected client \"{}\": {}",
                        u.client, idp.code
                    ),
                );
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
                ErrorReply::new(
                    503,
                    "token_unavailable",
                    format!("no access token for client \"{}\": {why}", u.client),
                )
            }
        };
        reply.retry_after_secs = Some(u.retry_after.as_secs_f64().ceil().max(1.0) as u64);
        reply
            .extra
            .insert("client".into(), Value::String(u.client.clone()));
        reply
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

    /// Writes the response; the request ends here.
    pub async fn send(
        &self,
        session: &mut Session,
        request_id: &HeaderValue,
    ) -> pingora::Result<()> {
        let body = self.body(request_id);
        let mut header = ResponseHeader::build(self.status, Some(5))?;
        header.insert_header("content-type", "application/json")?;
        header.insert_header("content-length", body.len().to_string())?;
        header.insert_header("cache-control", "no-store")?;
        header.insert_header(super::request_id::HEADER, request_id.clone())?;
        if let Some(c) = &self.challenge {
            header.insert_header("www-authenticate", c.clone())?;
        }
        if let Some(s) = self.retry_after_secs {
            header.insert_header("retry-after", s.to_string())?;
        }
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
