//! Builds and runs the pingora server for a configuration: the proxy
//! listener(s), the admin listener and the background service that warms
//! the token cache, renews tokens and re-resolves upstream addresses.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::HttpProxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pingora::services::ServiceReadyNotifier;

use crate::admin::AdminApp;
use crate::config::{Config, ServerSettings};
use crate::connections::{ConnectionGate, GatedApp};
use crate::oauth::refresher;
use crate::proxy::{BearerProxy, Snapshot};
use crate::reload::{Reloader, RestartOnly, Trigger};
use crate::upstream;
use crate::{metrics, tls};

/// How often host-name upstreams are looked up again (cloud endpoints move).
const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// Warms up, then keeps tokens and upstream addresses fresh, and reloads
/// on SIGHUP and (`server.watch_files`) when a configuration file changes.
struct Background {
    current: Arc<ArcSwap<Snapshot>>,
    reloader: Arc<Reloader>,
    startup_token_wait: Duration,
    watch_files: bool,
}

#[async_trait]
impl BackgroundService for Background {
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let snapshot = self.current.load_full();
        let cache = snapshot.cache.clone();
        cache.set_runtime(tokio::runtime::Handle::current());
        self.reloader
            .set_refreshers(tokio::runtime::Handle::current(), shutdown.clone());
        let reloader = self.reloader.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        // Counted and logged by the reloader.
                        let _ = reloader.reload(Trigger::Signal).await;
                    }
                });
            }
            Err(e) => tracing::error!(
                error = %e,
                "cannot listen for SIGHUP; reload through the admin listener only"
            ),
        }
        if self.watch_files {
            crate::reload::spawn_watcher(self.reloader.clone(), shutdown.clone());
        }
        upstream::resolve_all(snapshot.upstreams()).await;
        spawn_limit_heartbeat(self.current.clone(), shutdown.clone());
        spawn_window_sampler(shutdown.clone());
        let started = Instant::now();
        if cache.warm_up(self.startup_token_wait).await {
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "all tokens obtained"
            );
        } else {
            tracing::warn!(
                waited_s = self.startup_token_wait.as_secs_f64(),
                "serving without a token for some clients; their routes answer 503 until it arrives"
            );
        }
        // The proxy listener depends on this: it opens now.
        ready.notify_ready();
        for slot in cache.slots() {
            refresher::spawn(slot.clone(), shutdown.clone());
        }
        for family in cache.caller_families() {
            crate::oauth::spawn_sweeper(family, shutdown.clone());
        }
        let current = self.current.clone();
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RESOLVE_INTERVAL) => {
                    upstream::resolve_all(current.load_full().upstreams()).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Announces this replica to the fleet for each shared limit, and renews
/// the leases of the places it holds, every `limits::HEARTBEAT` (the
/// current configuration's limits; nothing with the memory backend).
fn spawn_limit_heartbeat(current: Arc<ArcSwap<Snapshot>>, mut shutdown: ShutdownWatch) {
    tokio::spawn(async move {
        loop {
            if let Some((fleet, names)) = current.load().limit_set.fleet() {
                fleet.heartbeat(&names).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(crate::limits::HEARTBEAT) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Reads the requests counter for the status page's window every
/// `admin::window::STEP`, from start (so the window covers since then).
fn spawn_window_sampler(mut shutdown: ShutdownWatch) {
    tokio::spawn(async move {
        loop {
            crate::admin::window::sample();
            tokio::select! {
                _ = tokio::time::sleep(crate::admin::window::STEP) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Why the proxy could not start with a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Snapshot(#[from] crate::proxy::SnapshotError),
    #[error(transparent)]
    TlsListener(#[from] crate::downstream_tls::ListenerError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
}

/// Runs the proxy until SIGTERM/SIGINT. Returns once in-flight requests
/// have drained (or `shutdown_grace` has passed). `source` is the file a
/// reload re-reads.
pub fn run(config: Config, source: PathBuf) -> Result<(), StartError> {
    forbid_core_dumps();
    tls::install_crypto_provider();
    // Registers every family now, so `/metrics` lists them from the start.
    let _ = metrics::metrics();
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Kept to the end: dropping it flushes the spans still queued (the
    // drain watcher does, before the process exits).
    let exporting = config
        .telemetry
        .as_ref()
        .map(crate::telemetry::start)
        .transpose()?;
    let settings = config.server.clone();
    let admin_settings = config.admin.clone();
    let admin_listen = admin_settings.listen;
    let restart_only = RestartOnly::of(&config);
    let files = config.files.clone();
    let certificates = Arc::new(crate::downstream_tls::ServedCertificates::load(
        &config.server.tls_listen,
    )?);
    let snapshot = Arc::new(Snapshot::new(config)?);
    let routes = snapshot.routes.len();
    let current = Arc::new(ArcSwap::new(snapshot));
    let reloader = Arc::new(Reloader::new(
        source,
        current.clone(),
        restart_only,
        files,
        certificates.clone(),
    ));
    let mut server = pingora_server(&settings);
    let background = server.add_service(background_service(
        "token-refresher",
        Background {
            current: current.clone(),
            reloader: reloader.clone(),
            startup_token_wait: settings.startup_token_wait,
            watch_files: settings.watch_files,
        },
    ));
    let listeners: Vec<_> = (settings.listen.iter().copied())
        .chain(settings.tls_listen.iter().map(|t| t.address))
        .collect();
    let gate = ConnectionGate::new(settings.max_connections, &listeners);
    let proxy = proxy_service(
        &server,
        &settings,
        current.clone(),
        gate.clone(),
        &certificates,
    )?;
    let proxy = server.add_service(proxy);
    proxy.add_dependency(&background);
    let mut admin = Service::new(
        "admin".to_string(),
        HttpServer::new_app(AdminApp::new(current, reloader, &admin_settings, gate)),
    );
    admin.add_tcp(&admin_listen.to_string());
    server.add_service(admin);

    spawn_drain_watcher(&server, settings.shutdown_grace, exporting);
    tracing::info!(
        listen = ?settings.listen,
        tls_listen = ?settings.tls_listen.iter().map(|t| t.address).collect::<Vec<_>>(),
        admin = %admin_listen,
        routes,
        "bearer-proxy starting"
    );
    server.run(RunArgs::default());
    tracing::info!("bearer-proxy stopped");
    Ok(())
}

/// pingora's server with our own settings (never its `-c` file).
fn pingora_server(settings: &ServerSettings) -> Server {
    let conf = ServerConf {
        threads: settings.threads,
        work_stealing: settings.work_stealing,
        daemon: false,
        grace_period_seconds: Some(settings.shutdown_grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        // pingora's own timers (every upstream read and write, the client
        // time-outs) sit in per-thread trees that one clock thread locks
        // and walks every 10 ms, for the life of the process. Zero sends
        // every time-out of a second or more (all the defaults) to tokio's
        // per-runtime timer instead (docs/benchmarks.md).
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None::<Opt>, conf);
    server.bootstrap();
    server
}

/// The proxy service on every plain and TLS listener.
/// The proxy app behind the connection ceiling, in a service of our own.
fn proxy_service(
    server: &Server,
    settings: &ServerSettings,
    current: Arc<ArcSwap<Snapshot>>,
    gate: Arc<ConnectionGate>,
    certificates: &crate::downstream_tls::ServedCertificates,
) -> Result<Service<GatedApp<HttpProxy<BearerProxy>>>, StartError> {
    let idle = current.clone();
    let fast = settings
        .fast_path
        .then(|| crate::fastpath::serve::FastPath {
            current: current.clone(),
        });
    let mut app = pingora::proxy::http_proxy(&server.configuration, BearerProxy { current });
    // pingora refuses CONNECT itself, with an empty 405; let it reach
    // request_filter, which refuses it (never forwards it) with the
    // proxy's JSON answer and an `Allow` header.
    let mut options = HttpServerOptions::default();
    options.allow_connect_method_proxying = true;
    app.server_options = Some(options);
    let gated = GatedApp {
        inner: Arc::new(app),
        gate,
        fast,
        timing: Box::new(move || {
            let limits = idle.load().limits;
            crate::connections::Timing {
                idle: limits.client_idle_timeout,
                head_read: limits.client_read_timeout,
                // The request line and the blank line on top of the
                // headers the proxy counts: past that the hooks refuse it.
                max_head: limits.max_request_header_bytes.saturating_add(16 * 1024),
            }
        }),
    };
    let filter = Arc::new(crate::connections::GateFilter(gated.gate.clone()));
    let mut proxy = Service::new("bearer-proxy".to_string(), gated);
    proxy.set_connection_filter(filter);
    for addr in &settings.listen {
        proxy.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(client_buffers()));
    }
    for listener in &settings.tls_listen {
        proxy.add_listener(
            ListenerConfig::tcp(listener.address.to_string())
                .tls(crate::downstream_tls::settings(listener, certificates)?)
                .l4_buffer(client_buffers()),
        );
    }
    Ok(proxy)
}

/// A client connection's socket buffers: no read buffer. pingora's
/// default is 64 KiB, allocated for every connection, idle or not (10,000
/// idle keep-alive clients held 1 GiB), and it is a second copy: pingora
/// reads request heads and bodies into buffers of its own, and rustls
/// reads TLS records into its own. The 1,460-byte write buffer stays: it
/// lets a head and a small body leave in one write.
fn client_buffers() -> L4BufferSettings {
    L4BufferSettings::default().read(0)
}

/// The process holds client secrets, private keys and tokens in memory: no
/// core dumps, and other processes of the same user cannot ptrace it.
fn forbid_core_dumps() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_DUMPABLE takes plain integer arguments
        // and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!(
                "could not mark the process non-dumpable; core dumps may contain secrets"
            );
        }
    }
}

/// pingora waits out the whole grace period on SIGTERM; this ends the
/// process as soon as no request is in flight, so "drain for up to
/// `shutdown_grace`" holds in both directions.
/// How long pingora may take to stop its runtimes once asked (its own
/// graceful time-out is 5 s) before the process exits regardless.
const RUNTIME_EXIT_BOUND: Duration = Duration::from_secs(8);

fn spawn_drain_watcher(
    server: &Server,
    grace: Duration,
    exporting: Option<crate::telemetry::Exporting>,
) {
    let mut phases = server.watch_execution_phase();
    std::thread::spawn(move || loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => {
                let deadline = Instant::now() + grace;
                while metrics::metrics().in_flight.get() > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                tracing::info!(
                    in_flight = metrics::metrics().in_flight.get(),
                    "drained; exiting"
                );
                // The last spans go out (for a bounded time) before exit.
                drop(exporting);
                std::process::exit(0);
            }
            Ok(ExecutionPhase::ShutdownRuntimes) => {
                // A quick shutdown (SIGINT) skips the grace period. pingora
                // then joins each service runtime; a listener's accept loop
                // that keeps failing with "runtime is being shutdown" never
                // yields, so the join can hang with a core spinning (seen
                // once under load). The process exits anyway, bounded.
                std::thread::sleep(RUNTIME_EXIT_BOUND);
                tracing::warn!("runtimes did not stop in time; exiting");
                std::process::exit(0);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_to_one_host_share_one_lookup() {
        use crate::config::raw::{RawConfig, RawRoute};
        let mut raw = RawConfig::example();
        for (name, upstream) in [
            ("a", "http://localhost:18001"),
            ("b", "http://localhost:18001"),
            ("c", "http://localhost:18002"),
            ("d", "http://127.0.0.1:18003"),
        ] {
            raw = raw.with_route(RawRoute::open(name, &format!("/{name}/"), upstream, "c"));
        }
        let yaml = raw.to_yaml();
        let config = crate::config::load_str(&yaml, std::path::Path::new("."), &|_| None).unwrap();
        let snapshot = Snapshot::new(config).unwrap();
        assert_eq!(
            upstream::resolve_all(snapshot.upstreams()).await,
            2,
            "one per host and port"
        );
        let addr = |i: usize| {
            let peer = snapshot.routes[i]
                .upstream
                .peer
                .load_full()
                .expect("resolved");
            peer._address.as_inet().copied().unwrap()
        };
        assert_eq!(addr(0), "127.0.0.1:18001".parse().unwrap());
        assert_eq!(addr(1), "127.0.0.1:18001".parse().unwrap());
        assert_eq!(addr(2), "127.0.0.1:18002".parse().unwrap());
        assert_eq!(addr(3), "127.0.0.1:18003".parse().unwrap());
    }
}
