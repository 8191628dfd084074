//! What every command that starts the proxy shares: reporting a
//! configuration's errors, and running the server with one. Below `cli`
//! and `emulator::commands`, which both start it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, Config};

/// Prints every problem of an invalid file, one per line.
pub(crate) fn report(path: &Path, errors: &config::ConfigErrors) {
    eprintln!(
        "error: {} is invalid ({} problem{}):",
        path.display(),
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    for e in &errors.0 {
        eprintln!("  {e}");
    }
}

/// Runs the proxy until it is stopped.
pub(crate) fn run(config: Config, source: PathBuf) -> ExitCode {
    match crate::server::run(config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
