//! Deferred delivery: an event queued by dispatch, its handler run later by the idle task, under
//! a watchdog that quarantines a handler past its budget.
//!
//! # Reentrancy
//!
//! The queue registry and the record of the running handler are [`IrqSpinLock`]s, so the timer
//! interrupt (the watchdog) and an enqueue in any interrupt never find them held by the code
//! they interrupted. [`Bus::run_deferred`] runs in thread context only (it calls handlers that
//! may take long); it holds no lock while a handler runs.

use alloc::{boxed::Box, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use conquer_once::spin::OnceCell;

use super::{
    BusError, Composition, Delivery, Event, EventKind, OverflowPolicy, PushOutcome, QueueId,
    QueueStats, Verdict,
    chain::{Handler, PerCpuCount, Snapshots},
    irq, running,
};
use crate::sync::{IrqSpinLock, local::MAX_CPUS};

/// Most deferred queues the bus keeps.
const MAX_DEFERRED_QUEUES: usize = 64;

/// Runs one deferred handler so that it can be abandoned: returns `false` if the watchdog
/// aborted it. Provided by arch code, which alone can take a CPU away from running code.
pub type DeferredGuard = fn(&mut dyn FnMut()) -> bool;

/// A deferred handler the watchdog caught overrunning its budget; it has been quarantined.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Overrun {
    /// Its queue.
    pub queue: QueueId,
    /// Its subscriber's name.
    pub name: &'static str,
    /// How long it had been running.
    pub ran_ms: u64,
}

/// A deferred queue's state, as `queues` prints it.
#[derive(Clone, Debug)]
pub struct QueueInfo {
    /// Queue id, as in [`Event::Lost`].
    pub id: QueueId,
    /// Name (the subscriber's).
    pub name: &'static str,
    /// Capacity.
    pub capacity: usize,
    /// Overflow policy.
    pub policy: OverflowPolicy,
    /// Counters, read together with the events waiting now (`stats.depth`).
    pub stats: QueueStats,
    /// Stopped by the watchdog (its handler overran its budget).
    pub quarantined: bool,
}

/// A deferred handler's queue and the handler that drains it.
pub(super) struct DeferredQueue {
    id: QueueId,
    queue: super::BoundedQueue<Event>,
    handler: Box<dyn Fn(&Event) + Send + Sync>,
    /// Its handler's name as `running.rs` records it.
    name_index: running::NameIndex,
    pub(super) alive: AtomicBool,
    /// Stopped by the watchdog: its handler overran its budget.
    quarantined: AtomicBool,
}

/// The handler running now, for the watchdog.
struct Running {
    queue: Arc<DeferredQueue>,
    since_ms: u64,
    /// Its CPU and that CPU's read-section depth when it was called: while the handler is
    /// deeper (inside a dispatch it made), abandoning it would leave a read section open for
    /// good — no grace period on that CPU would ever end — so the watchdog waits for it to
    /// come back out.
    cpu: usize,
    depth: usize,
}

/// The bus's deferred engine.
pub(super) struct Deferred {
    queues: IrqSpinLock<Vec<Arc<DeferredQueue>>>,
    /// Events queued and not yet delivered, over all queues (resynchronised after each round).
    pending: AtomicU64,
    /// Never reused, so a `Lost { queue }` always names one queue even after others are gone.
    next_queue_id: AtomicU64,
    running: IrqSpinLock<Option<Running>>,
    guard: OnceCell<(DeferredGuard, fn() -> u64)>,
    quarantined: AtomicU64,
    /// Deliveries run (handlers called, lost-event notices included), by the CPU that ran them.
    ran: [PerCpuCount; MAX_CPUS],
}

impl DeferredQueue {
    /// The queue's id, as in [`Event::Lost`].
    pub(super) fn id(&self) -> QueueId {
        self.id
    }
}

impl Deferred {
    pub(super) const fn new() -> Self {
        Self {
            queues: IrqSpinLock::new(Vec::new()),
            pending: AtomicU64::new(0),
            next_queue_id: AtomicU64::new(0),
            running: IrqSpinLock::new(None),
            guard: OnceCell::uninit(),
            quarantined: AtomicU64::new(0),
            ran: [const { PerCpuCount(AtomicU64::new(0)) }; MAX_CPUS],
        }
    }

