//! Log set-up: `tracing` to stderr as text or JSON. Other crates' logs
//! (pingora, hyper, rustls) are capped at INFO whatever the filter says:
//! their debug output can print request headers, which carry tokens.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::prelude::*;

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
