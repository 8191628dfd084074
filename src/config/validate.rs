//! Raw file structs → typed [`Config`]. Collects every error of a file, each
//! with its YAML path, instead of stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde_yaml::Value;
use sha2::Digest as _;

use super::error::{ConfigError, ConfigErrors};
use super::raw::{Audience, RawAccess, RawClient, RawConfig, RawRoute, RawServer, RawSigningKey};
use super::{
    env, AdminSettings, ClientAuth, ClientAuthMethod, ClientConfig, Config, Grant, GrantKind,
    HostPattern, Issuer, Limits, RetryPolicy, RouteConfig, Secret, ServerSettings, SigningKey,
    TlsListener, UpstreamTarget,
};
use crate::access::{AccessPolicy, ApiKeys, BasicUsers};
use crate::route::{DuplicateRoute, RouteTable};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// The audience Oracle's samples put in assertions.
pub const DEFAULT_AUDIENCE: &str = "https://identity.oraclecloud.com/";

/// A secret setting that may be given inline or as a file.
enum SecretInput {
    Value(Secret),
    Missing,
    /// Given, but wrong; the error is already recorded.
    Invalid,
}

/// A `token_url` given as just the host gets the issuer's standard path.
fn with_default_token_path(mut url: url::Url, issuer: Issuer) -> url::Url {
    if url.path() == "/" || url.path().is_empty() {
        url.set_path(match issuer {
            Issuer::IdentityDomain => "/oauth2/v1/token",
            Issuer::Oam => "/oauth2/rest/token",
        });
    }
    url
}

/// Reads and validates a configuration file. Relative paths inside it
/// (secret files, CA files) are resolved against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_text_limited(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            path.display().to_string(),
            format!("cannot read configuration file: {e}"),
        )])
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&text, &base, &|name| std::env::var(name).ok())
}

/// Validates configuration text. `env` resolves `${NAME}` references.
pub fn load_str(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut tree: Value = serde_yaml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            "<file>",
            format!("not valid YAML: {e}"),
        )])
    })?;
    env::substitute(&mut tree, env, &mut errors);
    let raw: RawConfig = match serde_path_to_error::deserialize(tree) {
        Ok(raw) => raw,
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." {
                "<top level>".into()
            } else {
                path
            };
            errors.push(ConfigError::new(path, e.into_inner().to_string()));
            return Err(ConfigErrors(errors));
        }
    };
    if !errors.is_empty() {
        // Values still hold unexpanded `${...}`: validating them would only
        // repeat the same problem in other words.
        return Err(ConfigErrors(errors));
    }
    let mut v = Validator {
        base_dir,
        has_mtls_listener: false,
        errors,
        warnings: Vec::new(),
    };
    let config = v.config(raw);
    if v.errors.is_empty() {
        Ok(config.expect("a config is produced whenever no error was recorded"))
    } else {
        Err(ConfigErrors(v.errors))
    }
}

