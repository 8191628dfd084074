//! `cache:` — the memory backend (default) or a Redis the replicas share,
//! with the keys its entries are sealed with.

use std::path::Path;
use std::sync::Arc;

use sha2::Digest as _;

use super::{SecretInput, Validator};
use crate::config::defaults as d;
use crate::config::raw::{CacheBackend, RawCache, RawRedis};
use crate::config::{CacheSettings, EncryptionKey, RedisSettings};

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
        let url = self.redis_url(p, raw.url.as_deref());
        if raw.ca_file.is_some() && url.as_ref().is_some_and(|u| u.scheme() != "rediss") {
            self.err(format!("{p}.ca_file"), "only applies to rediss:// urls");
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
            url: url?,
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
    /// would show wherever the URL is shown).
    fn redis_url(&mut self, p: &str, raw: Option<&str>) -> Option<url::Url> {
        let path = format!("{p}.url");
        let Some(raw) = raw else {
            self.err(
                path,
                "is required (redis://host:6379/0, or rediss:// for TLS)",
            );
            return None;
        };
        let shown = super::urls::redact_userinfo(raw);
        let problem = match url::Url::parse(raw) {
            Err(e) => Some(format!("{shown:?} is not a valid URL: {e}")),
            Ok(u) if u.scheme() == "redis+sentinel" => Some(format!("{shown:?}: Redis Sentinel is not supported yet; give the primary's redis:// or rediss:// url")),
            Ok(u) if !matches!(u.scheme(), "redis" | "rediss") => Some(format!("{shown:?}: unsupported scheme (use redis:// or rediss://)")),
            Ok(u) if u.host_str().is_none_or(str::is_empty) => Some(format!("{shown:?} has no host")),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => Some("must not contain credentials; use username and password (or password_file)".to_string()),
            Ok(u) => return Some(u),
        };
        if let Some(message) = problem {
            self.err(path, message);
        }
        None
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
                format!(
                    "{}: not 32 bytes in base64 (bearer-proxy keygen writes one)",
                    file.display()
                ),
            );
            return None;
        };
        let digest = sha2::Sha256::digest(bytes);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Some(EncryptionKey { id, bytes })
    }
}
