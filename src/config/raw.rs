//! The file format, and nothing else: serde structs that mirror the YAML.
//! Every struct denies unknown keys so a typo is an error, not a silent
//! default. Meaning and cross-checks live in `validate/`; defaults in
//! `defaults.rs`. `Serialize` is for [`super::builder`], which writes test
//! and example configurations from these types instead of by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub clients: BTreeMap<String, RawClient>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRoute>,
    /// Named traffic limits; routes refer to them by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, RawLimit>,
    /// Traces are off when the section is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<RawTelemetry>,
}

/// `telemetry:` — OpenTelemetry traces over OTLP/HTTP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_listen: Vec<RawTlsListener>,
    pub threads: Option<usize>,
    pub work_stealing: Option<bool>,
    pub fast_path: Option<bool>,
    /// Client connections held at once, all listeners together.
    pub max_connections: Option<usize>,
    /// Reload when the configuration file or a file it names changes.
    pub watch_files: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    pub upstream_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub upstream_connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub startup_token_wait: Option<Duration>,
    pub token_requests_per_second: Option<f64>,
    pub token_requests_per_minute: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub upstream_401_cooldown: Option<Duration>,
    pub max_request_header_bytes: Option<usize>,
    pub max_request_headers: Option<usize>,
    pub max_replay_body_bytes: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    pub client_idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub client_read_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsListener {
    pub address: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    /// When set, every admin endpoint but `/healthz` and `/readyz` needs
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Leave `/metrics` open even with a token (for a scraper without one).
    pub metrics_public: Option<bool>,
}

/// `cache:` — where token slots live.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub backend: Option<CacheBackend>,
    pub redis: Option<RawRedis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackend {
    /// Each replica keeps its own tokens.
    #[default]
    Memory,
    /// Replicas share sealed tokens in Redis.
    Redis,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_nodes: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub key_prefix: Option<String>,
    pub encryption_key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_encryption_key_files: Vec<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    pub lock_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub operation_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issuer {
    /// OCI IAM identity domains and IDCS: `/oauth2/v1/token`.
    #[default]
    IdentityDomain,
    /// Oracle Access Manager: `/oauth2/rest/token`, upper-case grant types,
    /// `X-OAUTH-IDENTITY-DOMAIN-NAME`.
    Oam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    /// A client assertion JWT signed with `signing_key`.
    PrivateKeyJwt,
    /// Mutual TLS with the client's certificate, to the identity domain's
    /// secure token endpoint (Oracle's TLS client authentication grant).
    TlsClientAuth,
}

/// `Authorization: Basic` for `client_secret_basic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BasicEncoding {
    /// `base64(client_id ":" client_secret)`, as Oracle documents it.
    #[default]
    Plain,
    /// RFC 6749 §2.3.1: both form-urlencoded first, for identity services
    /// that follow the RFC to the letter.
    FormUrlencoded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    #[default]
    ClientCredentials,
    /// Resource owner password credentials.
    Password,
    /// A user assertion JWT minted by the proxy for `subject`.
    JwtBearer,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    #[serde(default)]
    pub issuer: Issuer,
    /// Required for `issuer: oam`.
    pub identity_domain_name: Option<String>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
    /// How `client_secret_basic` encodes id and secret (default: plain).
    pub client_secret_basic_encoding: Option<BasicEncoding>,
    #[serde(default)]
    pub grant: GrantKind,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub subject: Option<String>,
    /// `caller`: each caller gets tokens as itself (its own Basic
    /// credentials, or its name as the assertion's subject).
    pub on_behalf_of: Option<OnBehalfOf>,
    pub max_callers: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub caller_idle_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub refused_password_memory: Option<Duration>,
    pub password_attempts_per_minute: Option<u32>,
    /// `caller-name: identity-domain-user` lines (grant jwt_bearer).
    pub caller_subjects_file: Option<PathBuf>,
    pub signing_key: Option<RawSigningKey>,
    #[serde(default)]
    pub refresh_token: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, with = "humantime_serde")]
    pub refresh_before: Option<Duration>,
    pub ca_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    #[serde(default)]
    pub retry: RawRetry,
    /// `client_auth: tls_client_auth`: the certificate imported into the
    /// confidential application, and its key (PEM files).
    pub tls_client_cert_file: Option<PathBuf>,
    pub tls_client_key_file: Option<PathBuf>,
    /// Extra form fields on every token request, in the order given.
    #[serde(default, skip_serializing_if = "serde_yaml::Mapping::is_empty")]
    pub token_request_params: serde_yaml::Mapping,
}

/// Whose identity a client's tokens carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBehalfOf {
    /// The authenticated caller's.
    Caller,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigningKey {
    pub key_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub kid: Option<String>,
    pub audience: Option<Audience>,
    #[serde(default, with = "humantime_serde")]
    pub lifetime: Option<Duration>,
}

/// `audience: "https://identity.oraclecloud.com/"` or a list of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default, with = "humantime_serde")]
    pub initial: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    pub upstream: Option<String>,
    pub upstream_ca_file: Option<PathBuf>,
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub access: Option<RawAccess>,
    pub max_body_bytes: Option<u64>,
    /// Methods the route forwards (default: all but TRACE and CONNECT).
    pub methods: Option<Vec<String>>,
    /// What `bearer-proxy doctor` GETs upstream (default: the path prefix).
    pub probe_path: Option<String>,
    /// Names of `limits:` entries this route's requests pass through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
}

/// `limits.<name>:` — exactly one of `concurrency`, `rate`, `messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    pub concurrency: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub queue_timeout: Option<Duration>,
    /// `N/s`, `N/min` or `N/h`.
    pub rate: Option<String>,
    pub burst: Option<u32>,
    /// `N/h` or `N/d`.
    pub messages: Option<String>,
    pub per: Option<LimitPer>,
}

/// Whose requests share one count of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPer {
    /// Every request of the limit's routes.
    #[default]
    All,
    /// Each caller the route's access rule admitted.
    Caller,
    /// Each client address.
    ClientIp,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    #[serde(default)]
    pub allow_any: bool,
    pub api_keys_file: Option<PathBuf>,
    pub api_key_header: Option<String>,
    pub basic_users_file: Option<PathBuf>,
    /// The caller's Basic credentials are checked by the identity service
    /// (the route's `on_behalf_of: caller` password client), not here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity_service_basic: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_cert_subjects: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
}
