//! One event kind's ordered list of subscribers, readable from any context without waiting.
//!
//! # Concurrency
//!
//! The order is an immutable snapshot (`Arc<[Arc<Subscriber>]>`) kept in two slots. A
//! dispatch reads the slot `current` names, holding that slot's read lock only long enough to
//! clone the `Arc`, and calls handlers with no lock held. A change builds a new snapshot,
//! stores it in the *other* slot and then flips `current`, so a writer never holds a lock a
//! reader on its own CPU could be waiting for: an interrupt that dispatches while a writer is
//! mid-change reads the slot the writer is not touching.
//!
//! Writers take a writer mutex and the spare slot's write lock with bounded attempts instead
//! of spinning forever. The only way to fail is to interrupt, on the same CPU, another change
//! or a dispatch inside its few-instruction snapshot window; registration then returns
//! [`BusError::Busy`] and the caller retries. Removal never fails: the subscriber is marked dead
//! at once — no call starts after that — and dropped from the snapshot by the next change that
//! gets through.

use alloc::{boxed::Box, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use spin::{Mutex, RwLock};

use super::{Band, BusError, Event, Priority, Reply, Verdict};

/// Most subscribers one chain holds; a bound keeps dispatch time bounded too.
pub const MAX_SUBSCRIBERS_PER_CHAIN: usize = 64;
/// Attempts at a writer lock before reporting `Busy`; only cross-CPU contention can need more
/// than one, and such holders finish within a few hundred instructions.
const WRITER_LOCK_ATTEMPTS: usize = 10_000;

/// A handler: sees the event and the reply, returns its verdict.
pub type Handler = Box<dyn Fn(&Event, &mut Reply) -> Verdict + Send + Sync>;

/// One registered handler and its statistics.
pub(super) struct Subscriber {
    pub(super) name: &'static str,
    pub(super) priority: Priority,
    pub(super) deferred_queue: Option<usize>,
    /// For `irq` subscribers of one line: dispatches of other lines skip it without a call.
    pub(super) only_line: Option<u8>,
    pub(super) alive: AtomicBool,
    pub(super) hits: AtomicU64,
    pub(super) sampled_calls: AtomicU64,
    pub(super) sampled_instructions: AtomicU64,
    pub(super) handler: Handler,
}

type Snapshot = Arc<[Arc<Subscriber>]>;

pub(super) struct Chain {
    slots: [RwLock<Option<Snapshot>>; 2],
    current: AtomicUsize,
    writer: Mutex<()>,
    pub(super) dispatches: AtomicU64,
}

fn try_repeatedly<T>(mut attempt: impl FnMut() -> Option<T>) -> Result<T, BusError> {
    for _ in 0..WRITER_LOCK_ATTEMPTS {
        if let Some(value) = attempt() {
            return Ok(value);
        }
        core::hint::spin_loop();
    }
    Err(BusError::Busy)
}

impl Chain {
    pub(super) const fn new() -> Self {
        Self {
            slots: [RwLock::new(None), RwLock::new(None)],
            current: AtomicUsize::new(0),
            writer: Mutex::new(()),
            dispatches: AtomicU64::new(0),
        }
    }

    /// Returns the current order; `None` if the chain is empty.
    #[inline]
    pub(super) fn snapshot(&self) -> Option<Snapshot> {
        let index = self.current.load(Ordering::Acquire);
        self.slots[index].read().clone()
    }

    /// Applies `change` to a copy of the live subscribers and publishes the result.
    fn publish(&self, change: impl FnOnce(&mut Vec<Arc<Subscriber>>)) -> Result<(), BusError> {
        let _writer = try_repeatedly(|| self.writer.try_lock())?;
        let current = self.current.load(Ordering::Acquire);
        let mut subscribers: Vec<Arc<Subscriber>> =
            self.slots[current].read().as_deref().map(<[_]>::to_vec).unwrap_or_default();
        subscribers.retain(|subscriber| subscriber.alive.load(Ordering::Acquire));
        change(&mut subscribers);
        let next = (!subscribers.is_empty()).then(|| Snapshot::from(subscribers));
        let spare = current ^ 1;
        *try_repeatedly(|| self.slots[spare].try_write())? = next;
        self.current.store(spare, Ordering::Release);
        Ok(())
    }

    /// Inserts `subscriber` after every subscriber of equal or higher priority.
    pub(super) fn insert(&self, subscriber: Arc<Subscriber>) -> Result<(), BusError> {
        let mut result = Ok(());
        self.publish(|subscribers| {
            if subscribers.len() >= MAX_SUBSCRIBERS_PER_CHAIN {
                result = Err(BusError::ChainFull);
                return;
            }
            let position = subscribers
                .iter()
                .position(|existing| existing.priority < subscriber.priority)
                .unwrap_or(subscribers.len());
            subscribers.insert(position, subscriber);
        })?;
        result
    }

    /// Drops dead subscribers from the snapshot if no one is in the way; they are skipped
    /// until then.
    pub(super) fn prune(&self) {
        // Busy means another change is under way or will come; it prunes too.
        let _ = self.publish(|_| {});
    }
}

impl Subscriber {
    /// Runs the handler, counting the hit and, when `clock` is given, the instructions.
    #[inline]
    pub(super) fn call(
        &self,
        event: &Event,
        reply: &mut Reply,
        clock: Option<fn() -> u64>,
    ) -> Verdict {
        self.hits.fetch_add(1, Ordering::Relaxed);
        match clock {
            None => (self.handler)(event, reply),
            Some(clock) => {
                let start = clock();
                let verdict = (self.handler)(event, reply);
                let spent = clock().wrapping_sub(start);
                self.sampled_calls.fetch_add(1, Ordering::Relaxed);
                self.sampled_instructions.fetch_add(spent, Ordering::Relaxed);
                verdict
            }
        }
    }

    pub(super) fn band(&self) -> Band {
        self.priority.band()
    }
}
