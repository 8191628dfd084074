//! What `/status` and the status page show of each limit: counts only,
//! never a caller or an address.

use serde::Serialize;

use super::{Fleet, Limiter};

#[derive(Debug, Serialize)]
pub struct LimitStatus {
    pub name: String,
    /// `concurrency`, `rate` or `messages`.
    pub kind: &'static str,
    /// `all`, `caller` or `client_ip`.
    pub per: &'static str,
    /// The ceiling as configured: `200`, `20/s`, `5000/h`.
    pub limit: String,
    pub in_flight: i64,
    pub queued: i64,
    pub partitions: i64,
    /// Rejections by reason (a limit refuses for its kind's one reason).
    pub rejections: std::collections::BTreeMap<&'static str, u64>,
    /// `fleet` (Redis answers), `local share` (Redis away: this replica's
    /// part), or `local` (memory backend).
    pub scope: String,
    /// Replicas that announced themselves for this limit (redis backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

pub fn of(limiter: &Limiter, fleet: Option<&Fleet>) -> LimitStatus {
    let c = &limiter.config;
    let scope = match fleet {
        None => "local".to_string(),
        Some(f) if f.answering() => "fleet".to_string(),
        Some(f) => format!("local share (1/{})", f.share(&c.name)),
    };
    LimitStatus {
        name: c.name.clone(),
        kind: c.kind.name(),
        per: c.per.name(),
        limit: c.kind.ceiling(),
        in_flight: limiter.counts.in_flight.get(),
        queued: limiter.counts.queued.get(),
        partitions: limiter.counts.partitions.get(),
        rejections: [(c.kind.label(), limiter.counts.rejected.get())].into(),
        scope,
        replicas: fleet.map(|f| f.share(&c.name)),
    }
}
