//! The echo upstream: answers every request with a JSON description of what
//! it received (the token's claims decoded, the token itself shortened) and
//! records each request for tests. Bodies are hashed as they stream in,
//! never held whole.
//!
//! Special paths: `/__bytes/<n>` streams `n` bytes back; `/__status/<code>`
//! answers with that status; `/__sleep/<ms>` answers after a delay;
//! `/__hop` answers with hop-by-hop headers a proxy must not pass on.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body_len: u64,
    pub body_sha256: String,
    /// The client certificate presented, on a TLS upstream that asks for
    /// one (so tests can see that the proxy never sends one upstream).
    pub peer_certificate: Option<Vec<u8>>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct EchoState {
    log: Mutex<Vec<Recorded>>,
    /// `Authorization` values answered with 401, as Oracle Integration
    /// answers a revoked or wrong-audience token.
    revoked: Mutex<std::collections::HashSet<String>>,
    /// Refuse a revoked token once this many body bytes have arrived,
    /// without reading the rest, as gateways in front of Oracle Integration
    /// do (`u64::MAX`: read the whole body first).
    refuse_after: AtomicU64,
    /// Every token gets 401, as Oracle Integration answers a confidential
    /// application without the ServiceInvoker role or a scope of the wrong
    /// audience.
    refuse_all: std::sync::atomic::AtomicBool,
    count: watch::Sender<u64>,
    /// Requests being answered now, and the most ever at once (what a
    /// concurrency ceiling in front of it must bound).
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// Counts a request as in flight at the upstream while it lives.
struct Answering<'a>(&'a EchoState);

impl<'a> Answering<'a> {
    fn enter(state: &'a EchoState) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        state.max_in_flight.fetch_max(now, Ordering::AcqRel);
        Answering(state)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EchoState {
    pub fn new() -> Arc<Self> {
        Arc::new(EchoState {
            log: Mutex::new(Vec::new()),
            revoked: Mutex::new(std::collections::HashSet::new()),
            refuse_after: AtomicU64::new(u64::MAX),
            refuse_all: std::sync::atomic::AtomicBool::new(false),
            count: watch::channel(0).0,
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        })
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most requests it was answering at once.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::Acquire)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn last(&self) -> Option<Recorded> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
    }

    pub fn request_count(&self) -> u64 {
        *self.count.borrow()
    }

    /// From now on, requests carrying this `Authorization` value get 401.
    pub fn revoke(&self, authorization: &str) {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(authorization.to_string());
    }

    /// From now on (`true`) every request with a token gets 401.
    pub fn refuse_every_token(&self, refuse: bool) {
        self.refuse_all.store(refuse, Ordering::Relaxed);
    }

    /// A revoked token gets its 401 once `bytes` of the body have arrived
    /// (0: before reading any); the request is recorded with the bytes read.
    pub fn refuse_after(&self, bytes: u64) {
        self.refuse_after.store(bytes, Ordering::Relaxed);
    }

    fn is_revoked(&self, headers: &HeaderMap) -> bool {
        let refuse_all = self.refuse_all.load(Ordering::Relaxed);
        headers
            .get("authorization")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| {
                refuse_all
                    || self
                        .revoked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(a)
            })
    }
}

pub fn router(state: Arc<EchoState>) -> Router {
    Router::new().fallback(echo).with_state(state)
}

static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];

async fn echo(State(state): State<Arc<EchoState>>, req: Request) -> Response {
    let _answering = Answering::enter(&state);
    let (parts, body) = req.into_parts();
    let revoked = state.is_revoked(&parts.headers);
    let stop_at = if revoked {
        state.refuse_after.load(Ordering::Relaxed)
    } else {
        u64::MAX
    };
    let Some((len, digest)) = read_body(body, stop_at).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let recorded = Recorded {
        method: parts.method.to_string(),
        path,
        headers: parts.headers.clone(),
        body_len: len,
        body_sha256: digest,
        peer_certificate: parts
            .extensions
            .get::<super::serve::PeerCertificate>()
            .map(|p| p.0.clone()),
    };
    let description = describe(&recorded);
    state
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(recorded);
    state.count.send_modify(|c| *c += 1);
    if revoked {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer error=\"invalid_token\"")],
            "revoked token",
        )
            .into_response();
    }
    special_answer(parts.uri.path(), description).await
}

/// Reads up to `stop_at` bytes of the body: (length, hex SHA-256), or
/// `None` when the body broke off.
async fn read_body(mut body: Body, stop_at: u64) -> Option<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while len < stop_at {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Some(data) = frame.ok()?.data_ref() {
            hasher.update(data);
            len += data.len() as u64;
        }
    }
    Some((len, hex(&hasher.finalize())))
}

/// The test paths: `/__bytes/N` (N bytes), `/__sleep/MS`, `/__hop`
/// (hop-by-hop headers), `/__status/CODE`; anything else echoes.
async fn special_answer(path: &str, description: Value) -> Response {
    let number = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
    };
    if let Some(n) = number("/__bytes/") {
        let n = n as usize;
        let chunks = (0..n.div_ceil(CHUNK.len())).map(move |i| {
            let size = CHUNK.len().min(n - i * CHUNK.len());
            Ok::<_, Infallible>(Bytes::from_static(&CHUNK[..size]))
        });
        return (
            [("content-length", n.to_string())],
            Body::from_stream(futures_util::stream::iter(chunks)),
        )
            .into_response();
    }
    if let Some(ms) = number("/__sleep/") {
        tokio::time::sleep(std::time::Duration::from_millis(ms.min(600_000))).await;
    }
    if path == "/__hop" {
        return (
            [
                ("connection", "x-secret-hop"),
                ("x-secret-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic realm=upstream"),
                ("upgrade", "h2c"),
                ("x-end-to-end", "kept"),
            ],
            Json(description),
        )
            .into_response();
    }
    let status = number("/__status/")
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok());
    match status {
        Some(code) => (code, Json(description)).into_response(),
        None => Json(description).into_response(),
    }
}

fn describe(r: &Recorded) -> Value {
    let mut headers = Map::new();
    for (name, value) in &r.headers {
        let v = value.to_str().unwrap_or("<binary>");
        let shown = if name == "authorization" {
            shorten_credential(v)
        } else {
            v.to_string()
        };
        headers.insert(name.to_string(), Value::String(shown));
    }
    let claims = r
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| jsonwebtoken::dangerous::insecure_decode::<Value>(t).ok())
        .map(|d| d.claims);
    json!({
        "upstream": "bearer-proxy echo upstream",
        "method": r.method,
        "path": r.path,
        "headers": headers,
        "token_claims": claims,
        "body_bytes": r.body_len,
        "body_sha256": r.body_sha256,
    })
}

fn shorten_credential(v: &str) -> String {
    match v.split_once(' ') {
        Some((scheme, cred)) if cred.len() > 16 => {
            format!("{scheme} {}… ({} characters)", &cred[..12], cred.len())
        }
        _ => v.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}
