//! Bounded queues with an explicit overflow policy and loss that cannot go unnoticed.
//!
//! # Reentrancy
//!
//! Every operation is one short critical section under an [`IrqSpinLock`]: interrupts are
//! masked on this CPU while it runs, so an interrupt handler that pushes can never land inside
//! a pop (or push) of the same queue on its own CPU, and another CPU waits at most for one
//! critical section (a few dozen instructions with its interrupts masked). A push never waits
//! for the consumer, allocates nothing and is safe in interrupt context, from several CPUs at
//! once. NMI context must not push: the bus never queues an exception (see `events`).
//!
//! `crossbeam_queue::ArrayQueue`, which this replaced, is lock-free between CPUs but not
//! reentrant on one: its push spins until a pop that has claimed a slot releases it, and when
//! the timer interrupt's push landed inside the idle task's pop the kernel froze with
//! interrupts off (`tests/bus_stress.rs` reproduces it). Masking makes the same-CPU case
//! impossible rather than rare, and a single lock makes the overflow policies (drop the oldest,
//! merge into the newest) and the counters one atomic step, so they add up exactly at every
//! instant: `enqueued = delivered + dropped-oldest + coalesced + depth`.
//!
//! Whatever a full queue does with an event is counted, and events it discarded are announced
//! in-band: the consumer's next [`BoundedQueue::pop`] returns [`Delivery::Lost`] before any later
//! event (perf's `PERF_RECORD_LOST` model).

use alloc::{boxed::Box, vec::Vec};
use core::fmt;

use crate::sync::IrqSpinLock;

/// What a full queue does with one more event.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum OverflowPolicy {
    /// Discard the incoming event; count it as dropped and lost.
    DropNewest,
    /// Discard the oldest queued event to make room; count it as dropped and lost.
    DropOldest,
    /// Merge the incoming event into the newest queued one, which it replaces (seL4
    /// notification / Managarm IRQ model): the consumer always gets the latest state, learns
    /// how many it missed from sequence numbers, and the depth never exceeds the capacity.
    /// Counted as coalesced.
    Coalesce,
    /// Refuse the event and tell the source, through [`Reply::would_block`], to make the
    /// producer wait and offer it again: a raising process blocks until a subscriber polls
    /// (the same event is re-offered, and taken once), a device line stays masked until the
    /// deferred handler acknowledges.
    ///
    /// [`Reply::would_block`]: super::Reply::would_block
    Backpressure,
    /// Refuse the event and tell the source, through [`Reply::kill_producer`], to stop the
    /// producer (Zircon's policy exception): a raising process is ended with
    /// `abi::FLOODED_EXIT_CODE`, a device line is disabled and reported — never the kernel.
    ///
    /// [`Reply::kill_producer`]: super::Reply::kill_producer
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
    /// Merged into the newest queued event, which it replaced (`Coalesce`).
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
    /// Events waiting when the counters were read.
    pub depth: u64,
}

/// A fixed-capacity multi-producer queue with an [`OverflowPolicy`].
pub struct BoundedQueue<T> {
    name: &'static str,
    policy: OverflowPolicy,
    capacity: usize,
    ring: IrqSpinLock<Ring<T>>,
}

/// The queue's storage and counters, only touched under the lock.
struct Ring<T> {
    slots: Box<[Option<T>]>,
    /// Slot of the oldest event.
    head: usize,
    /// Events waiting.
    len: usize,
    /// Discarded since the last delivery; reported in-band and reset by `pop`.
    unreported_lost: u64,
    stats: QueueStats,
}

/// What [`Ring::push`] did, before the panic policy is applied outside the lock.
enum Pushed {
    Done(PushOutcome),
    Overflowed,
}

impl<T> Ring<T> {
    fn slot(&self, position: usize) -> usize {
        let index = self.head + position;
        if index >= self.slots.len() { index - self.slots.len() } else { index }
    }

