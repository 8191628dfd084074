//! Live reload: re-read the configuration file (and every key, secret and
//! htpasswd file it names), validate it exactly as `check` does, and swap
//! routes, access rules and clients in one step. The one home of reload
//! for its three triggers: a changed file (`watch`), SIGHUP, and
//! `POST /reload` on the admin listener (or `bearer-proxy reload`).
//!
//! Unchanged clients keep their cached tokens; new ones are fetched before
//! the swap (bounded by `startup_token_wait`); in-flight requests finish on
//! the configuration they started with; listeners are untouched, so no
//! connection is dropped.

mod file_watch;
mod history;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::config::{self, ConfigErrors};
use crate::downstream_tls::ServedCertificates;
use crate::oauth::{fetch_missing, refresher};
use crate::proxy::Snapshot;
pub use file_watch::spawn_watcher;
pub use history::{Refused, Trigger};

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
    /// Each TLS listener's client CAs, as a digest: rustls' client
    /// verifier is built once, when the listener starts (its certificate
    /// and key are swapped by a reload: `ServedCertificates`).
    pub tls_client_cas: Vec<[u8; 32]>,
    pub threads: usize,
    pub max_connections: usize,
    pub watch_files: bool,
    pub work_stealing: bool,
    pub fast_path: bool,
    pub admin_listen: SocketAddr,
    /// The cache backend and its Redis settings, described.
    pub cache: String,
    /// The admin token (a digest) and whether `/metrics` is open.
    pub admin: String,
    /// The exporter is built once, at start.
    pub telemetry: Option<config::TelemetrySettings>,
}

impl RestartOnly {
    pub fn of(config: &config::Config) -> Self {
        RestartOnly {
            listen: config.server.listen.clone(),
            tls_listen: config.server.tls_listen.iter().map(|t| t.address).collect(),
            tls_client_cas: config
                .server
                .tls_listen
                .iter()
                .map(client_ca_digest)
                .collect(),
            threads: config.server.threads,
            max_connections: config.server.max_connections,
            watch_files: config.server.watch_files,
            work_stealing: config.server.work_stealing,
            fast_path: config.server.fast_path,
            admin_listen: config.admin.listen,
            cache: describe_cache(&config.cache),
            admin: describe_admin(&config.admin),
            telemetry: config.telemetry.clone(),
        }
    }

    /// The YAML paths of the settings that differ in `new`.
    fn changed_in(&self, new: &RestartOnly) -> Vec<String> {
        [
            ("server.listen", self.listen != new.listen),
            ("server.tls_listen", self.tls_listen != new.tls_listen),
            (
                "server.tls_listen client_ca_file (the client verifier is built when the listener starts)",
                self.tls_client_cas != new.tls_client_cas,
            ),
            ("server.threads", self.threads != new.threads),
            (
                "server.max_connections",
                self.max_connections != new.max_connections,
            ),
            ("server.watch_files", self.watch_files != new.watch_files),
            (
                "server.work_stealing",
                self.work_stealing != new.work_stealing,
            ),
            ("server.fast_path", self.fast_path != new.fast_path),
            ("admin.listen", self.admin_listen != new.admin_listen),
            ("cache", self.cache != new.cache),
            ("admin.token", self.admin != new.admin),
            ("telemetry", self.telemetry != new.telemetry),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| path.to_string())
        .collect()
    }
}

/// A digest of the client CAs a TLS listener checks against (mTLS on or
/// off included).
fn client_ca_digest(listener: &config::TlsListener) -> [u8; 32] {
    use sha2::Digest as _;
    let mut d = sha2::Sha256::new();
    d.update([u8::from(listener.client_cas.is_some())]);
    for ca in listener.client_cas.iter().flatten() {
        d.update(ca.as_ref());
    }
    d.finalize().into()
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
    history: history::History,
    /// The running configuration's files (`Config::files`), for the watch.
    files: Mutex<Vec<PathBuf>>,
    /// What the TLS listeners present; a reload swaps it.
    certificates: Arc<ServedCertificates>,
}

impl Reloader {
    /// `files`: the files of the configuration now running.
    pub fn new(
        path: PathBuf,
        current: Arc<ArcSwap<Snapshot>>,
        fixed: RestartOnly,
        files: Vec<PathBuf>,
        certificates: Arc<ServedCertificates>,
    ) -> Self {
        history::register_reload_counts();
        Reloader {
            path,
            current,
            fixed,
            refreshers: OnceLock::new(),
            serial: tokio::sync::Mutex::new(()),
            history: history::History::default(),
            files: Mutex::new(files),
            certificates,
        }
    }

    /// The files to watch: the running configuration's, and always the
    /// configuration file itself (an invalid edit is fixed there).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !files.contains(&self.path) {
            files.push(self.path.clone());
        }
        files
    }

    /// The last reload that kept the running configuration, since it was
    /// loaded.
    pub fn last_refused(&self) -> Option<Refused> {
        self.history.last_refused()
    }

    /// Reloads; whatever the outcome, counts it by `trigger` and logs it
    /// once. A refused reload is kept for `/status` with its problems.
    pub async fn reload(&self, trigger: Trigger) -> Result<ReloadReport, ReloadError> {
        let result = self.reload_now().await;
        match &result {
            Ok(_) => self.history.loaded(trigger),
            Err(e) => {
                let problems = match e {
                    ReloadError::Invalid(errors) => {
                        errors.0.iter().map(|p| p.to_string()).collect()
                    }
                    other => vec![other.to_string()],
                };
                for problem in &problems {
                    tracing::error!(trigger = trigger.label(), problem = %problem, "reload refused; the running configuration is kept");
                }
                self.history.refused(trigger, problems);
            }
        }
        result
    }

    /// Called once the token runtime runs: new slots' renewal goes there.
    pub fn set_refreshers(&self, handle: Handle, shutdown: watch::Receiver<bool>) {
        let _ = self.refreshers.set(Refreshers { handle, shutdown });
    }

    async fn reload_now(&self) -> Result<ReloadReport, ReloadError> {
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
        let files = config.files.clone();
        let certificates = self
            .certificates
            .prepare(&config.server.tls_listen)
            .map_err(|e| ReloadError::Failed(e.to_string()))?;
        let warnings = config.warnings.clone();
        let wait = config.server.startup_token_wait;
        let old = self.current.load_full();
        let new = Arc::new(Snapshot::rebuild(config, &old)?);
        let added = self.swap_in(&old, new.clone(), wait, refreshers).await;
        *self.files.lock().unwrap_or_else(|p| p.into_inner()) = files;
        self.certificates.apply(certificates);
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
        crate::upstream::resolve_all(new.upstreams()).await;
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
}
