//! Configuration: the YAML file is parsed into raw serde structs
//! ([`raw`]), then validated once into the typed values below
//! ([`validate`]). Nothing downstream re-checks a setting or handles a
//! "maybe": a [`Config`] that exists is usable.

mod builder;
pub mod defaults;
mod env;
mod error;
mod identity;
pub mod raw;
pub(crate) mod redact;
mod secret;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

pub use crate::route_table::HostPattern;
pub use error::{ConfigError, ConfigErrors};
pub use identity::ClientIdentity;
pub use raw::{BasicEncoding, ClientAuthMethod, GrantKind, Issuer, LimitPer, OnBehalfOf};
pub use secret::Secret;
pub(crate) use validate::read_text_limited;
pub use validate::{load_file, load_str};

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub cache: CacheSettings,
    /// Clients sorted by name.
    pub clients: Vec<Arc<ClientConfig>>,
    /// Routes in file order.
    pub routes: Vec<RouteConfig>,
    /// Lookup over `routes`; indices point into it.
    pub route_table: crate::route_table::RouteTable,
    /// Non-fatal findings (unused clients, …) shown by `check` and logged by `run`.
    pub warnings: Vec<String>,
    /// Every file the configuration was read from: the file itself (when
    /// loaded from one) and each key, secret, certificate and list file it
    /// names, as resolved. `server.watch_files` watches these.
    pub files: Vec<std::path::PathBuf>,
    /// `None`: traces are off.
    pub telemetry: Option<TelemetrySettings>,
    /// The `limits:` section, by name.
    pub limits: Vec<Arc<LimitConfig>>,
}

/// A named traffic limit (`limits.<name>`): every route that names it
/// draws on the same pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitConfig {
    pub name: String,
    pub kind: LimitKind,
    pub per: LimitPer,
}

impl std::fmt::Display for LimitConfig {
    /// `name: concurrency 200 (queue_timeout 2s) per caller`, as `check` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {}",
            self.name,
            self.kind.name(),
            self.kind.ceiling()
        )?;
        match self.kind {
            LimitKind::Concurrency { queue_timeout, .. } => write!(
                f,
                " (queue_timeout {})",
                humantime::format_duration(queue_timeout)
            )?,
            LimitKind::Rate { burst, .. } => write!(f, " burst {burst}")?,
            LimitKind::Messages { .. } => {}
        }
        write!(f, " per {}", self.per.name())
    }
}

impl LimitPer {
    /// As the file spells it.
    pub fn name(&self) -> &'static str {
        match self {
            LimitPer::All => "all",
            LimitPer::Caller => "caller",
            LimitPer::ClientIp => "client_ip",
        }
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests in flight at the upstream at once; the excess waits up to
    /// `queue_timeout` (zero: never waits).
    Concurrency { max: u32, queue_timeout: Duration },
    /// `count` requests per `window_secs`, up to `burst` at once.
    Rate {
        count: u32,
        window_secs: u64,
        burst: u32,
    },
    /// Oracle Integration messages (one per started 50 KB of body) per
    /// calendar window (UTC).
    Messages { count: u64, window_secs: u64 },
}

impl LimitKind {
    /// As the file spells the key: `concurrency`, `rate` or `messages`.
    pub fn name(&self) -> &'static str {
        match self {
            LimitKind::Concurrency { .. } => "concurrency",
            LimitKind::Rate { .. } => "rate",
            LimitKind::Messages { .. } => "messages",
        }
    }

    /// The ceiling as the file writes it: `200`, `20/s`, `5000/h`.
    pub fn ceiling(&self) -> String {
        let unit = |secs: u64| match secs {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => "d",
        };
        match *self {
            LimitKind::Concurrency { max, .. } => max.to_string(),
            LimitKind::Rate {
                count, window_secs, ..
            } => format!("{count}/{}", unit(window_secs)),
            LimitKind::Messages { count, window_secs } => format!("{count}/{}", unit(window_secs)),
        }
    }

    /// The `reason` label of a refusal by this kind of limit.
    pub fn label(&self) -> &'static str {
        match self {
            LimitKind::Concurrency { .. } => "busy",
            LimitKind::Rate { .. } => "rate",
            LimitKind::Messages { .. } => "messages",
        }
    }
}

