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

use super::{
    Band, BusError, Event, EventKind, Priority, QueueId, Reply, SyscallAbi, Verdict,
    irq::LINE_COUNT,
    running::{self, NameIndex},
};
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
    pub(super) sampled_calls: AtomicU64,
    pub(super) sampled_instructions: AtomicU64,
}

/// One registered handler and its statistics.
pub(super) struct Subscriber {
    pub(super) name: &'static str,
    /// The name as `running.rs` records it.
    pub(super) name_index: NameIndex,
    pub(super) priority: Priority,
    pub(super) deferred_queue: Option<QueueId>,
    /// For subscribers of one line's interrupts or one numbering's system calls: only that
    /// selection's list holds it.
    pub(super) only: Option<Only>,
    /// Cleared by `Subscription::drop` before anything else: no call begins after that.
    pub(super) alive: AtomicBool,
    /// Calls counted by snapshots that have been freed (see `CpuCounts`).
    settled_calls: AtomicU64,
    pub(super) per_cpu: [PerCpu; MAX_CPUS],
    pub(super) handler: Handler,
}

impl Subscriber {
    pub(super) fn new(
        name: &'static str,
        priority: Priority,
        deferred_queue: Option<QueueId>,
        only: Option<Only>,
        handler: Handler,
    ) -> Self {
        Self {
            name,
            name_index: running::intern(name),
            priority,
            deferred_queue,
            only,
            alive: AtomicBool::new(true),
            settled_calls: AtomicU64::new(0),
            per_cpu: Default::default(),
            handler,
        }
    }

    /// Estimated instructions spent in the handler over `calls` calls, from the sampled ones.
    pub(super) fn estimated_instructions(&self, calls: u64) -> u64 {
        let sum = |field: fn(&PerCpu) -> &AtomicU64| -> u64 {
            self.per_cpu.iter().map(|cpu| field(cpu).load(Ordering::Relaxed)).sum()
        };
        let sampled_calls = sum(|cpu| &cpu.sampled_calls);
        if sampled_calls == 0 {
            return 0;
        }
        let sampled = sum(|cpu| &cpu.sampled_instructions);
        u64::try_from(u128::from(sampled) * u128::from(calls) / u128::from(sampled_calls))
            .unwrap_or(u64::MAX)
    }
}

/// Eight counters: one cache line.
#[derive(Default)]
#[repr(align(64))]
struct CounterLine([AtomicU64; 8]);

/// One CPU's counts for one list, on cache lines no other CPU writes. Slot 0 counts the
/// dispatches begun, slot `1 + i` those that decider `i` (security, then owners) decided.
/// Every subscriber's calls follow: decider `i` was called by every dispatch not decided
/// before it, every observer by all of them. So the dispatch loop counts nothing per subscriber.
#[derive(Default)]
struct CpuCounts {
    first: CounterLine,
    more: Box<[CounterLine]>,
}

impl CpuCounts {
    fn new(deciders: usize) -> Self {
        let lines = (deciders + 1).div_ceil(8);
        Self {
            first: CounterLine::default(),
            more: (1..lines).map(|_| Default::default()).collect(),
        }
    }

    #[inline(always)]
    fn slot(&self, index: usize) -> Option<&AtomicU64> {
        match index {
            0..8 => Some(&self.first.0[index]),
            _ => self.more.get(index / 8 - 1).map(|line| &line.0[index % 8]),
        }
    }

    fn read(&self, index: usize) -> u64 {
        self.slot(index).map_or(0, |slot| slot.load(Ordering::Relaxed))
    }
}

/// Subscribers in dispatch order, split into bands (one array each: the loops need no bounds
/// checks), with their per-CPU counts.
pub(super) struct List {
    pub(super) security: Box<[Arc<Subscriber>]>,
    pub(super) owners: Box<[Arc<Subscriber>]>,
    pub(super) observers: Box<[Arc<Subscriber>]>,
    counts: [CpuCounts; MAX_CPUS],
}

impl List {
    fn new(subscribers: impl Iterator<Item = Arc<Subscriber>> + Clone) -> Self {
        let band = |band: Band| -> Box<[Arc<Subscriber>]> {
            subscribers.clone().filter(|s| s.priority.band() == band).collect()
        };
        let (security, owners, observers) =
            (band(Band::Security), band(Band::Owner), band(Band::Observer));
        let deciders = security.len() + owners.len();
        let counts = core::array::from_fn(|_| CpuCounts::new(deciders));
        Self { security, owners, observers, counts }
    }

