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
    keys: Vec<RegisteredKey>,
}

struct RefreshGrant {
    client_id: String,
    subject: String,
    scope: String,
}

pub struct IdpState {
    clients: Mutex<HashMap<String, RegisteredClient>>,
    users: Mutex<HashMap<String, String>>,
    refresh_tokens: Mutex<HashMap<String, RefreshGrant>>,
    oam_domain: Mutex<String>,
    audiences: Mutex<HashSet<String>>,
    lifetime_secs: AtomicU64,
    mode: Mutex<Mode>,
    pub(crate) down: Arc<AtomicBool>,
    log: Mutex<Vec<TokenRequest>>,
    /// Arrival time of every request, including ones whose client gave up
    /// before the answer (those never reach `log`).
    arrivals: Mutex<Vec<std::time::Instant>>,
    count: watch::Sender<u64>,
    key: EncodingKey,
}

impl IdpState {
    pub fn new() -> Arc<Self> {
        Arc::new(IdpState {
            clients: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            oam_domain: Mutex::new("OAMDomain".into()),
            audiences: Mutex::new(HashSet::from([ISSUER.to_string()])),
            lifetime_secs: AtomicU64::new(3600),
            mode: Mutex::new(Mode::Ok),
            down: Arc::new(AtomicBool::new(false)),
            log: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
            key: EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
                .expect("the bundled demo key is a valid RSA PEM"),
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

    /// A user for the password and JWT-assertion grants.
    pub fn register_user(&self, username: &str, password: &str) {
        lock(&self.users).insert(username.into(), password.into());
    }

    /// The identity domain OAM requests must name.
    pub fn set_oam_identity_domain(&self, name: &str) {
        *lock(&self.oam_domain) = name.into();
    }

    /// Audiences accepted in assertions (default: `https://identity.oraclecloud.com/`).
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
            post(|st, h, b| token(st, h, b, Flavor::IdentityDomain)),
        )
        .route(
            "/oauth2/rest/token",
            post(|st, h, b| token(st, h, b, Flavor::Oam)),
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
    let table: [(&str, &str, &'static str); 4] = [
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

fn issue(state: &IdpState, record: &mut TokenRequest) -> Result<Response, Refusal> {
    let flavor = record.flavor;
    if flavor == Flavor::Oam {
        let expected = lock(&state.oam_domain).clone();
        if record.identity_domain.as_deref() != Some(expected.as_str()) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_identity_domain",
                "X-OAUTH-IDENTITY-DOMAIN-NAME is missing or names an unknown identity domain.",
            ));
        }
    }
    let client_id = authenticate(state, record)?;
    record.client_id = Some(client_id.clone());
    let grant_type = record.field("grant_type").ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required.",
        )
    })?;
    let grant = grant_of(flavor, grant_type).ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The grant type is not supported.",
        )
    })?;
    let requested = record.field("scope").unwrap_or_default().to_string();
    let (subject, scope) = match grant {
        "client_credentials" => (client_id.clone(), requested),
        "password" => {
            let user = record.field("username").unwrap_or_default();
            let ok = lock(&state.users).get(user).map(String::as_str) == record.field("password");
            if !ok || user.is_empty() {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid user name or password.",
                ));
            }
            (user.to_string(), requested)
        }
        "jwt_bearer" => {
            let jwt = record.field("assertion").ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "assertion is required.",
                )
            })?;
            let claims = verify_assertion(state, &client_id, jwt).map_err(|why| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    format!("Invalid user assertion: {why}"),
                )
            })?;
            let user = claims["sub"].as_str().unwrap_or_default().to_string();
            if !lock(&state.users).contains_key(&user) {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The assertion's subject is not a known user.",
                ));
            }
            (user, requested)
        }
        _ => {
            // Refresh tokens are single use: this one is spent either way.
            let presented = record.field("refresh_token").unwrap_or_default();
            let stored = lock(&state.refresh_tokens).remove(presented);
            match stored {
                Some(g) if g.client_id == client_id => {
                    // Emulator decision: a refresh keeps the original
                    // scopes; a scope sent with it is ignored.
                    (g.subject, g.scope)
                }
                _ => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The refresh token is invalid, expired or already used.",
                    ))
                }
            }
        }
    };
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    if scopes.iter().all(|s| crate::scope::is_modifier(s)) && flavor == Flavor::IdentityDomain {
        // Identity domains refuse a token request without a resource scope.
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        ));
    }
    crate::scope::check_single_resource_server(&scopes).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Scopes of different resource servers cannot be requested together.",
        )
    })?;
    let mut lifetime = state.lifetime_secs.load(Ordering::SeqCst);
    // `urn:opc:resource:expiry=<seconds>` asks for a shorter token; Oracle
    // documents only shortening, so a longer request is ignored here.
    for s in &scopes {
        if let Some(secs) = s
            .strip_prefix("urn:opc:resource:expiry=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            lifetime = lifetime.min(secs.max(1));
        }
    }
    let wants_refresh = scopes.iter().any(|s| s == crate::scope::OFFLINE_ACCESS);
    // Emulator decision: like Oracle's console, client_credentials never
    // yields a refresh token, even with offline_access.
    let refresh_token = (wants_refresh && grant != "client_credentials").then(|| {
        let token = format!("rt-{}", uuid::Uuid::new_v4().simple());
        lock(&state.refresh_tokens).insert(
            token.clone(),
            RefreshGrant {
                client_id: client_id.clone(),
                subject: subject.clone(),
                scope: scope.clone(),
            },
        );
        token
    });
    let resource_scope: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|s| *s != crate::scope::OFFLINE_ACCESS)
        .collect();
    let now = crate::clock::unix_now() as u64;
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "client_id": client_id,
        "aud": audiences(&resource_scope.join(" ")),
        "scope": resource_scope.join(" "),
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid::Uuid::new_v4().to_string(),
        "token_type": "AT",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(SIGNING_KEY_ID.into());
    let access_token = jsonwebtoken::encode(&header, &claims, &state.key).map_err(|_| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        )
    })?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    });
    if let Some(rt) = refresh_token {
        body["refresh_token"] = json!(rt);
    }
    Ok(Json(body).into_response())
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

