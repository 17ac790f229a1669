//! The bus: one chain per event kind, dispatch, deferred delivery and introspection.

use alloc::{
    boxed::Box,
    string::{String, ToString},
    sync::Arc,
    vec::Vec,
};
use core::{
    fmt,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use conquer_once::spin::OnceCell;
use spin::Mutex;

use super::{
    Asking, Band, BoundedQueue, Composition, Delivery, Event, EventKind, Outcome, OverflowPolicy,
    Priority, PushOutcome, QueueId, QueueStats, Reply, SharedLine, Verdict,
    chain::{Chain, Handler, Subscriber},
};

/// Calls a chain's subscribers in order and combines their verdicts (see [`Composition`]).
/// With `LINE_FILTER`, subscribers bound to another interrupt line than `line` are skipped
/// without a call (a driver's bottom half sees only its own line).
#[inline(always)]
fn run_chain<const LINE_FILTER: bool>(
    snapshot: &[Arc<Subscriber>],
    event: &Event,
    reply: &mut Reply,
    clock: Option<fn() -> u64>,
    first_decision: bool,
    line: u8,
) -> Outcome {
    let mut outcome = Outcome::Unhandled;
    let mut decided = false;
    for subscriber in snapshot {
        if LINE_FILTER && subscriber.only_line.is_some_and(|only| only != line) {
            continue;
        }
        if !subscriber.alive.load(Ordering::Acquire) {
            continue;
        }
        match subscriber.band() {
            Band::Observer => {
                reply.outcome = outcome;
                subscriber.call(event, reply, clock);
            }
            _ if decided => {}
            Band::Security => {
                // Security may only deny; a `Handled` from it grants nothing.
                if let Verdict::Deny(errno) = subscriber.call(event, reply, clock)
                    && first_decision
                {
                    outcome = Outcome::Denied(errno);
                    decided = true;
                }
            }
            Band::Owner => match subscriber.call(event, reply, clock) {
                Verdict::Continue => {}
                Verdict::Handled => {
                    outcome = Outcome::Handled;
                    decided = first_decision;
                }
                Verdict::Deny(errno) if first_decision => {
                    outcome = Outcome::Denied(errno);
                    decided = true;
                }
                Verdict::Deny(_) => {}
            },
        }
    }
    outcome
}

/// Handler timing is sampled: one dispatch in this many per chain is timed (the first one
/// always), and a handler's total is estimated from its sampled average. Timing every call
/// would cost two clock reads per handler, more than the rest of the dispatch.
pub const TIMING_SAMPLE_PERIOD: u64 = 16;
/// Most deferred queues the bus keeps.
const MAX_DEFERRED_QUEUES: usize = 64;

/// Why a subscription was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum BusError {
    /// The chain already holds its maximum number of subscribers.
    ChainFull,
    /// Another change to the chain, or a dispatch it interrupted on this CPU, is in the way;
    /// retry from a context that did not interrupt it.
    Busy,
    /// The bus already has its maximum number of deferred queues.
    TooManyQueues,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ChainFull => "chain is full",
            Self::Busy => "chain is being changed; retry",
            Self::TooManyQueues => "too many deferred queues",
        })
    }
}

/// A deferred handler's queue and the handler that drains it.
struct DeferredQueue {
    id: QueueId,
    name: &'static str,
    queue: BoundedQueue<Event>,
    handler: Handler,
    alive: AtomicBool,
    /// Stopped by the watchdog: its handler overran its budget.
    quarantined: AtomicBool,
}

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

/// Runs one deferred handler so that it can be abandoned: returns `false` if the watchdog
/// aborted it. Provided by arch code, which alone can take a CPU away from running code.
pub type DeferredGuard = fn(&mut dyn FnMut()) -> bool;

/// The event bus. The kernel has one ([`BUS`](super::BUS)); tests and benchmarks make their own.
pub struct Bus {
    chains: [Chain; EventKind::COUNT],
    clock: OnceCell<fn() -> u64>,
    deferred: Mutex<Vec<Arc<DeferredQueue>>>,
    deferred_pending: AtomicU64,
    /// Never reused, so a `Lost { queue }` always names one queue even after others are gone.
    next_queue_id: AtomicU64,
    /// Lines shared by several devices (created by [`Bus::shared_irq_line`]).
    shared_lines: [OnceCell<Arc<SharedLine>>; super::irq::LINE_COUNT],
    /// The deferred queue whose handler is running (id + 1; 0: none), and since when.
    running_deferred: AtomicU64,
    running_since_ms: AtomicU64,
    deferred_guard: OnceCell<(DeferredGuard, fn() -> u64)>,
    quarantined: AtomicU64,
}

