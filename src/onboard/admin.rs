//! Calls to the identity domain's admin REST API with an admin token:
//! JSON in and out, the domain's 429s waited out (these calls share the
//! "Others" rate limit, 20 to 90 a second), every failure reduced to its
//! status and the domain's `detail`. Nothing here logs a body or a token.

use std::time::Duration;

use http::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::scim::{OAuthError, ScimError, TokenAnswer};
use crate::config::Secret;

/// The scope of identity-domain administration tokens.
pub const ADMIN_SCOPE: &str = "urn:opc:idm:__myscopes__";
/// Answers are small; a bigger one is not an answer of this API.
const MAX_BODY: usize = 1024 * 1024;
/// Tries of a call the domain answers with 429.
const TRIES: u32 = 5;
/// The longest `Retry-After` honoured.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// A call that did not succeed: the HTTP status (none when the domain
/// could not be reached) and what the domain said.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: Option<u16>,
    pub detail: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status}: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

fn unreachable(e: reqwest::Error) -> CallError {
    // reqwest's message names the URL, which holds no credential here.
    CallError {
        status: None,
        detail: format!("cannot reach the identity domain: {}", e.without_url()),
    }
}

pub struct AdminApi {
    http: reqwest::Client,
    /// `https://idcs-….identity.oraclecloud.com`, no trailing slash.
    base: String,
    token: Secret,
}

/// The HTTP client: the system's roots, no redirects (a redirect would
/// carry the admin credential elsewhere), bounded times.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::client_config(&[]))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "bearer-proxy/",
            env!("CARGO_PKG_VERSION"),
            " onboard"
        ))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A client-credentials token for the admin scope from `base`'s token
/// endpoint, authenticated with Basic as Oracle documents it.
pub async fn admin_token(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    secret: &Secret,
) -> Result<Secret, CallError> {
    let request = http
        .post(format!("{base}/oauth2/v1/token"))
        .basic_auth(client_id, Some(secret.expose()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(format!("grant_type=client_credentials&scope={ADMIN_SCOPE}"));
    let (status, body) = send(request).await?;
    if status != 200 {
        let why: OAuthError = serde_json::from_slice(&body).unwrap_or(OAuthError {
            error: None,
            error_description: None,
        });
        let detail = match (why.error, why.error_description) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e,
            _ => "the token endpoint refused the admin client".into(),
        };
        return Err(CallError {
            status: Some(status),
            detail,
        });
    }
    serde_json::from_slice::<TokenAnswer>(&body)
        .ok()
        .and_then(|t| t.access_token)
        .ok_or(CallError {
            status: Some(status),
            detail: "the token endpoint's answer holds no access_token".into(),
        })
}

/// Sends `request`, waiting out 429s (the last one is returned like
/// any answer); returns the status and body.
async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), CallError> {
    let mut attempt = 1;
    loop {
        // Bodies here are bytes in memory: a request always clones.
        let Some(this) = request.try_clone() else {
            return Err(CallError {
                status: None,
                detail: "cannot send the request again".into(),
            });
        };
        let mut response = this.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        if status == 429 && attempt < TRIES {
            tokio::time::sleep(retry_after(response.headers(), attempt)).await;
            attempt += 1;
            continue;
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(CallError {
                    status: Some(status),
                    detail: "the answer is larger than 1 MiB".into(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        return Ok((status, body));
    }
}

/// The domain's `Retry-After` (capped), or 1, 2, 4, … seconds.
fn retry_after(headers: &http::HeaderMap, attempt: u32) -> Duration {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1 << (attempt - 1)))
        .min(MAX_WAIT)
}

impl AdminApi {
    pub fn new(http: reqwest::Client, base: &str, token: Secret) -> Self {
        AdminApi {
            http,
            base: base.to_string(),
            token,
        }
    }

    /// `GET path`, with a SCIM `filter` when given.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        filter: Option<&str>,
    ) -> Result<T, CallError> {
        let mut url = format!("{}{path}", self.base);
        if let Some(f) = filter {
            url.push_str("?filter=");
            url.extend(form_urlencoded::byte_serialize(f.as_bytes()));
        }
        self.call(self.http.get(url)).await
    }

    /// A changing call with a JSON `body`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, CallError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            let json = serde_json::to_vec(body).map_err(|e| CallError {
                status: None,
                detail: format!("cannot encode the request: {e}"),
            })?;
            request = request
                .header("content-type", "application/scim+json")
                .body(json);
        }
        self.call(request).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let request = request
            .bearer_auth(self.token.expose())
            .header("accept", "application/scim+json, application/json");
        let (status, body) = send(request).await?;
        if !(200..300).contains(&status) {
            let detail = serde_json::from_slice::<ScimError>(&body)
                .ok()
                .and_then(|e| e.detail)
                .unwrap_or_else(|| "the identity domain gave no detail".into());
            return Err(CallError {
                status: Some(status),
                detail,
            });
        }
        let body: &[u8] = if body.is_empty() { b"null" } else { &body };
        serde_json::from_slice(body).map_err(|e| CallError {
            status: Some(status),
            detail: format!(
                "unexpected answer: {}",
                crate::config::redact::serde_message(&e.to_string())
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h, 1), Duration::from_secs(1));
        assert_eq!(retry_after(&h, 3), Duration::from_secs(4));
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h, 1), Duration::from_secs(3));
        h.insert("retry-after", "600".parse().unwrap());
        assert_eq!(retry_after(&h, 1), MAX_WAIT);
    }
}
