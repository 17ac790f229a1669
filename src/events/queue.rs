//! Bounded queues with an explicit overflow policy and loss that cannot go unnoticed.
//!
//! Built on `crossbeam_queue::ArrayQueue` (lock-free, fixed capacity, safe to push from
//! interrupt context). Whatever a full queue does with an event is counted, and events it
//! discarded are announced in-band: the consumer's next [`BoundedQueue::pop`] returns
//! [`Delivery::Lost`] before any later event (perf's `PERF_RECORD_LOST` model).

use core::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};

use crossbeam_queue::ArrayQueue;

/// What a full queue does with one more event.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum OverflowPolicy {
    /// Discard the incoming event; count it as dropped and lost.
    DropNewest,
    /// Discard the oldest queued event to make room; count it as dropped and lost.
    DropOldest,
    /// Merge the incoming event into one pending "latest" slot delivered after the queue
    /// drains (seL4 notification / Managarm IRQ model). Nothing is lost: the consumer learns
    /// how many it missed from sequence numbers. Counted as coalesced.
    Coalesce,
    /// Refuse the event; the producer must wait and retry (an IRQ line stays masked).
    Backpressure,
    /// Refuse the event and tell the producer's owner to stop the producer (Zircon's policy
    /// exception): a flooding process is killed, not the kernel.
    KillProducer,
    /// Overflow is a kernel bug: panic (Tock's deferred-call model).
    Panic,
}

impl fmt::Display for OverflowPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DropNewest => "drop-newest",
            Self::DropOldest => "drop-oldest",
            Self::Coalesce => "coalesce",
            Self::Backpressure => "backpressure",
            Self::KillProducer => "kill-producer",
            Self::Panic => "panic",
        })
    }
}

/// What [`BoundedQueue::push`] did.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PushOutcome {
    /// Queued normally.
    Queued,
    /// Queued after discarding the oldest event (`DropOldest`).
    QueuedDroppingOldest,
    /// Merged into the pending latest slot (`Coalesce`).
    Coalesced,
    /// Discarded (`DropNewest`).
    Dropped,
    /// Refused; retry later (`Backpressure`).
    WouldBlock,
    /// Refused; stop the producer (`KillProducer`).
    KillProducer,
}

/// What the consumer receives.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Delivery<T> {
    /// The next event.
    Item(T),
    /// `count` events were discarded since the previous delivery.
    Lost {
        /// How many.
        count: u64,
    },
}

/// Counters of a queue's life so far.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct QueueStats {
    /// Events accepted (queued or coalesced).
    pub enqueued: u64,
    /// Events handed to the consumer.
    pub delivered: u64,
    /// Events discarded (`DropNewest`, `DropOldest`).
    pub dropped: u64,
    /// Events merged into a later one (`Coalesce`).
    pub coalesced: u64,
    /// Pushes refused (`Backpressure`, `KillProducer`).
    pub refused: u64,
    /// Largest number of events waiting at once.
    pub high_water: u64,
}

/// A fixed-capacity multi-producer queue with an [`OverflowPolicy`].
pub struct BoundedQueue<T> {
    name: &'static str,
    policy: OverflowPolicy,
    items: ArrayQueue<T>,
    /// `Coalesce` only: the newest event that did not fit. While it is occupied every new
    /// event merges into it, so delivery order stays oldest first.
    latest: ArrayQueue<T>,
    /// Discarded since the last delivery; reported in-band and reset by `pop`.
    unreported_lost: AtomicU64,
    /// Events in `items`, kept here because `ArrayQueue::len` is a retry loop.
    depth: AtomicU64,
    enqueued: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    coalesced: AtomicU64,
    refused: AtomicU64,
    high_water: AtomicU64,
}

impl<T> BoundedQueue<T> {
    /// Creates a queue holding at most `capacity` events (at least 1).
    pub fn new(name: &'static str, capacity: usize, policy: OverflowPolicy) -> Self {
        Self {
            name,
            policy,
            items: ArrayQueue::new(capacity.max(1)),
            latest: ArrayQueue::new(1),
            unreported_lost: AtomicU64::new(0),
            depth: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
        }
    }

    /// Returns the queue's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Returns the overflow policy.
    pub fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    /// Returns the capacity.
    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// Returns how many events wait (including a coalesced one).
    pub fn len(&self) -> usize {
        self.items.len() + self.latest.len()
    }

    /// Returns whether nothing waits, counting an unreported loss as something.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
            && self.latest.is_empty()
            && self.unreported_lost.load(Ordering::Relaxed) == 0
    }

    /// Offers `item`; never blocks and never allocates, so it is safe in interrupt context.
    ///
    /// # Panics
    ///
    /// With [`OverflowPolicy::Panic`], when the queue is full.
    pub fn push(&self, item: T) -> PushOutcome {
        let outcome = if self.policy == OverflowPolicy::Coalesce && !self.latest.is_empty() {
            self.coalesce(item)
        } else {
            match self.items.push(item) {
                Ok(()) => {
                    let depth = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
                    if depth > self.high_water.load(Ordering::Relaxed) {
                        self.high_water.fetch_max(depth, Ordering::Relaxed);
                    }
                    PushOutcome::Queued
                }
                Err(item) => self.overflow(item),
            }
        };
        match outcome {
            PushOutcome::Queued => {
                self.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            PushOutcome::QueuedDroppingOldest | PushOutcome::Coalesced => {
                self.enqueued.fetch_add(1, Ordering::Relaxed);
                self.high_water.fetch_max(self.len() as u64, Ordering::Relaxed);
            }
            PushOutcome::Dropped => self.record_loss(),
            PushOutcome::WouldBlock | PushOutcome::KillProducer => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        outcome
    }

    fn overflow(&self, item: T) -> PushOutcome {
        match self.policy {
            OverflowPolicy::DropNewest => PushOutcome::Dropped,
            OverflowPolicy::DropOldest => {
                match self.items.force_push(item) {
                    Some(_oldest) => self.record_loss(),
                    None => {
                        self.depth.fetch_add(1, Ordering::Relaxed);
                    }
                }
                PushOutcome::QueuedDroppingOldest
            }
            OverflowPolicy::Coalesce => self.coalesce(item),
            OverflowPolicy::Backpressure => PushOutcome::WouldBlock,
            OverflowPolicy::KillProducer => PushOutcome::KillProducer,
            OverflowPolicy::Panic => {
                panic!("queue `{}` overflowed at capacity {}", self.name, self.capacity())
            }
        }
    }

    fn coalesce(&self, item: T) -> PushOutcome {
        if self.latest.force_push(item).is_some() {
            // The replaced event is now represented by the newer one.
            self.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        PushOutcome::Coalesced
    }

    fn record_loss(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.unreported_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the next delivery: first any loss not yet reported, then the oldest event.
    pub fn pop(&self) -> Option<Delivery<T>> {
        // A plain load first: the swap (a locked instruction) only when there is a loss.
        if self.unreported_lost.load(Ordering::Relaxed) > 0 {
            let lost = self.unreported_lost.swap(0, Ordering::Relaxed);
            if lost > 0 {
                return Some(Delivery::Lost { count: lost });
            }
        }
        let item = match self.items.pop() {
            Some(item) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                item
            }
            None => self.latest.pop()?,
        };
        self.delivered.fetch_add(1, Ordering::Relaxed);
        Some(Delivery::Item(item))
    }

    /// Returns the counters.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            enqueued: self.enqueued.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            high_water: self.high_water.load(Ordering::Relaxed),
        }
    }
}
