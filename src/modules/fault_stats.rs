//! Interrupt and fault statistics: an observer of the `exception` and `page-fault` chains
//! counting per vector, beside the per-line interrupt counts the bus keeps anyway.
//!
//! It observes no `irq` events: every line's sequence number already counts its interrupts
//! (`irq::LINES`), and an observer on every interrupt would cost each one a call to count them
//! twice.

use alloc::{format, string::String, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Module, ModuleError, Registrar};
use crate::events::{
    Event, EventKind, Priority, Verdict,
    irq::{LINE_COUNT, LINES},
};

/// Counters per exception vector.
pub(super) struct FaultStats {
    exceptions: [AtomicU64; 32],
    user_page_faults: AtomicU64,
    kernel_page_faults: AtomicU64,
}

pub(super) static MODULE: FaultStats = FaultStats {
    exceptions: [const { AtomicU64::new(0) }; 32],
    user_page_faults: AtomicU64::new(0),
    kernel_page_faults: AtomicU64::new(0),
};

impl Module for FaultStats {
    fn name(&self) -> &'static str {
        "fault-stats"
    }

    fn description(&self) -> &'static str {
        "counts faults per vector; shows interrupts per line"
    }

    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError> {
        let count = |event: &Event| {
            match *event {
                Event::Exception { vector, .. } => {
                    if let Some(counter) = self.exceptions.get(usize::from(vector)) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Event::PageFault { from_user, .. } => {
                    let counter =
                        if from_user { &self.user_page_faults } else { &self.kernel_page_faults };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            Verdict::Continue
        };
        for kind in [EventKind::Exception, EventKind::PageFault] {
            registrar.subscribe(kind, Priority::OBSERVER, move |event, _| count(event))?;
        }
        Ok(())
    }

    fn stats(&self) -> Option<String> {
        let nonzero = |counters: &[AtomicU64], label: &str| -> Vec<String> {
            counters
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let n = c.load(Ordering::Relaxed);
                    (n > 0).then(|| format!("{label}{i}:{n}"))
                })
                .collect()
        };
        let mut parts: Vec<String> = (0..LINE_COUNT as u8)
            .filter_map(|line| {
                let raised = LINES.stats(line).raised;
                (raised > 0).then(|| format!("irq{line}:{raised}"))
            })
            .collect();
        parts.extend(nonzero(&self.exceptions, "vec"));
        parts.push(format!(
            "page faults user:{} kernel:{}",
            self.user_page_faults.load(Ordering::Relaxed),
            self.kernel_page_faults.load(Ordering::Relaxed)
        ));
        Some(parts.join(" "))
    }
}
