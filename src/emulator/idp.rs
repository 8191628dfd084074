//! The identity-service emulator: an identity-domain token endpoint
//! (`POST /oauth2/v1/token`) and an Oracle Access Manager one
//! (`POST /oauth2/rest/token`). It speaks every grant the proxy uses
//! (client credentials, password, JWT user assertion, refresh token) and
//! every client authentication (Basic, form post, client assertion), issues
//! RS256 JWTs and publishes its JWKS. Tests steer it: token lifetime,
//! failure modes, request log, refresh-token revocation.
//!
//! Where Oracle's documents leave behaviour open, the emulator picks one
//! and says so in a comment marked "Emulator decision".

use std::collections::{HashMap, HashSet};
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
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use tokio::sync::watch;

mod client_auth;
mod issue;

use client_auth::{authenticate, verify_assertion};
use issue::issue;

/// The emulator's signing key. A fixed demo key, published through the
/// JWKS: it protects nothing.
const SIGNING_KEY_PEM: &str = include_str!("demo-signing-key.pem");
const SIGNING_KEY_N: &str = include_str!("demo-signing-key.n");
pub const SIGNING_KEY_ID: &str = "bearer-proxy-emulator";
pub const ISSUER: &str = "https://identity.oraclecloud.com/";
/// The usual account lock threshold of an identity domain's password policy.
pub const DEFAULT_LOCK_THRESHOLD: u32 = 5;

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
    /// 429 without `Retry-After` (Oracle documents none).
    RateLimited,
    /// 429 with `Retry-After: <seconds>`.
    RateLimitedRetryAfter(u64),
    /// 200 with an HTML body.
    InvalidJson,
}

/// Which of Oracle's token endpoints a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    IdentityDomain,
    Oam,
}

/// One token request as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub flavor: Flavor,
    pub form: Vec<(String, String)>,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `X-OAUTH-IDENTITY-DOMAIN-NAME` header, if any.
    pub identity_domain: Option<String>,
    /// The client id that authenticated, if authentication succeeded.
    pub client_id: Option<String>,
    /// The HTTP status the emulator answered with.
    pub status: u16,
    pub received_at: std::time::Instant,
    /// The certificate the client presented over TLS, if any.
    pub peer_certificate: Option<Vec<u8>>,
}

impl TokenRequest {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A certificate registered on a confidential application.
struct RegisteredKey {
    alias: String,
    x5t: String,
    key: jsonwebtoken::DecodingKey,
}

#[derive(Default)]
struct RegisteredClient {
    secret: Option<String>,
    /// The certificate imported for TLS client authentication (DER).
    tls_certificate: Option<Vec<u8>>,
    /// How this client's `Authorization: Basic` is decoded: exactly one way.
    basic: BasicDecoding,
    keys: Vec<RegisteredKey>,
}

/// How the emulator reads `Authorization: Basic` for one client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BasicDecoding {
    /// `base64(id ":" secret)`, as Oracle's identity services read it.
    #[default]
    Plain,
    /// RFC 6749 §2.3.1: id and secret form-urlencoded before base64.
    FormUrlencoded,
}

struct RefreshGrant {
    client_id: String,
    subject: String,
    scope: String,
}

pub struct IdpState {
    clients: Mutex<HashMap<String, RegisteredClient>>,
    users: Mutex<HashMap<String, String>>,
    /// Consecutive failed password grants per user; at `lock_threshold`
    /// the user is locked (an identity domain's account lock threshold).
    failed_logins: Mutex<HashMap<String, u32>>,
    lock_threshold: std::sync::atomic::AtomicU32,
    refresh_tokens: Mutex<HashMap<String, RefreshGrant>>,
    oam_domain: Mutex<String>,
    audiences: Mutex<HashSet<String>>,
    /// Strict mode: assertions must name this audience (the identity
    /// domain's own URL), as identity domains require.
    required_audience: Mutex<Option<String>>,
    /// OAM's `tokenSettings.refreshTokenEnabled` (default on).
    oam_refresh_tokens: AtomicBool,
    lifetime_secs: AtomicU64,
    mode: Mutex<Mode>,
    pub(crate) down: Arc<AtomicBool>,
    log: Mutex<Vec<TokenRequest>>,
    /// Arrival time of every request, including ones whose client gave up
    /// before the answer (those never reach `log`).
    arrivals: Mutex<Vec<std::time::Instant>>,
    count: watch::Sender<u64>,
    key: EncodingKey,
    /// Applications made through the admin API, its administrators, the
    /// Oracle Integration instances' applications and roles.
    pub directory: crate::emulator::directory::Directory,
}

