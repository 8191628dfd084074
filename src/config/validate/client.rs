//! `clients.<name>:` — one Oracle confidential application: where its
//! tokens come from, how it authenticates, which grant it uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{valid_name, Clients, SecretInput, Validator};
use crate::config::defaults as d;
use crate::config::raw::RawClient;
use crate::config::{
    ClientAuth, ClientAuthMethod, ClientConfig, Grant, GrantKind, Issuer, RetryPolicy, SigningKey,
};

/// A `token_url` given as just the host gets the issuer's standard path.
fn with_default_token_path(mut url: url::Url, issuer: Issuer) -> url::Url {
    if url.path() == "/" || url.path().is_empty() {
        url.set_path(match issuer {
            Issuer::IdentityDomain => d::IDENTITY_DOMAIN_TOKEN_PATH,
            Issuer::Oam => d::OAM_TOKEN_PATH,
        });
    }
    url
}

/// The audience of assertions when none is configured: the identity
/// domain's own URL (which identity domains require) and the audience of
/// Oracle's older samples; Oracle Access Manager keeps the latter alone.
fn default_audience(issuer: Issuer, token_url: Option<&url::Url>) -> Vec<String> {
    let origin = token_url.map(|u| u.origin().ascii_serialization() + "/");
    match (issuer, origin) {
        (Issuer::IdentityDomain, Some(origin)) if origin != d::AUDIENCE => {
            vec![origin, d::AUDIENCE.to_string()]
        }
        _ => vec![d::AUDIENCE.to_string()],
    }
}

/// The settings of a client that only say when and how long.
struct ClientTiming {
    refresh_before: std::time::Duration,
    connect_timeout: std::time::Duration,
    request_timeout: std::time::Duration,
    retry: RetryPolicy,
}

fn needs_key(what: &str) -> String {
    format!("{what} needs signing_key (key_file, and kid and/or cert_file) to sign its assertions")
}

