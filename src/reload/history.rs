//! What the reloads did: counted by trigger and outcome, and the last
//! refused one kept with its problems for `/status` and the status page,
//! so an operator sees why a rotated file was not taken without reading
//! logs.

use std::sync::Mutex;

use serde::Serialize;

use crate::metrics::metrics;

/// Who asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The configuration file or a file it names changed.
    Watch,
    /// SIGHUP.
    Signal,
    /// `POST /reload` (and `bearer-proxy reload`).
    Admin,
}

impl Trigger {
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
        }
    }
}

/// A reload that kept the running configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    pub at: String,
    pub trigger: Trigger,
    /// What `check` would print, one line each (no secret: problems name
    /// settings and files, never values).
    pub problems: Vec<String>,
}

/// The last refused reload, if any since the last good one.
#[derive(Default)]
pub struct History {
    refused: Mutex<Option<Refused>>,
}

impl History {
    pub fn loaded(&self, trigger: Trigger) {
        count(trigger, "ok");
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn refused(&self, trigger: Trigger, problems: Vec<String>) {
        count(trigger, "invalid");
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(Refused {
            at: crate::clock::rfc3339(crate::clock::unix_now()),
            trigger,
            problems,
        });
    }

    /// The last refused reload since the configuration now running was
    /// loaded.
    pub fn last_refused(&self) -> Option<Refused> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Every trigger and outcome at zero, so `/metrics` shows the series (and
/// alerts can use them) before the first reload.
pub fn register_reload_counts() {
    for trigger in [Trigger::Watch, Trigger::Signal, Trigger::Admin] {
        for outcome in ["ok", "invalid"] {
            let _ = metrics()
                .config_reloads
                .with_label_values(&[trigger.label(), outcome]);
        }
    }
}

fn count(trigger: Trigger, outcome: &str) {
    metrics()
        .config_reloads
        .with_label_values(&[trigger.label(), outcome])
        .inc();
}