impl IdpState {
    pub fn new() -> Arc<Self> {
        Arc::new(IdpState {
            clients: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            failed_logins: Mutex::new(HashMap::new()),
            lock_threshold: std::sync::atomic::AtomicU32::new(DEFAULT_LOCK_THRESHOLD),
            refresh_tokens: Mutex::new(HashMap::new()),
            oam_domain: Mutex::new("OAMDomain".into()),
            audiences: Mutex::new(HashSet::from([ISSUER.to_string()])),
            required_audience: Mutex::new(None),
            oam_refresh_tokens: AtomicBool::new(true),
            lifetime_secs: AtomicU64::new(3600),
            mode: Mutex::new(Mode::Ok),
            down: Arc::new(AtomicBool::new(false)),
            log: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            key: EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
                .expect("the bundled demo key is a valid RSA PEM"),
            directory: Default::default(),
        })
    }

    /// Registers a confidential application with a client secret.
    pub fn register_client(&self, client_id: &str, secret: &str) {
        lock(&self.clients)
            .entry(client_id.into())
            .or_default()
            .secret = Some(secret.into());
    }

    /// Uploads a certificate to an application under `alias` (the `kid`
    /// its assertions name); it is also found by its `x5t`.
    /// Imports `cert_pem` for `client_id`'s TLS client authentication.
    pub fn register_tls_client_certificate(
        &self,
        client_id: &str,
        cert_pem: &str,
    ) -> Result<(), String> {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        lock(&self.clients)
            .entry(client_id.into())
            .or_default()
            .tls_certificate = Some(der.as_ref().to_vec());
        Ok(())
    }

    pub fn register_client_certificate(
        &self,
        client_id: &str,
        alias: &str,
        cert_pem: &str,
    ) -> Result<(), String> {
        use rustls::pki_types::pem::PemObject;
        use sha1::Digest as _;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(cert_pem.as_bytes())
            .map_err(|e| format!("no RSA key in the certificate: {e}"))?;
        let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha1::Sha1::digest(der.as_ref()));
        lock(&self.clients)
            .entry(client_id.into())
            .or_default()
            .keys
            .push(RegisteredKey {
                alias: alias.into(),
                x5t,
                key,
            });
        Ok(())
    }

    /// A client holding the Identity Domain Administrator role: its
    /// tokens for `urn:opc:idm:__myscopes__` open the admin API.
    pub fn register_admin_client(&self, client_id: &str, secret: &str) {
        self.register_client(client_id, secret);
        self.directory.add_admin(client_id);
    }

    /// An Oracle Integration instance's application, with its roles and
    /// the scopes behind `audience`; returns its id.
    pub fn register_oic_app(&self, display_name: &str, audience: &str) -> String {
        self.directory.add_instance_app(display_name, audience)
    }

    /// A user for the password and JWT-assertion grants.
    pub fn register_user(&self, username: &str, password: &str) {
        lock(&self.users).insert(username.into(), password.into());
    }

    /// The password policy's account lock threshold: consecutive failed
    /// password grants after which a user is locked (0: never).
    pub fn set_lock_threshold(&self, failures: u32) {
        self.lock_threshold.store(failures, Ordering::SeqCst);
    }

    /// Whether `username` is locked by failed sign-ins.
    pub fn is_locked(&self, username: &str) -> bool {
        let threshold = self.lock_threshold.load(Ordering::SeqCst);
        threshold > 0 && self.failed_logins(username) >= threshold
    }

    /// Consecutive failed password grants of `username` so far.
    pub fn failed_logins(&self, username: &str) -> u32 {
        lock(&self.failed_logins)
            .get(username)
            .copied()
            .unwrap_or(0)
    }

    /// A password grant for a known user: a wrong password counts towards
    /// the lock, a right one resets the count; a locked user is refused
    /// whatever the password.
    fn sign_in(&self, username: &str, password: Option<&str>) -> Result<(), &'static str> {
        let known = lock(&self.users).get(username).cloned();
        let Some(expected) = known else {
            return Err("Invalid user name or password.");
        };
        if self.is_locked(username) {
            return Err("The user account is locked.");
        }
        let mut failed = lock(&self.failed_logins);
        if password == Some(expected.as_str()) {
            failed.remove(username);
            Ok(())
        } else {
            *failed.entry(username.to_string()).or_default() += 1;
            Err("Invalid user name or password.")
        }
    }

    /// The identity domain OAM requests must name.
    pub fn set_oam_identity_domain(&self, name: &str) {
        *lock(&self.oam_domain) = name.into();
    }

    /// Audiences accepted in assertions (default: `https://identity.oraclecloud.com/`).
    /// Decodes `client_id`'s Basic credentials the RFC 6749 way from now on.
    pub fn set_basic_decoding(&self, client_id: &str, decoding: BasicDecoding) {
        lock(&self.clients)
            .entry(client_id.into())
            .or_default()
            .basic = decoding;
    }

    /// OAM's identity-domain setting that issues refresh tokens.
    pub fn set_oam_refresh_tokens(&self, enabled: bool) {
        self.oam_refresh_tokens.store(enabled, Ordering::SeqCst);
    }

    /// Strict mode: every assertion must include `audience` in `aud`.
    pub fn require_audience(&self, audience: &str) {
        *lock(&self.required_audience) = Some(audience.into());
        self.accept_audience(audience);
    }

    pub fn accept_audience(&self, audience: &str) {
        lock(&self.audiences).insert(audience.into());
    }

    /// Invalidates every refresh token issued so far (expiry, revocation).
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.refresh_tokens).clear();
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

    /// When each token request arrived, answered or not.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        lock(&self.arrivals).clone()
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
        .route(
            "/oauth2/v1/token",
            post(|st, peer, h, b| token(st, peer, h, b, Flavor::IdentityDomain)),
        )
        .route(
            "/oauth2/rest/token",
            post(|st, peer, h, b| token(st, peer, h, b, Flavor::Oam)),
        )
        .route("/admin/v1/SigningCert/jwk", get(|| async { Json(jwks()) }))
        .route("/.well-known/jwks.json", get(|| async { Json(jwks()) }))
        .with_state(state)
}

