//! Live reload: re-read the configuration file (and every key, secret and
//! htpasswd file it names), validate it exactly as `check` does, and swap
//! routes, access rules and clients in one step. Triggered by SIGHUP, by
//! `POST /reload` on the admin listener, or by `bearer-proxy reload`.
//!
//! Unchanged clients keep their cached tokens; new ones are fetched before
//! the swap (bounded by `startup_token_wait`); in-flight requests finish on
//! the configuration they started with; listeners are untouched, so no
//! connection is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::config::{self, ConfigErrors};
use crate::oauth::{fetch_missing, refresher};
use crate::proxy::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new configuration is invalid; the running one is kept:\n{0}")]
    Invalid(ConfigErrors),
    #[error("reload failed; the running configuration is kept: {0}")]
    Failed(String),
    #[error("reload failed; the running configuration is kept: {0}")]
    Snapshot(#[from] crate::proxy::SnapshotError),
}

#[derive(Debug, Serialize)]
pub struct ReloadReport {
    pub routes: usize,
    pub token_slots: usize,
    /// Slots carried over with their tokens.
    pub kept: usize,
    /// Slots of new or changed clients.
    pub added: usize,
    pub removed: usize,
    pub warnings: Vec<String>,
    /// Settings that changed but only apply after a restart.
    pub needs_restart: Vec<String>,
}

/// Where renewal tasks of new slots run; set by the background service.
struct Refreshers {
    handle: Handle,
    shutdown: watch::Receiver<bool>,
}

/// Settings that only a restart changes (listeners and threads).
#[derive(Debug, Clone, PartialEq)]
pub struct RestartOnly {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub threads: usize,
    pub max_connections: usize,
    pub work_stealing: bool,
    pub admin_listen: SocketAddr,
    /// The cache backend and its Redis settings, described.
    pub cache: String,
    /// The admin token (a digest) and whether `/metrics` is open.
    pub admin: String,
}

impl RestartOnly {
    pub fn of(config: &config::Config) -> Self {
        RestartOnly {
            listen: config.server.listen.clone(),
            tls_listen: config.server.tls_listen.iter().map(|t| t.address).collect(),
            threads: config.server.threads,
            max_connections: config.server.max_connections,
            work_stealing: config.server.work_stealing,
            admin_listen: config.admin.listen,
            cache: describe_cache(&config.cache),
            admin: describe_admin(&config.admin),
        }
    }

    /// The YAML paths of the settings that differ in `new`.
    fn changed_in(&self, new: &RestartOnly) -> Vec<String> {
        [
            ("server.listen", self.listen != new.listen),
            ("server.tls_listen", self.tls_listen != new.tls_listen),
            ("server.threads", self.threads != new.threads),
            (
                "server.max_connections",
                self.max_connections != new.max_connections,
            ),
            (
                "server.work_stealing",
                self.work_stealing != new.work_stealing,
            ),
            ("admin.listen", self.admin_listen != new.admin_listen),
            ("cache", self.cache != new.cache),
            ("admin.token", self.admin != new.admin),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| path.to_string())
        .collect()
    }
}

/// Everything of the cache settings that a running fleet cannot swap.
fn describe_cache(cache: &config::CacheSettings) -> String {
    use sha2::Digest as _;
    match cache {
        config::CacheSettings::Memory => "memory".into(),
        // The keys are not here: a reload swaps them (key rotation). The
        // password only as a digest: this string is compared, and could
        // be shown.
        config::CacheSettings::Redis(r) => format!(
            "redis {} {:?} {} {:?} {:?} {:?} {:?}",
            r.target,
            r.username,
            r.key_prefix,
            r.lock_ttl,
            r.operation_timeout,
            r.ca_pem.as_ref().map(Vec::len),
            r.password
                .as_ref()
                .map(|p| sha2::Sha256::digest(p.expose().as_bytes())),
        ),
    }
}

