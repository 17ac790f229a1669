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
//! Pure logic: no `unsafe`, no architecture imports, so all of it is tested on the host.
#![forbid(unsafe_code)]

mod bus;
mod chain;
mod errno;
mod event;
pub mod irq;
mod memory;
mod priority;
mod queue;
mod shared;
#[cfg(test)]
mod tests;

pub use self::{
    bus::{
        Bus, BusError, DeferredGuard, Overrun, QueueInfo, SubscriberInfo, Subscription,
        TIMING_SAMPLE_PERIOD,
    },
    chain::{Handler, MAX_SUBSCRIBERS_PER_CHAIN},
    errno::Errno,
    event::{Access, Composition, Event, EventKind, QueueId},
    memory::{MemoryRequest, Protection, SpaceId},
    priority::{Band, Priority},
    queue::{BoundedQueue, Delivery, OverflowPolicy, PushOutcome, QueueStats},
    shared::{Asking, ClaimantInfo, REORDER_PERIOD, SharedLine},
    verdict::{Outcome, Reply, Verdict},
};

mod verdict;

/// The kernel's bus: arch code dispatches every interrupt, fault and syscall here.
pub static BUS: Bus = Bus::new();
