//! Traffic limits in front of Oracle Integration (`limits:`): concurrency
//! ceilings with a FIFO queue (`places`), rate limits (`rate`, GCRA) and
//! message quotas (`quota`), each per `all`, `caller` or `client_ip`
//! (`partition`), shared by a fleet through Redis (`fleet`). A
//! [`LimitSet`] is built per configuration, keeping the state of limits
//! whose settings did not change; a route holds its [`RouteLimits`].
//!
//! A request passes the rate and message limits first (a refusal there
//! costs no queue place), then waits for its places; what it holds is an
//! [`Admission`], whose places are given back when it is dropped.

mod admit;
mod fleet;
mod headers;
mod partition;
mod places;
mod quota;
mod rate;
mod status;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use http::HeaderValue;
use prometheus::{Histogram, IntCounter, IntGauge};

use crate::config::{defaults, LimitConfig, LimitKind};
use crate::metrics::metrics;
use crate::oauth::SharedCache;
pub use fleet::{Fleet, HEARTBEAT};
pub use partition::{PartitionKey, Partitioner, Who};
use places::{PartitionPlaces, Place};

use quota::Window;
use rate::Gcra;
pub use status::LimitStatus;

/// One limit's state and metric handles, shared by every route naming it.
pub struct Limiter {
    pub config: Arc<LimitConfig>,
    state: Mutex<State>,
    counts: Counts,
}

enum State {
    Rate(partition::Partitions<u64>),
    Messages(partition::Partitions<Window>),
    Places(partition::Partitions<PartitionPlaces>),
}

/// `{limit}` handles, resolved once.
struct Counts {
    rejected: IntCounter,
    in_flight: IntGauge,
    queued: IntGauge,
    queue_wait: Histogram,
    messages: IntCounter,
    partitions: IntGauge,
}

impl Counts {
    fn new(limit: &LimitConfig) -> Self {
        let m = metrics();
        let name = limit.name.as_str();
        Counts {
            rejected: m
                .limit_rejections
                .with_label_values(&[name, limit.kind.label()]),
            in_flight: m.limit_in_flight.with_label_values(&[name]),
            queued: m.limit_queued.with_label_values(&[name]),
            queue_wait: m.limit_queue_wait.with_label_values(&[name]),
            messages: m.limit_messages.with_label_values(&[name]),
            partitions: m.limit_partitions.with_label_values(&[name]),
        }
    }
}

/// Microseconds on this process's monotonic clock (local GCRA).
fn now_us() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    EPOCH.elapsed().as_micros() as u64
}

impl Limiter {
    fn new(config: Arc<LimitConfig>) -> Self {
        let max = defaults::LIMIT_PARTITIONS_MAX;
        let state = match config.kind {
            LimitKind::Rate { .. } => State::Rate(partition::Partitions::new(max)),
            LimitKind::Messages { .. } => State::Messages(partition::Partitions::new(max)),
            LimitKind::Concurrency { .. } => State::Places(partition::Partitions::new(max)),
        };
        Limiter {
            counts: Counts::new(&config),
            config,
            state: Mutex::new(state),
        }
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    fn refused(&self) {
        self.counts.rejected.inc();
    }
}

/// The limits of one configuration, by name; the fleet when on Redis.
pub struct LimitSet {
    by_name: HashMap<String, Arc<Limiter>>,
    partitioner: Partitioner,
    fleet: Option<Arc<Fleet>>,
}

impl LimitSet {
    /// Limits for `configs`, keeping the state of those unchanged since
    /// `previous` (and its fleet, on the same Redis).
    pub fn new(
        configs: &[Arc<LimitConfig>],
        previous: Option<&LimitSet>,
        shared: Option<&Arc<SharedCache>>,
    ) -> Self {
        let mut by_name = HashMap::new();
        for config in configs {
            let kept = previous
                .and_then(|p| p.by_name.get(&config.name))
                .filter(|l| l.config == *config)
                .cloned();
            let limiter = kept.unwrap_or_else(|| Arc::new(Limiter::new(config.clone())));
            by_name.insert(config.name.clone(), limiter);
        }
        let fleet = shared.map(|shared| {
            previous
                .and_then(|p| p.fleet.clone())
                .unwrap_or_else(|| Fleet::new(shared.clone()))
        });
        let partitioner = match shared {
            Some(shared) => Partitioner::new(&shared.caller_hash_key()),
            None => previous.map_or_else(Partitioner::random, |p| p.partitioner.clone()),
        };
        LimitSet {
            by_name,
            partitioner,
            fleet,
        }
    }

    /// A route's limits, in the order it names them.
    pub fn for_route(&self, names: &[Arc<LimitConfig>]) -> RouteLimits {
        let limits: Vec<Arc<Limiter>> = names
            .iter()
            .filter_map(|c| self.by_name.get(&c.name).cloned())
            .collect();
        let configs: Vec<&LimitConfig> = limits.iter().map(|l| &*l.config).collect();
        RouteLimits {
            policy: headers::policy(&configs),
            limits,
            partitioner: self.partitioner.clone(),
            fleet: self.fleet.clone(),
        }
    }