/// A live registration; dropping it unregisters the handler.
#[must_use = "dropping a Subscription unregisters its handler at once"]
pub struct Subscription {
    bus: &'static Bus,
    kind: EventKind,
    subscriber: Arc<Subscriber>,
    deferred: Option<Arc<DeferredQueue>>,
}

impl Subscription {
    /// Keeps the handler registered for the rest of the kernel's life.
    pub fn keep_forever(self) {
        core::mem::forget(self);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // From here on no dispatch calls the handler; the snapshot is pruned when possible.
        self.subscriber.alive.store(false, Ordering::Release);
        if let Some(deferred) = &self.deferred {
            deferred.alive.store(false, Ordering::Release);
        }
        self.bus.chains[self.kind.index()].prune();
    }
}

/// One subscriber's place and statistics, as `chains` prints them.
#[derive(Clone, Debug)]
pub struct SubscriberInfo {
    /// Registration name.
    pub name: &'static str,
    /// Priority.
    pub priority: Priority,
    /// Calls so far.
    pub hits: u64,
    /// Estimated guest instructions spent in the handler so far (see [`TIMING_SAMPLE_PERIOD`]).
    pub instructions: u64,
    /// The deferred queue feeding it, if it is a deferred handler.
    pub deferred_queue: Option<QueueId>,
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
    /// Events waiting now.
    pub depth: usize,
    /// Overflow policy.
    pub policy: OverflowPolicy,
    /// Counters.
    pub stats: QueueStats,
    /// Stopped by the watchdog (its handler overran its budget).
    pub quarantined: bool,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    /// Creates a bus with empty chains.
    pub const fn new() -> Self {
        Self {
            chains: [const { Chain::new() }; EventKind::COUNT],
            clock: OnceCell::uninit(),
            deferred: Mutex::new(Vec::new()),
            deferred_pending: AtomicU64::new(0),
            next_queue_id: AtomicU64::new(0),
            shared_lines: [const { OnceCell::uninit() }; super::irq::LINE_COUNT],
            running_deferred: AtomicU64::new(0),
            running_since_ms: AtomicU64::new(0),
            deferred_guard: OnceCell::uninit(),
            quarantined: AtomicU64::new(0),
        }
    }

    /// Installs the watchdog's means: `guard` runs each deferred handler so it can be
    /// abandoned, `milliseconds` times it. Only the first call takes effect.
    pub fn set_deferred_guard(&self, guard: DeferredGuard, milliseconds: fn() -> u64) {
        let _ = self.deferred_guard.try_init_once(|| (guard, milliseconds));
    }

    /// The watchdog, called from the timer interrupt: if a deferred handler has been running for
    /// `budget_ms` or more, it is quarantined (never called again, no more events queued for
    /// it) and returned, so the caller can take the CPU back from it.
    pub fn watchdog(&self, now_ms: u64, budget_ms: u64) -> Option<Overrun> {
        let running = self.running_deferred.load(Ordering::Acquire);
        if running == 0 {
            return None;
        }
        let ran_ms = now_ms.saturating_sub(self.running_since_ms.load(Ordering::Acquire));
        if ran_ms < budget_ms {
            return None;
        }
        let queues = self.deferred.try_lock()?;
        let deferred = queues.iter().find(|d| u64::from(d.id.0) + 1 == running)?;
        if deferred.quarantined.swap(true, Ordering::AcqRel) {
            return None;
        }
        deferred.alive.store(false, Ordering::Release);
        self.quarantined.fetch_add(1, Ordering::Relaxed);
        Some(Overrun { queue: deferred.id, name: deferred.name, ran_ms })
    }

