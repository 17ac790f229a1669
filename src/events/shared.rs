//! Shared interrupt lines: several devices raise one line, and each device's handler answers
//! "mine" or "not mine". Handlers are asked in order of how often they claimed the line, so the
//! busiest device is found first (the order adapts as the traffic does); the first claim ends
//! the search. A line on which nobody claims an interrupt counts as unhandled — spurious — in
//! the line's statistics, which is what the unhandled rule in [`irq`](super::irq) watches.
//!
//! Stopping at the first claim is right for level-triggered lines (a line still asserted by a
//! second device interrupts again at once); [`Asking::All`] asks everyone, for edge-triggered
//! lines where a second simultaneous request would otherwise be lost.

use alloc::{boxed::Box, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Event, Verdict};
use crate::sync::IrqSpinLock;

/// Interrupts between re-orderings of the handlers by claim count.
pub const REORDER_PERIOD: u64 = 64;

/// How many handlers an interrupt is offered to.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Asking {
    /// Until one claims it (level-triggered lines).
    UntilClaimed,
    /// Every handler (edge-triggered lines).
    All,
}

/// One device's handler on a shared line.
struct Claimant {
    name: &'static str,
    is_mine: Box<dyn Fn(&Event) -> bool + Send + Sync>,
    claims: AtomicU64,
    asked: AtomicU64,
}

/// A claimant's counters, for `chains`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct ClaimantInfo {
    /// Its name.
    pub name: &'static str,
    /// Interrupts it claimed.
    pub claims: u64,
    /// Interrupts it was asked about.
    pub asked: u64,
}

/// The handlers of one shared line, in their current order.
pub struct SharedLine {
    asking: Asking,
    /// Held with interrupts masked: `add` from thread context and `offer` from the line's
    /// interrupt never find each other half-way on one CPU.
    claimants: IrqSpinLock<Vec<Arc<Claimant>>>,
    interrupts: AtomicU64,
    spurious: AtomicU64,
}

impl SharedLine {
    /// An empty shared line.
    pub const fn new(asking: Asking) -> Self {
        Self {
            asking,
            claimants: IrqSpinLock::new(Vec::new()),
            interrupts: AtomicU64::new(0),
            spurious: AtomicU64::new(0),
        }
    }

    /// Adds a device's handler; it starts last. `is_mine` runs in the line's interrupt with the
    /// claimant list locked: it must only look at its device (never add to this line).
    pub fn add(
        &self,
        name: &'static str,
        is_mine: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) {
        let claimant = Arc::new(Claimant {
            name,
            is_mine: Box::new(is_mine),
            claims: AtomicU64::new(0),
            asked: AtomicU64::new(0),
        });
        self.claimants.lock().push(claimant);
    }

    /// Offers an interrupt to the handlers: `Handled` if one (or, asking all, any) claimed it.
    /// Every `REORDER_PERIOD` interrupts the most frequent claimants move to the front
    /// (a stable sort, so equal counts keep their order).
    pub fn offer(&self, event: &Event) -> Verdict {
        let count = self.interrupts.fetch_add(1, Ordering::Relaxed) + 1;
        let mut claimants = self.claimants.lock();
        let mut claimed = false;
        for claimant in claimants.iter() {
            claimant.asked.fetch_add(1, Ordering::Relaxed);
            if (claimant.is_mine)(event) {
                claimant.claims.fetch_add(1, Ordering::Relaxed);
                claimed = true;
                if self.asking == Asking::UntilClaimed {
                    break;
                }
            }
        }
        if count.is_multiple_of(REORDER_PERIOD) {
            claimants.sort_by_key(|c| core::cmp::Reverse(c.claims.load(Ordering::Relaxed)));
        }
        drop(claimants);
        if claimed {
            Verdict::Handled
        } else {
            self.spurious.fetch_add(1, Ordering::Relaxed);
            Verdict::Continue
        }
    }

    /// The handlers in their current order.
    pub fn claimants(&self) -> Vec<ClaimantInfo> {
        self.claimants
            .lock()
            .iter()
            .map(|c| ClaimantInfo {
                name: c.name,
                claims: c.claims.load(Ordering::Relaxed),
                asked: c.asked.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Interrupts nobody claimed.
    pub fn spurious(&self) -> u64 {
        self.spurious.load(Ordering::Relaxed)
    }
}
