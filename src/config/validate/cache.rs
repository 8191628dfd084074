//! `cache:` — the memory backend (default) or a Redis the replicas share,
//! with the keys its entries are sealed with.

use std::path::Path;
use std::sync::Arc;

use sha2::Digest as _;

use super::{SecretInput, Validator};
use crate::config::defaults as d;
use crate::config::raw::{CacheBackend, RawCache, RawRedis};
use crate::config::{CacheSettings, EncryptionKey, RedisSettings, RedisTarget};

const CREDENTIALS: &str =
    "must not contain credentials; use username and password (or password_file)";

fn parse_direct(raw: &str) -> Result<RedisTarget, String> {
    let u = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(u.scheme(), "redis" | "rediss") {
        return Err("unsupported scheme (use redis://, rediss:// or redis+sentinel://)".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(CREDENTIALS.into());
    }
    Ok(RedisTarget::Direct(u))
}

/// `redis+sentinel://host:port[,host:port…]/master[/db]`.
fn parse_sentinel(raw: &str) -> Result<RedisTarget, String> {
    let (scheme, rest) = raw.split_once("://").ok_or("not a URL")?;
    let naming = "name the primary: redis+sentinel://host:26379/<master name>";
    let (hosts, path) = rest.split_once('/').ok_or(naming)?;
    if hosts.contains('@') {
        return Err(CREDENTIALS.into());
    }
    let nodes = hosts
        .split(',')
        .map(|h| {
            let (host, port) = h.rsplit_once(':').unwrap_or((h, "26379"));
            let port = port
                .parse::<u16>()
                .map_err(|_| "a sentinel's port is not a number")?;
            if host.is_empty() {
                return Err("a sentinel without a host");
            }
            Ok((host.to_string(), port))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts = path.split('/').filter(|s| !s.is_empty());
    let master = parts.next().ok_or(naming)?;
    let db = match parts.next() {
        Some(d) => d
            .parse::<i64>()
            .map_err(|_| "the database must be a number")?,
        None => 0,
    };
    Ok(RedisTarget::Sentinel {
        nodes,
        master: master.to_string(),
        db,
        tls: scheme == "rediss+sentinel",
    })
}

impl Validator<'_> {
    pub(super) fn cache(&mut self, raw: RawCache) -> Option<CacheSettings> {
        match (raw.backend.unwrap_or_default(), raw.redis) {
            (CacheBackend::Memory, redis) => {
                if redis.is_some() {
                    self.warn("cache.redis: not used with backend memory".into());
                }
                Some(CacheSettings::Memory)
            }
            (CacheBackend::Redis, None) => {
                self.err(
                    "cache.redis",
                    "is required with backend redis (at least url and encryption_key_file)",
                );
                None
            }
            (CacheBackend::Redis, Some(redis)) => self
                .section(|v| v.redis(redis))
                .map(|r| CacheSettings::Redis(Arc::new(r))),
        }
    }

    fn redis(&mut self, raw: RawRedis) -> Option<RedisSettings> {
        let p = "cache.redis";
        if !raw.cluster_nodes.is_empty() {
            self.err(
                format!("{p}.cluster_nodes"),
                "Redis Cluster is not supported yet: give one redis:// or rediss:// url (a primary, or a proxy in front of the cluster)",
            );
        }
        let target = self.redis_target(p, raw.url.as_deref());
        let tls = match &target {
            Some(RedisTarget::Direct(u)) => u.scheme() == "rediss",
            Some(RedisTarget::Sentinel { tls, .. }) => *tls,
            None => true,
        };
        if raw.ca_file.is_some() && !tls {
            self.err(format!("{p}.ca_file"), "only applies to rediss:// urls");
        }
        if raw.ca_file.is_some() && matches!(target, Some(RedisTarget::Sentinel { .. })) {
            self.err(
                format!("{p}.ca_file"),
                "is not supported with sentinels yet: the primary's certificate is checked against the system roots",
            );
        }
        let ca_pem = raw.ca_file.as_ref().and_then(|f| {
            let path = format!("{p}.ca_file");
            let valid = !self.certificates(&path, f).is_empty();
            valid
                .then(|| super::files::read_limited(&self.resolve(f)).ok())
                .flatten()
        });
        let password = match self.secret_pair(
            &format!("{p}.password"),
            "password",
            raw.password,
            raw.password_file,
        ) {
            SecretInput::Value(s) => Some(s),
            SecretInput::Missing | SecretInput::Invalid => None,
        };
        let key_prefix = raw
            .key_prefix
            .unwrap_or_else(|| d::REDIS_KEY_PREFIX.to_string());
        if key_prefix.is_empty()
            || key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            self.err(
                format!("{p}.key_prefix"),
                "must be a non-empty word without spaces",
            );
        }
        let keys = self.encryption_keys(
            p,
            raw.encryption_key_file.as_deref(),
            &raw.previous_encryption_key_files,
        );
        let lock_ttl = self.positive(&format!("{p}.lock_ttl"), raw.lock_ttl, d::REDIS_LOCK_TTL);
        let operation_timeout = self.positive(
            &format!("{p}.operation_timeout"),
            raw.operation_timeout,
            d::REDIS_OPERATION_TIMEOUT,
        );
        Some(RedisSettings {
            target: target?,
            username: raw.username.filter(|u| !u.is_empty()),
            password,
            ca_pem,
            key_prefix,
            keys,
            lock_ttl,
            operation_timeout,
        })
    }

    /// `redis://` or `rediss://`, host required, no credentials in it (they
    /// would show wherever the URL is shown); or sentinels.
    fn redis_target(&mut self, p: &str, raw: Option<&str>) -> Option<RedisTarget> {
        let path = format!("{p}.url");
        let Some(raw) = raw else {
            self.err(
                path,
                "is required (redis://host:6379/0, rediss:// for TLS, or redis+sentinel://host:26379/<master>)",
            );
            return None;
        };
        let result =
            if raw.starts_with("redis+sentinel://") || raw.starts_with("rediss+sentinel://") {
                parse_sentinel(raw)
            } else {
                parse_direct(raw)
            };
        result.map_err(|message| self.err(path, message)).ok()
    }

    /// The current key, then the previous ones: each a file holding 32
    /// random bytes in base64 (`bearer-proxy keygen` writes one).
    fn encryption_keys(
        &mut self,
        p: &str,
        current: Option<&Path>,
        previous: &[std::path::PathBuf],
    ) -> Vec<EncryptionKey> {
        let mut keys = Vec::new();
        match current {
            None => self.err(
                format!("{p}.encryption_key_file"),
                "is required: entries are sealed with it (bearer-proxy keygen writes one)",
            ),
            Some(file) => {
                keys.extend(self.encryption_key(&format!("{p}.encryption_key_file"), file))
            }
        }
        for (i, file) in previous.iter().enumerate() {
            keys.extend(
                self.encryption_key(&format!("{p}.previous_encryption_key_files[{i}]"), file),
            );
        }
        keys
    }

    fn encryption_key(&mut self, path: &str, file: &Path) -> Option<EncryptionKey> {
        use base64::Engine;
        let text = self.read_text(path, file)?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(text.trim());
        let Ok(bytes) = decoded
            .map_err(|_| ())
            .and_then(|b| <[u8; 32]>::try_from(b).map_err(|_| ()))
        else {
            self.err(
                path,
                "the file it names does not hold 32 bytes in base64 (bearer-proxy keygen writes one)",
            );
            return None;
        };
        let digest = sha2::Sha256::digest(bytes);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Some(EncryptionKey { id, bytes })
    }
}