struct Validator<'a> {
    base_dir: &'a Path,
    /// Some TLS listener verifies client certificates.
    has_mtls_listener: bool,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Validator<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let server = self.server(raw.server);
        let admin_listen = raw
            .admin
            .listen
            .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.to_string());
        let admin = self
            .socket_addr("admin.listen", &admin_listen)
            .map(|listen| AdminSettings { listen });

        let mut clients = BTreeMap::new();
        let mut invalid_clients = Vec::new();
        for (name, raw_client) in raw.clients {
            match self.client(&name, raw_client) {
                Some(c) => {
                    clients.insert(name, Arc::new(c));
                }
                None => invalid_clients.push(name),
            }
        }
        let known: Vec<&str> = clients.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none defined".to_string()
        } else {
            format!("known: {}", known.join(", "))
        };

        if raw.routes.is_empty() {
            self.err("routes", "at least one route is required");
        }
        let mut routes = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, raw_route) in raw.routes.into_iter().enumerate() {
            let Some(route) = self.route(i, raw_route, &clients, &invalid_clients, &known) else {
                continue;
            };
            if let Some(first) = names.insert(route.name.clone(), i) {
                self.err(
                    format!("routes[{i}].name"),
                    format!(
                        "duplicate route name {:?} (also routes[{first}])",
                        route.name
                    ),
                );
            }
            routes.push(route);
        }
        let route_table = if self.errors.is_empty() {
            // Every route validated, so indices here are file indices.
            match RouteTable::build(
                routes
                    .iter()
                    .map(|r| (r.host.as_ref(), r.path_prefix.as_str())),
            ) {
                Ok(t) => Some(t),
                Err(DuplicateRoute { first, second }) => {
                    self.err(
                        format!("routes[{second}].match"),
                        format!("same host and path_prefix as routes[{first}]: one of them could never match"),
                    );
                    None
                }
            }
        } else {
            None
        };
        for name in clients.keys() {
            if !routes.iter().any(|r| &r.client.name == name) {
                self.warnings
                    .push(format!("clients.{name}: not used by any route"));
            }
        }
        Some(Config {
            server: server?,
            admin: admin?,
            clients: clients.into_values().collect(),
            routes,
            route_table: route_table?,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn server(&mut self, raw: RawServer) -> Option<ServerSettings> {
        let listen_raw = raw
            .listen
            .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_string()]);
        if listen_raw.is_empty() {
            self.err("server.listen", "at least one address is required");
        }
        let mut listen = Vec::new();
        for (i, a) in listen_raw.iter().enumerate() {
            if let Some(addr) = self.socket_addr(&format!("server.listen[{i}]"), a) {
                listen.push(addr);
            }
        }
        let mut tls_listen = Vec::new();
        for (i, t) in raw.tls_listen.iter().enumerate() {
            let p = format!("server.tls_listen[{i}]");
            let before = self.errors.len();
            let address = match &t.address {
                Some(a) => self.socket_addr(&format!("{p}.address"), a),
                None => {
                    self.err(format!("{p}.address"), "is required");
                    None
                }
            };
            let cert_file = match &t.cert_file {
                Some(f) => {
                    self.certificates(&format!("{p}.cert_file"), f);
                    Some(self.resolve(f))
                }
                None => {
                    self.err(
                        format!("{p}.cert_file"),
                        "is required (PEM certificate chain)",
                    );
                    None
                }
            };
            let key_file = match &t.key_file {
                Some(f) => {
                    let full = self.resolve(f);
                    match read_limited(&full) {
                        Ok(pem)
                            if rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem).is_ok() => {}
                        Ok(_) => self.err(
                            format!("{p}.key_file"),
                            format!("{} holds no PEM private key", full.display()),
                        ),
                        Err(e) => self.err(
                            format!("{p}.key_file"),
                            format!("cannot read {}: {e}", full.display()),
                        ),
                    }
                    Some(full)
                }
                None => {
                    self.err(format!("{p}.key_file"), "is required (PEM private key)");
                    None
                }
            };
            let client_cas = t
                .client_ca_file
                .as_ref()
                .map(|f| self.certificates(&format!("{p}.client_ca_file"), f));
            if self.errors.len() == before {
                if let (Some(address), Some(cert_file), Some(key_file)) =
                    (address, cert_file, key_file)
                {
                    self.has_mtls_listener |= client_cas.is_some();
                    tls_listen.push(TlsListener {
                        address,
                        cert_file,
                        key_file,
                        client_cas,
                    });
                }
            }
        }
        let threads = raw.threads.unwrap_or(2);
        if threads == 0 || threads > 256 {
            self.err("server.threads", "must be between 1 and 256");
        }
        let upstream_timeout = self.positive(
            "server.upstream_timeout",
            raw.upstream_timeout,
            Duration::from_secs(60),
        );
        let upstream_connect_timeout = self.positive(
            "server.upstream_connect_timeout",
            raw.upstream_connect_timeout,
            Duration::from_secs(10),
        );
        let shutdown_grace = raw.shutdown_grace.unwrap_or(Duration::from_secs(10));
        let startup_token_wait = raw.startup_token_wait.unwrap_or(Duration::from_secs(15));
        let token_requests_per_second = raw.token_requests_per_second.unwrap_or(5.0);
        if !(token_requests_per_second.is_finite()
            && (0.1..=1000.0).contains(&token_requests_per_second))
        {
            self.err(
                "server.token_requests_per_second",
                "must be between 0.1 and 1000 (identity domains allow 10/s on the free tier)",
            );
        }
        let max_request_header_bytes = raw.max_request_header_bytes.unwrap_or(32 * 1024);
        if !(1024..=1024 * 1024).contains(&max_request_header_bytes) {
            self.err(
                "server.max_request_header_bytes",
                "must be between 1024 and 1048576 (pingora's own ceiling)",
            );
        }
        let max_request_headers = raw.max_request_headers.unwrap_or(100);
        if !(8..=256).contains(&max_request_headers) {
            self.err(
                "server.max_request_headers",
                "must be between 8 and 256 (pingora's own ceiling)",
            );
        }
        let max_replay_body_bytes = raw.max_replay_body_bytes.unwrap_or(1024 * 1024);
        if max_replay_body_bytes > 64 * 1024 * 1024 {
            self.err(
                "server.max_replay_body_bytes",
                "must be at most 67108864 (64 MiB): each request being replayed holds its body in memory",
            );
        }
        let limits = Limits {
            max_replay_body_bytes,
            max_request_header_bytes,
            max_request_headers,
            client_idle_timeout: self.positive(
                "server.client_idle_timeout",
                raw.client_idle_timeout,
                Duration::from_secs(60),
            ),
            client_read_timeout: self.positive(
                "server.client_read_timeout",
                raw.client_read_timeout,
                Duration::from_secs(30),
            ),
        };
        Some(ServerSettings {
            tls_listen,
            limits,
            token_requests_per_second,
            listen,
            threads,
            work_stealing: raw.work_stealing.unwrap_or(false),
            upstream_timeout,
            upstream_connect_timeout,
            shutdown_grace,
            startup_token_wait,
        })
    }

    fn socket_addr(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    format!("{value:?} is not an IP:port address (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")"),
                );
                None
            }
        }
    }

    fn positive(&mut self, path: &str, value: Option<Duration>, default: Duration) -> Duration {
        let d = value.unwrap_or(default);
        if d.is_zero() {
            self.err(path, "must be greater than zero");
        }
        d
    }

    fn client(&mut self, name: &str, raw: RawClient) -> Option<ClientConfig> {
        let p = format!("clients.{name}");
        let before = self.errors.len();
        if !valid_name(name) {
            self.err(
                &p,
                "client names may use only letters, digits, '-', '_' and '.'",
            );
        }
        let identity_domain_name = match (raw.issuer, raw.identity_domain_name) {
            (Issuer::Oam, Some(d)) if !d.trim().is_empty() => Some(d),
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
        };
        let token_url = match raw.token_url.as_deref() {
            None => {
                self.err(format!("{p}.token_url"), "is required");
                None
            }
            Some(u) => self
                .https_url(&format!("{p}.token_url"), u)
                .map(|u| with_default_token_path(u, raw.issuer)),
        };
        let client_id = match raw.client_id {
            Some(id) if !id.trim().is_empty() => Some(id),
            Some(_) => {
                self.err(format!("{p}.client_id"), "must not be empty");
                None
            }
            None => {
                self.err(format!("{p}.client_id"), "is required");
                None
            }
        };
        let signing_key = raw
            .signing_key
            .as_ref()
            .and_then(|k| self.signing_key(&format!("{p}.signing_key"), k))
            .map(Arc::new);
        let needs_key = |what: &str| {
            format!(
                "{what} needs signing_key (key_file, and kid and/or cert_file) to sign its assertions"
            )
        };
        let secret = self.secret_pair(
            &format!("{p}.client_secret"),
            "client_secret",
            raw.client_secret,
            raw.client_secret_file,
        );
        let auth = match raw.client_auth {
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
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
                if raw.client_auth == ClientAuthMethod::ClientSecretPost
                    && raw.issuer == Issuer::Oam
                {
                    self.err(
                        format!("{p}.client_auth"),
                        "Oracle Access Manager authenticates clients with client_secret_basic or private_key_jwt, not client_secret_post",
                    );
                }
                secret.map(|secret| match raw.client_auth {
                    ClientAuthMethod::ClientSecretPost => ClientAuth::SecretPost { secret },
                    _ => ClientAuth::SecretBasic { secret },
                })
            }
            ClientAuthMethod::PrivateKeyJwt => {
                if !matches!(secret, SecretInput::Missing) {
                    self.warnings.push(format!(
                        "{p}.client_secret: not used with client_auth private_key_jwt"
                    ));
                }
                match &signing_key {
                    Some(key) => Some(ClientAuth::PrivateKeyJwt { key: key.clone() }),
                    None => {
                        if raw.signing_key.is_none() {
                            self.err(
                                format!("{p}.signing_key"),
                                needs_key("client_auth private_key_jwt"),
                            );
                        }
                        None
                    }
                }
            }
        };
        let grant = match raw.grant {
            GrantKind::ClientCredentials => {
                for (key, set) in [
                    ("username", raw.username.is_some()),
                    (
                        "password",
                        raw.password.is_some() || raw.password_file.is_some(),
                    ),
                    ("subject", raw.subject.is_some()),
                ] {
                    if set {
                        self.err(
                            format!("{p}.{key}"),
                            "only applies to grant password or jwt_bearer",
                        );
                    }
                }
                if raw.refresh_token {
                    self.err(
                        format!("{p}.refresh_token"),
                        "the client_credentials grant never issues refresh tokens; use grant password or jwt_bearer, or remove refresh_token",
                    );
                }
                Some(Grant::ClientCredentials)
            }
            GrantKind::Password => {
                let username = match raw.username {
                    Some(u) if !u.trim().is_empty() => Some(u),
                    _ => {
                        self.err(
                            format!("{p}.username"),
                            "is required when grant is password",
                        );
                        None
                    }
                };
                let password = match self.secret_pair(
                    &format!("{p}.password"),
                    "password",
                    raw.password,
                    raw.password_file,
                ) {
                    SecretInput::Value(s) => Some(s),
                    SecretInput::Missing => {
                        self.err(
                            format!("{p}.password"),
                            "is required (or password_file) when grant is password",
                        );
                        None
                    }
                    SecretInput::Invalid => None,
                };
                if raw.subject.is_some() {
                    self.err(format!("{p}.subject"), "only applies to grant jwt_bearer");
                }
                match (username, password) {
                    (Some(username), Some(password)) => {
                        Some(Grant::Password { username, password })
                    }
                    _ => None,
                }
            }
            GrantKind::JwtBearer => {
                let subject = match raw.subject {
                    Some(s) if !s.trim().is_empty() => Some(s),
                    _ => {
                        self.err(
                            format!("{p}.subject"),
                            "is required when grant is jwt_bearer (the user the token is for)",
                        );
                        None
                    }
                };
                if raw.signing_key.is_none() {
                    self.err(format!("{p}.signing_key"), needs_key("grant jwt_bearer"));
                }
                for (key, set) in [
                    ("username", raw.username.is_some()),
                    (
                        "password",
                        raw.password.is_some() || raw.password_file.is_some(),
                    ),
                ] {
                    if set {
                        self.err(format!("{p}.{key}"), "only applies to grant password");
                    }
                }
                match (subject, &signing_key) {
                    (Some(subject), Some(key)) => Some(Grant::JwtBearer {
                        subject,
                        key: key.clone(),
                    }),
                    _ => None,
                }
            }
        };
        if raw.signing_key.is_some()
            && raw.client_auth != ClientAuthMethod::PrivateKeyJwt
            && raw.grant != GrantKind::JwtBearer
        {
            self.warnings.push(format!(
                "{p}.signing_key: not used (only client_auth private_key_jwt and grant jwt_bearer sign assertions)"
            ));
        }
        self.scopes(&format!("{p}.scopes"), &raw.scopes);
        self.scope_rules(&format!("{p}.scopes"), &raw.scopes);
        let refresh_before = self.positive(
            &format!("{p}.refresh_before"),
            raw.refresh_before,
            Duration::from_secs(120),
        );
        let extra_roots = match &raw.ca_file {
            Some(f) => self.certificates(&format!("{p}.ca_file"), f),
            None => Vec::new(),
        };
        let connect_timeout = self.positive(
            &format!("{p}.connect_timeout"),
            raw.connect_timeout,
            Duration::from_secs(5),
        );
        let request_timeout = self.positive(
            &format!("{p}.request_timeout"),
            raw.request_timeout,
            Duration::from_secs(15),
        );
        let retry = RetryPolicy {
            initial: self.positive(
                &format!("{p}.retry.initial"),
                raw.retry.initial,
                Duration::from_secs(1),
            ),
            max: self.positive(
                &format!("{p}.retry.max"),
                raw.retry.max,
                Duration::from_secs(60),
            ),
        };
        if retry.initial > retry.max {
            self.err(format!("{p}.retry"), "initial must not be greater than max");
        }
        if self.errors.len() != before {
            return None;
        }
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
            refresh_before,
            extra_roots,
            connect_timeout,
            request_timeout,
            retry,
        })
    }

    /// `<name>` or `<name>_file`, exactly one.
    fn secret_pair(
        &mut self,
        path: &str,
        name: &str,
        value: Option<String>,
        file: Option<PathBuf>,
    ) -> SecretInput {
        match (value, file) {
            (Some(_), Some(_)) => {
                self.err(path, format!("set either {name} or {name}_file, not both"));
                SecretInput::Invalid
            }
            (None, None) => SecretInput::Missing,
            (Some(s), None) => match self.non_empty_secret(path, s) {
                Some(s) => SecretInput::Value(s),
                None => SecretInput::Invalid,
            },
            (None, Some(file)) => {
                let file_path = format!("{}_file", path);
                let full = self.resolve(&file);
                match read_text_limited(&full) {
                    Ok(s) => match self
                        .non_empty_secret(&file_path, s.trim_end_matches(['\r', '\n']).to_string())
                    {
                        Some(s) => SecretInput::Value(s),
                        None => SecretInput::Invalid,
                    },
                    Err(e) => {
                        self.err(file_path, format!("cannot read {}: {e}", full.display()));
                        SecretInput::Invalid
                    }
                }
            }
        }
    }

    fn signing_key(&mut self, p: &str, raw: &RawSigningKey) -> Option<SigningKey> {
        let before = self.errors.len();
        let mut key_sha256 = [0u8; 32];
        let key = match &raw.key_file {
            None => {
                self.err(
                    format!("{p}.key_file"),
                    "is required (an RSA private key PEM, PKCS#8 or PKCS#1)",
                );
                None
            }
            Some(file) => {
                let full = self.resolve(file);
                match read_limited(&full) {
                    Err(e) => {
                        self.err(
                            format!("{p}.key_file"),
                            format!("cannot read {}: {e}", full.display()),
                        );
                        None
                    }
                    Ok(pem) => {
                        key_sha256 = sha2::Sha256::digest(&pem).into();
                        let key = is_rsa_private_key(&pem)
                            .then(|| jsonwebtoken::EncodingKey::from_rsa_pem(&pem).ok())
                            .flatten();
                        if key.is_none() {
                            self.err(
                                format!("{p}.key_file"),
                                format!("{} is not an RSA private key in PEM form (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")", full.display()),
                            );
                        }
                        key
                    }
                }
            }
        };
        let (x5t, x5t_s256) = match &raw.cert_file {
            None => (None, None),
            Some(file) => match self.certificates(&format!("{p}.cert_file"), file).first() {
                Some(der) => {
                    use base64::Engine;
                    use sha1::Digest as _;
                    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                    (
                        Some(b64.encode(sha1::Sha1::digest(der.as_ref()))),
                        Some(b64.encode(sha2::Sha256::digest(der.as_ref()))),
                    )
                }
                None => (None, None),
            },
        };
        let kid = raw.kid.clone().filter(|k| !k.trim().is_empty());
        if kid.is_none() && raw.cert_file.is_none() {
            self.err(
                p,
                "set kid (the certificate alias registered on the application) and/or cert_file (adds x5t): the identity service needs one to find the key",
            );
        }
        let audience = match &raw.audience {
            None => vec![DEFAULT_AUDIENCE.to_string()],
            Some(Audience::One(a)) => vec![a.clone()],
            Some(Audience::Many(list)) => list.clone(),
        };
        if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
            self.err(
                format!("{p}.audience"),
                "must be a non-empty string or list of strings",
            );
        }
        let lifetime = raw.lifetime.unwrap_or(Duration::from_secs(300));
        if lifetime.is_zero() || lifetime > Duration::from_secs(3600) {
            self.err(
                format!("{p}.lifetime"),
                format!(
                    "{} is out of range: assertions must live more than 0s and at most 3600s",
                    humantime::format_duration(lifetime)
                ),
            );
        }
        if self.errors.len() != before {
            return None;
        }
        let signing = SigningKey {
            key: key?,
            key_sha256,
            kid,
            x5t,
            x5t_s256,
            audience,
            lifetime,
        };
        // Sign once now: a key that cannot sign is a configuration error,
        // not a failure on the first token request.
        if let Err(e) = crate::oauth::assertion::mint(&signing, "config-check", "config-check") {
            self.err(
                format!("{p}.key_file"),
                format!("cannot sign with this key: {e}"),
            );
            return None;
        }
        Some(signing)
    }

    /// Oracle's rules for the scopes of one token request.
    fn scope_rules(&mut self, path: &str, scopes: &[String]) {
        if let Err(message) = crate::scope::check_single_resource_server(scopes) {
            self.err(path, message);
        }
        for s in scopes {
            if let Some(fixed) = crate::scope::slash_before_urn(s) {
                self.warnings.push(format!(
                    "{path}: {s:?} has a '/' before \"urn:\", which the identity service rejects; did you mean {fixed:?}?"
                ));
            }
        }
    }

    fn non_empty_secret(&mut self, path: &str, value: String) -> Option<Secret> {
        if value.is_empty() {
            self.err(path, "must not be empty");
            None
        } else {
            Some(Secret::new(value))
        }
    }

    fn scopes(&mut self, path: &str, scopes: &[String]) {
        for (i, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.err(
                    format!("{path}[{i}]"),
                    format!("{s:?} is not a scope: scopes are single words without spaces; list each one separately"),
                );
            }
        }
    }

    fn route(
        &mut self,
        i: usize,
        raw: RawRoute,
        clients: &BTreeMap<String, Arc<ClientConfig>>,
        invalid_clients: &[String],
        known: &str,
    ) -> Option<RouteConfig> {
        let p = format!("routes[{i}]");
        let before = self.errors.len();
        let name = match raw.name {
            Some(n) if valid_name(&n) => Some(n),
            Some(n) => {
                self.err(
                    format!("{p}.name"),
                    format!("{n:?}: route names may use only letters, digits, '-', '_' and '.'"),
                );
                None
            }
            None => {
                self.err(format!("{p}.name"), "is required");
                None
            }
        };
        let host = raw
            .matcher
            .host
            .as_deref()
            .and_then(|h| self.host_pattern(&format!("{p}.match.host"), h));
        let path_prefix = raw.matcher.path_prefix.unwrap_or_else(|| "/".to_string());
        if !path_prefix.starts_with('/') {
            self.err(
                format!("{p}.match.path_prefix"),
                format!("{path_prefix:?} must start with '/'"),
            );
        }
        let upstream = match raw.upstream.as_deref() {
            None => {
                self.err(format!("{p}.upstream"), "is required");
                None
            }
            Some(u) => self.upstream(&format!("{p}.upstream"), u),
        };
        let upstream_ca = match &raw.upstream_ca_file {
            Some(f) => {
                if upstream.as_ref().is_some_and(|u| !u.tls) {
                    self.err(
                        format!("{p}.upstream_ca_file"),
                        "only applies to https upstreams",
                    );
                }
                self.certificates(&format!("{p}.upstream_ca_file"), f)
            }
            None => Vec::new(),
        };
        let client = match raw.client.as_deref() {
            None => {
                self.err(format!("{p}.client"), format!("is required ({known})"));
                None
            }
            Some(c) => match clients.get(c) {
                Some(client) => Some(client.clone()),
                // Its own errors are reported under clients.<name>.
                None if invalid_clients.iter().any(|n| n == c) => None,
                None => {
                    self.err(
                        format!("{p}.client"),
                        format!("unknown client {c:?} ({known})"),
                    );
                    None
                }
            },
        };
        self.scopes(&format!("{p}.scopes"), &raw.scopes);
        if !raw.scopes.is_empty() {
            self.scope_rules(&format!("{p}.scopes"), &raw.scopes);
        }
        let scopes = match &client {
            Some(c) if raw.scopes.is_empty() => c.scopes.clone(),
            _ => raw.scopes,
        };
        if let Some(c) = &client {
            if scopes.is_empty() {
                self.err(
                    format!("{p}.scopes"),
                    format!(
                        "no scope to request: set clients.{}.scopes or this route's scopes (identity domains require a scope, e.g. \"https://<oic-host>:443urn:opc:resource:consumer::all\")",
                        c.name
                    ),
                );
            }
        }
        let access = self.access(&format!("{p}.access"), raw.access);
        if self.errors.len() != before {
            return None;
        }
        if raw.max_body_bytes == Some(0) {
            self.err(
                format!("{p}.max_body_bytes"),
                "must be greater than zero (leave it out for no limit)",
            );
        }
        Some(RouteConfig {
            max_body_bytes: raw.max_body_bytes,
            access: Arc::new(access?),
            name: name?,
            host,
            path_prefix,
            upstream: upstream?,
            upstream_ca,
            client: client?,
            scopes,
        })
    }

    fn access(&mut self, p: &str, raw: Option<RawAccess>) -> Option<AccessPolicy> {
        let Some(raw) = raw else {
            self.err(
                p,
                "is required: say who may use this route, e.g. \"access: { api_keys_file: conf/api-keys }\", or \"access: { allow_any: true }\" to open it to anyone who can reach the listener",
            );
            return None;
        };
        let before = self.errors.len();
        let anything_else = raw.api_keys_file.is_some()
            || raw.basic_users_file.is_some()
            || !raw.allow_cidrs.is_empty()
            || !raw.client_cert_subjects.is_empty();
        if raw.allow_any && anything_else {
            self.err(
                format!("{p}.allow_any"),
                "allow_any: true lets everyone through; remove the other access settings or set allow_any: false",
            );
        }
        if !raw.allow_any && !anything_else {
            self.err(
                p,
                "lets no one through: set api_keys_file, basic_users_file, allow_cidrs or client_cert_subjects, or allow_any: true",
            );
        }
        let header = match raw.api_key_header.as_deref() {
            None => Some(http::HeaderName::from_static("x-api-key")),
            Some(h) => match http::HeaderName::try_from(h) {
                Ok(name) if name != http::header::AUTHORIZATION && name != http::header::HOST => {
                    Some(name)
                }
                _ => {
                    self.err(
                        format!("{p}.api_key_header"),
                        format!("{h:?} is not usable as the API key header"),
                    );
                    None
                }
            },
        };
        if raw.api_key_header.is_some() && raw.api_keys_file.is_none() {
            self.err(
                format!("{p}.api_key_header"),
                "only applies with api_keys_file",
            );
        }
        let api_keys = match (&raw.api_keys_file, header) {
            (Some(file), Some(header)) => self
                .read_text(&format!("{p}.api_keys_file"), file)
                .and_then(|text| match ApiKeys::parse(&text, header) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        self.err(format!("{p}.api_keys_file"), e);
                        None
                    }
                }),
            _ => None,
        };
        let basic_users = match &raw.basic_users_file {
            Some(file) => self
                .read_text(&format!("{p}.basic_users_file"), file)
                .and_then(|text| match BasicUsers::parse(&text) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        self.err(format!("{p}.basic_users_file"), e);
                        None
                    }
                }),
            None => None,
        };
        let mut allow_cidrs = Vec::new();
        for (i, c) in raw.allow_cidrs.iter().enumerate() {
            let parsed = c
                .parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => allow_cidrs.push(net),
                Err(_) => self.err(
                    format!("{p}.allow_cidrs[{i}]"),
                    format!(
                        "{c:?} is not an address or CIDR range (e.g. \"10.0.0.0/8\", \"::1/128\")"
                    ),
                ),
            }
        }
        for (i, subject) in raw.client_cert_subjects.iter().enumerate() {
            if subject.trim().is_empty() || !subject.contains('=') {
                self.err(
                    format!("{p}.client_cert_subjects[{i}]"),
                    format!("{subject:?} is not a subject like \"CN=legacy-erp\""),
                );
            }
        }
        if !raw.client_cert_subjects.is_empty() && !self.has_mtls_listener {
            self.err(
                format!("{p}.client_cert_subjects"),
                "requires a TLS listener that verifies client certificates (server.tls_listen with client_ca_file)",
            );
        }
        if self.errors.len() != before {
            return None;
        }
        Some(AccessPolicy {
            allow_any: raw.allow_any,
            allow_cidrs,
            api_keys,
            basic_users,
            client_cert_subjects: raw.client_cert_subjects,
        })
    }

    fn read_text(&mut self, path: &str, file: &Path) -> Option<String> {
        let full = self.resolve(file);
        match read_text_limited(&full) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(path, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    fn host_pattern(&mut self, path: &str, raw: &str) -> Option<HostPattern> {
        let h = raw.trim().to_ascii_lowercase();
        let bad =
            |why: &str| format!("{raw:?}: {why} (use \"api.example.com\" or \"*.example.com\")");
        if h.is_empty() {
            self.err(path, bad("empty host"));
            return None;
        }
        if h.contains(':') && !h.starts_with('[') {
            self.err(
                path,
                bad("must not include a port (the port is ignored when matching)"),
            );
            return None;
        }
        if let Some(suffix) = h.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                self.err(path, bad("invalid wildcard"));
                return None;
            }
            return Some(HostPattern::Suffix(format!(".{suffix}")));
        }
        if h.contains('*') || h.contains('/') {
            self.err(path, bad("'*' is only allowed as a leading \"*.\""));
            return None;
        }
        Some(HostPattern::Exact(h))
    }

    /// A token endpoint: https, or plain http only on loopback (a local emulator).
    fn https_url(&mut self, path: &str, raw: &str) -> Option<url::Url> {
        // Every message below shows the URL; never with its credentials.
        let raw = &*redact_userinfo(raw);
        let url = match url::Url::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                self.err(path, format!("{raw:?} is not a valid URL: {e}"));
                return None;
            }
        };
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&url) => {}
            "http" => {
                self.err(
                    path,
                    format!("{raw:?} must use https: credentials are sent to it (plain http is allowed only for loopback addresses)"),
                );
                return None;
            }
            s => {
                self.err(
                    path,
                    format!("{raw:?}: unsupported scheme {s:?} (use https)"),
                );
                return None;
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            self.err(path, format!("{raw:?} has no host"));
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.err(
                path,
                "must not contain credentials; use client_id and client_secret",
            );
            return None;
        }
        Some(url)
    }

    fn upstream(&mut self, path: &str, raw: &str) -> Option<UpstreamTarget> {
        // Every message below shows the URL; never with its credentials.
        let raw = &*redact_userinfo(raw);
        let form = "must be scheme://host[:port], e.g. \"https://oic.example.com\"";
        let url = match url::Url::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                self.err(path, format!("{raw:?} is not a valid URL ({e}); {form}"));
                return None;
            }
        };
        let tls = match url.scheme() {
            "https" => true,
            "http" if is_loopback_host(&url) => false,
            "http" => {
                self.err(
                    path,
                    format!("{raw:?} must use https: the proxy sends access tokens to it (plain http is allowed only for loopback addresses)"),
                );
                return None;
            }
            s => {
                self.err(path, format!("{raw:?}: unsupported scheme {s:?}; {form}"));
                return None;
            }
        };
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            self.err(path, format!("{raw:?} has no host; {form}"));
            return None;
        };
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            self.err(
                path,
                format!("{raw:?} must not have a path, query or fragment; {form} (request paths are forwarded unchanged)"),
            );
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.err(path, format!("must not contain credentials; {form}"));
            return None;
        }
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        // `host_str` keeps IPv6 brackets; the TLS name and resolver want them off.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Some(UpstreamTarget {
            tls,
            host,
            port,
            authority,
        })
    }

    fn resolve(&self, file: &Path) -> PathBuf {
        if file.is_absolute() {
            file.to_path_buf()
        } else {
            self.base_dir.join(file)
        }
    }

    fn certificates(&mut self, path: &str, file: &Path) -> Vec<CertificateDer<'static>> {
        let full = self.resolve(file);
        let bytes = match read_limited(&full) {
            Ok(b) => b,
            Err(e) => {
                self.err(path, format!("cannot read {}: {e}", full.display()));
                return Vec::new();
            }
        };
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
        let certs = match certs {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                self.err(
                    path,
                    format!("{}: no PEM certificate found", full.display()),
                );
                return Vec::new();
            }
            Err(e) => {
                self.err(path, format!("{}: invalid PEM: {e}", full.display()));
                return Vec::new();
            }
        };
        let mut store = rustls::RootCertStore::empty();
        for c in &certs {
            if let Err(e) = store.add(c.clone()) {
                self.err(
                    path,
                    format!("{}: not a usable CA certificate: {e}", full.display()),
                );
                return Vec::new();
            }
        }
        certs
    }
}

/// PKCS#8 or PKCS#1 private key PEM (a certificate or public key would
/// parse as a key too, and only fail when signing).
fn is_rsa_private_key(pem: &[u8]) -> bool {
    use rustls::pki_types::PrivateKeyDer;
    matches!(
        PrivateKeyDer::from_pem_slice(pem),
        Ok(PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Pkcs1(_))
    )
}

/// Configuration, key, certificate, secret and htpasswd files are small;
/// reading stops here, so a path like /dev/zero cannot exhaust memory.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    Ok(out)
}

fn read_text_limited(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_limited(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `scheme://user:password@host` → `scheme://***@host`, so a URL can be
/// quoted in an error message (and so in a log) without its credentials.
fn redact_userinfo(raw: &str) -> std::borrow::Cow<'_, str> {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.into();
    };
    let authority_end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    match raw[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]).into(),
        None => raw.into(),
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted_for_messages() {
        assert_eq!(
            redact_userinfo("http://u:p%40ss@10.0.0.1:8/x"),
            "http://***@10.0.0.1:8/x"
        );
        assert_eq!(redact_userinfo("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact_userinfo("not a url"), "not a url");
    }
}
