//! Dispatch: one event through its chain's snapshot, highest priority first.
//!
//! The hot loop is one indirect call per subscriber (the handler's vtable, the closure as its
//! context) and a check of the subscriber's `alive` flag; nothing is counted per subscriber:
//! one count per dispatch, on this CPU's own cache line, records where the dispatch stopped,
//! and every subscriber's calls follow from those. Bands were resolved into three lists when
//! the snapshot was built, and an `irq` event only meets its own line's list. One dispatch in [`TIMING_SAMPLE_PERIOD`] per CPU and chain takes the
//! timed copy of the loop, out of line.

use core::sync::atomic::Ordering;

use super::{
    Bus, Composition, Event, Outcome, Reply, Verdict,
    chain::{List, Subscriber},
    running,
};
use crate::sync::local::{self, MAX_CPUS};

/// Handler timing is sampled: one dispatch in this many per chain and CPU is timed (the first
/// one always), and a handler's total is estimated from its sampled average. Timing every call
/// would cost two clock reads per handler, more than the rest of the dispatch.
pub const TIMING_SAMPLE_PERIOD: u64 = 16;

/// Calls one subscriber; with a `clock`, also times the call on `cpu`.
#[inline(always)]
fn call(
    subscriber: &Subscriber,
    event: &Event,
    reply: &mut Reply,
    cpu: usize,
    clock: Option<fn() -> u64>,
) -> Verdict {
    running::set(cpu, subscriber.name_index);
    match clock {
        None => (subscriber.handler)(event, reply),
        Some(clock) => {
            let start = clock();
            let verdict = (subscriber.handler)(event, reply);
            let spent = clock().wrapping_sub(start);
            let counters = &subscriber.per_cpu[cpu];
            counters.sampled_calls.fetch_add(1, Ordering::Relaxed);
            counters.sampled_instructions.fetch_add(spent, Ordering::Relaxed);
            verdict
        }
    }
}

/// Runs the deciders (security, then owners) until one decides; returns the outcome and the
/// decider's position, if one decided.
#[inline(always)]
fn decide<const FIRST_DECISION: bool>(
    list: &List,
    event: &Event,
    reply: &mut Reply,
    cpu: usize,
    clock: Option<fn() -> u64>,
) -> (Outcome, Option<usize>) {
    let first_decision = FIRST_DECISION;
    for (position, subscriber) in list.security.iter().enumerate() {
        // Relaxed is enough: `drop` stores before it returns, and on this CPU program order
        // makes the store visible; another CPU that still sees `true` began its call first.
        if !subscriber.alive.load(Ordering::Relaxed) {
            continue;
        }
        // Security may only deny; a `Handled` from it grants nothing.
        if let Verdict::Deny(errno) = call(subscriber, event, reply, cpu, clock)
            && first_decision
        {
            return (Outcome::Denied(errno), Some(position));
        }
    }
    let mut outcome = Outcome::Unhandled;
    for (position, subscriber) in list.owners.iter().enumerate() {
        if !subscriber.alive.load(Ordering::Relaxed) {
            continue;
        }
        let decided = match call(subscriber, event, reply, cpu, clock) {
            Verdict::Continue => continue,
            Verdict::Handled if first_decision => Outcome::Handled,
            Verdict::Handled => {
                outcome = Outcome::Handled;
                continue;
            }
            Verdict::Deny(errno) if first_decision => Outcome::Denied(errno),
            Verdict::Deny(_) => continue,
        };
        return (decided, Some(list.security.len() + position));
    }
    (outcome, None)
}

/// Runs `list` and combines the verdicts (see [`Composition`]); observers see the outcome.
#[inline(always)]
fn run<const FIRST_DECISION: bool>(
    list: &List,
    event: &Event,
    reply: &mut Reply,
    cpu: usize,
    clock: Option<fn() -> u64>,
) -> Outcome {
    let (outcome, decider) = decide::<FIRST_DECISION>(list, event, reply, cpu, clock);
    if let Some(position) = decider {
        list.count_decision(cpu, position);
    }
    for subscriber in &list.observers {
        if !subscriber.alive.load(Ordering::Relaxed) {
            continue;
        }
        reply.outcome = outcome;
        call(subscriber, event, reply, cpu, clock);
    }
    running::clear(cpu);
    outcome
}

/// [`run`] with every handler timed: one dispatch in [`TIMING_SAMPLE_PERIOD`].
#[cold]
#[inline(never)]
fn run_timed<const FIRST_DECISION: bool>(
    list: &List,
    event: &Event,
    reply: &mut Reply,
    cpu: usize,
    clock: Option<fn() -> u64>,
) -> Outcome {
    run::<FIRST_DECISION>(list, event, reply, cpu, clock)
}

impl Bus {
    /// Delivers `event` to its chain and returns the decision. Safe in any context, NMI
    /// included: it takes no lock, writes only this CPU's counters, allocates nothing and waits
    /// for nothing. Handlers run highest priority first; see [`Composition`] for how their
    /// verdicts combine, per kind.
    #[inline]
    pub fn dispatch(&self, event: &Event, reply: &mut Reply) -> Outcome {
        let outcome = match event.kind().composition() {
            Composition::FirstDecision => self.dispatch_as::<true>(event, reply),
            Composition::Broadcast => self.dispatch_as::<false>(event, reply),
        };
        reply.outcome = outcome;
        outcome
    }

    /// [`dispatch`](Self::dispatch) for one composition, so the loops are compiled for it. Never
    /// inlined: every source (trap entry, syscall entry, benchmarks) runs the same two copies,
    /// so what the benchmark measures is what interrupts and system calls pay.
    #[inline(never)]
    fn dispatch_as<const FIRST_DECISION: bool>(&self, event: &Event, reply: &mut Reply) -> Outcome {
        let kind = event.kind();
        // Reduced here so the compiler knows every per-CPU index below is in bounds.
        let cpu = local::cpu_index() % MAX_CPUS;
        self.snapshots.read(cpu, kind.index(), |snapshot| {
            let Some(snapshot) = snapshot else {
                self.chains[kind.index()].count_unsubscribed(cpu);
                return Outcome::Unhandled;
            };
            let list = snapshot.list_for(event);
            if list.begin(cpu) % TIMING_SAMPLE_PERIOD == 0 {
                run_timed::<FIRST_DECISION>(list, event, reply, cpu, self.clock.get().copied())
            } else {
                run::<FIRST_DECISION>(list, event, reply, cpu, None)
            }
        })
    }
}
