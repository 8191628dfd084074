//! The token endpoint's answer to an authenticated request: the grant's
//! subject and scopes, Oracle's scope rules, a signed access token.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jsonwebtoken::{Algorithm, Header};
use serde_json::json;

use super::{
    audiences, authenticate, grant_of, lock, refuse, verify_assertion, Flavor, IdpState,
    RefreshGrant, Refusal, TokenRequest, ISSUER, SIGNING_KEY_ID,
};

fn bad_request(code: &'static str, description: &str) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, code, description)
}

pub(super) fn issue(state: &IdpState, record: &mut TokenRequest) -> Result<Response, Refusal> {
    let flavor = record.flavor;
    if flavor == Flavor::Oam {
        let expected = lock(&state.oam_domain).clone();
        if record.identity_domain.as_deref() != Some(expected.as_str()) {
            return Err(bad_request(
                "invalid_identity_domain",
                "X-OAUTH-IDENTITY-DOMAIN-NAME is missing or names an unknown identity domain.",
            ));
        }
    }
    let client_id = authenticate(state, record)?;
    record.client_id = Some(client_id.clone());
    let grant_type = record
        .field("grant_type")
        .ok_or_else(|| bad_request("invalid_request", "grant_type is required."))?;
    let grant = grant_of(flavor, grant_type)
        .ok_or_else(|| bad_request("unsupported_grant_type", "The grant type is not supported."))?;
    let (subject, scope) = subject_and_scope(state, record, grant, &client_id)?;
    let scopes = checked_scopes(flavor, &scope)?;
    admitted(state, &client_id, grant_type, &scopes)?;
    let lifetime = lifetime_for(state, &scopes);
    let refresh_token = issues_refresh_token(state, flavor, grant, &scopes).then(|| {
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
    let access_token = mint(state, &subject, &client_id, &scopes, lifetime)?;
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

/// An application made through the admin API gets tokens only while
/// active (and propagated), for its allowed grants and scopes.
fn admitted(
    state: &IdpState,
    client_id: &str,
    grant_type: &str,
    scopes: &[String],
) -> Result<(), Refusal> {
    use crate::emulator::directory::Refused;
    match state.directory.admit(client_id, grant_type, scopes) {
        None | Some(Ok(())) => Ok(()),
        Some(Err(Refused::UnknownClient)) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        )),
        Some(Err(Refused::Grant)) => Err(bad_request(
            "unauthorized_client",
            "The client is not authorized to use this grant type.",
        )),
        Some(Err(Refused::Scope)) => Err(bad_request(
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        )),
    }
}

/// Identity domains issue a refresh token for `offline_access` (never to
/// client_credentials, like Oracle's console); Oracle Access Manager by its
/// identity domain's setting, for the password grant (and refreshes).
fn issues_refresh_token(state: &IdpState, flavor: Flavor, grant: &str, scopes: &[String]) -> bool {
    match flavor {
        Flavor::IdentityDomain => {
            grant != "client_credentials"
                && scopes.iter().any(|s| s == crate::scope::OFFLINE_ACCESS)
        }
        Flavor::Oam => {
            state.oam_refresh_tokens.load(Ordering::SeqCst)
                && matches!(grant, "password" | "refresh_token")
        }
    }
}

/// Whom the token is for and which scopes it carries, by grant.
fn subject_and_scope(
    state: &IdpState,
    record: &TokenRequest,
    grant: &str,
    client_id: &str,
) -> Result<(String, String), Refusal> {
    let requested = record.field("scope").unwrap_or_default().to_string();
    match grant {
        "client_credentials" => Ok((client_id.to_string(), requested)),
        "password" => {
            let user = record.field("username").unwrap_or_default();
            state
                .sign_in(user, record.field("password"))
                .map_err(|why| bad_request("invalid_grant", why))?;
            Ok((user.to_string(), requested))
        }
        "jwt_bearer" => {
            let jwt = record
                .field("assertion")
                .ok_or_else(|| bad_request("invalid_request", "assertion is required."))?;
            let claims = verify_assertion(state, client_id, jwt).map_err(|why| {
                bad_request("invalid_grant", &format!("Invalid user assertion: {why}"))
            })?;
            let user = claims["sub"].as_str().unwrap_or_default().to_string();
            if !lock(&state.users).contains_key(&user) || state.is_locked(&user) {
                return Err(bad_request(
                    "invalid_grant",
                    "The assertion's subject is not a known user, or is locked.",
                ));
            }
            Ok((user, requested))
        }
        _ => {
            // Refresh tokens are single use: this one is spent either way.
            let presented = record.field("refresh_token").unwrap_or_default();
            match lock(&state.refresh_tokens).remove(presented) {
                // Emulator decision: a refresh keeps the original scopes; a
                // scope sent with it is ignored.
                Some(g) if g.client_id == client_id => Ok((g.subject, g.scope)),
                _ => Err(bad_request(
                    "invalid_grant",
                    "The refresh token is invalid, expired or already used.",
                )),
            }
        }
    }
}

/// Oracle's scope rules: a resource scope is required (identity domains),
/// and one resource server per token.
fn checked_scopes(flavor: Flavor, scope: &str) -> Result<Vec<String>, Refusal> {
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    if scopes.iter().all(|s| crate::scope::is_modifier(s)) && flavor == Flavor::IdentityDomain {
        return Err(bad_request(
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        ));
    }
    crate::scope::check_single_resource_server(&scopes).map_err(|_| {
        bad_request(
            "invalid_scope",
            "Scopes of different resource servers cannot be requested together.",
        )
    })?;
    Ok(scopes)
}

/// `urn:opc:resource:expiry=<seconds>` asks for a shorter token; Oracle
/// documents only shortening, so a longer request is ignored here.
fn lifetime_for(state: &IdpState, scopes: &[String]) -> u64 {
    let mut lifetime = state.lifetime_secs.load(Ordering::SeqCst);
    for s in scopes {
        if let Some(secs) = s
            .strip_prefix("urn:opc:resource:expiry=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            lifetime = lifetime.min(secs.max(1));
        }
    }
    lifetime
}

fn mint(
    state: &IdpState,
    subject: &str,
    client_id: &str,
    scopes: &[String],
    lifetime: u64,
) -> Result<String, Refusal> {
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
    jsonwebtoken::encode(&header, &claims, &state.key).map_err(|_| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        )
    })
}
