//! Requests one CPU makes of another and their answers, counted: a requester draws a ticket
//! from the target's request count, interrupts the target (the caller's business), and waits
//! until the target's answered count reaches its ticket; the target, whenever it looks, does the
//! work once for every request outstanding and raises its answered count to what it had seen
//! requested. TLB shootdowns and the benchmarks' pings are built on it.
//!
//! Reentrancy: the target's answer may interrupt its own answer (a poll in a spin-wait, then the
//! IPI): both do the work, and `fetch_max` never lowers the answered count. Any number of
//! requesters may ask at once: tickets are drawn with one atomic add.

#![forbid(unsafe_code)]

use super::{
    atomic::{AtomicU64, Ordering},
    local::MAX_CPUS,
};

/// The request and answer counts of every CPU.
pub struct Handshake {
    requested: [AtomicU64; MAX_CPUS],
    answered: [AtomicU64; MAX_CPUS],
}

/// A requester's place in a target's queue of requests.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Ticket {
    cpu: usize,
    number: u64,
}

impl Handshake {
    /// No requests yet.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            requested: [const { AtomicU64::new(0) }; MAX_CPUS],
            answered: [const { AtomicU64::new(0) }; MAX_CPUS],
        }
    }

    /// No requests yet.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            requested: core::array::from_fn(|_| AtomicU64::new(0)),
            answered: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Asks `cpu` for an answer; the caller then makes sure it looks (an IPI).
    pub fn request(&self, cpu: usize) -> Ticket {
        let cpu = cpu % MAX_CPUS;
        Ticket { cpu, number: self.requested[cpu].fetch_add(1, Ordering::SeqCst) + 1 }
    }

    /// Whether the request behind `ticket` has been answered.
    pub fn is_answered(&self, ticket: Ticket) -> bool {
        self.answered[ticket.cpu].load(Ordering::Acquire) >= ticket.number
    }

    /// On `cpu`: if requests are outstanding, runs `work` once for all of them and answers
    /// them; returns whether it did.
    pub fn answer(&self, cpu: usize, work: impl FnOnce()) -> bool {
        let cpu = cpu % MAX_CPUS;
        let wanted = self.requested[cpu].load(Ordering::Acquire);
        if self.answered[cpu].load(Ordering::Relaxed) >= wanted {
            return false;
        }
        work();
        self.answered[cpu].fetch_max(wanted, Ordering::Release);
        true
    }
}

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}
