//! One client: a token fetch, what the token says, the clock skew.

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;
use serde::Serialize;

use crate::config::ClientConfig;
use crate::oauth::callers::CallerCredential;
use crate::oauth::grant::{self, Step};
use crate::oauth::token::unverified_claims;
use crate::oauth::transport::TokenEndpoint;

/// Beyond this the clocks disagree enough to matter: assertions carry
/// `iat`/`exp`, and token lifetimes are judged on the proxy's clock.
const MAX_SKEW_S: f64 = 30.0;

#[derive(Debug, Serialize)]
pub struct ClientReport {
    pub client: String,
    pub grant: &'static str,
    pub token_url: String,
    pub ok: bool,
    /// Why the client was not asked for a token (an `on_behalf_of: caller`
    /// client without `--caller`).
    pub note: Option<String>,
    /// The token's claims that matter here (never the token).
    pub sub: Option<String>,
    pub aud: Option<serde_json::Value>,
    pub scope: Option<String>,
    pub expires_in_s: Option<u64>,
    /// Proxy clock minus the identity service's `Date` (1 s resolution).
    pub clock_skew_s: Option<f64>,
    pub error: Option<String>,
    pub idp_error: Option<String>,
    pub idp_description: Option<String>,
    pub ecid: Option<String>,
}

/// Fetches one token for `scopes`; returns the report and, on success, the
/// `Authorization` value for the route checks.
/// `caller`: the caller an `on_behalf_of: caller` client is checked as.
pub async fn check(
    client: &Arc<ClientConfig>,
    scopes: &[String],
    caller: Option<&CallerCredential>,
) -> (ClientReport, Option<HeaderValue>) {
    let mut report = ClientReport {
        client: client.name.clone(),
        grant: grant::label(client, &Step::Primary),
        token_url: client.token_url.to_string(),
        ok: false,
        note: None,
        sub: None,
        aud: None,
        scope: None,
        expires_in_s: None,
        clock_skew_s: None,
        error: None,
        idp_error: None,
        idp_description: None,
        ecid: None,
    };
    let step = match (caller, &client.callers) {
        (Some(caller), Some(_)) => Step::Caller(caller),
        (None, Some(_)) => {
            report.ok = true;
            report.note = Some(format!(
                "acts on behalf of each caller: check one with doctor --client {} --caller USER",
                client.name
            ));
            return (report, None);
        }
        _ => Step::Primary,
    };
    let endpoint = match TokenEndpoint::new(client.clone(), None) {
        Ok(e) => e,
        Err(e) => {
            report.error = Some(e.to_string());
            return (report, None);
        }
    };
    let requested = client.requested_scopes(scopes, false);
    let (result, date) = endpoint.send_dated(&step, &requested).await;
    report.clock_skew_s = date.map(skew);
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            report.error = Some(crate::token_cmd::describe_error(&e));
            if let Some(idp) = e.idp() {
                report.idp_error = Some(idp.code.clone());
                report.idp_description = idp.description.clone();
                report.ecid = idp.ecid.clone();
            }
            return (report, None);
        }
    };
    let claims = unverified_claims(response.access_token.expose()).unwrap_or_default();
    report.sub = claims["sub"].as_str().map(str::to_owned);
    report.aud = claims.get("aud").cloned();
    report.scope = claims["scope"]
        .as_str()
        .map(str::to_owned)
        .or(response.scope.clone());
    report.expires_in_s = Some(response.expires_in.as_secs());
    report.ok = report.clock_skew_s.is_none_or(|s| s.abs() <= MAX_SKEW_S);
    if !report.ok {
        report.error = Some(format!(
            "the clocks of the proxy and the identity service differ by more than {MAX_SKEW_S} s"
        ));
    }
    let header = HeaderValue::try_from(format!("Bearer {}", response.access_token.expose())).ok();
    (
        report,
        header.map(|mut h| {
            h.set_sensitive(true);
            h
        }),
    )
}

fn skew(date: SystemTime) -> f64 {
    let now = SystemTime::now();
    match now.duration_since(date) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    }
}
