//! The three kinds of check a request passes, locally or through the
//! fleet: one rate, one message quota, the places.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::places::{Ask, NoPlace};
use super::quota::{self, QuotaAnswer};
use super::{
    headers, lock, now_us, Admission, Counted, Gcra, LimitRequest, Limiter, PartitionKey, Refused,
    RouteLimits, State,
};
use crate::config::LimitKind;

impl RouteLimits {
    /// One request against a rate: the fleet's, or the local bucket (the
    /// replica's share of it while Redis is away).
    pub(super) async fn rate(
        &self,
        limiter: &Limiter,
        key: &PartitionKey,
        items: &mut Vec<String>,
    ) -> Result<(), Refused> {
        let LimitKind::Rate {
            count,
            window_secs,
            burst,
        } = limiter.config.kind
        else {
            return Ok(());
        };
        let name = limiter.name();
        let fleet_gcra = Gcra::new(count, window_secs, burst, 1);
        let fleet_answer = match &self.fleet {
            Some(fleet) => fleet
                .rate(name, key, &fleet_gcra)
                .await
                .map(|a| (a, fleet_gcra)),
            None => None,
        };
        let (answer, gcra) = fleet_answer.unwrap_or_else(|| {
            let share = self.fleet.as_ref().map_or(1, |f| f.share(name));
            let gcra = Gcra::new(count, window_secs, burst, share);
            let mut state = lock(&limiter.state);
            let State::Rate(parts) = &mut *state else {
                unreachable!("a rate limiter keeps rate state")
            };
            let answer = gcra.take(parts.get_or_insert(*key, || 0), now_us());
            limiter.counts.partitions.set(parts.len() as i64);
            (answer, gcra)
        });
        let reset = headers::whole_secs(answer.backlog_us);
        items.push(headers::state_item(name, gcra.remaining(&answer), reset));
        if answer.admitted {
            return Ok(());
        }
        Err(Refused {
            retry_after_secs: headers::whole_secs(answer.retry_after_us),
        })
    }

    /// The request's messages counted in the quota's window if they fit:
    /// its declared length's, or one for a chunked body (the rest is
    /// counted as it ends).
    pub(super) async fn messages(
        &self,
        limiter: &Limiter,
        key: &PartitionKey,
        request: &LimitRequest<'_>,
        items: &mut Vec<String>,
    ) -> Result<u64, Refused> {
        let LimitKind::Messages { count, .. } = limiter.config.kind else {
            return Ok(0);
        };
        let messages = quota::messages_for(request.body_len.unwrap_or(0));
        let answer = count_messages(limiter, self.fleet.as_ref(), key, messages, true).await;
        let remaining = count.saturating_sub(answer.used);
        items.push(headers::state_item(
            limiter.name(),
            remaining,
            answer.reset_secs.max(1),
        ));
        if answer.admitted {
            return Ok(messages);
        }
        Err(Refused {
            retry_after_secs: answer.reset_secs.max(1),
        })
    }

    /// Messages of a request that a later limit refused: it never reached
    /// Oracle Integration.
    pub(super) async fn give_back(&self, counted: Vec<Counted>) {
        for c in counted {
            let LimitKind::Messages { window_secs, .. } = c.limiter.config.kind else {
                continue;
            };
            match &self.fleet {
                Some(fleet) if fleet.available() => {
                    let name = c.limiter.name();
                    fleet
                        .give_back_messages(name, &c.key, window_secs, c.messages)
                        .await
                }
                _ => {
                    let mut state = lock(&c.limiter.state);
                    if let State::Messages(parts) = &mut *state {
                        quota::give_back(parts.get_or_insert(c.key, Default::default), c.messages);
                    }
                }
            }
        }
    }

    /// A place of every concurrency limit, in order; `Err(Some)` the limit
    /// that found none in time, `Err(None)` the client left.
    pub(super) async fn places(
        &self,
        request: &LimitRequest<'_>,
        admission: &mut Admission,
        mut gone: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), Option<Arc<Limiter>>> {
        for limiter in &self.limits {
            let LimitKind::Concurrency { max, queue_timeout } = limiter.config.kind else {
                continue;
            };
            let key = self.partitioner.key(limiter.config.per, &request.who);
            let (queue, held, freed) = {
                let mut state = lock(&limiter.state);
                let State::Places(parts) = &mut *state else {
                    unreachable!("a concurrency limiter keeps places")
                };
                let handles = parts
                    .get_or_insert(key, || super::places::PartitionPlaces::new(max))
                    .handles();
                limiter.counts.partitions.set(parts.len() as i64);
                handles
            };
            let started = Instant::now();
            let ask = Ask {
                queue,
                held,
                freed,
                deadline: started + queue_timeout,
                fleet: self.fleet.as_ref().map(|f| (f, limiter.name(), max, &key)),
                in_flight: &limiter.counts.in_flight,
            };
            limiter.counts.queued.inc();
            let outcome = tokio::select! {
                place = ask.place() => Some(place),
                () = gone.as_mut() => None,
            };
            limiter.counts.queued.dec();
            limiter
                .counts
                .queue_wait
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Some(Ok(place)) => admission.places.push(place),
                Some(Err(NoPlace::Busy)) => return Err(Some(limiter.clone())),
                None => return Err(None),
            }
        }
        Ok(())
    }
}

/// Counts messages in the fleet's window, or locally (the replica's
/// share of the quota while Redis is away).
async fn count_messages(
    limiter: &Limiter,
    fleet: Option<&Arc<super::Fleet>>,
    key: &PartitionKey,
    messages: u64,
    check: bool,
) -> QuotaAnswer {
    let LimitKind::Messages { count, window_secs } = limiter.config.kind else {
        unreachable!("only message limits count messages")
    };
    let name = limiter.name();
    let from_fleet = match fleet {
        Some(f) => {
            f.messages(name, key, count, window_secs, messages, check)
                .await
        }
        None => None,
    };
    let answer = from_fleet.unwrap_or_else(|| {
        let share = fleet.map_or(1, |f| f.share(name)) as u64;
        let quota = (count / share).max(1);
        let mut state = lock(&limiter.state);
        let State::Messages(parts) = &mut *state else {
            unreachable!("a message limiter keeps windows")
        };
        let now = crate::clock::unix_now() as u64;
        let window = parts.get_or_insert(*key, Default::default);
        let answer = quota::take(window, quota, window_secs, now, messages, check);
        limiter.counts.partitions.set(parts.len() as i64);
        answer
    });
    if answer.admitted {
        limiter.counts.messages.inc_by(messages);
    }
    answer
}

impl Admission {
    /// Body bytes of a chunked request seen so far.
    pub fn saw(&mut self, bytes: usize) {
        self.body_bytes += bytes as u64;
    }

    /// A chunked body ended: its messages beyond the one counted on
    /// admission are counted now (never refused: it was sent).
    pub async fn body_ended(&mut self) {
        let extra = quota::messages_for(self.body_bytes).saturating_sub(1);
        if extra == 0 {
            self.chunked.clear();
            return;
        }
        for (limiter, key) in std::mem::take(&mut self.chunked) {
            count_messages(&limiter, self.fleet.as_ref(), &key, extra, false).await;
        }
    }

    /// Whether a chunked body's messages are still to be counted.
    pub fn counts_body(&self) -> bool {
        !self.chunked.is_empty()
    }
}
