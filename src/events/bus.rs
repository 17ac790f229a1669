//! The bus: one chain per event kind, registration and introspection. Dispatch is in
//! `dispatch.rs`, the deferred queues' engine in `deferred.rs`, publication in `chain.rs`.

use alloc::{
    boxed::Box,
    string::{String, ToString},
    sync::Arc,
    vec::Vec,
};
use core::sync::atomic::Ordering;

use conquer_once::spin::OnceCell;

use super::{
    Asking, BusError, Composition, DeferredGuard, Event, EventKind, OverflowPolicy, Overrun,
    Priority, QueueId, QueueInfo, Reply, SharedLine, SyscallAbi, Verdict,
    chain::{self, Chain, Handler, Only, Snapshots, Subscriber},
    deferred::{Deferred, DeferredQueue},
};
use crate::sync::local;

/// The event bus. The kernel has one ([`BUS`](super::BUS)); tests and benchmarks make their own.
pub struct Bus {
    pub(super) snapshots: Snapshots,
    pub(super) chains: [Chain; EventKind::COUNT],
    pub(super) clock: OnceCell<fn() -> u64>,
    pub(super) deferred: Deferred,
    /// Lines shared by several devices (created by [`Bus::shared_irq_line`]).
    shared_lines: [OnceCell<Arc<SharedLine>>; super::irq::LINE_COUNT],
}

