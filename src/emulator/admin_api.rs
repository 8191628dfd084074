//! The identity domain's administration REST API (`/admin/v1/…`) over the
//! emulator's [`Directory`]: what `bearer-proxy onboard` calls. Every call
//! needs a token for `urn:opc:idm:__myscopes__` of a client holding the
//! administrator role (`--admin-client`); answers and errors have SCIM's
//! shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::directory::{scim_error, Directory, ScimError, ERROR_SCHEMA};
use super::idp::IdpState;

/// The scope of identity-domain administration tokens.
pub const ADMIN_SCOPE: &str = "urn:opc:idm:__myscopes__";

pub fn router(state: Arc<IdpState>) -> Router {
    Router::new()
        .route("/admin/v1/Apps", get(search_apps).post(create_app))
        .route(
            "/admin/v1/Apps/{id}",
            get(get_app).patch(patch_app).delete(delete_app),
        )
        .route("/admin/v1/AppRoles", get(search_roles))
        .route("/admin/v1/Grants", post(create_grant))
        .route("/admin/v1/AppStatusChanger/{id}", put(set_status))
        .route("/admin/v1/AppClientSecretRegenerator", post(regenerate))
        .with_state(state)
}

fn render(error: ScimError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        Json(json!({
            "schemas": [ERROR_SCHEMA],
            "status": error.status.to_string(),
            "detail": error.detail,
        })),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert("retry-after", 1.into());
    }
    response
}

/// The caller's admin token, checked: signed by the emulator, unexpired,
/// for the admin scope, of an administrator.
fn authorize(state: &IdpState, headers: &HeaderMap) -> Result<(), ScimError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| scim_error(401, "This operation requires an access token."))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    let claims =
        jsonwebtoken::decode::<Value>(token.trim(), &super::idp::decoding_key(), &validation)
            .map_err(|_| scim_error(401, "The access token is invalid or has expired."))?
            .claims;
    let scoped = claims["scope"]
        .as_str()
        .is_some_and(|s| s.split_whitespace().any(|s| s == ADMIN_SCOPE));
    let client = claims["client_id"].as_str().unwrap_or_default();
    if !scoped || !state.directory.is_admin(client) {
        return Err(scim_error(
            403,
            "The client is not authorized to perform this operation.",
        ));
    }
    Ok(())
}

/// What every call carries: the emulator, and the request's method,
/// path and headers.
struct Call {
    state: Arc<IdpState>,
    method: Method,
    path: String,
    headers: HeaderMap,
}

impl FromRequestParts<Arc<IdpState>> for Call {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<IdpState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Call {
            state: state.clone(),
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
        })
    }
}

impl Call {
    /// The steps every call shares: the test's arranged failure, the
    /// token, the body; then `work`. `done` is the status of success.
    fn answer(
        &self,
        body: &[u8],
        done: StatusCode,
        work: impl FnOnce(&Directory, &Value) -> Result<Value, ScimError>,
    ) -> Response {
        let directory = &self.state.directory;
        let outcome = directory
            .arrive(self.method.as_str(), &self.path)
            .and_then(|()| authorize(&self.state, &self.headers))
            .and_then(|()| match body {
                [] => Ok(Value::Null),
                bytes => serde_json::from_slice(bytes)
                    .map_err(|_| scim_error(400, "The request body is not valid JSON.")),
            })
            .and_then(|value| work(directory, &value));
        match outcome {
            Ok(Value::Null) => StatusCode::NO_CONTENT.into_response(),
            Ok(value) => (done, Json(value)).into_response(),
            Err(e) => render(e),
        }
    }
}

type Params = Query<HashMap<String, String>>;

fn filter(q: &HashMap<String, String>) -> Option<&str> {
    q.get("filter").map(String::as_str)
}

async fn search_apps(call: Call, Query(q): Params) -> Response {
    call.answer(&[], StatusCode::OK, |d, _| d.search_apps(filter(&q)))
}

async fn search_roles(call: Call, Query(q): Params) -> Response {
    call.answer(&[], StatusCode::OK, |d, _| d.search_roles(filter(&q)))
}

async fn get_app(call: Call, Path(id): Path<String>) -> Response {
    call.answer(&[], StatusCode::OK, |d, _| d.get_app(&id))
}

async fn create_app(call: Call, body: Bytes) -> Response {
    call.answer(&body, StatusCode::CREATED, |d, v| d.create_app(v))
}

async fn patch_app(call: Call, Path(id): Path<String>, body: Bytes) -> Response {
    call.answer(&body, StatusCode::OK, |d, v| d.patch_app(&id, v))
}

async fn delete_app(call: Call, Path(id): Path<String>) -> Response {
    call.answer(&[], StatusCode::NO_CONTENT, |d, _| {
        d.delete_app(&id).map(|()| Value::Null)
    })
}

async fn set_status(call: Call, Path(id): Path<String>, body: Bytes) -> Response {
    call.answer(&body, StatusCode::OK, |d, v| d.set_status(&id, v))
}

async fn regenerate(call: Call, body: Bytes) -> Response {
    call.answer(&body, StatusCode::CREATED, |d, v| d.regenerate_secret(v))
}

async fn create_grant(call: Call, body: Bytes) -> Response {
    call.answer(&body, StatusCode::CREATED, |d, v| d.create_grant(v))
}
