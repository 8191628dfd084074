//! The grant-specific form fields of a token request.

use crate::config::GrantKind;

/// Form fields for the configured grant. Scopes go in one space-separated
/// `scope` field, as identity domains expect.
pub fn form(grant: GrantKind, scopes: &[String]) -> Vec<(&'static str, String)> {
    let mut form = Vec::with_capacity(6);
    match grant {
        GrantKind::ClientCredentials => form.push(("grant_type", "client_credentials".to_string())),
    }
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    form
}

/// The `grant` label of the fetch metrics.
pub fn label(grant: GrantKind) -> &'static str {
    match grant {
        GrantKind::ClientCredentials => "client_credentials",
    }
}
