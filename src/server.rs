//! Builds and runs the pingora server for a configuration: the proxy
//! listener(s), the admin listener and the background service that warms
//! the token cache, renews tokens and re-resolves upstream addresses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pingora::services::ServiceReadyNotifier;

use crate::admin::AdminApp;
use crate::config::Config;
use crate::oauth::refresher;
use crate::proxy::{BearerProxy, Snapshot};
use crate::{metrics, tls};

/// How often host-name upstreams are looked up again (cloud endpoints move).
const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// Warms up, then keeps tokens and upstream addresses fresh.
struct Background {
    snapshot: Arc<Snapshot>,
    startup_token_wait: Duration,
}

#[async_trait]
impl BackgroundService for Background {
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let cache = self.snapshot.cache.clone();
        cache.set_runtime(tokio::runtime::Handle::current());
        resolve_all(&self.snapshot).await;
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
        let snapshot = self.snapshot.clone();
        let mut resolver_shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RESOLVE_INTERVAL) => resolve_all(&snapshot).await,
                    _ = resolver_shutdown.changed() => return,
                }
            }
        });
        refresher::run(cache, shutdown).await;
    }
}

async fn resolve_all(snapshot: &Snapshot) {
    for route in snapshot
        .routes
        .iter()
        .filter(|r| r.upstream.needs_resolution())
    {
        if let Err(e) = route.upstream.resolve().await {
            tracing::error!(
                route = route.name.as_str(),
                host = route.upstream.target.host.as_str(),
                error = %e,
                "cannot resolve upstream host"
            );
        }
    }
}

/// Runs the proxy until SIGTERM/SIGINT. Returns once in-flight requests
/// have drained (or `shutdown_grace` has passed).
pub fn run(config: Config) -> Result<(), String> {
    tls::install_crypto_provider();
    metrics::init();
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let settings = config.server.clone();
    let admin_listen = config.admin.listen;
    let snapshot = Arc::new(Snapshot::new(config)?);

    let conf = ServerConf {
        threads: settings.threads,
        daemon: false,
        grace_period_seconds: Some(settings.shutdown_grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None::<Opt>, conf);
    server.bootstrap();

    let background = server.add_service(background_service(
        "token-refresher",
        Background {
            snapshot: snapshot.clone(),
            startup_token_wait: settings.startup_token_wait,
        },
    ));

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        BearerProxy {
            snapshot: snapshot.clone(),
        },
        "bearer-proxy",
    );
    for addr in &settings.listen {
        proxy.add_tcp(&addr.to_string());
    }
    let proxy = server.add_service(proxy);
    proxy.add_dependency(&background);

    let mut admin = Service::new(
        "admin".to_string(),
        HttpServer::new_app(AdminApp {
            cache: snapshot.cache.clone(),
        }),
    );
    admin.add_tcp(&admin_listen.to_string());
    server.add_service(admin);

    spawn_drain_watcher(&server, settings.shutdown_grace);
    tracing::info!(
        listen = ?settings.listen,
        admin = %admin_listen,
        routes = snapshot.routes.len(),
        "bearer-proxy starting"
    );
    server.run(RunArgs::default());
    tracing::info!("bearer-proxy stopped");
    Ok(())
}

/// pingora waits out the whole grace period on SIGTERM; this ends the
/// process as soon as no request is in flight, so "drain for up to
/// `shutdown_grace`" holds in both directions.
fn spawn_drain_watcher(server: &Server, grace: Duration) {
    let mut phases = server.watch_execution_phase();
    std::thread::spawn(move || loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => {
                let deadline = Instant::now() + grace;
                while metrics::IN_FLIGHT.get() > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                tracing::info!(in_flight = metrics::IN_FLIGHT.get(), "drained; exiting");
                std::process::exit(0);
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    });
}
