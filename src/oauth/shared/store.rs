//! The Redis operations the shared cache needs, each bounded by
//! `operation_timeout` and classified on failure. The connection is made on
//! first use and re-made by redis-rs's connection manager after a failure,
//! so a Redis that is down at start-up or restarts later is picked up again.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::sync::Mutex;

use crate::config::{RedisSettings, RedisTarget};

/// Username, password and database, as both kinds of connection take them.
fn node_info(settings: &RedisSettings, db: i64) -> redis::RedisConnectionInfo {
    let mut info = redis::RedisConnectionInfo::default().set_db(db);
    if let Some(user) = &settings.username {
        info = info.set_username(user);
    }
    if let Some(password) = &settings.password {
        info = info.set_password(password.expose());
    }
    info
}

fn direct_client(settings: &RedisSettings, url: &url::Url) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.as_str().into_connection_info()?;
    let db = info.redis_settings().db();
    let info = info.set_redis_settings(node_info(settings, db));
    match &settings.ca_pem {
        Some(pem) => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => redis::Client::open(info),
    }
}

fn sentinel_client(
    settings: &RedisSettings,
    nodes: &[(String, u16)],
    master: &str,
    db: i64,
    tls: bool,
) -> redis::RedisResult<redis::sentinel::SentinelClient> {
    use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
    let sentinels: Vec<String> = nodes
        .iter()
        .map(|(h, p)| format!("redis://{h}:{p}"))
        .collect();
    let mut node =
        SentinelNodeConnectionInfo::default().set_redis_connection_info(node_info(settings, db));
    if tls {
        node = node.set_tls_mode(redis::TlsMode::Secure);
    }
    SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)
}

/// What went wrong talking to Redis (the `kind` label of
/// `bearer_proxy_shared_cache_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    Unavailable,
    Timeout,
}

/// A Redis that answers too late is slow, not down.
fn classify(e: redis::RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else {
        StoreError::Unavailable
    }
}

impl StoreError {
    pub fn label(self) -> &'static str {
        match self {
            StoreError::Unavailable => "unavailable",
            StoreError::Timeout => "timeout",
        }
    }
}

pub struct Store {
    source: Source,
    conn: Mutex<Option<ConnectionManager>>,
    timeout: Duration,
    release: redis::Script,
}

/// Where connections go: one server, or whichever the sentinels name
/// primary now.
enum Source {
    Direct(redis::Client),
    Sentinel(Mutex<redis::sentinel::SentinelClient>),
}

/// Deletes the lock only if this replica still owns it: a holder whose
/// lock expired must not release its successor's.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl Store {
    pub fn new(settings: &RedisSettings) -> Result<Self, redis::RedisError> {
        let source = match &settings.target {
            RedisTarget::Direct(url) => Source::Direct(direct_client(settings, url)?),
            RedisTarget::Sentinel {
                nodes,
                master,
                db,
                tls,
            } => Source::Sentinel(Mutex::new(sentinel_client(
                settings, nodes, master, *db, *tls,
            )?)),
        };
        Ok(Store {
            source,
            conn: Mutex::new(None),
            timeout: settings.operation_timeout,
            release: redis::Script::new(RELEASE),
        })
    }

    /// A client of the primary: for the pub/sub connection.
    pub async fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.source {
            Source::Direct(client) => Ok(client.clone()),
            Source::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
        }
    }

    /// Runs `op` (Redis command `name`) on the connection within the
    /// time-out; inside a traced token fetch, as a child span of it.
    async fn run<T, F, Fut>(&self, name: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.connection().await?;
            op(conn).await.map_err(classify)
        };
        let span = crate::telemetry::cache_operation(name);
        let result = tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(StoreError::Timeout));
        if let (Err(e), Some(span)) = (&result, &span) {
            span.failed(e.label());
        }
        if result.is_err() {
            // Next time connect afresh: after a failover the sentinels
            // name another primary (and a direct connection is re-made).
            *self.conn.lock().await = None;
        }
        result
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let client = self.client().await.map_err(classify)?;
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(classify)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run("GET", |mut c| async move { c.get(key).await })
            .await
    }

    /// SET with a time-to-live in milliseconds (at least 1).
    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let ms = (ttl.as_millis() as u64).max(1);
        self.run(
            "SET",
            |mut c| async move { c.pset_ex(key, value, ms).await },
        )
        .await
    }

    /// `SET key owner NX PX ttl`: whether this replica now holds the lock.
    pub async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ms = ttl.as_millis() as u64;
        self.run("SET NX", |mut c| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(&mut c)
                .await?;
            Ok(set.is_some())
        })
        .await
    }

    pub async fn unlock(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let script = &self.release;
        self.run("EVALSHA", |mut c| async move {
            let _: i64 = script.key(key).arg(owner).invoke_async(&mut c).await?;
            Ok(())
        })
        .await
    }

    /// Runs a Lua script (EVALSHA, loaded on first use) answering a list
    /// of integers: the traffic limits' atomic operations.
    pub async fn script_ints(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Vec<i64>, StoreError> {
        self.run("EVALSHA", |mut c| async move {
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k);
            }
            for a in args {
                invocation.arg(a);
            }
            invocation.invoke_async(&mut c).await
        })
        .await
    }

    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        self.run("PUBLISH", |mut c| async move {
            let _: i64 = c.publish(channel, message).await?;
            Ok(())
        })
        .await
    }
}