    /// Counts a dispatch begun on `cpu`; returns how many that CPU began before it.
    #[inline(always)]
    pub(super) fn begin(&self, cpu: usize) -> u64 {
        self.counts[cpu % MAX_CPUS].first.0[0].fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a dispatch on `cpu` that decider `position` decided. The last decider's
    /// decisions need no count (no one's calls are derived from them), so the usual case of a
    /// request served by its owner at the end of the chain counts nothing.
    #[inline(always)]
    pub(super) fn count_decision(&self, cpu: usize, position: usize) {
        if position + 1 < self.security.len() + self.owners.len()
            && let Some(slot) = self.counts[cpu % MAX_CPUS].slot(1 + position)
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn total(&self, index: usize) -> u64 {
        self.counts.iter().map(|cpu| cpu.read(index)).sum()
    }

    /// Dispatches of this list so far.
    fn begun(&self) -> u64 {
        self.total(0)
    }

    /// Dispatches of this list begun on `cpu` so far.
    fn begun_on(&self, cpu: usize) -> u64 {
        self.counts[cpu % MAX_CPUS].read(0)
    }

    /// Calls of each subscriber so far, derived from the counts.
    fn calls(&self) -> impl Iterator<Item = (&Arc<Subscriber>, u64)> {
        let begun = self.begun();
        let mut reached = begun;
        let deciders = self.security.iter().chain(self.owners.iter()).enumerate().map(
            move |(position, subscriber)| {
                let calls = reached;
                reached = reached.saturating_sub(self.total(1 + position));
                (subscriber, calls)
            },
        );
        deciders.chain(self.observers.iter().map(move |observer| (observer, begun)))
    }
}

/// Which events of its kind a subscriber receives, when not all of them.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Only {
    /// `irq` events of this line.
    Line(u8),
    /// `syscall` events from programs using this numbering.
    Abi(SyscallAbi),
}

impl Only {
    /// Its list's index among its chain's selections.
    const fn index(self) -> usize {
        match self {
            Self::Line(line) => line as usize,
            Self::Abi(abi) => abi as usize,
        }
    }
}

/// Selections a `syscall` chain has: one per numbering.
const ABI_COUNT: usize = 2;

/// A chain's subscribers as dispatch sees them; never changed once published.
pub(super) struct Snapshot {
    /// Every subscriber, for events without a selection of their own.
    general: List,
    /// For `irq`, one list per line; for `syscall`, one per numbering: the selection's own
    /// subscribers merged with the general ones, so a dispatch walks only those it concerns.
    selected: Box<[List]>,
}

impl Snapshot {
    fn build(kind: EventKind, subscribers: &[Arc<Subscriber>]) -> Self {
        let for_selection = |selection: Option<usize>| {
            List::new(
                subscribers
                    .iter()
                    .filter(move |s| match (s.only, selection) {
                        (None, _) => true,
                        (Some(only), Some(selection)) => only.index() == selection,
                        (Some(_), None) => false,
                    })
                    .cloned(),
            )
        };
        let count = match kind {
            EventKind::Irq => LINE_COUNT,
            EventKind::Syscall => ABI_COUNT,
            _ => 0,
        };
        Self {
            general: for_selection(None),
            selected: (0..count).map(|selection| for_selection(Some(selection))).collect(),
        }
    }

    /// The list `event` is dispatched to.
    #[inline(always)]
    pub(super) fn list_for(&self, event: &Event) -> &List {
        // The same indices as `Only::index`, without building an `Only` first.
        let index = match *event {
            Event::Irq { line, .. } => usize::from(line),
            Event::Syscall { abi, .. } => abi as usize,
            _ => return &self.general,
        };
        self.selected.get(index).unwrap_or(&self.general)
    }

    fn lists(&self) -> impl Iterator<Item = &List> {
        core::iter::once(&self.general).chain(self.selected.iter())
    }

    /// Adds this snapshot's calls of each subscriber to `totals` (matched by identity).
    fn add_calls(&self, totals: &mut [(Arc<Subscriber>, u64)]) {
        for list in self.lists() {
            for (subscriber, calls) in list.calls() {
                if let Some(total) = totals.iter_mut().find(|(s, _)| Arc::ptr_eq(s, subscriber)) {
                    total.1 += calls;
                }
            }
        }
    }
}

impl Snapshot {
    /// Dispatches of this snapshot begun on `cpu` so far.
    fn begun_on(&self, cpu: usize) -> u64 {
        self.lists().map(|list| list.begun_on(cpu)).sum()
    }

