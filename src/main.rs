use std::process::ExitCode;

use clap::Parser;

/// mimalloc over glibc malloc: measured in benches/load/compare.sh (see
/// docs/benchmarks.md); glibc's allocator is a large share of a pingora
/// proxy's CPU profile.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    bearer_proxy::cli::main(bearer_proxy::cli::Cli::parse())
}