/// A refused request, rendered in the shape of the endpoint's flavour.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    description: String,
}

fn refuse(status: StatusCode, code: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        description: description.into(),
    }
}

impl Refusal {
    fn render(self, flavor: Flavor) -> Response {
        match flavor {
            Flavor::IdentityDomain => {
                let ecid = uuid::Uuid::new_v4().simple().to_string();
                (
                    self.status,
                    Json(json!({"error": self.code, "error_description": self.description, "ecid": ecid})),
                )
                    .into_response()
            }
            // Emulator decision: OAM documents only "400 Bad Request" with
            // {errorCode, errorDesc, secErrorDesc}; every refusal uses it.
            Flavor::Oam => (
                StatusCode::BAD_REQUEST,
                Json(json!({"errorCode": self.code, "errorDesc": self.description, "secErrorDesc": ""})),
            )
                .into_response(),
        }
    }
}

async fn token(
    State(state): State<Arc<IdpState>>,
    peer: Option<axum::Extension<super::serve::PeerCertificate>>,
    headers: HeaderMap,
    body: Bytes,
    flavor: Flavor,
) -> Response {
    lock(&state.arrivals).push(std::time::Instant::now());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut record = TokenRequest {
        flavor,
        form: form_urlencoded::parse(&body).into_owned().collect(),
        authorization: header("authorization"),
        identity_domain: header("x-oauth-identity-domain-name"),
        client_id: None,
        status: 0,
        received_at: std::time::Instant::now(),
        peer_certificate: peer.map(|p| p.0 .0),
    };
    let mode = *lock(&state.mode);
    let response = match mode {
        Mode::ServerError => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The service is temporarily unavailable.",
        )
        .render(Flavor::IdentityDomain),
        Mode::RateLimited => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Rate limit exceeded.",
        )
        .render(Flavor::IdentityDomain),
        Mode::RateLimitedRetryAfter(secs) => {
            let mut r = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Rate limit exceeded.",
            )
            .render(Flavor::IdentityDomain);
            r.headers_mut().insert("retry-after", secs.into());
            r
        }
        Mode::InvalidJson => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html><body>Maintenance</body></html>",
        )
            .into_response(),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            issue(&state, &mut record).unwrap_or_else(|r| r.render(flavor))
        }
        Mode::Ok | Mode::Down => issue(&state, &mut record).unwrap_or_else(|r| r.render(flavor)),
    };
    record.status = response.status().as_u16();
    state.record(record);
    response
}

/// The grant types of each flavour: identity domains use RFC names, OAM
/// upper-case ones.
fn grant_of(flavor: Flavor, grant_type: &str) -> Option<&'static str> {
    let table: [(&str, &str, &'static str); 5] = [
        // Oracle's TLS client authentication grant: client credentials,
        // authenticated by the connection's certificate (identity domains
        // only; OAM has none).
        ("tls_client_auth", "", "client_credentials"),
        (
            "client_credentials",
            "CLIENT_CREDENTIALS",
            "client_credentials",
        ),
        ("password", "PASSWORD", "password"),
        (
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "JWT_BEARER",
            "jwt_bearer",
        ),
        ("refresh_token", "REFRESH_TOKEN", "refresh_token"),
    ];
    table.iter().find_map(|(idd, oam, name)| {
        let wire = if flavor == Flavor::Oam { oam } else { idd };
        (*wire == grant_type).then_some(*name)
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Header;

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