/// Where and how traces are exported (`telemetry:`).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetrySettings {
    /// The collector's base URL; spans go to `{endpoint}/v1/traces`.
    pub otlp_endpoint: url::Url,
    /// Share of traces started here that are recorded (parent-based: a
    /// caller's sampled `traceparent` is always followed).
    pub sample_ratio: f64,
    pub service_name: String,
    /// Extra export headers, in name order; values may be credentials.
    pub headers: Vec<(http::HeaderName, Secret)>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<TlsListener>,
    pub threads: usize,
    /// Client connections held at once, all listeners together.
    pub max_connections: usize,
    /// Reload when the configuration file or a file it names changes.
    pub watch_files: bool,
    /// One shared multi-thread runtime (true) or one runtime per worker
    /// thread (false, the default: measurably cheaper per request for a
    /// proxy's many short exchanges; see docs/benchmarks.md).
    pub work_stealing: bool,
    /// `server.fast_path`: plain HTTP/1 requests proxied by the proxy's
    /// own transport (`fastpath`) rather than pingora's `ProxyHttp`.
    pub fast_path: bool,
    /// Longest wait for the upstream between two reads or writes.
    pub upstream_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub shutdown_grace: Duration,
    /// How long start-up waits for the first tokens before serving anyway.
    pub startup_token_wait: Duration,
    /// Ceilings on token requests to any one token URL: in any second,
    /// and in any 60 seconds.
    pub token_requests_per_second: f64,
    pub token_requests_per_minute: u32,
    pub limits: Limits,
}

/// A TLS listener. Certificate and key are checked at load; pingora reads
/// them from these paths when the listener starts.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub address: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, clients must present a certificate issued by one of these.
    pub client_cas: Option<Vec<CertificateDer<'static>>>,
}

/// What a client may send and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus all header names and values.
    pub max_request_header_bytes: usize,
    pub max_request_headers: usize,
    /// How long a keep-alive connection may sit idle between requests.
    pub client_idle_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub client_read_timeout: Duration,
    /// Request bodies up to this size are kept so the request can be
    /// replayed after an upstream 401; 0 replays only bodiless requests.
    pub max_replay_body_bytes: u64,
    /// After a fresh token is refused by the upstream too, 401s pass
    /// through this long without a renewal.
    pub upstream_401_cooldown: Duration,
    /// Longest a request waits for its caller's first token
    /// (`upstream_timeout`); past it, 503 `token_unavailable`.
    pub caller_token_wait: Duration,
}

/// Where token slots live.
#[derive(Debug, Clone)]
pub enum CacheSettings {
    Memory,
    Redis(Arc<RedisSettings>),
}

/// A Redis shared by the replicas of one fleet.
#[derive(Debug)]
pub struct RedisSettings {
    /// Where the primary is: a `redis://`/`rediss://` URL, or sentinels.
    pub target: RedisTarget,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Extra trust anchors for `rediss://`, PEM (as the Redis client takes them).
    pub ca_pem: Option<Vec<u8>>,
    pub key_prefix: String,
    /// The key entries are sealed with, then keys still accepted for reading.
    pub keys: Vec<EncryptionKey>,
    pub lock_ttl: Duration,
    pub operation_timeout: Duration,
}

/// How a replica finds the Redis primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://` or `rediss://`, without credentials.
    Direct(url::Url),
    /// `redis+sentinel://host:port[,host:port…]/master[/db]`
    /// (`rediss+sentinel://` for TLS to the primary): ask the sentinels.
    Sentinel {
        nodes: Vec<(String, u16)>,
        master: String,
        db: i64,
        tls: bool,
    },
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Direct(url) => write!(f, "{url}"),
            RedisTarget::Sentinel {
                nodes,
                master,
                db,
                tls,
            } => {
                let hosts: Vec<String> = nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                let scheme = if *tls {
                    "rediss+sentinel"
                } else {
                    "redis+sentinel"
                };
                write!(f, "{scheme}://{}/{master}/{db}", hosts.join(","))
            }
        }
    }
}

