//! One HTTP client per configured client: sends token requests and turns
//! every answer into a [`TokenResponse`] or a classified [`FetchError`].

use std::sync::Arc;
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::client_auth;
use super::error::{FetchError, IdpError};
use super::grant::{self, Step};
use super::rate::RateCeiling;
use super::token::TokenResponse;
use crate::config::{ClientAuth, ClientConfig};

/// Oracle Access Manager's identity-domain header.
pub const OAM_DOMAIN_HEADER: &str = "x-oauth-identity-domain-name";

/// The HTTP client for a token endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot build the HTTP client for the identity service: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot use the client certificate: {0}")]
    Identity(#[source] rustls::Error),
}

/// Token responses are small; anything bigger is not one.
const MAX_BODY: usize = 256 * 1024;

pub struct TokenEndpoint {
    http: reqwest::Client,
    client: Arc<ClientConfig>,
    ceiling: Option<Arc<RateCeiling>>,
}

impl TokenEndpoint {
    /// `ceiling` paces requests to this client's token URL (shared with
    /// other clients of the same URL); `None` for one-off use.
    pub fn new(
        client: Arc<ClientConfig>,
        ceiling: Option<Arc<RateCeiling>>,
    ) -> Result<Self, TransportError> {
        // The client's certificate goes on this connection only: never on
        // an upstream one.
        let tls = match &client.auth {
            ClientAuth::TlsClientAuth { identity } => {
                crate::tls::client_config_with_identity(&client.extra_roots, identity)
                    .map_err(TransportError::Identity)?
            }
            _ => crate::tls::client_config(&client.extra_roots),
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(client.connect_timeout)
            .timeout(client.request_timeout)
            // Never carry credentials to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bearer-proxy/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(TransportError::Client)?;
        Ok(TokenEndpoint {
            http,
            client,
            ceiling,
        })
    }

    /// Paces, then sends: for one-off use (the `token` command).
    pub async fn request(
        &self,
        step: &Step<'_>,
        scopes: &[String],
    ) -> Result<TokenResponse, FetchError> {
        let _ = self.pace().await;
        self.send(step, scopes).await
    }

    /// Waits for the token URL's rate ceiling, if there is one. Separate
    /// from [`TokenEndpoint::send`] so the cache can date a token from when
    /// its request left, not from when it joined the queue: dated from the
    /// queue, tokens fetched together under the ceiling all come due
    /// together again.
    /// Returns whether the ceiling made the request wait.
    pub async fn pace(&self) -> bool {
        let Some(ceiling) = &self.ceiling else {
            return false;
        };
        let waited = ceiling.acquire().await;
        if !waited.is_zero() {
            tracing::debug!(
                client = self.client.name.as_str(),
                waited_ms = waited.as_millis() as u64,
                "token request paced by the rate ceiling"
            );
        }
        !waited.is_zero()
    }

    /// [`Self::pace`], unless the ceiling is booked more than `max_wait`
    /// ahead: then nothing is booked and `None` comes back at once.
    pub async fn pace_within(&self, max_wait: Duration) -> Option<bool> {
        let Some(ceiling) = &self.ceiling else {
            return Some(false);
        };
        let waited = ceiling.acquire_within(max_wait).await?;
        Some(!waited.is_zero())
    }

    /// Sends one token request now: the grant `step` for `scopes`, with
    /// the client's authentication.
    pub async fn send(
        &self,
        step: &Step<'_>,
        scopes: &[String],
    ) -> Result<TokenResponse, FetchError> {
        self.send_dated(step, scopes).await.0
    }

    /// [`Self::send`], also returning the identity service's `Date` header
    /// (for `doctor`'s clock-skew check).
    pub async fn send_dated(
        &self,
        step: &Step<'_>,
        scopes: &[String],
    ) -> (
        Result<TokenResponse, FetchError>,
        Option<std::time::SystemTime>,
    ) {
        let mut date = None;
        let result = self.exchange(step, scopes, &mut date).await;
        (result, date)
    }

    async fn exchange(
        &self,
        step: &Step<'_>,
        scopes: &[String],
        date: &mut Option<std::time::SystemTime>,
    ) -> Result<TokenResponse, FetchError> {
        let mut form = grant::form(&self.client, step, scopes)?;
        let authorization = client_auth::apply(&self.client, &mut form)?;
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .extend_pairs(&self.client.token_request_params)
            .finish();
        let mut request = self
            .http
            .post(self.client.token_url.clone())
            .header(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .header(ACCEPT, "application/json")
            .body(body);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(domain) = &self.client.identity_domain_name {
            request = request.header(OAM_DOMAIN_HEADER, domain);
        }
        let mut response = request.send().await.map_err(send_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        *date = headers
            .get(http::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(send_error)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(FetchError::InvalidResponse(format!(
                    "HTTP {status} body larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        classify(status, &headers, &body)
    }
}

/// Maps a status and body to a token or a classified error.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, FetchError> {
    match status.as_u16() {
        200..=299 => TokenResponse::parse(body),
        429 => Err(FetchError::RateLimited {
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        }),
        500..=599 => Err(FetchError::ServerError {
            status: status.as_u16(),
            idp: parse_idp_error(body),
        }),
        400..=499 => Err(FetchError::Rejected {
            status: status.as_u16(),
            idp: parse_idp_error(body).unwrap_or_else(|| IdpError {
                code: format!("http_{}", status.as_u16()),
                description: None,
                ecid: None,
            }),
        }),
        other => Err(FetchError::InvalidResponse(format!(
            "unexpected HTTP status {other}"
        ))),
    }
}

/// Identity domains answer `{error, error_description, ecid}`; Oracle
/// Access Manager answers `{errorCode, errorDesc, secErrorDesc}`.
#[derive(Deserialize)]
struct WireError {
    error: Option<String>,
    error_description: Option<String>,
    ecid: Option<String>,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
    #[serde(rename = "errorDesc")]
    error_desc: Option<String>,
}

fn parse_idp_error(body: &[u8]) -> Option<IdpError> {
    let wire: WireError = serde_json::from_slice(body).ok()?;
    let code = wire.error.or(wire.error_code)?;
    Some(IdpError {
        code: clip(&code, 64),
        description: wire
            .error_description
            .or(wire.error_desc)
            .map(|d| clip(&d, 300)),
        ecid: wire.ecid.map(|e| clip(&e, 128)),
    })
}

/// Bounds what an identity service can put into our logs.
fn clip(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() <= max {
        clean
    } else {
        clean.chars().take(max).chain("…".chars()).collect()
    }
}

fn send_error(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    // The innermost cause says what happened ("connection refused");
    // reqwest's own text repeats the URL.
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let what = if e.is_connect() { "connect" } else { "request" };
    FetchError::Unreachable(format!("{what} failed: {cause}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let h = HeaderMap::new();
        let e = classify(
            StatusCode::BAD_REQUEST,
            &h,
            br#"{"error":"invalid_client","error_description":"bad","ecid":"E1"}"#,
        )
        .unwrap_err();
        assert_eq!(e.outcome(), "idp_rejected");
        assert_eq!(e.idp().unwrap().ecid.as_deref(), Some("E1"));
        let e = classify(
            StatusCode::BAD_REQUEST,
            &h,
            br#"{"errorCode":"OAM-1","errorDesc":"nope"}"#,
        )
        .unwrap_err();
        assert_eq!(e.idp().unwrap().code, "OAM-1");
        let e = classify(StatusCode::UNAUTHORIZED, &h, b"not json").unwrap_err();
        assert_eq!(e.idp().unwrap().code, "http_401");
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, &h, b"")
                .unwrap_err()
                .outcome(),
            "idp_unavailable"
        );
        let mut h429 = HeaderMap::new();
        h429.insert(RETRY_AFTER, "7".parse().unwrap());
        match classify(StatusCode::TOO_MANY_REQUESTS, &h429, b"").unwrap_err() {
            FetchError::RateLimited { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(StatusCode::FOUND, &h, b"").unwrap_err().outcome(),
            "invalid_response"
        );
    }
}
