//! An identity-domain token endpoint (`POST /oauth2/v1/token`) that speaks
//! the client-credentials protocol, issues RS256 JWTs and publishes its
//! JWKS. Tests steer it: token lifetime, failure modes, request log.
//!
//! Where Oracle's documents leave behaviour open, the emulator picks one
//! and says so in a comment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::sync::watch;

/// The emulator's signing key. A fixed demo key, published through the
/// JWKS: it protects nothing.
const SIGNING_KEY_PEM: &str = include_str!("demo-signing-key.pem");
const SIGNING_KEY_N: &str = include_str!("demo-signing-key.n");
pub const SIGNING_KEY_ID: &str = "bearer-proxy-emulator";
pub const ISSUER: &str = "https://identity.oraclecloud.com/";

/// What the next token requests meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// Connections are dropped without an answer.
    Down,
    /// Answers correctly after this delay.
    Slow(Duration),
    /// 503 with an Oracle-style error body.
    ServerError,
    /// 429.
    RateLimited,
    /// 200 with an HTML body.
    InvalidJson,
}

/// One token request as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub form: Vec<(String, String)>,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The client id that authenticated, if authentication succeeded.
    pub client_id: Option<String>,
}

impl TokenRequest {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct IdpState {
    clients: Mutex<HashMap<String, String>>,
    lifetime_secs: AtomicU64,
    mode: Mutex<Mode>,
    pub(crate) down: Arc<AtomicBool>,
    log: Mutex<Vec<TokenRequest>>,
    count: watch::Sender<u64>,
    key: EncodingKey,
}

impl IdpState {
    pub fn new() -> Arc<Self> {
        Arc::new(IdpState {
            clients: Mutex::new(HashMap::new()),
            lifetime_secs: AtomicU64::new(3600),
            mode: Mutex::new(Mode::Ok),
            down: Arc::new(AtomicBool::new(false)),
            log: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            key: EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
                .expect("the bundled demo key is a valid RSA PEM"),
        })
    }

    /// Registers a confidential application.
    pub fn register_client(&self, client_id: &str, secret: &str) {
        lock(&self.clients).insert(client_id.into(), secret.into());
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lifetime_secs
            .store(lifetime.as_secs().max(1), Ordering::SeqCst);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.down.store(mode == Mode::Down, Ordering::SeqCst);
        *lock(&self.mode) = mode;
    }

    /// Token requests received so far (including failed ones).
    pub fn request_count(&self) -> u64 {
        *self.count.borrow()
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.log).clone()
    }

    /// Waits until at least `n` token requests have arrived.
    pub async fn wait_for_requests(&self, n: u64, timeout: Duration) -> bool {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn record(&self, req: TokenRequest) {
        lock(&self.log).push(req);
        self.count.send_modify(|c| *c += 1);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The JWKS document for the signing key.
pub fn jwks() -> serde_json::Value {
    json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig",
        "kid": SIGNING_KEY_ID, "n": SIGNING_KEY_N.trim(), "e": "AQAB",
    }]})
}

/// A key that verifies the emulator's tokens.
pub fn decoding_key() -> jsonwebtoken::DecodingKey {
    jsonwebtoken::DecodingKey::from_rsa_components(SIGNING_KEY_N.trim(), "AQAB")
        .expect("the bundled modulus is valid base64url")
}

pub fn router(state: Arc<IdpState>) -> Router {
    Router::new()
        .route("/oauth2/v1/token", post(token))
        .route("/admin/v1/SigningCert/jwk", get(|| async { Json(jwks()) }))
        .route("/.well-known/jwks.json", get(|| async { Json(jwks()) }))
        .with_state(state)
}

fn oracle_error(status: StatusCode, error: &str, description: &str) -> Response {
    let ecid = uuid::Uuid::new_v4().simple().to_string();
    (
        status,
        Json(json!({"error": error, "error_description": description, "ecid": ecid})),
    )
        .into_response()
}

async fn token(State(state): State<Arc<IdpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut record = TokenRequest {
        form,
        authorization,
        client_id: None,
    };
    let mode = *lock(&state.mode);
    let response = match mode {
        Mode::ServerError => oracle_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The service is temporarily unavailable.",
        ),
        Mode::RateLimited => oracle_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Rate limit exceeded.",
        ),
        Mode::InvalidJson => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html><body>Maintenance</body></html>",
        )
            .into_response(),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            issue(&state, &mut record)
        }
        Mode::Ok | Mode::Down => issue(&state, &mut record),
    };
    state.record(record);
    response
}

