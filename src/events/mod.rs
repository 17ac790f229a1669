//! The priority event bus: typed events, prioritised handler chains, bounded queues.
//!
//! Arch code turns interrupts, faults and system calls into an [`Event`] and calls
//! [`Bus::dispatch`]; subsystems register handlers with [`Bus::subscribe`] (immediate) or
//! [`Bus::subscribe_deferred`] (queued, run later by a kernel task) at a [`Priority`].
//!
//! | band | runs | may answer |
//! | --- | --- | --- |
//! | security | first | `Continue` or `Deny(errno)` — never grants |
//! | owner | next | `Handled`, `Deny`, `Continue` |
//! | observer | last, for every dispatched event | ignored; reads `Reply::outcome` |
//!
//! How verdicts combine is set per kind by [`EventKind::composition`]: requests use
//! "first decision wins", notifications are broadcast to every handler.
//!
//! # Reentrancy contract
//!
//! An interrupt can land at any instruction, and another CPU can run the same code at once.
//! Nothing below that is reachable from interrupt context ever waits for something the code it
//! interrupted may hold: the only waits are for *another* CPU inside a short critical section
//! with its interrupts masked, or (drop, outside any dispatch) for other CPUs to leave dispatch.
//!
//! | operation | callable from | if interrupted on its CPU / run by another CPU at once |
//! | --- | --- | --- |
//! | [`Bus::dispatch`] | anywhere, NMI included | no lock, no wait, no allocation; reads the published snapshot inside an RCU read section (two atomic instructions on this CPU's own cache line); a nested dispatch is a nested section |
//! | [`Bus::subscribe`], `subscribe_deferred`, `subscribe_irq_line` | thread, interrupt, inside a handler; not NMI | the chain's lock is held with interrupts masked, so an interrupt never finds its own CPU's thread half-way; another CPU's change is waited for (bounded); never fails for contention |
//! | `Subscription::drop` | thread, interrupt, inside a handler (itself included); not NMI; never under a lock a handler takes | marks the subscriber dead first (no call begins after that, anywhere), republishes under the chain lock; outside any dispatch it then waits for a grace period, inside one it cannot (see [`Subscription`]) |
//! | [`BoundedQueue::push`] (the enqueue of a deferred subscriber) | thread, interrupt; not NMI | one critical section with interrupts masked; never waits for the consumer |
//! | [`BoundedQueue::pop`], [`Bus::run_deferred`] | thread only (the idle task) | pop as push; `run_deferred` holds no lock while a handler runs |
//! | [`SharedLine::offer`], [`SharedLine::add`] | offer: the line's interrupt; add: thread | the claimant list is an interrupts-masked lock |
//! | [`Bus::watchdog`] | the timer interrupt | the running-handler record is an interrupts-masked lock; a handler inside a dispatch of its own is not abandoned until it is back out (its read section would stay open) |
//! | introspection (`chain`, `queues`, `dispatch_count`) | thread, interrupt; not NMI | takes the same masked locks briefly; counters are per CPU and summed |
//!
//! NMI context may only dispatch: an NMI becomes an `exception` event, and exceptions (like
//! every request kind) cannot have deferred subscribers, so no NMI ever reaches a queue or a
//! lock. Immediate `exception` handlers must themselves be NMI-safe.
//!
//! Pure logic: no `unsafe`, no architecture imports, so all of it is tested on the host. The
//! lock-free pieces it stands on (RCU, the masked lock) are in `crate::sync`.
#![forbid(unsafe_code)]

mod bus;
mod chain;
mod deferred;
mod dispatch;
mod error;
mod event;
pub mod irq;
mod memory;
mod priority;
mod queue;
pub mod running;
mod shared;
#[cfg(test)]
mod tests;
mod verdict;

pub use self::{
    bus::{Bus, SubscriberInfo, Subscription},
    chain::{Handler, MAX_SUBSCRIBERS_PER_CHAIN},
    deferred::{DeferredGuard, Overrun, QueueInfo},
    dispatch::TIMING_SAMPLE_PERIOD,
    error::BusError,
    event::{Access, Composition, Event, EventKind, QueueId, SyscallAbi},
    memory::{MemoryRequest, Protection, SpaceId},
    priority::{Band, Priority},
    queue::{BoundedQueue, Delivery, OverflowPolicy, PushOutcome, QueueStats},
    shared::{Asking, ClaimantInfo, REORDER_PERIOD, SharedLine},
    verdict::{Outcome, Reply, Verdict},
};
/// Shared with `user/` through the ABI.
pub use crate::abi::Errno;

/// The kernel's bus: arch code dispatches every interrupt, fault and syscall here.
pub static BUS: Bus = Bus::new();