    /// A new queue for a deferred handler of `kind`, and the immediate handler that feeds it.
    pub(super) fn add(
        &'static self,
        kind: EventKind,
        name: &'static str,
        capacity: usize,
        policy: OverflowPolicy,
        handler: Box<dyn Fn(&Event) + Send + Sync>,
    ) -> Result<(Arc<DeferredQueue>, Handler), BusError> {
        if kind.composition() == Composition::FirstDecision {
            return Err(BusError::DeferredRequest);
        }
        // A device line can wait (masked) or stop (disabled); a raising process can stop, and
        // can wait only on a process's own subscription, which remembers what it took.
        let producer_can = match policy {
            OverflowPolicy::Backpressure => kind == EventKind::Irq,
            OverflowPolicy::KillProducer => matches!(kind, EventKind::Irq | EventKind::User),
            _ => true,
        };
        if !producer_can {
            return Err(BusError::NoProducerToStop);
        }
        let deferred = self.add_queue(name, capacity, policy, handler)?;
        let queue = deferred.clone();
        let enqueue: Handler = Box::new(move |event, reply| {
            if queue.quarantined.load(Ordering::Relaxed) {
                return Verdict::Continue;
            }
            if let Event::User { retry: true, .. } = *event {
                // Offered before, when this queue took or dropped it.
                return Verdict::Continue;
            }
            let pushed = queue.queue.push(*event);
            self.pending.fetch_add(1, Ordering::Release);
            match pushed {
                PushOutcome::KillProducer => reply.kill_producer = true,
                PushOutcome::WouldBlock => reply.would_block = true,
                _ => {}
            }
            if kind == EventKind::Irq {
                reply.keep_line_masked = true;
            }
            Verdict::Handled
        });
        Ok((deferred, enqueue))
    }

    fn add_queue(
        &self,
        name: &'static str,
        capacity: usize,
        policy: OverflowPolicy,
        handler: Box<dyn Fn(&Event) + Send + Sync>,
    ) -> Result<Arc<DeferredQueue>, BusError> {
        let mut queues = self.queues.lock();
        // Quarantined queues stay listed: `queues` must keep showing what the watchdog did.
        let (kept, gone): (Vec<_>, Vec<_>) =
            core::mem::take(&mut *queues).into_iter().partition(|queue| {
                queue.alive.load(Ordering::Acquire)
                    || !queue.queue.is_empty()
                    || queue.quarantined.load(Ordering::Relaxed)
            });
        *queues = kept;
        if queues.len() >= MAX_DEFERRED_QUEUES {
            drop(queues);
            drop(gone);
            return Err(BusError::TooManyQueues);
        }
        let id = u16::try_from(self.next_queue_id.fetch_add(1, Ordering::Relaxed))
            .map(QueueId)
            .map_err(|_| BusError::TooManyQueues)?;
        let deferred = Arc::new(DeferredQueue {
            id,
            queue: super::BoundedQueue::new(name, capacity, policy),
            handler,
            name_index: running::intern(name),
            alive: AtomicBool::new(true),
            quarantined: AtomicBool::new(false),
        });
        queues.push(deferred.clone());
        drop(queues);
        // Freed outside the lock: a handler may own subscriptions, whose drop can wait.
        drop(gone);
        Ok(deferred)
    }

    /// Installs the watchdog's means: `guard` runs each deferred handler so it can be
    /// abandoned, `milliseconds` times it. Only the first call takes effect.
    pub(super) fn set_guard(&self, guard: DeferredGuard, milliseconds: fn() -> u64) {
        let _ = self.guard.try_init_once(|| (guard, milliseconds));
    }

    /// The watchdog, called from the timer interrupt before the tick is dispatched: if a
    /// deferred handler has been running for `budget_ms` or more, it is quarantined (never
    /// called again, no more events queued for it) and returned, so the caller can take the CPU
    /// back from it. Not while the handler is inside a dispatch of its own (it is then
    /// quarantined once it is back out, at a later tick).
    pub(super) fn watchdog(
        &self,
        snapshots: &Snapshots,
        now_ms: u64,
        budget_ms: u64,
    ) -> Option<Overrun> {
        let running = self.running.lock();
        let running = running.as_ref()?;
        let ran_ms = now_ms.saturating_sub(running.since_ms);
        if ran_ms < budget_ms || snapshots.depth(running.cpu) > running.depth {
            return None;
        }
        if running.queue.quarantined.swap(true, Ordering::AcqRel) {
            return None;
        }
        running.queue.alive.store(false, Ordering::Release);
        self.quarantined.fetch_add(1, Ordering::Relaxed);
        Some(Overrun { queue: running.queue.id, name: running.queue.queue.name(), ran_ms })
    }

