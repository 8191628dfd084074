//! The Redis operations the shared cache needs, each bounded by
//! `operation_timeout` and classified on failure. The connection is made on
//! first use and re-made by redis-rs's connection manager after a failure,
//! so a Redis that is down at start-up or restarts later is picked up again.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::sync::Mutex;

use crate::config::RedisSettings;

/// What went wrong talking to Redis (the `kind` label of
/// `bearer_proxy_shared_cache_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    Unavailable,
    Timeout,
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
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    timeout: Duration,
    release: redis::Script,
}

/// Deletes the lock only if this replica still owns it: a holder whose
/// lock expired must not release its successor's.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl Store {
    pub fn new(settings: &RedisSettings) -> Result<Self, redis::RedisError> {
        use redis::IntoConnectionInfo;
        let mut redis_info = redis::RedisConnectionInfo::default();
        let info = settings.url.as_str().into_connection_info()?;
        redis_info = redis_info.set_db(info.redis_settings().db());
        if let Some(user) = &settings.username {
            redis_info = redis_info.set_username(user);
        }
        if let Some(password) = &settings.password {
            redis_info = redis_info.set_password(password.expose());
        }
        let info = info.set_redis_settings(redis_info);
        let client = match &settings.ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
            None => redis::Client::open(info)?,
        };
        Ok(Store {
            client,
            conn: Mutex::new(None),
            timeout: settings.operation_timeout,
            release: redis::Script::new(RELEASE),
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Runs `op` on the connection within the time-out.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.connection().await?;
            op(conn).await.map_err(|_| StoreError::Unavailable)
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(StoreError::Timeout))
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
        let conn = self
            .client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|_| StoreError::Unavailable)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|mut c| async move { c.get(key).await }).await
    }

    /// SET with a time-to-live in milliseconds (at least 1).
    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let ms = (ttl.as_millis() as u64).max(1);
        self.run(|mut c| async move { c.pset_ex(key, value, ms).await })
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
        self.run(|mut c| async move {
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
        self.run(|mut c| async move {
            let _: i64 = script.key(key).arg(owner).invoke_async(&mut c).await?;
            Ok(())
        })
        .await
    }

    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        self.run(|mut c| async move {
            let _: i64 = c.publish(channel, message).await?;
            Ok(())
        })
        .await
    }
}