    /// Past its grace period, nothing counts here any more: moves the counts into the
    /// subscribers and the chain (per CPU) before the snapshot is freed.
    fn settle(&self, chain_dispatches: &[PerCpuCount; MAX_CPUS]) {
        for (cpu, settled) in chain_dispatches.iter().enumerate() {
            settled.0.fetch_add(self.begun_on(cpu), Ordering::Relaxed);
        }
        for list in self.lists() {
            for (subscriber, calls) in list.calls() {
                subscriber.settled_calls.fetch_add(calls, Ordering::Relaxed);
            }
        }
    }
}

/// What a change leaves behind: snapshots past their grace period, to free outside the lock
/// (freeing one drops handlers, whose captures may be subscriptions of this very chain).
pub(super) type Reclaimed = Vec<Retired<Snapshot>>;

struct ChainState {
    subscribers: Vec<Arc<Subscriber>>,
    retired: Vec<Retired<Snapshot>>,
}

/// One kind's writer side and the dispatch counts that outlive snapshots.
pub(super) struct Chain {
    state: IrqSpinLock<ChainState>,
    /// Dispatches counted by freed snapshots, by the CPU they ran on.
    settled_dispatches: [PerCpuCount; MAX_CPUS],
    /// Dispatches that found the chain empty (no snapshot to count them), per CPU.
    unsubscribed: [PerCpuCount; MAX_CPUS],
}

/// A count one CPU writes, on a cache line of its own.
#[derive(Default)]
#[repr(align(64))]
pub(super) struct PerCpuCount(pub(super) AtomicU64);

impl Chain {
    pub(super) const fn new() -> Self {
        Self {
            state: IrqSpinLock::new(ChainState { subscribers: Vec::new(), retired: Vec::new() }),
            settled_dispatches: [const { PerCpuCount(AtomicU64::new(0)) }; MAX_CPUS],
            unsubscribed: [const { PerCpuCount(AtomicU64::new(0)) }; MAX_CPUS],
        }
    }

    /// Counts a dispatch on `cpu` that found no subscribers.
    #[cold]
    pub(super) fn count_unsubscribed(&self, cpu: usize) {
        self.unsubscribed[cpu % MAX_CPUS].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Dispatches on every CPU so far.
    pub(super) fn dispatches(&self, snapshots: &Snapshots, kind: EventKind) -> u64 {
        (0..MAX_CPUS).map(|cpu| self.dispatches_on(cpu, snapshots, kind)).sum()
    }

    /// Dispatches on `cpu` so far.
    pub(super) fn dispatches_on(&self, cpu: usize, snapshots: &Snapshots, kind: EventKind) -> u64 {
        let cpu = cpu % MAX_CPUS;
        let state = self.state.lock();
        let retired: u64 =
            state.retired.iter().filter_map(Retired::get).map(|s| s.begun_on(cpu)).sum();
        let current = snapshots.read(crate::sync::local::cpu_index(), kind.index(), |current| {
            current.map_or(0, |snapshot| snapshot.begun_on(cpu))
        });
        self.settled_dispatches[cpu].0.load(Ordering::Relaxed)
            + retired
            + current
            + self.unsubscribed[cpu].0.load(Ordering::Relaxed)
    }

    /// The live subscribers in dispatch order, each with its calls so far: settled ones plus
    /// those counted by the snapshots still alive (published or retired).
    pub(super) fn subscribers(
        &self,
        snapshots: &Snapshots,
        kind: EventKind,
    ) -> Vec<(Arc<Subscriber>, u64)> {
        let state = self.state.lock();
        let mut totals: Vec<(Arc<Subscriber>, u64)> = state
            .subscribers
            .iter()
            .filter(|s| s.alive.load(Ordering::Acquire))
            .map(|s| (s.clone(), s.settled_calls.load(Ordering::Relaxed)))
            .collect();
        for retired in &state.retired {
            if let Some(snapshot) = retired.get() {
                snapshot.add_calls(&mut totals);
            }
        }
        snapshots.read(crate::sync::local::cpu_index(), kind.index(), |current| {
            if let Some(snapshot) = current {
                snapshot.add_calls(&mut totals);
            }
        });
        totals
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
        let snapshot = (!state.subscribers.is_empty())
            .then(|| Box::new(Snapshot::build(kind, &state.subscribers)));
        if let Some(old) = snapshots.replace(kind.index(), snapshot) {
            state.retired.push(old);
        }
        Ok(self.take_reclaimable(&mut state, snapshots))
    }

    /// Takes the retired snapshots whose grace period is over.
    pub(super) fn reclaim(&self, snapshots: &Snapshots) -> Reclaimed {
        let mut state = self.state.lock();
        self.take_reclaimable(&mut state, snapshots)
    }

    /// Retired snapshots still waiting for their grace period.
    pub(super) fn retired_count(&self) -> usize {
        self.state.lock().retired.len()
    }

    /// Takes the retired snapshots past their grace period, their counts settled (under the
    /// lock, so introspection never sees them twice or not at all).
    fn take_reclaimable(&self, state: &mut ChainState, snapshots: &Snapshots) -> Reclaimed {
        let (mut done, mut waiting) = (Reclaimed::new(), Reclaimed::new());
        for mut retired in core::mem::take(&mut state.retired) {
            if retired.has_elapsed(snapshots) {
                done.push(retired);
            } else {
                waiting.push(retired);
            }
        }
        state.retired = waiting;
        for snapshot in done.iter().filter_map(Retired::get) {
            snapshot.settle(&self.settled_dispatches);
        }
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
    for mut retired in reclaimed {
        // Every one was seen past its grace period under the lock, and remembers it, so this
        // frees them all.
        retired.try_reclaim(snapshots);
    }
}
