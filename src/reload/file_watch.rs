//! `server.watch_files`: reload when the configuration file or a file it
//! names changes, with nobody sending a signal.
//!
//! Kubernetes replaces a mounted Secret or certificate by swapping a
//! `..data` symlink inside the mount's directory; editors write a new file
//! and rename it over the old one; others write in place. Watching each
//! file's *directory* sees all three. Any event there starts a one-second
//! window (a swap or a multi-file rotation is several events); then the
//! watched files' identities (device, inode, size, modification time,
//! through symlinks) are compared with the last ones seen, and only a real
//! change reloads — a busy log file beside the configuration costs a few
//! `stat` calls a second, never a reload. inotify where the kernel offers
//! it, polling every two seconds where it does not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::{Reloader, Trigger};

/// How long events are gathered before the files are compared.
const DEBOUNCE: Duration = Duration::from_secs(1);
/// The polling fallback's period.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Starts the watch on the current runtime; it ends at shutdown.
pub fn spawn_watcher(reloader: Arc<Reloader>, shutdown: watch::Receiver<bool>) {
    let (events, received) = mpsc::channel(1);
    let watcher = match Directories::new(events) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the configuration's files; reload by SIGHUP or POST /reload");
            return;
        }
    };
    tokio::spawn(run(reloader, watcher, received, shutdown));
}

async fn run(
    reloader: Arc<Reloader>,
    mut watcher: Directories,
    mut events: mpsc::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut files = reloader.files();
    watcher.follow(&files);
    let mut seen = identities(&files);
    loop {
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            _ = shutdown.wait_for(|down| *down) => return,
        }
        tokio::time::sleep(DEBOUNCE).await;
        while events.try_recv().is_ok() {}
        let now = identities(&files);
        if now == seen {
            continue;
        }
        let changed: Vec<String> = now
            .iter()
            .filter(|(path, id)| seen.get(*path) != Some(*id))
            .map(|(path, _)| path.display().to_string())
            .collect();
        tracing::info!(files = ?changed, "configuration files changed: reloading");
        // The outcome is counted and logged by the reloader.
        let _ = reloader.reload(Trigger::Watch).await;
        files = reloader.files();
        watcher.follow(&files);
        seen = identities(&files);
    }
}

/// What identifies a file's content without reading it; `None` when it
/// cannot be read (removed, or mid-swap).
type Identity = Option<(u64, u64, u64, i64, i64)>;

fn identities(files: &[PathBuf]) -> BTreeMap<PathBuf, Identity> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let id = std::fs::metadata(f)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
            (f.clone(), id)
        })
        .collect()
}

/// The directories being watched, by inotify or by polling.
struct Directories {
    watcher: Box<dyn Watcher + Send>,
    watched: BTreeSet<PathBuf>,
}

impl Directories {
    fn new(events: mpsc::Sender<()>) -> notify::Result<Self> {
        let send = move |_: notify::Result<notify::Event>| {
            // Full means a check is already due: the event is not lost.
            let _ = events.try_send(());
        };
        let watcher: Box<dyn Watcher + Send> = match RecommendedWatcher::new(
            send.clone(),
            notify::Config::default(),
        ) {
            Ok(w) => Box::new(w),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; polling the configuration's files every 2 s");
                let config = notify::Config::default().with_poll_interval(POLL_EVERY);
                Box::new(PollWatcher::new(send, config)?)
            }
        };
        Ok(Directories {
            watcher,
            watched: BTreeSet::new(),
        })
    }

    /// Watches the directories of `files` (and only those).
    fn follow(&mut self, files: &[PathBuf]) {
        let wanted: BTreeSet<PathBuf> = files.iter().map(|f| directory_of(f)).collect();
        for gone in self.watched.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        let mut watching = BTreeSet::new();
        for dir in wanted {
            if self.watched.contains(&dir) {
                watching.insert(dir);
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watching.insert(dir);
                }
                // Retried at the next change.
                Err(e) => {
                    tracing::warn!(directory = %dir.display(), error = %e, "cannot watch a configuration directory")
                }
            }
        }
        self.watched = watching;
    }
}

fn directory_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
