//! What `/status` shows of a slot: its token's times and its fetches'
//! outcomes, never a token.

use std::time::Instant;

use serde::Serialize;

use super::{lock, TokenSlot};
use crate::config::{ClientAuth, ClientAuthMethod};
use crate::oauth::unauthorized::Episode;

impl TokenSlot {
    pub fn status(&self) -> SlotStatus {
        let state = lock(&self.state);
        let now = Instant::now();
        let token = self.current.load();
        SlotStatus {
            client: self.client.name.clone(),
            scopes: self.scopes.clone(),
            token_valid: token.as_ref().is_some_and(|t| t.is_usable(now)),
            renewing: lock(&self.inflight).is_some(),
            next_renewal_at: token.as_ref().map(|t| {
                let ahead = t.renew_at.saturating_duration_since(now).as_secs_f64();
                crate::clock::rfc3339(crate::clock::unix_now() + ahead)
            }),
            rate_waits: state.rate_waits,
            token_expires_at: token
                .as_ref()
                .map(|t| crate::clock::rfc3339(t.expires_at_unix)),
            token_fetched_at: token
                .as_ref()
                .map(|t| crate::clock::rfc3339(t.fetched_at_unix)),
            last_fetch_at: state.last_fetch_unix.map(crate::clock::rfc3339),
            last_outcome: state.last_outcome,
            fetch_successes: state.successes,
            fetch_failures: state.failures,
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.as_ref().map(|e| e.to_string()),
            last_idp_error: state
                .last_error
                .as_ref()
                .and_then(|e| e.idp())
                .map(|i| i.code.clone()),
            upstream_refusal: lock(&self.unauthorized).episode(),
            client_auth: client_auth_label(self.client.auth.method()),
            client_certificate: match &self.client.auth {
                ClientAuth::TlsClientAuth { identity } => Some(CertificateStatus {
                    subject: identity.subject.clone(),
                    expires_at: crate::clock::rfc3339(identity.not_after as f64),
                }),
                _ => None,
            },
            token_source: *lock(&self.source),
            last_ecid: state
                .last_error
                .as_ref()
                .and_then(|e| e.idp())
                .and_then(|i| i.ecid.clone()),
        }
    }
}

/// What `/status` shows for one slot. Never holds a token.
#[derive(Debug, Serialize)]
pub struct SlotStatus {
    pub client: String,
    pub scopes: Vec<String>,
    pub token_valid: bool,
    /// A fetch is running right now.
    pub renewing: bool,
    /// When the refresher renews the current token.
    pub next_renewal_at: Option<String>,
    /// Fetches that waited for the token URL's rate ceiling.
    pub rate_waits: u64,
    pub token_expires_at: Option<String>,
    pub token_fetched_at: Option<String>,
    pub last_fetch_at: Option<String>,
    pub last_outcome: Option<&'static str>,
    pub fetch_successes: u64,
    pub fetch_failures: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_idp_error: Option<String>,
    pub last_ecid: Option<String>,
    /// The last "upstream refuses fresh tokens" episode, if any.
    pub upstream_refusal: Option<Episode>,
    /// `idp` (fetched by this replica) or `shared` (adopted from the fleet).
    pub token_source: &'static str,
    /// How the client authenticates: `client_secret_basic`,
    /// `client_secret_post`, `private_key_jwt` or `tls_client_auth`.
    pub client_auth: &'static str,
    /// With `tls_client_auth`: the certificate's subject and expiry.
    pub client_certificate: Option<CertificateStatus>,
}

#[derive(Debug, Serialize)]
pub struct CertificateStatus {
    pub subject: String,
    pub expires_at: String,
}

fn client_auth_label(method: ClientAuthMethod) -> &'static str {
    match method {
        ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
        ClientAuthMethod::ClientSecretPost => "client_secret_post",
        ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
        ClientAuthMethod::TlsClientAuth => "tls_client_auth",
    }
}