    /// The fleet (redis backend) and the names it announces itself for.
    pub fn fleet(&self) -> Option<(Arc<Fleet>, Vec<String>)> {
        let names = self.by_name.keys().cloned().collect();
        self.fleet.clone().map(|f| (f, names))
    }

    /// What `/status` shows, by name.
    pub fn status(&self) -> Vec<LimitStatus> {
        let mut out: Vec<LimitStatus> = self
            .by_name
            .values()
            .map(|l| status::of(l, self.fleet.as_deref()))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// A route's limits, ready for its requests.
pub struct RouteLimits {
    limits: Vec<Arc<Limiter>>,
    partitioner: Partitioner,
    fleet: Option<Arc<Fleet>>,
    /// `RateLimit-Policy`, built once.
    policy: Option<HeaderValue>,
}

/// What the limits know of a request.
pub struct LimitRequest<'a> {
    pub who: Who<'a>,
    /// The body's declared length; `None`: chunked, counted as it ends.
    pub body_len: Option<u64>,
}

/// Why a limit refused a request.
#[derive(Debug)]
pub struct LimitRefusal {
    pub limit: String,
    pub reason: Reason,
    pub retry_after_secs: u64,
    pub policy: Option<HeaderValue>,
    pub state: Option<HeaderValue>,
}

/// What an admitted request holds: its places (given back on drop), and
/// the message limits still to count the rest of a chunked body.
#[derive(Default)]
pub struct Admission {
    places: Vec<Place>,
    chunked: Vec<(Arc<Limiter>, PartitionKey)>,
    body_bytes: u64,
    fleet: Option<Arc<Fleet>>,
    pub policy: Option<HeaderValue>,
    pub state: Option<HeaderValue>,
}

/// Messages counted so far for one limit, to give back if a later step refuses.
struct Counted {
    limiter: Arc<Limiter>,
    key: PartitionKey,
    messages: u64,
}

impl RouteLimits {
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Rate and message limits, then places (waiting in the queue). `gone`
    /// resolves if the client leaves while the request waits.
    pub async fn admit(
        &self,
        request: &LimitRequest<'_>,
        gone: impl Future<Output = ()>,
    ) -> Result<Admission, LimitRefusal> {
        let mut items = Vec::new();
        let mut counted = Vec::new();
        let mut admission = Admission {
            fleet: self.fleet.clone(),
            policy: self.policy.clone(),
            ..Default::default()
        };
        for limiter in &self.limits {
            if let LimitKind::Concurrency { .. } = limiter.config.kind {
                continue; // its key is made when its place is asked for
            }
            let key = self.partitioner.key(limiter.config.per, &request.who);
            let verdict = match limiter.config.kind {
                LimitKind::Rate { .. } => self.rate(limiter, &key, &mut items).await,
                LimitKind::Messages { .. } => {
                    let verdict = self.messages(limiter, &key, request, &mut items).await;
                    if let Ok(messages) = verdict {
                        counted.push(Counted {
                            limiter: limiter.clone(),
                            key,
                            messages,
                        });
                        if request.body_len.is_none() {
                            admission.chunked.push((limiter.clone(), key));
                        }
                    }
                    verdict.map(|_| ())
                }
                LimitKind::Concurrency { .. } => continue,
            };
            if let Err(refusal) = verdict {
                self.give_back(counted).await;
                return Err(self.refusal(limiter, refusal, &items));
            }
        }
        admission.state = headers::state(&items);
        tokio::pin!(gone);
        if let Err(limiter) = self.places(request, &mut admission, gone.as_mut()).await {
            self.give_back(counted).await;
            let refusal = limiter.map(|l| self.refusal(&l, Refused::BUSY, &items));
            return Err(refusal.unwrap_or_else(|| gone_refusal(&self.policy)));
        }
        Ok(admission)
    }

    fn refusal(&self, limiter: &Limiter, refused: Refused, items: &[String]) -> LimitRefusal {
        limiter.refused();
        LimitRefusal {
            limit: limiter.name().to_string(),
            reason: Reason::of(&limiter.config.kind),
            retry_after_secs: refused.retry_after_secs,
            policy: self.policy.clone(),
            state: headers::state(items),
        }
    }
}

/// A limit's refusal before it is rendered.
struct Refused {
    retry_after_secs: u64,
}

impl Refused {
    /// No place within the queue time-out: try again in a second.
    const BUSY: Refused = Refused {
        retry_after_secs: 1,
    };
}

/// Why a limit refused a request: its kind, or the client left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rate,
    Messages,
    Busy,
    /// The client left while queued: nobody hears an answer.
    Gone,
}

impl Reason {
    fn of(kind: &LimitKind) -> Self {
        match kind {
            LimitKind::Rate { .. } => Reason::Rate,
            LimitKind::Messages { .. } => Reason::Messages,
            LimitKind::Concurrency { .. } => Reason::Busy,
        }
    }
}

/// The client left while queued: nobody hears the answer.
fn gone_refusal(policy: &Option<HeaderValue>) -> LimitRefusal {
    LimitRefusal {
        limit: String::new(),
        reason: Reason::Gone,
        retry_after_secs: 1,
        policy: policy.clone(),
        state: None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