    /// Deferred handlers the watchdog has quarantined since boot.
    pub(super) fn quarantined_count(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// Returns whether deferred handlers have events waiting.
    pub(super) fn has_work(&self) -> bool {
        self.pending.load(Ordering::Acquire) > 0
    }

    /// Deliveries run on `cpu` so far.
    pub(super) fn ran_on(&self, cpu: usize) -> u64 {
        self.ran.get(cpu).map_or(0, |ran| ran.0.load(Ordering::Relaxed))
    }

    /// Runs deferred handlers on up to `budget` waiting events, round-robin over queues so one
    /// busy queue cannot starve the others. Returns how many deliveries were made. Thread
    /// context only (the kernel's idle task), never from interrupt context or a handler.
    pub(super) fn run(&self, snapshots: &Snapshots, budget: usize) -> usize {
        if !self.has_work() {
            return 0;
        }
        let mut delivered = 0;
        let mut progress = true;
        while delivered < budget && progress {
            progress = false;
            let mut index = 0;
            while delivered < budget {
                let Some(deferred) = self.queues.lock().get(index).cloned() else {
                    break;
                };
                index += 1;
                let Some(delivery) = deferred.queue.pop() else { continue };
                progress = true;
                delivered += 1;
                let event = match delivery {
                    Delivery::Item(event) => event,
                    Delivery::Lost { count } => Event::Lost { queue: deferred.id, count },
                };
                if deferred.alive.load(Ordering::Acquire) {
                    if let Event::Irq { line, .. } = event {
                        irq::LINES.delivered(line, self.now_ms());
                    }
                    self.run_guarded(snapshots, &deferred, &event);
                    let cpu = crate::sync::local::cpu_index();
                    self.ran[cpu % MAX_CPUS].0.fetch_add(1, Ordering::Relaxed);
                }
                if let Event::Irq { line, .. } = event {
                    let _ = irq::LINES.acknowledge(line);
                }
            }
        }
        self.resync_pending();
        delivered
    }

    /// The watchdog's clock, or 0 before it is installed (an acknowledgement is then due from
    /// boot, which only makes it late sooner).
    fn now_ms(&self) -> u64 {
        self.guard.get().map_or(0, |(_, milliseconds)| milliseconds())
    }

    /// Runs one deferred handler under the watchdog (if one is installed).
    fn run_guarded(&self, snapshots: &Snapshots, deferred: &Arc<DeferredQueue>, event: &Event) {
        // Cleared whether the handler returns or is abandoned.
        let cpu = crate::sync::local::cpu_index();
        running::set(cpu, deferred.name_index);
        self.run_guarded_inner(snapshots, deferred, event);
        running::clear(cpu);
    }

    fn run_guarded_inner(
        &self,
        snapshots: &Snapshots,
        deferred: &Arc<DeferredQueue>,
        event: &Event,
    ) {
        let mut call = || (deferred.handler)(event);
        match self.guard.get() {
            Some((guard, milliseconds)) => {
                let cpu = crate::sync::local::cpu_index();
                *self.running.lock() = Some(Running {
                    queue: deferred.clone(),
                    since_ms: milliseconds(),
                    cpu,
                    depth: snapshots.depth(cpu),
                });
                // `false`: the watchdog took the CPU back; the queue is quarantined already.
                let _completed = guard(&mut call);
                self.running.lock().take();
            }
            None => call(),
        }
    }

    /// Pushes that were refused or merged never become deliveries; recount from the queues so
    /// the pending counter cannot drift and keep the deferred task spinning.
    fn resync_pending(&self) {
        let queues = self.queues.lock();
        let waiting: usize = queues.iter().map(|deferred| deferred.queue.len()).sum();
        self.pending.store(waiting as u64, Ordering::Release);
    }

    /// Returns every deferred queue's state.
    pub(super) fn queues(&self) -> Vec<QueueInfo> {
        let queues: Vec<Arc<DeferredQueue>> = self.queues.lock().clone();
        queues
            .iter()
            .map(|deferred| {
                let stats = deferred.queue.stats();
                QueueInfo {
                    id: deferred.id,
                    name: deferred.queue.name(),
                    capacity: deferred.queue.capacity(),
                    policy: deferred.queue.policy(),
                    stats,
                    quarantined: deferred.quarantined.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}
