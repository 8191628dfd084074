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
use crate::oauth::{cache, refresher};
use crate::proxy::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new configuration is invalid; the running one is kept:\n{0}")]
    Invalid(ConfigErrors),
    #[error("reload failed; the running configuration is kept: {0}")]
    Failed(String),
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

/// Settings fixed at start-up (listeners and threads).
#[derive(Debug, Clone, PartialEq)]
pub struct Fixed {
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub threads: usize,
    pub work_stealing: bool,
    pub admin_listen: SocketAddr,
}

pub struct Reloader {
    path: PathBuf,
    current: Arc<ArcSwap<Snapshot>>,
    fixed: Fixed,
    refreshers: OnceLock<Refreshers>,
    /// One reload at a time.
    serial: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(path: PathBuf, current: Arc<ArcSwap<Snapshot>>, fixed: Fixed) -> Self {
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
        let now_fixed = Fixed {
            listen: config.server.listen.clone(),
            tls_listen: config.server.tls_listen.iter().map(|t| t.address).collect(),
            threads: config.server.threads,
            work_stealing: config.server.work_stealing,
            admin_listen: config.admin.listen,
        };
        let mut needs_restart = Vec::new();
        if now_fixed.listen != self.fixed.listen {
            needs_restart.push("server.listen".to_string());
        }
        if now_fixed.tls_listen != self.fixed.tls_listen {
            needs_restart.push("server.tls_listen".to_string());
        }
        if now_fixed.threads != self.fixed.threads {
            needs_restart.push("server.threads".to_string());
        }
        if now_fixed.work_stealing != self.fixed.work_stealing {
            needs_restart.push("server.work_stealing".to_string());
        }
        if now_fixed.admin_listen != self.fixed.admin_listen {
            needs_restart.push("admin.listen".to_string());
        }
        let warnings = config.warnings.clone();
        let wait = config.server.startup_token_wait;
        let old = self.current.load_full();
        let new = Arc::new(Snapshot::rebuild(config, &old).map_err(ReloadError::Failed)?);

        crate::server::resolve_all(&new).await;
        let added: Vec<_> = new
            .cache
            .slots()
            .filter(|s| !old.cache.holds(s))
            .cloned()
            .collect();
        if !cache::warm_up(added.clone(), wait).await {
            tracing::warn!("reload: some new clients have no token yet; their routes answer 503 until it arrives");
        }
        {
            let _enter = refreshers.handle.enter();
            for slot in &added {
                refresher::spawn(slot.clone(), refreshers.shutdown.clone());
            }
        }
        self.current.store(new.clone());
        let mut removed = 0;
        for slot in old.cache.slots().filter(|s| !new.cache.holds(s)) {
            slot.retire();
            removed += 1;
        }
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

    /// Reloads and logs the outcome (for SIGHUP, where nobody waits for an answer).
    pub async fn reload_and_log(&self) {
        if let Err(e) = self.reload().await {
            match &e {
                ReloadError::Invalid(errors) => {
                    for problem in &errors.0 {
                        tracing::error!(problem = %problem, "reload rejected: invalid configuration");
                    }
                }
                ReloadError::Failed(why) => tracing::error!(error = why.as_str(), "reload failed"),
            }
        }
    }
}
