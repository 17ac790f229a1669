//! One event kind's subscribers: the writer's list, and the immutable snapshot dispatch reads.
//!
//! # Publication
//!
//! A change (subscribe, drop) takes the chain's [`IrqSpinLock`] — interrupts masked, so a change
//! from an interrupt handler never finds its own CPU's thread half-way through one, and never
//! fails for it — edits the list, builds a new [`Snapshot`] and publishes it through the bus's
//! [`RcuArray`] with one pointer swap. Dispatch reads that pointer with no lock and no reference
//! count. The old snapshot is freed after a grace period, once no CPU can still be reading it;
//! until then it waits in the chain's retired list.
//!
//! A snapshot is laid out for the dispatch loop: bands are resolved into three ranges when it is
//! built, and for `irq` there is one list per line holding the line's own subscribers (driver
//! bottom halves) merged with the ones for every line, so a dispatch never looks at a
//! subscriber that is not for it.

use alloc::{boxed::Box, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Band, BusError, Event, EventKind, Priority, QueueId, Reply, Verdict, irq::LINE_COUNT};
use crate::sync::{
    IrqSpinLock,
    local::MAX_CPUS,
    rcu::{RcuArray, Retired},
};

/// Most subscribers one chain holds; a bound keeps dispatch time bounded too.
pub const MAX_SUBSCRIBERS_PER_CHAIN: usize = 64;

/// A handler: sees the event and the reply, returns its verdict. Called through its vtable with
/// the closure as context: one indirect call per subscriber.
pub type Handler = Box<dyn Fn(&Event, &mut Reply) -> Verdict + Send + Sync>;

/// The published snapshots, one per kind.
pub(super) type Snapshots = RcuArray<Snapshot, { EventKind::COUNT }>;

/// Counters one CPU writes, on a cache line of their own so CPUs never share a written line.
#[derive(Default)]
#[repr(align(64))]
pub(super) struct PerCpu {
    pub(super) calls: AtomicU64,
    pub(super) sampled_calls: AtomicU64,
    pub(super) sampled_instructions: AtomicU64,
}

/// One registered handler and its statistics.
pub(super) struct Subscriber {
    pub(super) name: &'static str,
    pub(super) priority: Priority,
    pub(super) deferred_queue: Option<QueueId>,
    /// For `irq` subscribers of one line: only that line's list holds it.
    pub(super) only_line: Option<u8>,
    /// Cleared by `Subscription::drop` before anything else: no call begins after that.
    pub(super) alive: AtomicBool,
    pub(super) per_cpu: [PerCpu; MAX_CPUS],
    pub(super) handler: Handler,
}

impl Subscriber {
    pub(super) fn new(
        name: &'static str,
        priority: Priority,
        deferred_queue: Option<QueueId>,
        only_line: Option<u8>,
        handler: Handler,
    ) -> Self {
        Self {
            name,
            priority,
            deferred_queue,
            only_line,
            alive: AtomicBool::new(true),
            per_cpu: Default::default(),
            handler,
        }
    }

    /// Calls so far, on every CPU.
    pub(super) fn calls(&self) -> u64 {
        self.per_cpu.iter().map(|cpu| cpu.calls.load(Ordering::Relaxed)).sum()
    }

    /// Estimated instructions spent in the handler so far, from the sampled calls.
    pub(super) fn estimated_instructions(&self) -> u64 {
        let sum = |field: fn(&PerCpu) -> &AtomicU64| -> u64 {
            self.per_cpu.iter().map(|cpu| field(cpu).load(Ordering::Relaxed)).sum()
        };
        let sampled_calls = sum(|cpu| &cpu.sampled_calls);
        if sampled_calls == 0 {
            return 0;
        }
        let sampled = sum(|cpu| &cpu.sampled_instructions);
        u64::try_from(u128::from(sampled) * u128::from(self.calls()) / u128::from(sampled_calls))
            .unwrap_or(u64::MAX)
    }
}

/// Subscribers in dispatch order, split into bands.
pub(super) struct List {
    pub(super) entries: Box<[Arc<Subscriber>]>,
    /// `entries[..security_end]` are the security band, `[security_end..owner_end]` owners, the
    /// rest observers.
    pub(super) security_end: usize,
    pub(super) owner_end: usize,
}

impl List {
    fn new(subscribers: impl Iterator<Item = Arc<Subscriber>>) -> Self {
        let entries: Box<[Arc<Subscriber>]> = subscribers.collect();
        // Sorted by priority, so each band is one run.
        let count = |band: Band| entries.iter().filter(|s| s.priority.band() == band).count();
        let security_end = count(Band::Security);
        let owner_end = security_end + count(Band::Owner);
        Self { entries, security_end, owner_end }
    }
}

/// A chain's subscribers as dispatch sees them; never changed once published.
pub(super) struct Snapshot {
    /// One list, or for `irq` one per line and a last one for lines past [`LINE_COUNT`].
    lists: Box<[List]>,
}

