//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/status`,
//! `POST /reload` and `POST /clients/{name}/renew`. Who may use which is
//! the guard's (`guard`): an admin token when configured, loopback for
//! POSTs otherwise. It binds to loopback by default; nothing it serves
//! holds a secret.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::metrics;
use crate::proxy::Snapshot;
use crate::reload::{ReloadError, Reloader, Trigger};

mod guard;
mod page;
mod renew;
pub mod window;

pub struct AdminApp {
    pub current: Arc<ArcSwap<Snapshot>>,
    pub reloader: Arc<Reloader>,
    pub guard: guard::Guard,
    /// Open client connections against `server.max_connections`.
    pub connections: Arc<crate::connections::ConnectionGate>,
}

impl AdminApp {
    pub fn new(
        current: Arc<ArcSwap<Snapshot>>,
        reloader: Arc<Reloader>,
        settings: &crate::config::AdminSettings,
        connections: Arc<crate::connections::ConnectionGate>,
    ) -> Self {
        AdminApp {
            current,
            reloader,
            connections,
            guard: guard::Guard {
                token: settings.token.clone(),
                metrics_public: settings.metrics_public,
            },
        }
    }
}

pub(crate) fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec_pretty(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .expect("static response parts are valid")
}

impl AdminApp {
    /// Handles one admin request; `peer` is the caller's address.
    pub async fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Response<Vec<u8>> {
        if let Err((status, body)) = self.guard.check(method, path, headers, peer) {
            let mut response = json_response(status, body);
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"bearer-proxy admin\""),
                );
            }
            return response;
        }
        if let Some(client) = renew::client_of(path) {
            return renew::renew(&self.current.load_full(), method, client).await;
        }
        if path == "/reload" {
            return self.reload(method).await;
        }
        if method != Method::GET && method != Method::HEAD {
            return json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method_not_allowed"}),
            );
        }
        if let Some(asset) = page::asset(path) {
            return asset;
        }
        self.read_only(path)
    }

    fn read_only(&self, path: &str) -> Response<Vec<u8>> {
        let snapshot = self.current.load_full();
        let cache = &snapshot.cache;
        match path {
            "/metrics" => {
                let body = metrics::metrics().render();
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/plain; version=0.0.4")
                    .header("content-length", body.len())
                    .body(body)
                    .expect("static response parts are valid")
            }
            // Whether the other endpoints need the admin token: the status
            // page asks for it before calling them.
            "/healthz" => json_response(
                StatusCode::OK,
                json!({"status": "ok", "admin_token": self.guard.token.is_some()}),
            ),
            "/readyz" => {
                let waiting: Vec<String> = cache
                    .slots()
                    .filter(|s| !s.has_usable_token())
                    .map(|s| s.client.name.clone())
                    .collect();
                if waiting.is_empty() {
                    json_response(StatusCode::OK, json!({"status": "ready"}))
                } else {
                    json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"status": "not_ready", "clients_without_token": waiting}),
                    )
                }
            }
            "/status" => {
                let mut clients: Vec<_> = cache.slots().map(|s| s.status()).collect();
                clients.sort_by(|a, b| a.client.cmp(&b.client).then(a.scopes.cmp(&b.scopes)));
                let mut callers: Vec<_> = cache.caller_families().map(|f| f.status()).collect();
                callers.sort_by(|a, b| a.client.cmp(&b.client).then(a.scopes.cmp(&b.scopes)));
                let routes: Vec<_> = snapshot.routes.iter().map(|r| r.name.as_str()).collect();
                json_response(
                    StatusCode::OK,
                    json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "config_loaded_at": snapshot.loaded_at,
                        "config_refused": self.reloader.last_refused(),
                        "ready": cache.is_ready(),
                        "route_stats": window::current(),
                        "route_window": window::last_five_minutes(),
                        "shared_cache": cache.shared_status(),
                        "routes": routes,
                        "clients": clients,
                        "callers": callers,
                        "connections": self.connections.status(),
                        "limits": snapshot.limit_set.status(),
                    }),
                )
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "endpoints": ["/metrics", "/healthz", "/readyz", "/status", "POST /reload", "POST /clients/{name}/renew"]}),
            ),
        }
    }

    async fn reload(&self, method: &Method) -> Response<Vec<u8>> {
        if method != Method::POST {
            return json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method_not_allowed", "use": "POST"}),
            );
        }
        match self.reloader.reload(Trigger::Admin).await {
            Ok(report) => json_response(
                StatusCode::OK,
                json!({"status": "reloaded", "report": report}),
            ),
            Err(ReloadError::Invalid(errors)) => json_response(
                StatusCode::BAD_REQUEST,
                json!({
                    "error": "invalid_config",
                    "message": "the new configuration is invalid; the running one is kept",
                    "problems": errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                }),
            ),
            Err(ReloadError::Failed(why)) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "reload_failed", "message": why}),
            ),
            Err(ReloadError::Snapshot(e)) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "reload_failed", "message": e.to_string()}),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        let (method, path) = (req.method.clone(), req.uri.path().to_owned());
        let headers = req.headers.clone();
        self.handle(&method, &path, &headers, peer).await
    }
}

/// `bearer-proxy reload`: asks the proxy at `admin` to reload, prints the
/// answer. An unspecified admin address (0.0.0.0) is reached on loopback.
pub fn request_reload(settings: &crate::config::AdminSettings) -> ExitCode {
    let admin = settings.listen;
    let target = match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], admin.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], admin.port()))
        }
        _ => admin,
    };
    crate::tls::install_crypto_provider();
    let runtime = match crate::runtime::for_command() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let answer = runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .post(format!("http://{target}/reload"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body("{}")
            .timeout(std::time::Duration::from_secs(120));
        if let Some(token) = &settings.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.text().await?))
    });
    match answer {
        Ok((status, body)) if status.is_success() => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("error: reload refused (HTTP {status}):\n{body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot reach the admin listener at {target}: {e}");
            ExitCode::FAILURE
        }
    }
}
