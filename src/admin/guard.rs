//! Who may use which admin endpoint. `/healthz` and `/readyz` are always
//! open (orchestrators probe them without credentials). With
//! `admin.token`, everything else needs `Authorization: Bearer <token>`
//! (compared in constant time), except `/metrics` with
//! `admin.metrics_public`. Without a token, POSTs are accepted from
//! loopback addresses only. POSTs also need `Content-Type:
//! application/json`: a cross-site page can only send that after a CORS
//! preflight, which this listener never grants, so a browser cannot be
//! made to reload or renew.

use std::net::IpAddr;

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The refusal, when there is one: status and JSON body.
pub type Refusal = (StatusCode, Value);

pub struct Guard {
    pub token: Option<Secret>,
    pub metrics_public: bool,
}

impl Guard {
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        // The probes, and the status page's code: it holds no data (it
        // asks /status, with the token, for that).
        if matches!(
            path,
            "/healthz" | "/readyz" | "/" | "/page.js" | "/page.css" | "/favicon.ico"
        ) {
            return Ok(());
        }
        let open = path == "/metrics" && self.metrics_public;
        match &self.token {
            Some(token) if !open && !presents(headers, token) => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "unauthorized", "message": "this admin endpoint needs Authorization: Bearer <admin token>"}),
                ));
            }
            None if *method == Method::POST && !is_loopback(peer) => {
                return Err((
                    StatusCode::FORBIDDEN,
                    json!({"error": "forbidden", "message": "without admin.token, POST endpoints are accepted from loopback addresses only"}),
                ));
            }
            _ => {}
        }
        if *method == Method::POST && !is_json(headers) {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "json_required", "message": "POST endpoints need Content-Type: application/json"}),
            ));
        }
        Ok(())
    }
}

fn presents(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(given) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given.as_bytes().ct_eq(token.expose().as_bytes()).into()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn is_loopback(peer: Option<IpAddr>) -> bool {
    peer.is_some_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn with_a_token_everything_but_the_probes_needs_it() {
        let guard = Guard {
            token: Some(Secret::new(String::from("0123456789abcdef-admin"))),
            metrics_public: true,
        };
        let remote = Some("10.1.2.3".parse().unwrap());
        let none = headers(&[]);
        let good = headers(&[("authorization", "Bearer 0123456789abcdef-admin")]);
        let bad = headers(&[("authorization", "Bearer 0123456789abcdef-admiN")]);
        for path in ["/healthz", "/readyz", "/metrics", "/", "/page.js"] {
            assert!(
                guard.check(&Method::GET, path, &none, remote).is_ok(),
                "{path}"
            );
        }
        for path in ["/status", "/clients/oic/renew"] {
            assert_eq!(
                guard.check(&Method::GET, path, &bad, remote).unwrap_err().0,
                401
            );
            assert!(guard.check(&Method::GET, path, &good, remote).is_ok());
        }
        let json_post = headers(&[
            ("authorization", "Bearer 0123456789abcdef-admin"),
            ("content-type", "application/json"),
        ]);
        assert!(
            guard
                .check(&Method::POST, "/reload", &json_post, remote)
                .is_ok(),
            "remote with the token"
        );
        assert_eq!(
            guard
                .check(&Method::POST, "/reload", &good, remote)
                .unwrap_err()
                .0,
            415,
            "a form post"
        );
    }

    #[test]
    fn without_a_token_posts_come_from_loopback_only() {
        let guard = Guard {
            token: None,
            metrics_public: false,
        };
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        let local = Some("::1".parse().unwrap());
        assert!(guard.check(&Method::POST, "/reload", &json, local).is_ok());
        assert_eq!(
            guard
                .check(
                    &Method::POST,
                    "/reload",
                    &json,
                    Some("10.0.0.1".parse().unwrap())
                )
                .unwrap_err()
                .0,
            403
        );
        assert_eq!(
            guard
                .check(
                    &Method::POST,
                    "/reload",
                    &headers(&[("content-type", "text/plain")]),
                    local
                )
                .unwrap_err()
                .0,
            415
        );
        assert!(guard
            .check(&Method::GET, "/status", &headers(&[]), None)
            .is_ok());
    }
}
