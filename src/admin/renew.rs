//! `POST /clients/{name}/renew`: fetch a fresh token for every slot of a
//! client now (each through its single flight, and through the fleet's lock
//! with a shared cache), and answer what came of it. The token in use
//! stays until its successor arrives, so a failed renewal costs nothing.

use http::{Method, Response, StatusCode};
use serde_json::json;

use super::json_response;
use crate::proxy::Snapshot;

/// The client named in `/clients/{name}/renew`.
pub fn client_of(path: &str) -> Option<&str> {
    path.strip_prefix("/clients/")?
        .strip_suffix("/renew")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

pub async fn renew(snapshot: &Snapshot, method: &Method, client: &str) -> Response<Vec<u8>> {
    if method != Method::POST {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method_not_allowed", "use": "POST"}),
        );
    }
    let slots: Vec<_> = snapshot
        .cache
        .slots()
        .filter(|s| s.client.name == client)
        .cloned()
        .collect();
    if slots.is_empty() {
        return json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "unknown_client", "message": format!("no route uses a client named {client:?}")}),
        );
    }
    let mut outcomes = Vec::new();
    let mut all_ok = true;
    for slot in slots {
        let outcome = match slot.refresh().await {
            Ok(token) => json!({
                "scopes": slot.scopes,
                "outcome": "success",
                "expires_at": crate::clock::rfc3339(token.expires_at_unix),
            }),
            Err(e) => {
                all_ok = false;
                let idp = e.idp();
                json!({
                    "scopes": slot.scopes,
                    "outcome": e.outcome(),
                    "error": e.to_string(),
                    "idp_error": idp.map(|i| i.code.clone()),
                    "ecid": idp.and_then(|i| i.ecid.clone()),
                })
            }
        };
        outcomes.push(outcome);
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    json_response(status, json!({"client": client, "renewed": outcomes}))
}
