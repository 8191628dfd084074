//! Every default of the file format, named, in one place: docs/configuration.md's
//! reference table and the validator read the same values.

use std::time::Duration;

/// `server.listen`: loopback, so a first run exposes nothing.
pub const LISTEN: &str = "127.0.0.1:8080";
/// `admin.listen`: loopback; the admin endpoints have no authentication.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// `server.threads`.
pub const THREADS: usize = 2;
/// `server.max_connections`: client connections held at once. A pod at the
/// Kubernetes base's 256 MiB limit: ~40 MiB for the process, up to ~26 MiB
/// for 10,000 cached callers, and 2,048 idle TLS connections at ~52 KiB
/// each (docs/benchmarks.md) = ~104 MiB: ~170 MiB, a third below the limit.
pub const MAX_CONNECTIONS: usize = 2048;
/// `server.watch_files`: reload when a file of the configuration changes
/// (Kubernetes replaces mounted Secrets and certificates without a signal).
pub const WATCH_FILES: bool = true;
/// Upper bound of `server.max_connections`.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
/// `server.work_stealing`: one runtime per worker measured cheaper (docs/benchmarks.md).
pub const WORK_STEALING: bool = false;
/// `server.fast_path`: our own HTTP/1 transport (docs/benchmarks.md,
/// "Fast path").
pub const FAST_PATH: bool = true;
/// `server.upstream_timeout`: longest wait between two reads or writes.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.upstream_connect_timeout`.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.shutdown_grace`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// `server.startup_token_wait`.
pub const STARTUP_TOKEN_WAIT: Duration = Duration::from_secs(15);
/// `server.token_requests_per_second`: half of the identity domains' free-tier 10/s.
pub const TOKEN_REQUESTS_PER_SECOND: f64 = 5.0;
/// `server.token_requests_per_minute`: two thirds of the identity domains'
/// free-tier 150/min, shared by every client of one token URL.
pub const TOKEN_REQUESTS_PER_MINUTE: u32 = 100;
/// `server.upstream_401_cooldown`: how long 401s pass through untouched once
/// the upstream refused a freshly fetched token.
pub const UPSTREAM_401_COOLDOWN: Duration = Duration::from_secs(60);
/// `server.max_request_header_bytes`.
pub const MAX_REQUEST_HEADER_BYTES: usize = 32 * 1024;
/// `server.max_request_headers`.
pub const MAX_REQUEST_HEADERS: usize = 100;
/// `server.max_replay_body_bytes`.
pub const MAX_REPLAY_BODY_BYTES: u64 = 1024 * 1024;
/// `server.client_idle_timeout`.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.client_read_timeout`.
pub const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `clients.*.refresh_before`.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(120);
/// `clients.*.connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `clients.*.request_timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// `clients.*.retry.initial`.
pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// `clients.*.retry.max`.
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// `clients.*.signing_key.audience`: the audience Oracle's samples put in assertions.
pub const AUDIENCE: &str = "https://identity.oraclecloud.com/";
/// `clients.*.signing_key.lifetime`.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// Oracle's lower limit on a user assertion's (and so its token's) lifetime.
pub const ASSERTION_LIFETIME_MIN: Duration = Duration::from_secs(60);
/// Longest assertion lifetime the identity service accepts.
pub const ASSERTION_LIFETIME_MAX: Duration = Duration::from_secs(3600);

/// `clients.*.max_callers`: callers whose tokens an `on_behalf_of: caller`
/// client keeps; the least recently used is evicted beyond it.
pub const MAX_CALLERS: usize = 10_000;
/// `clients.*.caller_idle_timeout`: a caller unseen this long loses its token.
pub const CALLER_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// `clients.*.refused_password_memory`: a user+password the identity
/// service refused is not sent again for this long.
pub const REFUSED_PASSWORD_MEMORY: Duration = Duration::from_secs(300);
/// `clients.*.password_attempts_per_minute`: password grants per user name
/// in any sixty seconds, below an identity domain's usual lockout of 5.
pub const PASSWORD_ATTEMPTS_PER_MINUTE: u32 = 3;
/// Bounds of the caller settings (inclusive).
pub const MAX_CALLERS_LIMIT: usize = 1_000_000;
pub const CALLER_IDLE_TIMEOUT_MIN: Duration = Duration::from_secs(1);
pub const CALLER_IDLE_TIMEOUT_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const REFUSED_PASSWORD_MEMORY_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const PASSWORD_ATTEMPTS_LIMIT: u32 = 60;

/// `cache.redis.key_prefix`: lets several fleets share one Redis.
pub const REDIS_KEY_PREFIX: &str = "bearer-proxy:";
/// `cache.redis.lock_ttl`: longest a replica may hold a slot's fetch lock.
pub const REDIS_LOCK_TTL: Duration = Duration::from_secs(30);
/// `cache.redis.operation_timeout`: past this, Redis counts as unavailable
/// and the replica fetches on its own.
pub const REDIS_OPERATION_TIMEOUT: Duration = Duration::from_millis(500);

/// `routes[*].match.path_prefix`.
pub const PATH_PREFIX: &str = "/";
/// Methods a route forwards when it names none: every method except TRACE
/// (an answering intermediary would reflect the injected token) and
/// CONNECT (a tunnel, not a request). Also the `Allow` header of a 405.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// `routes[*].access.api_key_header`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Token path of an identity domain, added to a `token_url` given as a host.
pub const IDENTITY_DOMAIN_TOKEN_PATH: &str = "/oauth2/v1/token";
/// Token path of Oracle Access Manager.
pub const OAM_TOKEN_PATH: &str = "/oauth2/rest/token";

/// `telemetry.sample_ratio`: one trace in a hundred started here.
pub const TRACE_SAMPLE_RATIO: f64 = 0.01;
pub const TRACE_SERVICE_NAME: &str = "bearer-proxy";

/// How long a request may wait for a place of a `concurrency` limit.
pub const LIMIT_QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest `queue_timeout`: a queued request holds a client connection.
pub const LIMIT_QUEUE_TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// Bytes of body per Oracle Integration message (50 KB).
pub const MESSAGE_BYTES: u64 = 51_200;
/// Partition keys (callers, addresses) kept per limit; the least recently
/// used is forgotten beyond it.
pub const LIMIT_PARTITIONS_MAX: usize = 100_000;
/// Every fleet place is leased: a replica that dies holding places gives
/// them back after this long without renewing its lease.
pub const LIMIT_PLACE_LEASE: Duration = Duration::from_secs(15);