    /// Deferred handlers the watchdog has quarantined since boot.
    pub fn quarantined_count(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// The shared-line dispatcher of interrupt `line`, created (and subscribed as the line's
    /// owner, asking handlers in claim order) on first use. Devices add their "is it mine?"
    /// handlers to it.
    pub fn shared_irq_line(
        &'static self,
        line: u8,
        asking: Asking,
    ) -> Result<Arc<SharedLine>, BusError> {
        let cell = self.shared_lines.get(usize::from(line)).ok_or(BusError::ChainFull)?;
        if let Some(shared) = cell.get() {
            return Ok(shared.clone());
        }
        let shared = Arc::new(SharedLine::new(asking));
        let dispatcher = shared.clone();
        let subscription =
            self.subscribe(EventKind::Irq, "shared-irq", Priority::OWNER, move |event, _| {
                match event {
                    Event::Irq { line: raised, .. } if *raised == line => dispatcher.offer(event),
                    _ => Verdict::Continue,
                }
            })?;
        if cell.try_init_once(|| shared.clone()).is_err() {
            // Another caller won the race; its dispatcher serves the line.
            drop(subscription);
            return cell.get().cloned().ok_or(BusError::Busy);
        }
        subscription.keep_forever();
        Ok(shared)
    }

    /// Sets the clock used to account handler time (the TSC, on x86_64). Only the first call
    /// takes effect.
    pub fn set_clock(&self, clock: fn() -> u64) {
        // A clock already set stays: handler statistics must not switch units midway.
        let _ = self.clock.try_init_once(|| clock);
    }

    /// Registers an immediate handler: it runs inside [`dispatch`](Self::dispatch), in
    /// interrupt context for interrupts, so it must be short and must not block or allocate.
    ///
    /// Safe from any context, including from inside a handler of the same chain; the new
    /// handler takes part from the next dispatch on.
    pub fn subscribe(
        &'static self,
        kind: EventKind,
        name: &'static str,
        priority: Priority,
        handler: impl Fn(&Event, &mut Reply) -> Verdict + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        self.subscribe_boxed(kind, name, priority, None, None, Box::new(handler), None)
    }

    #[expect(clippy::too_many_arguments, reason = "private; the public entry points name them")]
    fn subscribe_boxed(
        &'static self,
        kind: EventKind,
        name: &'static str,
        priority: Priority,
        deferred_queue: Option<usize>,
        only_line: Option<u8>,
        handler: Handler,
        deferred: Option<Arc<DeferredQueue>>,
    ) -> Result<Subscription, BusError> {
        let subscriber = Arc::new(Subscriber {
            name,
            priority,
            deferred_queue,
            only_line,
            alive: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            sampled_calls: AtomicU64::new(0),
            sampled_instructions: AtomicU64::new(0),
            handler,
        });
        self.chains[kind.index()].insert(subscriber.clone())?;
        Ok(Subscription { bus: self, kind, subscriber, deferred })
    }

    /// Registers a deferred handler: the dispatch only queues the event (a few instructions,
    /// safe in interrupt context) and `handler` runs later from [`run_deferred`](Self::run_deferred),
    /// in a kernel task. A loss is delivered to `handler` as [`Event::Lost`] before the next event.
    ///
    /// For [`EventKind::Irq`] the line stays masked until [`run_deferred`](Self::run_deferred)
    /// has run the handler (the L4 model), so a flood is bounded by the handler's pace.
    pub fn subscribe_deferred(
        &'static self,
        kind: EventKind,
        name: &'static str,
        priority: Priority,
        capacity: usize,
        policy: OverflowPolicy,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        self.subscribe_deferred_filtered(kind, None, name, priority, capacity, policy, handler)
    }

    /// A deferred handler for one interrupt line: a driver's bottom half. Events of other lines
    /// pass it by; events of `line` are queued and keep the line masked until handled.
    pub fn subscribe_irq_line(
        &'static self,
        line: u8,
        name: &'static str,
        priority: Priority,
        capacity: usize,
        policy: OverflowPolicy,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        self.subscribe_deferred_filtered(
            EventKind::Irq,
            Some(line),
            name,
            priority,
            capacity,
            policy,
            handler,
        )
    }

    #[expect(clippy::too_many_arguments, reason = "the two public entry points name them all")]
    fn subscribe_deferred_filtered(
        &'static self,
        kind: EventKind,
        only_line: Option<u8>,
        name: &'static str,
        priority: Priority,
        capacity: usize,
        policy: OverflowPolicy,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        let mut queues = self.deferred.try_lock().ok_or(BusError::Busy)?;
        // Quarantined queues stay listed: `queues` must keep showing what the watchdog did.
        queues.retain(|queue| {
            queue.alive.load(Ordering::Acquire)
                || !queue.queue.is_empty()
                || queue.quarantined.load(Ordering::Relaxed)
        });
        if queues.len() >= MAX_DEFERRED_QUEUES {
            return Err(BusError::TooManyQueues);
        }
        let id = u16::try_from(self.next_queue_id.fetch_add(1, Ordering::Relaxed))
            .map(QueueId)
            .map_err(|_| BusError::TooManyQueues)?;
        let deferred = Arc::new(DeferredQueue {
            id,
            name,
            quarantined: AtomicBool::new(false),
            queue: BoundedQueue::new(name, capacity, policy),
            handler: Box::new(move |event, _reply| {
                handler(event);
                Verdict::Handled
            }),
            alive: AtomicBool::new(true),
        });
        queues.push(deferred.clone());
        drop(queues);
        let queue = deferred.clone();
        let enqueue: Handler = Box::new(move |event, reply| {
            if let (Some(wanted), Event::Irq { line, .. }) = (only_line, event)
                && *line != wanted
            {
                return Verdict::Continue;
            }
            if queue.quarantined.load(Ordering::Relaxed) {
                return Verdict::Continue;
            }
            let pushed = queue.queue.push(*event);
            self.deferred_pending.fetch_add(1, Ordering::Release);
            if pushed == PushOutcome::KillProducer {
                reply.kill_producer = true;
            }
            if kind == EventKind::Irq {
                reply.keep_line_masked = true;
            }
            Verdict::Handled
        });
        self.subscribe_boxed(
            kind,
            name,
            priority,
            Some(usize::from(id.0)),
            only_line,
            enqueue,
            Some(deferred),
        )
    }

    /// Delivers `event` to its chain and returns the decision. Safe in interrupt context: it
    /// takes no lock that other code holds across more than a pointer copy, and allocates
    /// nothing. Handlers run highest priority first; see [`Composition`] for how their verdicts
    /// combine, per kind.
    pub fn dispatch(&self, event: &Event, reply: &mut Reply) -> Outcome {
        let kind = event.kind();
        let chain = &self.chains[kind.index()];
        let dispatch_number = chain.dispatches.fetch_add(1, Ordering::Relaxed);
        let Some(snapshot) = chain.snapshot() else {
            return Outcome::Unhandled;
        };
        let clock = if dispatch_number.is_multiple_of(TIMING_SAMPLE_PERIOD) {
            self.clock.get().copied()
        } else {
            None
        };
        let first_decision = kind.composition() == Composition::FirstDecision;
        // Two copies of the loop: only `irq` chains hold one-line subscribers, so only their
        // dispatch pays for the line check.
        let outcome = match event {
            Event::Irq { line, .. } => {
                run_chain::<true>(&snapshot, event, reply, clock, first_decision, *line)
            }
            _ => run_chain::<false>(&snapshot, event, reply, clock, first_decision, 0),
        };
        reply.outcome = outcome;
        outcome
    }

    /// Returns whether deferred handlers have events waiting.
    pub fn has_deferred_work(&self) -> bool {
        self.deferred_pending.load(Ordering::Acquire) > 0
    }

    /// Runs deferred handlers on up to `budget` waiting events, round-robin over queues so one
    /// busy queue cannot starve the others. Returns how many deliveries were made. Called by
    /// the kernel's deferred-work task, never from interrupt context.
    pub fn run_deferred(&self, budget: usize) -> usize {
        if !self.has_deferred_work() {
            return 0;
        }
        let Some(queues) = self.deferred.try_lock().map(|queues| queues.clone()) else {
            return 0;
        };
        let mut delivered = 0;
        let mut progress = true;
        while delivered < budget && progress {
            progress = false;
            for deferred in &queues {
                let Some(delivery) = deferred.queue.pop() else { continue };
                progress = true;
                delivered += 1;
                let event = match delivery {
                    Delivery::Item(event) => {
                        self.deferred_pending.fetch_sub(1, Ordering::AcqRel);
                        event
                    }
                    Delivery::Lost { count } => Event::Lost { queue: deferred.id, count },
                };
                if deferred.alive.load(Ordering::Acquire) {
                    self.run_guarded(deferred, &event);
                }
                if let Event::Irq { line, .. } = event {
                    super::irq::LINES.acknowledge(line);
                }
                if delivered >= budget {
                    break;
                }
            }
        }
        self.resync_pending(&queues);
        delivered
    }

    /// Runs one deferred handler under the watchdog (if one is installed).
    fn run_guarded(&self, deferred: &DeferredQueue, event: &Event) {
        let mut call = || {
            let _ = (deferred.handler)(event, &mut Reply::new());
        };
        match self.deferred_guard.get() {
            Some((guard, milliseconds)) => {
                self.running_since_ms.store(milliseconds(), Ordering::Release);
                self.running_deferred.store(u64::from(deferred.id.0) + 1, Ordering::Release);
                // `false`: the watchdog took the CPU back; the queue is quarantined already.
                let _completed = guard(&mut call);
                self.running_deferred.store(0, Ordering::Release);
            }
            None => call(),
        }
    }

    /// Pushes that were refused or merged never become deliveries; recount from the queues so
    /// the pending counter cannot drift and keep the deferred task spinning.
    fn resync_pending(&self, queues: &[Arc<DeferredQueue>]) {
        let waiting: usize = queues.iter().map(|deferred| deferred.queue.len()).sum();
        self.deferred_pending.store(waiting as u64, Ordering::Release);
    }

    /// Returns how many events of `kind` have been dispatched.
    pub fn dispatch_count(&self, kind: EventKind) -> u64 {
        self.chains[kind.index()].dispatches.load(Ordering::Relaxed)
    }

    /// Returns `kind`'s chain in dispatch order.
    pub fn chain(&self, kind: EventKind) -> Vec<SubscriberInfo> {
        let Some(snapshot) = self.chains[kind.index()].snapshot() else {
            return Vec::new();
        };
        snapshot
            .iter()
            .filter(|subscriber| subscriber.alive.load(Ordering::Acquire))
            .map(|subscriber| {
                let hits = subscriber.hits.load(Ordering::Relaxed);
                let sampled_calls = subscriber.sampled_calls.load(Ordering::Relaxed);
                let sampled = subscriber.sampled_instructions.load(Ordering::Relaxed);
                let instructions = if sampled_calls == 0 {
                    0
                } else {
                    u64::try_from(
                        u128::from(sampled) * u128::from(hits) / u128::from(sampled_calls),
                    )
                    .unwrap_or(u64::MAX)
                };
                SubscriberInfo {
                    name: subscriber.name,
                    priority: subscriber.priority,
                    hits,
                    instructions,
                    deferred_queue: subscriber
                        .deferred_queue
                        .and_then(|id| u16::try_from(id).ok())
                        .map(QueueId),
                }
            })
            .collect()
    }

    /// Returns every deferred queue's state.
    pub fn queues(&self) -> Vec<QueueInfo> {
        let Some(queues) = self.deferred.try_lock().map(|queues| queues.clone()) else {
            return Vec::new();
        };
        queues
            .iter()
            .map(|deferred| QueueInfo {
                id: deferred.id,
                name: deferred.queue.name(),
                capacity: deferred.queue.capacity(),
                depth: deferred.queue.len(),
                policy: deferred.queue.policy(),
                stats: deferred.queue.stats(),
                quarantined: deferred.quarantined.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Formats `kind`'s chain as a table, one subscriber per line.
    pub fn describe_chain(&self, kind: EventKind) -> String {
        use core::fmt::Write;

        let mut text = String::new();
        let composition = match kind.composition() {
            Composition::FirstDecision => "first decision wins",
            Composition::Broadcast => "broadcast",
        };
        let _ = writeln!(text, "{kind} ({composition}), {} dispatched:", self.dispatch_count(kind));
        for (position, info) in self.chain(kind).iter().enumerate() {
            let mode = if info.deferred_queue.is_some() { "deferred" } else { "immediate" };
            let _ = writeln!(
                text,
                "  {position:2}. {:<14} {:<24} {:<9} hits {:>8}  instructions {:>10}",
                info.priority.to_string(),
                info.name,
                mode,
                info.hits,
                info.instructions
            );
        }
        if kind == EventKind::Irq {
            for (line, cell) in self.shared_lines.iter().enumerate() {
                let Some(shared) = cell.get() else { continue };
                let _ = write!(
                    text,
                    "  shared line {line} ({} spurious), asked in order:",
                    shared.spurious()
                );
                for claimant in shared.claimants() {
                    let _ = write!(
                        text,
                        " {} ({}/{} claimed)",
                        claimant.name, claimant.claims, claimant.asked
                    );
                }
                let _ = writeln!(text);
            }
        }
        text
    }
}