/// `Basic base64(urlencode(id):urlencode(secret))`.
fn basic_credentials(header: &str) -> Result<(String, String), Refusal> {
    let invalid = || {
        refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        )
    };
    let b64 = header.strip_prefix("Basic ").ok_or_else(invalid)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (id, secret) = raw.split_once(':').ok_or_else(invalid)?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok((decode(id), decode(secret)))
}

/// Exactly one client authentication: Basic, form secret (identity
/// domains only), or a client assertion.
fn authenticate(state: &IdpState, record: &TokenRequest) -> Result<String, Refusal> {
    let invalid = |why: &str| {
        refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("Client authentication failed: {why}."),
        )
    };
    let basic = record
        .authorization
        .as_deref()
        .map(basic_credentials)
        .transpose()?;
    let post = record.field("client_secret");
    let assertion = record.field("client_assertion");
    let methods = [basic.is_some(), post.is_some(), assertion.is_some()];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Use exactly one client authentication method.",
        ));
    }
    if let Some((id, secret)) = basic {
        return check_secret(state, &id, &secret)
            .then_some(id)
            .ok_or_else(|| invalid("bad client id or secret"));
    }
    if let Some(secret) = post {
        if record.flavor == Flavor::Oam {
            return Err(invalid(
                "Oracle Access Manager takes the client secret only in the Authorization header",
            ));
        }
        let id = record.field("client_id").unwrap_or_default().to_string();
        return check_secret(state, &id, secret)
            .then_some(id)
            .ok_or_else(|| invalid("bad client id or secret"));
    }
    if let Some(jwt) = assertion {
        let expected_type = match record.flavor {
            Flavor::IdentityDomain => {
                &["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"][..]
            }
            Flavor::Oam => &[
                "JWT_BEARER",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ][..],
        };
        if !record
            .field("client_assertion_type")
            .is_some_and(|t| expected_type.contains(&t))
        {
            return Err(invalid("unsupported client_assertion_type"));
        }
        let id = record
            .field("client_id")
            .ok_or_else(|| invalid("client_id is required with a client assertion"))?
            .to_string();
        let claims = verify_assertion(state, &id, jwt).map_err(|why| invalid(&why))?;
        if claims["sub"].as_str() != Some(id.as_str()) {
            return Err(invalid("a client assertion's sub must be the client id"));
        }
        return Ok(id);
    }
    Err(invalid("no client credentials"))
}

fn check_secret(state: &IdpState, id: &str, secret: &str) -> bool {
    lock(&state.clients)
        .get(id)
        .and_then(|c| c.secret.as_deref())
        .is_some_and(|s| s == secret)
}

/// Checks an assertion signed by `client_id`'s registered certificate: RS256,
/// found by `kid` (the certificate alias) or `x5t`, accepted audience, not
/// expired, `iss` = the client, lifetime at most 3600 s, a `jti`.
fn verify_assertion(
    state: &IdpState,
    client_id: &str,
    jwt: &str,
) -> Result<serde_json::Value, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("malformed JWT ({e})"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("algorithm {:?} is not RS256", header.alg));
    }
    let clients = lock(&state.clients);
    let client = clients.get(client_id).ok_or("unknown client")?;
    let key = client
        .keys
        .iter()
        .find(|k| {
            header.kid.as_deref() == Some(k.alias.as_str())
                || header.x5t.as_deref() == Some(k.x5t.as_str())
        })
        .ok_or("no registered certificate matches the kid or x5t")?;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    let audiences: Vec<String> = lock(&state.audiences).iter().cloned().collect();
    validation.set_audience(&audiences);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 5;
    let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key.key, &validation)
        .map_err(|e| format!("rejected ({e})"))?
        .claims;
    if claims["iss"].as_str() != Some(client_id) {
        return Err("iss must be the client id".into());
    }
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    match (iat, exp) {
        (Some(iat), Some(exp)) if exp > iat && exp - iat <= 3600 => {}
        _ => return Err("iat/exp missing or lifetime over 3600 seconds".into()),
    }
    if !claims["jti"].is_string() {
        return Err("jti is required".into());
    }
    Ok(claims)
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