    fn push(&mut self, item: T, policy: OverflowPolicy) -> Pushed {
        let capacity = self.slots.len();
        if self.len < capacity {
            let slot = self.slot(self.len);
            self.slots[slot] = Some(item);
            self.len += 1;
            self.stats.enqueued += 1;
            self.stats.high_water = self.stats.high_water.max(self.len as u64);
            return Pushed::Done(PushOutcome::Queued);
        }
        let outcome = match policy {
            OverflowPolicy::DropNewest => {
                self.record_loss();
                PushOutcome::Dropped
            }
            OverflowPolicy::DropOldest => {
                // The slot after the newest is the oldest's: overwrite it and move the head on.
                self.slots[self.head] = Some(item);
                self.head = self.slot(1);
                self.record_loss();
                self.stats.enqueued += 1;
                PushOutcome::QueuedDroppingOldest
            }
            OverflowPolicy::Coalesce => {
                let newest = self.slot(self.len - 1);
                self.slots[newest] = Some(item);
                self.stats.coalesced += 1;
                self.stats.enqueued += 1;
                PushOutcome::Coalesced
            }
            OverflowPolicy::Backpressure => {
                self.stats.refused += 1;
                PushOutcome::WouldBlock
            }
            OverflowPolicy::KillProducer => {
                self.stats.refused += 1;
                PushOutcome::KillProducer
            }
            OverflowPolicy::Panic => return Pushed::Overflowed,
        };
        Pushed::Done(outcome)
    }

    fn record_loss(&mut self) {
        self.stats.dropped += 1;
        self.unreported_lost += 1;
    }

    fn pop(&mut self) -> Option<Delivery<T>> {
        if self.unreported_lost > 0 {
            let count = core::mem::take(&mut self.unreported_lost);
            return Some(Delivery::Lost { count });
        }
        if self.len == 0 {
            return None;
        }
        let item = self.slots[self.head].take()?;
        self.head = self.slot(1);
        self.len -= 1;
        self.stats.delivered += 1;
        Some(Delivery::Item(item))
    }
}

impl<T> BoundedQueue<T> {
    /// Creates a queue holding at most `capacity` events (at least 1).
    pub fn new(name: &'static str, capacity: usize, policy: OverflowPolicy) -> Self {
        let capacity = capacity.max(1);
        let slots: Vec<Option<T>> = (0..capacity).map(|_| None).collect();
        let ring = Ring {
            slots: slots.into_boxed_slice(),
            head: 0,
            len: 0,
            unreported_lost: 0,
            stats: QueueStats::default(),
        };
        Self { name, policy, capacity, ring: IrqSpinLock::new(ring) }
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
        self.capacity
    }

    /// Returns how many events wait; never more than the capacity.
    pub fn len(&self) -> usize {
        self.ring.lock().len
    }

    /// Returns whether nothing waits, counting an unreported loss as something.
    pub fn is_empty(&self) -> bool {
        let ring = self.ring.lock();
        ring.len == 0 && ring.unreported_lost == 0
    }

    /// Offers `item`; never waits for the consumer and never allocates, so it is safe in
    /// interrupt context.
    ///
    /// # Panics
    ///
    /// With [`OverflowPolicy::Panic`], when the queue is full.
    #[inline]
    pub fn push(&self, item: T) -> PushOutcome {
        let pushed = self.ring.lock().push(item, self.policy);
        match pushed {
            Pushed::Done(outcome) => outcome,
            Pushed::Overflowed => {
                panic!("queue `{}` overflowed at capacity {}", self.name, self.capacity())
            }
        }
    }

    /// Takes the next delivery: first any loss not yet reported, then the oldest event.
    #[inline]
    pub fn pop(&self) -> Option<Delivery<T>> {
        self.ring.lock().pop()
    }

    /// Returns the counters and the depth, read together (they add up exactly).
    pub fn stats(&self) -> QueueStats {
        let ring = self.ring.lock();
        QueueStats { depth: ring.len as u64, ..ring.stats }
    }
}