fn issue(state: &IdpState, record: &mut TokenRequest) -> Response {
    let client_id = match check_client(state, record) {
        Ok(id) => id,
        Err(failure) => return failure.response(),
    };
    record.client_id = Some(client_id.clone());
    match record.field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return oracle_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The grant type is not supported.",
            )
        }
        None => {
            return oracle_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required.",
            )
        }
    }
    // Identity domains refuse a client-credentials request without a scope.
    let Some(scope) = record.field("scope").filter(|s| !s.trim().is_empty()) else {
        return oracle_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        );
    };
    let mut lifetime = state.lifetime_secs.load(Ordering::SeqCst);
    // `urn:opc:resource:expiry=<seconds>` asks for a shorter token; Oracle
    // documents only shortening, so a longer request is ignored here.
    for s in scope.split_whitespace() {
        if let Some(secs) = s
            .strip_prefix("urn:opc:resource:expiry=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            lifetime = lifetime.min(secs.max(1));
        }
    }
    let now = crate::clock::unix_now() as u64;
    let claims = json!({
        "iss": ISSUER,
        "sub": client_id,
        "client_id": client_id,
        "aud": audiences(scope),
        "scope": scope,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid::Uuid::new_v4().to_string(),
        "token_type": "AT",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(SIGNING_KEY_ID.into());
    match jsonwebtoken::encode(&header, &claims, &state.key) {
        Ok(token) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }))
        .into_response(),
        Err(_) => oracle_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        ),
    }
}

/// The resource servers named by the scopes: the token's audience.
fn audiences(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for server in scope
        .split_whitespace()
        .filter_map(crate::scope::resource_server)
    {
        if !out.iter().any(|s| s == server) {
            out.push(server.to_string());
        }
    }
    if out.is_empty() {
        out.push(ISSUER.into());
    }
    out
}

/// Why client authentication failed.
enum AuthFailure {
    InvalidClient,
    TwoMethods,
}

impl AuthFailure {
    fn response(self) -> Response {
        match self {
            AuthFailure::InvalidClient => oracle_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed.",
            ),
            AuthFailure::TwoMethods => oracle_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Use exactly one client authentication method.",
            ),
        }
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(header: &str) -> Result<(String, String), AuthFailure> {
    let b64 = header
        .strip_prefix("Basic ")
        .ok_or(AuthFailure::InvalidClient)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| AuthFailure::InvalidClient)?;
    let raw = String::from_utf8(raw).map_err(|_| AuthFailure::InvalidClient)?;
    let (id, secret) = raw.split_once(':').ok_or(AuthFailure::InvalidClient)?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok((decode(id), decode(secret)))
}

fn check_client(state: &IdpState, record: &TokenRequest) -> Result<String, AuthFailure> {
    let from_basic = record
        .authorization
        .as_deref()
        .map(basic_credentials)
        .transpose()?;
    let from_post = match (record.field("client_id"), record.field("client_secret")) {
        (Some(id), Some(secret)) => Some((id.to_string(), secret.to_string())),
        _ => None,
    };
    let (id, secret) = match (from_basic, from_post) {
        (Some(_), Some(_)) => return Err(AuthFailure::TwoMethods),
        (Some(c), None) | (None, Some(c)) => c,
        (None, None) => return Err(AuthFailure::InvalidClient),
    };
    match lock(&state.clients).get(&id) {
        Some(expected) if *expected == secret => Ok(id),
        _ => Err(AuthFailure::InvalidClient),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_resource_servers() {
        assert_eq!(
            audiences("https://oic.example.com:443urn:opc:resource:consumer::all https://oic.example.com:443/ic/api/"),
            vec!["https://oic.example.com:443"]
        );
        assert_eq!(audiences("urn:opc:idm:__myscopes__"), vec![ISSUER]);
    }

    #[test]
    fn signed_tokens_verify_against_the_jwks_key() {
        let state = IdpState::new();
        let claims = json!({"sub": "x", "exp": crate::clock::unix_now() as u64 + 60});
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(SIGNING_KEY_ID.into());
        let t = jsonwebtoken::encode(&header, &claims, &state.key).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.required_spec_claims.clear();
        v.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&t, &decoding_key(), &v).unwrap();
    }
}