/// A 256-bit key for sealing shared-cache entries.
pub struct EncryptionKey {
    /// First 8 bytes of SHA-256 of the key: names it in each envelope
    /// without revealing it.
    pub id: [u8; 8],
    pub bytes: [u8; 32],
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("bytes", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// The admin token; `None`: endpoints are open (POSTs from loopback only).
    pub token: Option<Secret>,
    pub metrics_public: bool,
}

/// One Oracle confidential application.
#[derive(Debug)]
pub struct ClientConfig {
    pub name: String,
    pub issuer: Issuer,
    /// Sent as `X-OAUTH-IDENTITY-DOMAIN-NAME` (Oracle Access Manager only).
    pub identity_domain_name: Option<String>,
    pub token_url: url::Url,
    pub client_id: String,
    pub auth: ClientAuth,
    pub grant: Grant,
    /// Ask for a refresh token (`offline_access`) and renew with it.
    pub refresh_token: bool,
    pub scopes: Vec<String>,
    pub refresh_before: Duration,
    /// Extra trust anchors for the identity service, added to the system roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Set for `on_behalf_of: caller`: tokens per caller, and their bounds.
    pub callers: Option<CallerPolicy>,
    /// Extra form fields on every token request, in configured order.
    pub token_request_params: Vec<(String, String)>,
}

/// How an `on_behalf_of: caller` client keeps its callers' tokens.
#[derive(Debug, Clone)]
pub struct CallerPolicy {
    pub max_callers: usize,
    pub idle_timeout: Duration,
    pub refused_password_memory: Duration,
    pub password_attempts_per_minute: u32,
    /// `caller_subjects_file`: caller name → identity-domain user. Not part
    /// of the fingerprint: a reload swaps the mapping and keeps the tokens.
    pub subjects: Option<Arc<crate::access::CallerSubjects>>,
}

impl ClientConfig {
    /// A digest of every setting, secret and key of this client: a reload
    /// keeps the cached token of a client whose fingerprint is unchanged.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(
            format!(
                "{:?}|{:?}|{}|{}",
                self.issuer, self.identity_domain_name, self.token_url, self.client_id
            )
            .as_bytes(),
        );
        match &self.auth {
            ClientAuth::SecretBasic { secret, encoding } => {
                field(format!("basic|{encoding:?}|{}", secret.expose()).as_bytes())
            }
            ClientAuth::SecretPost { secret } => {
                field(format!("post|{}", secret.expose()).as_bytes())
            }
            ClientAuth::PrivateKeyJwt { key } => field(&key.fingerprint()),
            ClientAuth::TlsClientAuth { identity } => field(&identity.fingerprint()),
        }
        for (name, value) in &self.token_request_params {
            field(format!("param|{name}|{value}").as_bytes());
        }
        match &self.grant {
            Grant::ClientCredentials => field(b"cc"),
            Grant::Password { username, password } => {
                field(format!("pw|{username}|{}", password.expose()).as_bytes())
            }
            Grant::JwtBearer { subject, key } => {
                field(format!("jb|{subject}").as_bytes());
                field(&key.fingerprint());
            }
            Grant::CallerPassword => field(b"pw-caller"),
            Grant::CallerAssertion { key } => {
                field(b"jb-caller");
                field(&key.fingerprint());
            }
        }
        if let Some(c) = &self.callers {
            field(
                format!(
                    "callers|{}|{:?}|{:?}|{}",
                    c.max_callers,
                    c.idle_timeout,
                    c.refused_password_memory,
                    c.password_attempts_per_minute
                )
                .as_bytes(),
            );
        }
        field(
            format!(
                "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                self.refresh_token,
                self.scopes,
                self.refresh_before,
                self.connect_timeout,
                self.request_timeout,
                self.retry.initial,
                self.retry.max
            )
            .as_bytes(),
        );
        for root in &self.extra_roots {
            field(root.as_ref());
        }
        h.finalize().into()
    }

    /// The scopes a token request carries: the configured ones, plus
    /// `offline_access` when an identity domain should issue a refresh
    /// token. Oracle Access Manager issues refresh tokens by its identity
    /// domain's setting, not by a scope.
    pub fn requested_scopes(&self, scopes: &[String], refresh_token: bool) -> Vec<String> {
        let mut out = scopes.to_vec();
        if refresh_token
            && self.issuer == Issuer::IdentityDomain
            && !out.iter().any(|s| s == crate::scope::OFFLINE_ACCESS)
        {
            out.push(crate::scope::OFFLINE_ACCESS.to_string());
        }
        out
    }
}

