//! `cache:` — the shared token cache's settings and key files: every
//! refusal with its YAML path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tests::{assert_errors, load, with};
use crate::config::raw::RawConfig;

/// A temp dir with a good and a too short cache key file.
fn cache_keys() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let good_key = dir.path().join("good.key");
    std::fs::write(&good_key, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
    let short_key = dir.path().join("short.key");
    std::fs::write(&short_key, "c2hvcnQ=\n").unwrap();
    (dir, good_key, short_key)
}

/// `good()` on the redis backend with `key`, changed by `change`.
fn redis_cache(key: &Path, change: &dyn Fn(&mut crate::config::raw::RawRedis)) -> RawConfig {
    use crate::config::raw::{CacheBackend, RawCache, RawRedis};
    let mut r = RawRedis {
        url: Some("redis://127.0.0.1:6379/0".into()),
        encryption_key_file: Some(key.to_path_buf()),
        ..RawRedis::default()
    };
    change(&mut r);
    with(|raw| {
        raw.cache = RawCache {
            backend: Some(CacheBackend::Redis),
            redis: Some(r),
        }
    })
}

#[test]
fn cache_errors() {
    use crate::config::raw::CacheBackend;
    let (_dir, good_key, _) = cache_keys();
    let redis = |change: &dyn Fn(&mut crate::config::raw::RawRedis)| redis_cache(&good_key, change);
    let config = load(&redis(&|_| {}).to_yaml(), true).expect("a valid redis cache");
    assert!(matches!(
        config.cache,
        crate::config::CacheSettings::Redis(_)
    ));
    assert_errors(vec![
        (
            "no redis section",
            with(|raw| raw.cache.backend = Some(CacheBackend::Redis)),
            "cache.redis: is required with backend redis",
        ),
        (
            "no url",
            redis(&|r| r.url = None),
            "cache.redis.url: is required",
        ),
        (
            "http url",
            redis(&|r| r.url = Some("http://127.0.0.1:6379".into())),
            "cache.redis.url: unsupported scheme (use redis://, rediss:// or redis+sentinel://)",
        ),
        (
            "sentinel without a master name",
            redis(&|r| r.url = Some("redis+sentinel://127.0.0.1:26379".into())),
            "name the primary: redis+sentinel://host:26379/<master name>",
        ),
        (
            "credentials in url",
            redis(&|r| r.url = Some("redis://user:hunter2@127.0.0.1:6379".into())),
            "cache.redis.url: must not contain credentials",
        ),
        (
            "cluster",
            redis(&|r| r.cluster_nodes = vec!["redis://127.0.0.1:7000".into()]),
            "cache.redis.cluster_nodes: Redis Cluster is not supported yet",
        ),
        (
            "ca for plain redis",
            redis(&|r| r.ca_file = Some("client-cert.pem".into())),
            "cache.redis.ca_file: only applies to rediss:// urls",
        ),
        (
            "zero lock ttl",
            redis(&|r| r.lock_ttl = Some(Duration::ZERO)),
            "cache.redis.lock_ttl: must be greater than zero",
        ),
        (
            "password twice",
            redis(&|r| {
                r.password = Some("p".into());
                r.password_file = Some("p".into());
            }),
            "cache.redis.password: set either password or password_file, not both",
        ),
    ]);
}

#[test]
fn cache_key_errors_and_warnings() {
    use crate::config::raw::RawRedis;
    let (_dir, good_key, short_key) = cache_keys();
    let redis = |change: &dyn Fn(&mut RawRedis)| redis_cache(&good_key, change);
    assert_errors(vec![
        (
            "no key",
            redis(&|r| r.encryption_key_file = None),
            "cache.redis.encryption_key_file: is required",
        ),
        (
            "short key",
            redis(&|r| r.encryption_key_file = Some(short_key.clone())),
            "the file it names does not hold 32 bytes in base64",
        ),
        (
            "bad previous key",
            redis(&|r| r.previous_encryption_key_files = vec![short_key.clone()]),
            "cache.redis.previous_encryption_key_files[0]:",
        ),
    ]);
    let errors = load(
        &redis(&|r| r.url = Some("redis://user:hunter2@h".into())).to_yaml(),
        true,
    )
    .unwrap_err();
    assert!(!errors.contains("hunter2"), "{errors}");
    let memory = with(|raw| {
        raw.cache.redis = Some(RawRedis {
            url: Some("redis://127.0.0.1:6379".into()),
            ..RawRedis::default()
        })
    });
    let warnings = load(&memory.to_yaml(), true).unwrap().warnings;
    assert_eq!(warnings, ["cache.redis: not used with backend memory"]);
}
