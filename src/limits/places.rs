//! Concurrency ceilings: a FIFO queue of places per partition (tokio's
//! semaphore hands out permits in the order they were asked for). A place
//! lives as long as the request's [`Place`]: until its answer has been
//! sent, or it failed. With a fleet, a local place is the ticket to ask
//! Redis for one of the fleet's; without Redis, the replica's share.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::fleet::{Fleet, FleetPlace};

/// A partition's places on this replica.
pub struct PartitionPlaces {
    queue: Arc<Semaphore>,
    /// Places held here now (what the Redis-down share is checked against).
    held: Arc<AtomicU32>,
    /// Signalled whenever a place of this partition is given back.
    freed: Arc<Notify>,
}

impl PartitionPlaces {
    pub fn new(max: u32) -> Self {
        PartitionPlaces {
            queue: Arc::new(Semaphore::new(max as usize)),
            held: Arc::new(AtomicU32::new(0)),
            freed: Arc::new(Notify::new()),
        }
    }

    pub fn handles(&self) -> (Arc<Semaphore>, Arc<AtomicU32>, Arc<Notify>) {
        (self.queue.clone(), self.held.clone(), self.freed.clone())
    }
}

/// A held place; dropping it gives the place back (locally at once, in
/// Redis in the background).
pub struct Place {
    _permit: OwnedSemaphorePermit,
    held: Arc<AtomicU32>,
    freed: Arc<Notify>,
    fleet: Option<(Arc<Fleet>, FleetPlace)>,
    in_flight: prometheus::IntGauge,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
        self.in_flight.dec();
        if let Some((fleet, place)) = self.fleet.take() {
            fleet.release(place);
        }
        self.freed.notify_waiters();
    }
}

/// Why no place was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlace {
    /// None freed within the queue time-out.
    Busy,
}

/// Where a queued request asks for its place.
pub struct Ask<'a> {
    pub queue: Arc<Semaphore>,
    pub held: Arc<AtomicU32>,
    pub freed: Arc<Notify>,
    pub deadline: Instant,
    /// Fleet and this limit's name, ceiling and partition key.
    pub fleet: Option<(&'a Arc<Fleet>, &'a str, u32, &'a super::PartitionKey)>,
    pub in_flight: &'a prometheus::IntGauge,
}

/// How often a request holding the local ticket asks the fleet again
/// when no place of its own replica was freed meanwhile.
const FLEET_POLL: Duration = Duration::from_millis(20);

impl Ask<'_> {
    /// Waits (FIFO) for a local place, then for the fleet's (or, while
    /// Redis is away, the replica's share), until the deadline.
    pub async fn place(self) -> Result<Place, NoPlace> {
        let permit = match self.deadline.checked_duration_since(Instant::now()) {
            None | Some(Duration::ZERO) => self.queue.clone().try_acquire_owned().ok(),
            Some(wait) => tokio::time::timeout(wait, self.queue.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        };
        let permit = permit.ok_or(NoPlace::Busy)?;
        let fleet_place = self.fleet_place().await?;
        self.held.fetch_add(1, Ordering::AcqRel);
        self.in_flight.inc();
        Ok(Place {
            _permit: permit,
            held: self.held,
            freed: self.freed,
            fleet: fleet_place,
            in_flight: self.in_flight.clone(),
        })
    }

    /// The fleet's place, asked again whenever a local one is freed (or
    /// every `FLEET_POLL`) until the deadline.
    async fn fleet_place(&self) -> Result<Option<(Arc<Fleet>, FleetPlace)>, NoPlace> {
        let Some((fleet, limit, max, key)) = self.fleet else {
            return Ok(None);
        };
        loop {
            let freed = self.freed.notified();
            match fleet.take_place(limit, key, max).await {
                Some(Some(place)) => return Ok(Some((fleet.clone(), place))),
                Some(None) => {}
                None => {
                    let share = (max / fleet.share(limit)).max(1);
                    if self.held.load(Ordering::Acquire) < share {
                        return Ok(None);
                    }
                }
            }
            let left = self
                .deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(NoPlace::Busy)?;
            let _ = tokio::time::timeout(left.min(FLEET_POLL), freed).await;
        }
    }
}