impl Validator<'_> {
    pub(super) fn clients(&mut self, raw: BTreeMap<String, RawClient>) -> Clients {
        let mut clients = Clients {
            valid: BTreeMap::new(),
            invalid: Vec::new(),
        };
        for (name, raw_client) in raw {
            match self.section(|v| v.client(&name, raw_client)) {
                Some(c) => {
                    clients.valid.insert(name, Arc::new(c));
                }
                None => clients.invalid.push(name),
            }
        }
        clients
    }

    fn client(&mut self, name: &str, mut raw: RawClient) -> Option<ClientConfig> {
        let p = format!("clients.{name}");
        if !valid_name(name) {
            self.err(
                &p,
                "client names may use only letters, digits, '-', '_' and '.'",
            );
        }
        let identity_domain_name = self.identity_domain_name(&p, &raw);
        let token_url = match raw.token_url.as_deref() {
            None => {
                self.err(format!("{p}.token_url"), "is required");
                None
            }
            Some(u) => self
                .https_url(&format!("{p}.token_url"), u)
                .map(|u| with_default_token_path(u, raw.issuer)),
        };
        let client_id = self.required_text(&format!("{p}.client_id"), raw.client_id.take());
        let audience = default_audience(raw.issuer, token_url.as_ref());
        let signing_key = raw
            .signing_key
            .as_ref()
            .and_then(|k| self.signing_key(&format!("{p}.signing_key"), k, &audience))
            .map(Arc::new);
        let auth = if raw.client_auth == ClientAuthMethod::TlsClientAuth {
            self.tls_client_auth(&p, &raw)
        } else {
            self.no_identity_files(&p, &raw);
            self.client_auth(&p, &mut raw, signing_key.as_ref())
        };
        let token_request_params = self.token_request_params(&p, &raw);
        let callers = self.caller_policy(&p, &raw);
        let grant = self.grant(&p, &mut raw, signing_key.as_ref());
        if raw.signing_key.is_some()
            && raw.client_auth != ClientAuthMethod::PrivateKeyJwt
            && raw.grant != GrantKind::JwtBearer
        {
            self.warn(format!(
                "{p}.signing_key: not used (only client_auth private_key_jwt and grant jwt_bearer sign assertions)"
            ));
        }
        self.scopes(&format!("{p}.scopes"), &raw.scopes);
        self.scope_rules(&format!("{p}.scopes"), &raw.scopes);
        let timing = self.client_timing(&p, &raw);
        let extra_roots = match &raw.ca_file {
            Some(f) => self.certificates(&format!("{p}.ca_file"), f),
            None => Vec::new(),
        };
        Some(ClientConfig {
            name: name.to_string(),
            issuer: raw.issuer,
            identity_domain_name,
            token_url: token_url?,
            client_id: client_id?,
            auth: auth?,
            grant: grant?,
            refresh_token: raw.refresh_token,
            scopes: raw.scopes,
            extra_roots,
            refresh_before: timing.refresh_before,
            connect_timeout: timing.connect_timeout,
            request_timeout: timing.request_timeout,
            retry: timing.retry,
            callers,
            token_request_params,
        })
    }

    fn identity_domain_name(&mut self, p: &str, raw: &RawClient) -> Option<String> {
        match (raw.issuer, &raw.identity_domain_name) {
            (Issuer::Oam, Some(d)) if !d.trim().is_empty() => Some(d.clone()),
            (Issuer::Oam, _) => {
                self.err(
                    format!("{p}.identity_domain_name"),
                    "is required for issuer oam (sent as X-OAUTH-IDENTITY-DOMAIN-NAME)",
                );
                None
            }
            (Issuer::IdentityDomain, Some(_)) => {
                self.err(
                    format!("{p}.identity_domain_name"),
                    "only applies to issuer oam",
                );
                None
            }
            (Issuer::IdentityDomain, None) => None,
        }
    }

    fn required_text(&mut self, path: &str, value: Option<String>) -> Option<String> {
        match value {
            Some(v) if !v.trim().is_empty() => Some(v),
            Some(_) => {
                self.err(path, "must not be empty");
                None
            }
            None => {
                self.err(path, "is required");
                None
            }
        }
    }

    /// Renewal lead, time-outs and backoff, with their defaults.
    fn client_timing(&mut self, p: &str, raw: &RawClient) -> ClientTiming {
        let retry = RetryPolicy {
            initial: self.positive(
                &format!("{p}.retry.initial"),
                raw.retry.initial,
                d::RETRY_INITIAL,
            ),
            max: self.positive(&format!("{p}.retry.max"), raw.retry.max, d::RETRY_MAX),
        };
        if retry.initial > retry.max {
            self.err(format!("{p}.retry"), "initial must not be greater than max");
        }
        ClientTiming {
            refresh_before: self.positive(
                &format!("{p}.refresh_before"),
                raw.refresh_before,
                d::REFRESH_BEFORE,
            ),
            connect_timeout: self.positive(
                &format!("{p}.connect_timeout"),
                raw.connect_timeout,
                d::CONNECT_TIMEOUT,
            ),
            request_timeout: self.positive(
                &format!("{p}.request_timeout"),
                raw.request_timeout,
                d::REQUEST_TIMEOUT,
            ),
            retry,
        }
    }

    /// How the proxy authenticates as the client: a secret (Basic or in the
    /// form) or a signed assertion.
    fn client_auth(
        &mut self,
        p: &str,
        raw: &mut RawClient,
        signing_key: Option<&Arc<SigningKey>>,
    ) -> Option<ClientAuth> {
        let secret = self.secret_pair(
            &format!("{p}.client_secret"),
            "client_secret",
            raw.client_secret.take(),
            raw.client_secret_file.take(),
        );
        if raw.client_secret_basic_encoding.is_some()
            && raw.client_auth != ClientAuthMethod::ClientSecretBasic
        {
            self.err(
                format!("{p}.client_secret_basic_encoding"),
                "only applies to client_auth client_secret_basic",
            );
        }
        if raw.client_auth == ClientAuthMethod::PrivateKeyJwt {
            if !matches!(secret, SecretInput::Missing) {
                self.warn(format!(
                    "{p}.client_secret: not used with client_auth private_key_jwt"
                ));
            }
            if signing_key.is_none() && raw.signing_key.is_none() {
                self.err(
                    format!("{p}.signing_key"),
                    needs_key("client_auth private_key_jwt"),
                );
            }
            return signing_key.map(|key| ClientAuth::PrivateKeyJwt { key: key.clone() });
        }
        let secret = match secret {
            SecretInput::Value(s) => Some(s),
            SecretInput::Missing => {
                self.err(
                    format!("{p}.client_secret"),
                    "is required (or client_secret_file) with client_auth client_secret_basic or client_secret_post",
                );
                None
            }
            SecretInput::Invalid => None,
        };
        if raw.client_auth == ClientAuthMethod::ClientSecretPost && raw.issuer == Issuer::Oam {
            self.err(
                format!("{p}.client_auth"),
                "Oracle Access Manager authenticates clients with client_secret_basic or private_key_jwt, not client_secret_post",
            );
        }
        secret.map(|secret| match raw.client_auth {
            ClientAuthMethod::ClientSecretPost => ClientAuth::SecretPost { secret },
            _ => ClientAuth::SecretBasic {
                secret,
                encoding: raw.client_secret_basic_encoding.unwrap_or_default(),
            },
        })
    }

    /// The grant and what it needs; settings of another grant are errors.
    fn grant(
        &mut self,
        p: &str,
        raw: &mut RawClient,
        signing_key: Option<&Arc<SigningKey>>,
    ) -> Option<Grant> {
        let has_password = raw.password.is_some() || raw.password_file.is_some();
        match raw.grant {
            GrantKind::ClientCredentials => {
                self.not_for_grant(
                    p,
                    &[
                        ("username", raw.username.is_some()),
                        ("password", has_password),
                        ("subject", raw.subject.is_some()),
                    ],
                    "only applies to grant password or jwt_bearer",
                );
                if raw.refresh_token {
                    self.err(
                        format!("{p}.refresh_token"),
                        "the client_credentials grant never issues refresh tokens; use grant password or jwt_bearer, or remove refresh_token",
                    );
                }
                Some(Grant::ClientCredentials)
            }
            GrantKind::Password => self.password_grant(p, raw),
            GrantKind::JwtBearer => {
                let per_caller = raw.on_behalf_of.is_some();
                let subject = if per_caller {
                    self.caller_given(p, &[("subject", raw.subject.is_some())]);
                    None
                } else {
                    self.grant_field(
                        &format!("{p}.subject"),
                        raw.subject.take(),
                        "is required when grant is jwt_bearer (the user the token is for), unless on_behalf_of: caller",
                    )
                };
                if raw.signing_key.is_none() {
                    self.err(format!("{p}.signing_key"), needs_key("grant jwt_bearer"));
                }
                self.not_for_grant(
                    p,
                    &[
                        ("username", raw.username.is_some()),
                        ("password", has_password),
                    ],
                    "only applies to grant password",
                );
                if raw.refresh_token && raw.issuer == Issuer::Oam {
                    self.err(
                        format!("{p}.refresh_token"),
                        "Oracle Access Manager issues refresh tokens only for the password and authorization-code grants",
                    );
                }
                let key = signing_key?.clone();
                if per_caller {
                    return Some(Grant::CallerAssertion { key });
                }
                Some(Grant::JwtBearer {
                    subject: subject?,
                    key,
                })
            }
        }
    }

    fn password_grant(&mut self, p: &str, raw: &mut RawClient) -> Option<Grant> {
        if raw.subject.is_some() {
            self.err(format!("{p}.subject"), "only applies to grant jwt_bearer");
        }
        if raw.on_behalf_of.is_some() {
            self.caller_given(
                p,
                &[
                    ("username", raw.username.is_some()),
                    ("password", raw.password.is_some()),
                    ("password_file", raw.password_file.is_some()),
                ],
            );
            return Some(Grant::CallerPassword);
        }
        let username = self.grant_field(
            &format!("{p}.username"),
            raw.username.take(),
            "is required when grant is password, unless on_behalf_of: caller",
        );
        let password = match self.secret_pair(
            &format!("{p}.password"),
            "password",
            raw.password.take(),
            raw.password_file.take(),
        ) {
            SecretInput::Value(s) => Some(s),
            SecretInput::Missing => {
                self.err(
                    format!("{p}.password"),
                    "is required (or password_file) when grant is password, unless on_behalf_of: caller",
                );
                None
            }
            SecretInput::Invalid => None,
        };
        Some(Grant::Password {
            username: username?,
            password: password?,
        })
    }

    /// A non-blank value the grant requires.
    fn grant_field(&mut self, path: &str, value: Option<String>, missing: &str) -> Option<String> {
        let value = value.filter(|v| !v.trim().is_empty());
        if value.is_none() {
            self.err(path, missing);
        }
        value
    }

    /// A fixed identity on a client that acts as each caller.
    fn caller_given(&mut self, p: &str, settings: &[(&str, bool)]) {
        for (key, set) in settings {
            if *set {
                self.err(
                    format!("{p}.{key}"),
                    "must not be set with on_behalf_of: caller (each caller's own identity is used)",
                );
            }
        }
    }

    fn not_for_grant(&mut self, p: &str, settings: &[(&str, bool)], message: &str) {
        for (key, set) in settings {
            if *set {
                self.err(format!("{p}.{key}"), message);
            }
        }
    }
}