/// A live registration; dropping it unregisters the handler.
///
/// After `drop` returns, no call of the handler begins anywhere; a call begins when a dispatch
/// (or, for a deferred handler, the idle task) reads the subscriber's alive flag, which `drop`
/// clears first. Dropped outside any dispatch (the usual case: thread context), `drop` also
/// waits for a grace period, so no immediate call is still running on another CPU either.
/// Dropped inside a dispatch on this CPU (from a handler, or an interrupt that landed in one),
/// it cannot wait for the dispatch it is part of: calls already begun, there or on other CPUs,
/// finish on their own. A deferred handler already running on another CPU is not waited for.
///
/// Because of that wait, never drop a subscription while holding a lock that a handler may
/// take: the handler's CPU could not leave its dispatch (move it out and drop it after).
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
        // First, before anything can fail or wait: no dispatch starts a call after this.
        self.subscriber.alive.store(false, Ordering::SeqCst);
        if let Some(deferred) = &self.deferred {
            deferred.alive.store(false, Ordering::Release);
        }
        let bus = self.bus;
        let chain = &bus.chains[self.kind.index()];
        let reclaimed = chain
            .publish(&bus.snapshots, self.kind, |subscribers| {
                subscribers.retain(|s| !Arc::ptr_eq(s, &self.subscriber));
                Ok(())
            })
            .unwrap_or_default();
        chain::free(reclaimed, &bus.snapshots);
        if bus.snapshots.synchronize(local::cpu_index()) {
            chain::free(chain.reclaim(&bus.snapshots), &bus.snapshots);
        }
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
    /// Estimated guest instructions spent in the handler so far (see
    /// [`TIMING_SAMPLE_PERIOD`](super::TIMING_SAMPLE_PERIOD)).
    pub instructions: u64,
    /// The deferred queue feeding it, if it is a deferred handler.
    pub deferred_queue: Option<QueueId>,
    /// The one interrupt line it receives, if it is bound to one.
    pub only_line: Option<u8>,
    /// The one system-call numbering it receives, if it is bound to one.
    pub only_abi: Option<SyscallAbi>,
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
            snapshots: Snapshots::new(),
            chains: [const { Chain::new() }; EventKind::COUNT],
            clock: OnceCell::uninit(),
            deferred: Deferred::new(),
            shared_lines: [const { OnceCell::uninit() }; super::irq::LINE_COUNT],
        }
    }

    /// Sets the clock used to account handler time (the TSC, on x86_64). Only the first call
    /// takes effect.
    pub fn set_clock(&self, clock: fn() -> u64) {
        // A clock already set stays: handler statistics must not switch units midway.
        let _ = self.clock.try_init_once(|| clock);
    }

    /// Registers an immediate handler: it runs inside [`dispatch`](Self::dispatch), in
    /// interrupt context for interrupts, so it must be short and must not block.
    ///
    /// Safe from any context but NMI, including from inside a handler of the same chain; the
    /// new handler takes part from the next dispatch on. It never waits for a dispatch, only
    /// (briefly) for another CPU's change to the same chain.
    pub fn subscribe(
        &'static self,
        kind: EventKind,
        name: &'static str,
        priority: Priority,
        handler: impl Fn(&Event, &mut Reply) -> Verdict + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        self.subscribe_entry(kind, name, priority, None, None, Box::new(handler), None)
    }

    /// [`subscribe`](Self::subscribe) to the `syscall` events of programs using one numbering
    /// only: a dispatch of the other numbering's calls never visits it (an owner of Linux
    /// calls costs Herald's programs nothing, and the other way round).
    pub fn subscribe_syscalls(
        &'static self,
        abi: SyscallAbi,
        name: &'static str,
        priority: Priority,
        handler: impl Fn(&Event, &mut Reply) -> Verdict + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        let only = Some(Only::Abi(abi));
        self.subscribe_entry(
            EventKind::Syscall,
            name,
            priority,
            None,
            only,
            Box::new(handler),
            None,
        )
    }

    /// Registers a deferred handler: the dispatch only queues the event (a short critical
    /// section, safe in interrupt context) and `handler` runs later from
    /// [`run_deferred`](Self::run_deferred), in a kernel task. A loss is delivered to `handler`
    /// as [`Event::Lost`] before the next event.
    ///
    /// Only notification kinds can be deferred: a request (exception, page fault, system call,
    /// memory) must be decided while its source waits, so those are refused with
    /// [`BusError::DeferredRequest`]. This also keeps NMIs (exceptions) away from every queue.
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
        self.subscribe_queued(kind, None, name, priority, capacity, policy, Box::new(handler))
    }

    /// A deferred handler for one interrupt line: a driver's bottom half. Only `line`'s events
    /// reach it (it sits in that line's list); they are queued and keep the line masked until
    /// handled.
    pub fn subscribe_irq_line(
        &'static self,
        line: u8,
        name: &'static str,
        priority: Priority,
        capacity: usize,
        policy: OverflowPolicy,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        let handler = Box::new(handler);
        self.subscribe_queued(EventKind::Irq, Some(line), name, priority, capacity, policy, handler)
    }

    #[expect(clippy::too_many_arguments, reason = "the two public entry points name them all")]
    fn subscribe_queued(
        &'static self,
        kind: EventKind,
        only_line: Option<u8>,
        name: &'static str,
        priority: Priority,
        capacity: usize,
        policy: OverflowPolicy,
        handler: Box<dyn Fn(&Event) + Send + Sync>,
    ) -> Result<Subscription, BusError> {
        let (deferred, enqueue) = self.deferred.add(kind, name, capacity, policy, handler)?;
        let id = deferred.id();
        let only = only_line.map(Only::Line);
        self.subscribe_entry(kind, name, priority, Some(id), only, enqueue, Some(deferred))
    }

    /// An immediate handler for one interrupt line only (a user-space driver's, which counts
    /// the interrupt and wakes its process): other lines' events never visit it.
    pub fn subscribe_line(
        &'static self,
        line: u8,
        name: &'static str,
        priority: Priority,
        handler: impl Fn(&Event, &mut Reply) -> Verdict + Send + Sync + 'static,
    ) -> Result<Subscription, BusError> {
        let only = Some(Only::Line(line));
        self.subscribe_entry(EventKind::Irq, name, priority, None, only, Box::new(handler), None)
    }

    /// Installs the watchdog's means: `guard` runs each deferred handler so it can be
    /// abandoned, `milliseconds` times it. Only the first call takes effect.
    pub fn set_deferred_guard(&self, guard: DeferredGuard, milliseconds: fn() -> u64) {
        self.deferred.set_guard(guard, milliseconds);
    }

    /// The watchdog, called from the timer interrupt before the tick is dispatched: if a
    /// deferred handler has been running for `budget_ms` or more, it is quarantined (never
    /// called again, no more events queued for it) and returned, so the caller can take the CPU
    /// back from it. Not while the handler is inside a dispatch of its own (it is then
    /// quarantined once it is back out, at a later tick).
    pub fn watchdog(&self, now_ms: u64, budget_ms: u64) -> Option<Overrun> {
        self.deferred.watchdog(&self.snapshots, now_ms, budget_ms)
    }

    /// Deferred handlers the watchdog has quarantined since boot.
    pub fn quarantined_count(&self) -> u64 {
        self.deferred.quarantined_count()
    }

    /// Returns whether deferred handlers have events waiting.
    pub fn has_deferred_work(&self) -> bool {
        self.deferred.has_work()
    }

    /// Runs deferred handlers on up to `budget` waiting events, round-robin over queues so one
    /// busy queue cannot starve the others. Returns how many deliveries were made. Thread
    /// context only (the kernel's idle task), never from interrupt context or a handler.
    pub fn run_deferred(&self, budget: usize) -> usize {
        self.reclaim_retired();
        self.deferred.run(&self.snapshots, budget)
    }

    /// Returns every deferred queue's state.
    pub fn queues(&self) -> Vec<QueueInfo> {
        self.deferred.queues()
    }

    #[expect(clippy::too_many_arguments, reason = "private; the public entry points name them")]
    pub(super) fn subscribe_entry(
        &'static self,
        kind: EventKind,
        name: &'static str,
        priority: Priority,
        deferred_queue: Option<QueueId>,
        only: Option<Only>,
        handler: Handler,
        deferred: Option<Arc<DeferredQueue>>,
    ) -> Result<Subscription, BusError> {
        let subscriber = Arc::new(Subscriber::new(name, priority, deferred_queue, only, handler));
        let new = subscriber.clone();
        let chain = &self.chains[kind.index()];
        let published =
            chain.publish(&self.snapshots, kind, |subscribers| chain::insert(subscribers, new));
        match published {
            Ok(reclaimed) => chain::free(reclaimed, &self.snapshots),
            Err(error) => {
                if let Some(deferred) = &deferred {
                    deferred.alive.store(false, Ordering::Release);
                }
                return Err(error);
            }
        }
        Ok(Subscription { bus: self, kind, subscriber, deferred })
    }

    /// Frees retired snapshots whose grace period is over. The idle task calls this (through
    /// [`run_deferred`](Self::run_deferred)) for snapshots retired inside a dispatch.
    pub fn reclaim_retired(&self) {
        for chain in &self.chains {
            chain::free(chain.reclaim(&self.snapshots), &self.snapshots);
        }
    }

    /// Retired snapshots still waiting for their grace period, over all chains.
    pub fn retired_snapshots(&self) -> usize {
        self.chains.iter().map(Chain::retired_count).sum()
    }

    /// The shared-line dispatcher of interrupt `line`, created (and subscribed as the line's
    /// owner, asking handlers in claim order) on first use. Devices add their "is it mine?"
    /// handlers to it.
    pub fn shared_irq_line(
        &'static self,
        line: u8,
        asking: Asking,
    ) -> Result<Arc<SharedLine>, BusError> {
        let cell = self.shared_lines.get(usize::from(line)).ok_or(BusError::NoSuchLine)?;
        let mut created = None;
        let shared = cell.get_or_init(|| {
            let shared = Arc::new(SharedLine::new(asking));
            created = Some(shared.clone());
            shared
        });
        if let Some(dispatcher) = created {
            let handler: Handler = Box::new(move |event, _| dispatcher.offer(event));
            self.subscribe_entry(
                EventKind::Irq,
                "shared-irq",
                Priority::OWNER,
                None,
                Some(Only::Line(line)),
                handler,
                None,
            )?
            .keep_forever();
        }
        Ok(shared.clone())
    }

    /// Returns how many events of `kind` have been dispatched.
    pub fn dispatch_count(&self, kind: EventKind) -> u64 {
        self.chains[kind.index()].dispatches(&self.snapshots, kind)
    }

    /// Events of every kind dispatched on processor `cpu` so far.
    pub fn dispatched_on(&self, cpu: usize) -> u64 {
        EventKind::ALL
            .iter()
            .map(|&kind| self.chains[kind.index()].dispatches_on(cpu, &self.snapshots, kind))
            .sum()
    }

    /// Deferred deliveries (handler calls) run on processor `cpu` so far.
    pub fn deferred_run_on(&self, cpu: usize) -> u64 {
        self.deferred.ran_on(cpu)
    }

    /// Returns `kind`'s chain in dispatch order.
    pub fn chain(&self, kind: EventKind) -> Vec<SubscriberInfo> {
        self.chains[kind.index()]
            .subscribers(&self.snapshots, kind)
            .iter()
            .map(|(subscriber, calls)| SubscriberInfo {
                name: subscriber.name,
                priority: subscriber.priority,
                hits: *calls,
                instructions: subscriber.estimated_instructions(*calls),
                deferred_queue: subscriber.deferred_queue,
                only_line: match subscriber.only {
                    Some(Only::Line(line)) => Some(line),
                    _ => None,
                },
                only_abi: match subscriber.only {
                    Some(Only::Abi(abi)) => Some(abi),
                    _ => None,
                },
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
            let _ = write!(
                text,
                // Time-stamp counter cycles: guest instructions only under `-icount`.
                "  {position:2}. {:<14} {:<24} {:<9} hits {:>8}  tsc cycles {:>10}",
                info.priority.to_string(),
                info.name,
                mode,
                info.hits,
                info.instructions
            );
            if let Some(line) = info.only_line {
                let _ = write!(text, "  line {line}");
            }
            if let Some(abi) = info.only_abi {
                let _ = write!(text, "  {abi:?} calls only");
            }
            let _ = writeln!(text);
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