/// How the proxy authenticates as the client.
#[derive(Debug)]
pub enum ClientAuth {
    SecretBasic {
        secret: Secret,
        encoding: BasicEncoding,
    },
    SecretPost {
        secret: Secret,
    },
    PrivateKeyJwt {
        key: Arc<SigningKey>,
    },
    /// Mutual TLS with the client's certificate.
    TlsClientAuth {
        identity: Arc<ClientIdentity>,
    },
}

impl ClientAuth {
    pub fn method(&self) -> ClientAuthMethod {
        match self {
            ClientAuth::SecretBasic { .. } => ClientAuthMethod::ClientSecretBasic,
            ClientAuth::SecretPost { .. } => ClientAuthMethod::ClientSecretPost,
            ClientAuth::PrivateKeyJwt { .. } => ClientAuthMethod::PrivateKeyJwt,
            ClientAuth::TlsClientAuth { .. } => ClientAuthMethod::TlsClientAuth,
        }
    }
}

/// The grant and what it needs.
#[derive(Debug)]
pub enum Grant {
    ClientCredentials,
    Password {
        username: String,
        password: Secret,
    },
    JwtBearer {
        subject: String,
        key: Arc<SigningKey>,
    },
    /// The password grant with each caller's own Basic credentials.
    CallerPassword,
    /// A user assertion whose subject is the caller (or its mapped user).
    CallerAssertion {
        key: Arc<SigningKey>,
    },
}

impl Grant {
    pub fn kind(&self) -> GrantKind {
        match self {
            Grant::ClientCredentials => GrantKind::ClientCredentials,
            Grant::Password { .. } | Grant::CallerPassword => GrantKind::Password,
            Grant::JwtBearer { .. } | Grant::CallerAssertion { .. } => GrantKind::JwtBearer,
        }
    }
}

/// The RSA key the proxy signs assertions with, and the header fields by
/// which the identity service finds the matching certificate.
pub struct SigningKey {
    pub key: jsonwebtoken::EncodingKey,
    /// SHA-256 of the key file, so a changed key counts as a changed client.
    pub key_sha256: [u8; 32],
    /// The certificate alias registered on the application.
    pub kid: Option<String>,
    /// base64url SHA-1 of the certificate's DER.
    pub x5t: Option<String>,
    /// base64url SHA-256 of the certificate's DER.
    pub x5t_s256: Option<String>,
    pub audience: Vec<String>,
    pub lifetime: Duration,
}

impl SigningKey {
    fn fingerprint(&self) -> Vec<u8> {
        let mut out = self.key_sha256.to_vec();
        out.extend(
            format!(
                "|{:?}|{:?}|{:?}|{:?}|{:?}",
                self.kid, self.x5t, self.x5t_s256, self.audience, self.lifetime
            )
            .into_bytes(),
        );
        out
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key", &"[redacted]")
            .field("kid", &self.kid)
            .field("x5t", &self.x5t)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Exponential backoff bounds for failed token fetches.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

/// Where a route sends its traffic: fixed by configuration, never by the request.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The `Host` header value sent upstream (`host` or `host:port`).
    pub authority: String,
}

impl UpstreamTarget {
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

#[derive(Debug)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<HostPattern>,
    pub path_prefix: String,
    pub upstream: UpstreamTarget,
    /// Trust anchors for the upstream: when set, instead of the system roots.
    pub upstream_ca: Vec<CertificateDer<'static>>,
    pub client: Arc<ClientConfig>,
    /// The scopes this route's token carries (the route's override or the client's).
    pub scopes: Vec<String>,
    pub access: Arc<crate::access::AccessPolicy>,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: Option<u64>,
    /// Methods forwarded; others are refused with 405.
    pub methods: Vec<http::Method>,
    /// The path `doctor` asks the upstream for.
    pub probe_path: String,
    /// The limits its requests pass, in the order named.
    pub limits: Vec<Arc<LimitConfig>>,
}