fn describe_admin(admin: &config::AdminSettings) -> String {
    use sha2::Digest as _;
    let token = admin
        .token
        .as_ref()
        .map(|t| sha2::Sha256::digest(t.expose().as_bytes()));
    format!("{token:?} {}", admin.metrics_public)
}

pub struct Reloader {
    path: PathBuf,
    current: Arc<ArcSwap<Snapshot>>,
    fixed: RestartOnly,
    refreshers: OnceLock<Refreshers>,
    /// One reload at a time.
    serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(path: PathBuf, current: Arc<ArcSwap<Snapshot>>, fixed: RestartOnly) -> Self {
        Reloader {
            path,
            current,
            fixed,
            refreshers: OnceLock::new(),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Called once the token runtime runs: new slots' renewal goes there.
    pub fn set_refreshers(&self, handle: Handle, shutdown: watch::Receiver<bool>) {
        let _ = self.refreshers.set(Refreshers { handle, shutdown });
    }

    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.serial.lock().await;
        let refreshers = self
            .refreshers
            .get()
            .ok_or_else(|| ReloadError::Failed("still starting".into()))?;
        let path = self.path.clone();
        let config = tokio::task::spawn_blocking(move || config::load_file(&path))
            .await
            .map_err(|e| ReloadError::Failed(e.to_string()))?
            .map_err(ReloadError::Invalid)?;
        let needs_restart = self.fixed.changed_in(&RestartOnly::of(&config));
        let warnings = config.warnings.clone();
        let wait = config.server.startup_token_wait;
        let old = self.current.load_full();
        let new = Arc::new(Snapshot::rebuild(config, &old)?);
        let added = self.swap_in(&old, new.clone(), wait, refreshers).await;
        let removed = old
            .cache
            .slots()
            .filter(|s| !new.cache.holds(s))
            .inspect(|slot| slot.retire())
            .count();
        let report = ReloadReport {
            routes: new.routes.len(),
            token_slots: new.cache.slots().count(),
            kept: new.cache.slots().count() - added.len(),
            added: added.len(),
            removed,
            warnings,
            needs_restart,
        };
        for w in &report.warnings {
            tracing::warn!("{w}");
        }
        if !report.needs_restart.is_empty() {
            tracing::warn!(settings = ?report.needs_restart, "changed settings apply only after a restart");
        }
        tracing::info!(
            routes = report.routes,
            kept = report.kept,
            added = report.added,
            removed = report.removed,
            "configuration reloaded"
        );
        Ok(report)
    }

    /// Resolves the new snapshot's upstreams, fetches the tokens of its new
    /// slots and starts their renewal, then makes it current. Returns the
    /// new slots.
    async fn swap_in(
        &self,
        old: &Snapshot,
        new: Arc<Snapshot>,
        wait: std::time::Duration,
        refreshers: &Refreshers,
    ) -> Vec<Arc<crate::oauth::TokenSlot>> {
        crate::server::resolve_all(&new).await;
        let added: Vec<_> = new
            .cache
            .slots()
            .filter(|s| !old.cache.holds(s))
            .cloned()
            .collect();
        if !fetch_missing(added.clone(), wait).await {
            tracing::warn!("reload: some new clients have no token yet; their routes answer 503 until it arrives");
        }
        {
            let _enter = refreshers.handle.enter();
            for slot in &added {
                refresher::spawn(slot.clone(), refreshers.shutdown.clone());
            }
            // A kept family's sweep goes on; a new one starts its own.
            for family in new.cache.caller_families() {
                if !old.cache.holds_family(family) {
                    crate::oauth::spawn_sweeper(family, refreshers.shutdown.clone());
                }
            }
        }
        self.current.store(new);
        added
    }

    /// Reloads and logs the outcome (for SIGHUP, where nobody waits for an answer).
    pub async fn reload_and_log(&self) {
        if let Err(e) = self.reload().await {
            match &e {
                ReloadError::Invalid(errors) => {
                    for problem in &errors.0 {
                        tracing::error!(problem = %problem, "reload rejected: invalid configuration");
                    }
                }
                other => tracing::error!(error = %other, "reload failed"),
            }
        }
    }
}
