//! A client's `client_auth: tls_client_auth` files and its
//! `token_request_params`.

use std::sync::Arc;

use super::Validator;
use crate::config::raw::{ClientAuthMethod, GrantKind, Issuer, RawClient};
use crate::config::{ClientAuth, ClientIdentity};

/// Form fields the proxy writes itself: a parameter must not replace one.
pub const RESERVED_PARAMS: &[&str] = &[
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "assertion",
    "client_assertion",
    "client_assertion_type",
    "username",
    "password",
    "refresh_token",
];

impl Validator<'_> {
    /// `tls_client_auth`: certificate and key, no secret, no signing key,
    /// the client-credentials grant. Called instead of the secret checks.
    pub(super) fn tls_client_auth(&mut self, p: &str, raw: &RawClient) -> Option<ClientAuth> {
        let method = "with client_auth tls_client_auth (the certificate authenticates the client)";
        if raw.client_secret.is_some() || raw.client_secret_file.is_some() {
            self.err(
                format!("{p}.client_secret"),
                format!("must not be set {method}"),
            );
        }
        if raw.signing_key.is_some() && raw.grant != GrantKind::JwtBearer {
            self.err(
                format!("{p}.signing_key"),
                format!("must not be set {method}"),
            );
        }
        if raw.grant != GrantKind::ClientCredentials {
            self.err(
                format!("{p}.grant"),
                "must be client_credentials with client_auth tls_client_auth (sent as Oracle's tls_client_auth grant)",
            );
        }
        if raw.issuer == Issuer::Oam {
            self.err(
                format!("{p}.client_auth"),
                "Oracle Access Manager has no TLS client authentication grant; use client_secret_basic or private_key_jwt",
            );
        }
        let cert = self.identity_file(
            p,
            "tls_client_cert_file",
            raw.tls_client_cert_file.as_deref(),
        );
        let key = self.identity_file(p, "tls_client_key_file", raw.tls_client_key_file.as_deref());
        let (cert, key) = (cert?, key?);
        match ClientIdentity::parse(&cert, &key) {
            Ok(identity) => Some(ClientAuth::TlsClientAuth {
                identity: Arc::new(identity),
            }),
            Err(problem) => {
                self.err(format!("{p}.tls_client_cert_file"), problem);
                None
            }
        }
    }

    /// The certificate files belong to `tls_client_auth` only.
    pub(super) fn no_identity_files(&mut self, p: &str, raw: &RawClient) {
        for (key, given) in [
            ("tls_client_cert_file", raw.tls_client_cert_file.is_some()),
            ("tls_client_key_file", raw.tls_client_key_file.is_some()),
        ] {
            if given && raw.client_auth != ClientAuthMethod::TlsClientAuth {
                self.err(
                    format!("{p}.{key}"),
                    "only applies to client_auth tls_client_auth",
                );
            }
        }
    }

    fn identity_file(
        &mut self,
        p: &str,
        key: &str,
        file: Option<&std::path::Path>,
    ) -> Option<Vec<u8>> {
        let path = format!("{p}.{key}");
        let Some(file) = file else {
            self.err(path, "is required with client_auth tls_client_auth");
            return None;
        };
        self.read_bytes(&path, file)
    }

    /// `token_request_params`: text names and values, none the proxy
    /// writes itself, kept in the order given.
    pub(super) fn token_request_params(
        &mut self,
        p: &str,
        raw: &RawClient,
    ) -> Vec<(String, String)> {
        let mut params = Vec::new();
        for (name, value) in &raw.token_request_params {
            let Some(name) = name.as_str() else {
                self.err(
                    format!("{p}.token_request_params"),
                    "parameter names must be text",
                );
                continue;
            };
            let path = format!("{p}.token_request_params.{name}");
            if RESERVED_PARAMS.contains(&name) {
                self.err(
                    path,
                    "is a field the proxy writes itself; set it through the client's own settings",
                );
                continue;
            }
            if name.is_empty() {
                self.err(path, "a parameter name must not be empty");
                continue;
            }
            let value = match value {
                serde_yaml::Value::String(s) => s.clone(),
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                _ => {
                    self.err(path, "must be a text value");
                    continue;
                }
            };
            params.push((name.to_string(), value));
        }
        params
    }
}
