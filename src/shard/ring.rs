//! The cross-shard mesh: one SPSC ring per ordered pair of shards, and the wake protocol.
//!
//! A shard pushes at most one [`Batch`] per destination per loop turn, then wakes the
//! destination only if it is parked — a wake costs ~15 µs on this hardware, a push ~30 ns,
//! so wakes are what must be rationed.
//!
//! Wake protocol (a Dekker handshake, hence the SeqCst fences on both sides):
//! - consumer, before blocking: `parked = true`; fence; look at every inbound ring; if any
//!   holds a batch, `parked = false` and do not block.
//! - producer, after pushing: fence; if `parked.swap(false)` was true, write the eventfd.
//!
//! Either the consumer sees the batch, or the producer sees `parked` and wakes it.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use crate::proto::signal::Batch;

use super::sys::EventFd;

/// What every shard shares about one shard: its parked flag and eventfd.
#[derive(Debug)]
pub struct Waker {
    parked: AtomicBool,
    eventfd: EventFd,
}

impl Waker {
    /// The eventfd a driver watches.
    #[must_use]
    pub fn eventfd(&self) -> &EventFd {
        &self.eventfd
    }

    /// Wakes the shard unconditionally (used for stop and reload).
    pub fn wake_now(&self) {
        self.eventfd.wake();
    }
}

/// One shard's ends of the mesh.
#[derive(Debug)]
pub struct Links {
    shard: usize,
    producers: Vec<Option<rtrb::Producer<Batch>>>,
    consumers: Vec<Option<rtrb::Consumer<Batch>>>,
    wakers: Arc<[Waker]>,
    /// Batches that did not fit their ring; merged and retried next turn.
    pending: Vec<Option<Batch>>,
    /// Bytes a pending batch may hold before new records are dropped.
    pending_bytes_max: usize,
    /// Records dropped because a destination stayed full.
    pub dropped_records: u64,
}

/// Builds the mesh for `shards` shards with `capacity` batches per ring.
///
/// # Errors
/// An eventfd could not be created.
pub fn mesh(
    shards: usize,
    capacity: usize,
    pending_bytes_max: usize,
) -> std::io::Result<(Arc<[Waker]>, Vec<Links>)> {
    let wakers: Arc<[Waker]> = (0..shards)
        .map(|_| {
            Ok(Waker {
                parked: AtomicBool::new(false),
                eventfd: EventFd::new()?,
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?
        .into();
    let mut links: Vec<Links> = (0..shards)
        .map(|shard| Links {
            shard,
            producers: (0..shards).map(|_| None).collect(),
            consumers: (0..shards).map(|_| None).collect(),
            wakers: wakers.clone(),
            pending: (0..shards).map(|_| None).collect(),
            pending_bytes_max,
            dropped_records: 0,
        })
        .collect();
    for src in 0..shards {
        for dst in 0..shards {
            if src == dst {
                continue;
            }
            let (p, c) = rtrb::RingBuffer::new(capacity);
            links[src].producers[dst] = Some(p);
            links[dst].consumers[src] = Some(c);
        }
    }
    Ok((wakers, links))
}

impl Links {
    /// This shard's waker.
    #[must_use]
    pub fn own_waker(&self) -> &Waker {
        &self.wakers[self.shard]
    }

    /// Sends a batch to `dest`; if its ring is full the batch waits (merged with later
    /// ones) for the next [`Links::retry_pending`].
    pub fn send(&mut self, dest: usize, batch: Batch) {
        if let Some(p) = self.pending[dest].as_mut() {
            if p.data_len() + batch.data_len() > self.pending_bytes_max {
                self.dropped_records += batch.records.len() as u64;
            } else {
                p.append(batch);
            }
            return;
        }
        let Some(prod) = self.producers[dest].as_mut() else {
            debug_assert!(false, "no ring from a shard to itself");
            return;
        };
        match prod.push(batch) {
            Ok(()) => self.wake(dest),
            Err(rtrb::PushError::Full(batch)) => self.pending[dest] = Some(batch),
        }
    }

    /// Number of rings this end can send on (one per other participant, plus its own
    /// index, which has none): the shards, and the cluster bridge when there is one.
    #[must_use]
    pub fn destinations(&self) -> usize {
        self.producers.len()
    }

    /// Retries batches that found their ring full.
    pub fn retry_pending(&mut self) {
        for dest in 0..self.pending.len() {
            if let Some(batch) = self.pending[dest].take() {
                let prod = self.producers[dest]
                    .as_mut()
                    .expect("pending implies a ring");
                match prod.push(batch) {
                    Ok(()) => self.wake(dest),
                    Err(rtrb::PushError::Full(batch)) => self.pending[dest] = Some(batch),
                }
            }
        }
    }

    /// Whether any batch still waits for ring space.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        self.pending.iter().any(Option::is_some)
    }

    fn wake(&self, dest: usize) {
        fence(Ordering::SeqCst);
        let w = &self.wakers[dest];
        if w.parked.load(Ordering::Relaxed) && w.parked.swap(false, Ordering::AcqRel) {
            w.eventfd.wake();
        }
    }

    /// Pops the next inbound batch from any ring, in source order.
    pub fn pop_any(&mut self, start: &mut usize) -> Option<Batch> {
        let n = self.consumers.len();
        for i in 0..n {
            let src = (*start + i) % n;
            if let Some(c) = self.consumers[src].as_mut() {
                if let Ok(b) = c.pop() {
                    *start = src;
                    return Some(b);
                }
            }
        }
        None
    }

    /// Batches waiting in inbound rings, for the ring-depth metric.
    #[must_use]
    pub fn inbound_depth(&self) -> usize {
        self.consumers
            .iter()
            .flatten()
            .map(rtrb::Consumer::slots)
            .sum()
    }

    /// Marks this shard parked; returns false (and unparks) if work arrived meanwhile, in
    /// which case the caller must not block.
    pub fn park(&self) -> bool {
        let w = self.own_waker();
        w.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.inbound_depth() > 0 {
            w.parked.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Clears the parked flag after the driver returns from blocking.
    pub fn unpark(&self) {
        self.own_waker().parked.store(false, Ordering::Release);
    }
}
