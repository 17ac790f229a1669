//! Dispatch: one event through its chain's snapshot, highest priority first.
//!
//! The hot loop is one indirect call per subscriber (the handler's vtable, the closure as its
//! context), a check of the subscriber's `alive` flag and a count on this CPU's own cache line.
//! Bands were resolved into ranges when the snapshot was built, and an `irq` event only meets
//! its own line's list. One dispatch in [`TIMING_SAMPLE_PERIOD`] per CPU and chain takes the
//! timed copy of the loop, out of line.

use core::sync::atomic::Ordering;

use super::{
    Bus, Composition, Event, Outcome, Reply, Verdict,
    chain::{List, Subscriber},
};
use crate::sync::local::{self, MAX_CPUS};

/// Handler timing is sampled: one dispatch in this many per chain and CPU is timed (the first
/// one always), and a handler's total is estimated from its sampled average. Timing every call
/// would cost two clock reads per handler, more than the rest of the dispatch.
pub const TIMING_SAMPLE_PERIOD: u64 = 16;

/// Calls one subscriber, counting the call on `cpu` (and its time, when `clock` is given).
#[inline(always)]
fn call(
    subscriber: &Subscriber,
    event: &Event,
    reply: &mut Reply,
    cpu: usize,
    clock: Option<fn() -> u64>,
) -> Verdict {
    let counters = &subscriber.per_cpu[cpu];
    counters.calls.fetch_add(1, Ordering::Relaxed);
    match clock {
        None => (subscriber.handler)(event, reply),
        Some(clock) => {
            let start = clock();
            let verdict = (subscriber.handler)(event, reply);
            let spent = clock().wrapping_sub(start);
            counters.sampled_calls.fetch_add(1, Ordering::Relaxed);
            counters.sampled_instructions.fetch_add(spent, Ordering::Relaxed);
            verdict
        }
    }
}

/// Runs `list` and combines the verdicts (see [`Composition`]).
#[inline(always)]
fn run(
    list: &List,
    event: &Event,
    reply: &mut Reply,
    cpu: usize,
    first_decision: bool,
    clock: Option<fn() -> u64>,
) -> Outcome {
    let (deciders, observers) = list.entries.split_at(list.owner_end);
    let (security, owners) = deciders.split_at(list.security_end);
    let mut outcome = Outcome::Unhandled;
    'decide: {
        for subscriber in security {
            if !subscriber.alive.load(Ordering::Acquire) {
                continue;
            }
            // Security may only deny; a `Handled` from it grants nothing.
            if let Verdict::Deny(errno) = call(subscriber, event, reply, cpu, clock)
                && first_decision
            {
                outcome = Outcome::Denied(errno);
                break 'decide;
            }
        }
        for subscriber in owners {
            if !subscriber.alive.load(Ordering::Acquire) {
                continue;
            }
            match call(subscriber, event, reply, cpu, clock) {
                Verdict::Continue => {}
                Verdict::Handled => {
                    outcome = Outcome::Handled;
                    if first_decision {
                        break 'decide;
                    }
                }
                Verdict::Deny(errno) if first_decision => {
                    outcome = Outcome::Denied(errno);
                    break 'decide;
                }
                Verdict::Deny(_) => {}
            }
        }
    }
    for subscriber in observers {
        if !subscriber.alive.load(Ordering::Acquire) {
            continue;
        }
        reply.outcome = outcome;
        call(subscriber, event, reply, cpu, clock);
    }
    outcome
}

impl Bus {
    /// Delivers `event` to its chain and returns the decision. Safe in any context, NMI
    /// included: it takes no lock, writes only this CPU's counters, allocates nothing and waits
    /// for nothing. Handlers run highest priority first; see [`Composition`] for how their
    /// verdicts combine, per kind.
    #[inline]
    pub fn dispatch(&self, event: &Event, reply: &mut Reply) -> Outcome {
        let kind = event.kind();
        // Reduced here so the compiler knows every per-CPU index below is in bounds.
        let cpu = local::cpu_index() % MAX_CPUS;
        let first_decision = kind.composition() == Composition::FirstDecision;
        let outcome = if self.chains[kind.index()].count_dispatch(cpu) % TIMING_SAMPLE_PERIOD == 0
        {
            self.dispatch_timed(event, reply, cpu, first_decision)
        } else {
            self.snapshots.read(cpu, kind.index(), |snapshot| match snapshot {
                Some(snapshot) => {
                    run(snapshot.list_for(event), event, reply, cpu, first_decision, None)
                }
                None => Outcome::Unhandled,
            })
        };
        reply.outcome = outcome;
        outcome
    }

    /// [`dispatch`](Self::dispatch) with every handler timed.
    #[cold]
    #[inline(never)]
    fn dispatch_timed(
        &self,
        event: &Event,
        reply: &mut Reply,
        cpu: usize,
        first_decision: bool,
    ) -> Outcome {
        let clock = self.clock.get().copied();
        self.snapshots.read(cpu, event.kind().index(), |snapshot| match snapshot {
            Some(snapshot) => run(snapshot.list_for(event), event, reply, cpu, first_decision, clock),
            None => Outcome::Unhandled,
        })
    }
}
