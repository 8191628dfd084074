//! The small tokio runtime that commands outside pingora's own (`token`,
//! `reload`, `emulator`, the demo's backends) run on.

/// A runtime with one worker thread and timers and I/O enabled.
pub fn one_worker() -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(RuntimeError)
}

/// [`one_worker`] for a command: on failure the error is printed and the
/// command's exit status returned.
pub fn for_command() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    one_worker().map_err(|e| {
        eprintln!("error: {e}");
        std::process::ExitCode::FAILURE
    })
}

/// The operating system refused the runtime's threads or I/O driver.
#[derive(Debug, thiserror::Error)]
#[error("cannot start runtime: {0}")]
pub struct RuntimeError(#[source] std::io::Error);