impl Snapshot {
    fn build(kind: EventKind, subscribers: &[Arc<Subscriber>]) -> Self {
        let lists = if kind == EventKind::Irq {
            (0..=LINE_COUNT)
                .map(|line| {
                    List::new(
                        subscribers
                            .iter()
                            .filter(|s| s.only_line.is_none_or(|only| usize::from(only) == line))
                            .cloned(),
                    )
                })
                .collect()
        } else {
            Box::new([List::new(subscribers.iter().cloned())]) as Box<[List]>
        };
        Self { lists }
    }

    /// The list `event` is dispatched to.
    #[inline]
    pub(super) fn list_for(&self, event: &Event) -> &List {
        let line = match event {
            Event::Irq { line, .. } => usize::from(*line),
            _ => 0,
        };
        let last = self.lists.len() - 1;
        &self.lists[line.min(last)]
    }
}

/// What a change leaves behind: snapshots past their grace period, to free outside the lock
/// (freeing one drops handlers, whose captures may be subscriptions of this very chain).
pub(super) type Reclaimed = Vec<Retired<Snapshot>>;

struct ChainState {
    subscribers: Vec<Arc<Subscriber>>,
    retired: Vec<Retired<Snapshot>>,
}

/// One kind's writer side and dispatch counters.
pub(super) struct Chain {
    state: IrqSpinLock<ChainState>,
    dispatches: [PerCpuCount; MAX_CPUS],
}

#[derive(Default)]
#[repr(align(64))]
struct PerCpuCount(AtomicU64);

impl Chain {
    pub(super) const fn new() -> Self {
        Self {
            state: IrqSpinLock::new(ChainState { subscribers: Vec::new(), retired: Vec::new() }),
            dispatches: [const { PerCpuCount(AtomicU64::new(0)) }; MAX_CPUS],
        }
    }

    /// Counts a dispatch on `cpu`; returns how many that CPU made before it.
    #[inline]
    pub(super) fn count_dispatch(&self, cpu: usize) -> u64 {
        self.dispatches[cpu % MAX_CPUS].0.fetch_add(1, Ordering::Relaxed)
    }

    /// Dispatches on every CPU so far.
    pub(super) fn dispatches(&self) -> u64 {
        self.dispatches.iter().map(|count| count.0.load(Ordering::Relaxed)).sum()
    }

    /// The live subscribers in dispatch order.
    pub(super) fn subscribers(&self) -> Vec<Arc<Subscriber>> {
        let state = self.state.lock();
        state.subscribers.iter().filter(|s| s.alive.load(Ordering::Acquire)).cloned().collect()
    }

    /// Applies `change` to the live subscribers and publishes the result as `kind`'s snapshot.
    /// Returns the retired snapshots whose grace period is over, for the caller to drop.
    pub(super) fn publish(
        &self,
        snapshots: &Snapshots,
        kind: EventKind,
        change: impl FnOnce(&mut Vec<Arc<Subscriber>>) -> Result<(), BusError>,
    ) -> Result<Reclaimed, BusError> {
        let mut state = self.state.lock();
        state.subscribers.retain(|s| s.alive.load(Ordering::Acquire));
        change(&mut state.subscribers)?;
        let snapshot =
            (!state.subscribers.is_empty()).then(|| Box::new(Snapshot::build(kind, &state.subscribers)));
        if let Some(old) = snapshots.replace(kind.index(), snapshot) {
            state.retired.push(old);
        }
        Ok(Self::take_reclaimable(&mut state, snapshots))
    }

    /// Takes the retired snapshots whose grace period is over.
    pub(super) fn reclaim(&self, snapshots: &Snapshots) -> Reclaimed {
        let mut state = self.state.lock();
        Self::take_reclaimable(&mut state, snapshots)
    }

    /// Retired snapshots still waiting for their grace period.
    pub(super) fn retired_count(&self) -> usize {
        self.state.lock().retired.len()
    }

    fn take_reclaimable(state: &mut ChainState, snapshots: &Snapshots) -> Reclaimed {
        let (done, waiting) =
            core::mem::take(&mut state.retired).into_iter().partition(|r| r.has_elapsed(snapshots));
        state.retired = waiting;
        done
    }
}

/// Inserts `subscriber` after every subscriber of equal or higher priority.
pub(super) fn insert(
    subscribers: &mut Vec<Arc<Subscriber>>,
    subscriber: Arc<Subscriber>,
) -> Result<(), BusError> {
    if subscribers.len() >= MAX_SUBSCRIBERS_PER_CHAIN {
        return Err(BusError::ChainFull);
    }
    let position = subscribers
        .iter()
        .position(|existing| existing.priority < subscriber.priority)
        .unwrap_or(subscribers.len());
    subscribers.insert(position, subscriber);
    Ok(())
}

/// Frees reclaimed snapshots (outside any chain lock).
pub(super) fn free(reclaimed: Reclaimed, snapshots: &Snapshots) {
    for retired in reclaimed {
        // Every one was checked past its grace period under the lock; a grace period that is
        // over stays over, so this frees them all.
        let _ = retired.reclaim(snapshots);
    }
}
