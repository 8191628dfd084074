//! The grant-specific form fields of a token request, in the spelling of
//! each issuer: identity domains use RFC names, Oracle Access Manager
//! upper-case ones.

use super::assertion;
use super::caller_identity::CallerCredential;
use super::error::FetchError;
use crate::config::{ClientAuth, ClientConfig, Grant, GrantKind, Issuer, Secret};

/// Which request to send.
pub enum Step<'a> {
    /// The configured grant.
    Primary,
    /// The configured grant of an `on_behalf_of: caller` client, as this
    /// caller.
    Caller(&'a CallerCredential),
    /// Renew with a refresh token.
    Refresh(&'a Secret),
}

/// The `grant` label of the fetch metrics for one request.
pub fn label(client: &ClientConfig, step: &Step<'_>) -> &'static str {
    match step {
        Step::Refresh(_) => "refresh_token",
        Step::Primary | Step::Caller(_) => kind_label(client.grant.kind()),
    }
}

pub fn kind_label(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::ClientCredentials => "client_credentials",
        GrantKind::Password => "password",
        GrantKind::JwtBearer => "jwt_bearer",
    }
}

/// Form fields for `step`. Scopes go in one space-separated `scope` field;
/// a refresh sends none, so the token keeps the scopes it was issued with.
pub fn form(
    client: &ClientConfig,
    step: &Step<'_>,
    scopes: &[String],
) -> Result<Vec<(&'static str, String)>, FetchError> {
    let oam = client.issuer == Issuer::Oam;
    let name = |idd: &'static str, oam_name: &'static str| if oam { oam_name } else { idd };
    let mut form = Vec::with_capacity(8);
    match step {
        Step::Refresh(token) => {
            form.push((
                "grant_type",
                name("refresh_token", "REFRESH_TOKEN").to_string(),
            ));
            form.push(("refresh_token", token.expose().to_string()));
            return Ok(form);
        }
        Step::Caller(caller) => caller_fields(client, caller, &mut form)?,
        Step::Primary => match &client.grant {
            Grant::CallerPassword | Grant::CallerAssertion { .. } => {
                return Err(FetchError::Local(format!(
                    "client {:?} acts on behalf of each caller: its tokens need a caller",
                    client.name
                )))
            }
            Grant::ClientCredentials => {
                let grant = match client.auth {
                    // Oracle's TLS client authentication grant.
                    ClientAuth::TlsClientAuth { .. } => "tls_client_auth",
                    _ => name("client_credentials", "CLIENT_CREDENTIALS"),
                };
                form.push(("grant_type", grant.to_string()));
            }
            Grant::Password { username, password } => {
                form.push(("grant_type", name("password", "PASSWORD").to_string()));
                form.push(("username", username.clone()));
                form.push(("password", password.expose().to_string()));
            }
            Grant::JwtBearer { subject, key } => {
                form.push(("grant_type", jwt_bearer_name(oam).to_string()));
                form.push(("assertion", user_assertion(client, key, subject)?));
            }
        },
    }
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    Ok(form)
}

fn jwt_bearer_name(oam: bool) -> &'static str {
    if oam {
        "JWT_BEARER"
    } else {
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    }
}

fn user_assertion(
    client: &ClientConfig,
    key: &crate::config::SigningKey,
    subject: &str,
) -> Result<String, FetchError> {
    assertion::mint(key, &client.client_id, subject)
        .map_err(|e| FetchError::Local(format!("cannot sign the user assertion: {e}")))
}

/// The grant fields of a caller's own token request.
fn caller_fields(
    client: &ClientConfig,
    caller: &CallerCredential,
    form: &mut Vec<(&'static str, String)>,
) -> Result<(), FetchError> {
    let oam = client.issuer == Issuer::Oam;
    match (&client.grant, caller) {
        (Grant::CallerPassword, CallerCredential::Password { username, password }) => {
            let grant = if oam { "PASSWORD" } else { "password" };
            form.push(("grant_type", grant.to_string()));
            form.push(("username", username.clone()));
            form.push(("password", password.expose().to_string()));
        }
        (Grant::CallerAssertion { key }, CallerCredential::Subject(subject)) => {
            form.push(("grant_type", jwt_bearer_name(oam).to_string()));
            form.push(("assertion", user_assertion(client, key, subject)?));
        }
        _ => {
            return Err(FetchError::Local(format!(
                "client {:?}: this caller's credential does not fit the client's grant",
                client.name
            )))
        }
    }
    Ok(())
}
