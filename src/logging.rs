//! Log set-up: `tracing` to stderr as text or JSON. Other crates' logs
//! (pingora, hyper, rustls) are capped at INFO whatever the filter says:
//! their debug output can print request headers, which carry tokens.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing::Level;
use tracing_log::NormalizeEvent;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::prelude::*;

/// Turns pingora's ERROR line for a discarded reusable upstream
/// connection into a count (`upstream_pool`): it is the pool's doing,
/// not the operator's to chase, once per request.
struct PoolDiscards;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PoolDiscards {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let (level, target) = origin(event);
        if level != Level::ERROR || target != crate::upstream_pool::DISCARD_TARGET {
            return true;
        }
        let mut message = MessageIs(crate::upstream_pool::DISCARD_MESSAGE, false);
        event.record(&mut message);
        if message.1 {
            crate::upstream_pool::pool_discard();
        }
        !message.1
    }
}

/// An event's level and target where it was logged. pingora logs through
/// the `log` crate: such an event's own target is "log", the record's is
/// in its fields.
fn origin<'a>(event: &'a tracing::Event<'a>) -> (Level, &'a str) {
    match event.normalized_metadata() {
        Some(meta) => (*meta.level(), meta.target()),
        None => (*event.metadata().level(), event.metadata().target()),
    }
}

/// Whether an event's message is the given one.
struct MessageIs(&'static str, bool);

impl tracing::field::Visit for MessageIs {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.1 = format!("{value:?}") == self.0;
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.1 = value == self.0;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive
/// (`info`, `bearer_proxy=debug`, …); `RUST_LOG` overrides it.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let cap_foreign = FilterFn::new(|meta| {
        meta.target().starts_with("bearer_proxy") || *meta.level() <= Level::INFO
    });
    let registry = tracing_subscriber::registry()
        .with(PoolDiscards)
        .with(filter)
        .with(cap_foreign);
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if result.is_err() {
        // Already initialised (tests, embedding): keep the existing subscriber.
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    use super::*;

    /// Collects the targets of the events that reach it.
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.lock().unwrap().push(origin(event).1.to_string());
        }
    }

    #[tokio::test]
    async fn a_pool_discard_logged_through_log_or_tracing_is_counted_for_its_route_and_not_logged()
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(PoolDiscards)
            .with(Seen(seen.clone()));
        let _guard = tracing::subscriber::set_default(subscriber);
        let route = crate::upstream_pool::RouteConnections::new("pool-test");
        let discarded = || {
            crate::metrics::metrics()
                .upstream_connections
                .with_label_values(&["pool-test", "discarded"])
                .get()
        };
        // pingora's own line comes through the `log` crate, as in the binary.
        let _ = tracing_log::LogTracer::init();
        crate::upstream_pool::scope(async {
            log::error!(target: "pingora_core::connectors", "failed to acquire reusable stream");
            tracing::error!(target: "pingora_core::connectors", "failed to acquire reusable stream");
            log::error!(target: "pingora_core::connectors", "another connector error");
            route.connected(false);
        })
        .await;
        assert_eq!(discarded(), 2);
        let new = crate::metrics::metrics()
            .upstream_connections
            .with_label_values(&["pool-test", "new"])
            .get();
        assert_eq!(new, 1);
        assert_eq!(
            *seen.lock().unwrap(),
            ["pingora_core::connectors"],
            "only the other error is logged"
        );
    }
}
