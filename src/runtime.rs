//! The small tokio runtime that commands outside pingora's own (`token`,
//! `reload`, `emulator`, the demo's backends) run on.

/// A runtime with one worker thread and timers and I/O enabled.
pub fn one_worker() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))
}
