//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/status`.
//! It binds to loopback by default; nothing it serves holds a secret.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::metrics;
use crate::oauth::TokenCache;

pub struct AdminApp {
    pub cache: Arc<TokenCache>,
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
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
    /// Handles one admin request; kept apart from the pingora trait so tests
    /// and other front ends can call it.
    pub fn handle(&self, method: &Method, path: &str) -> Response<Vec<u8>> {
        if method != Method::GET && method != Method::HEAD {
            return json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method_not_allowed"}),
            );
        }
        match path {
            "/metrics" => {
                let body = metrics::render();
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/plain; version=0.0.4")
                    .header("content-length", body.len())
                    .body(body)
                    .expect("static response parts are valid")
            }
            "/healthz" => json_response(StatusCode::OK, json!({"status": "ok"})),
            "/readyz" => {
                let waiting: Vec<String> = self
                    .cache
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
                let mut clients: Vec<_> = self.cache.slots().map(|s| s.status()).collect();
                clients.sort_by(|a, b| a.client.cmp(&b.client).then(a.scopes.cmp(&b.scopes)));
                json_response(
                    StatusCode::OK,
                    json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "ready": self.cache.is_ready(),
                        "clients": clients,
                    }),
                )
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "endpoints": ["/metrics", "/healthz", "/readyz", "/status"]}),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        self.handle(&req.method, req.uri.path())
    }
}
