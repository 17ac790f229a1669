//! Interrupt and fault statistics: an observer of the `irq`, `exception` and `page-fault`
//! chains counting per line and per vector.

use alloc::{format, string::String, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Module, ModuleError, Registrar};
use crate::events::{Event, EventKind, Priority, Verdict, irq::LINE_COUNT};

/// Counters per interrupt line and per exception vector.
pub(super) struct FaultStats {
    irqs: [AtomicU64; LINE_COUNT],
    exceptions: [AtomicU64; 32],
    user_page_faults: AtomicU64,
    kernel_page_faults: AtomicU64,
}

pub(super) static MODULE: FaultStats = FaultStats {
    irqs: [const { AtomicU64::new(0) }; LINE_COUNT],
    exceptions: [const { AtomicU64::new(0) }; 32],
    user_page_faults: AtomicU64::new(0),
    kernel_page_faults: AtomicU64::new(0),
};

impl Module for FaultStats {
    fn name(&self) -> &'static str {
        "fault-stats"
    }

    fn description(&self) -> &'static str {
        "counts interrupts per line and faults per vector"
    }

    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError> {
        let count = |event: &Event| {
            match *event {
                Event::Irq { line, .. } => {
                    if let Some(counter) = self.irqs.get(usize::from(line)) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
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
        for kind in [EventKind::Irq, EventKind::Exception, EventKind::PageFault] {
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
        let mut parts = nonzero(&self.irqs, "irq");
        parts.extend(nonzero(&self.exceptions, "vec"));
        parts.push(format!(
            "page faults user:{} kernel:{}",
            self.user_page_faults.load(Ordering::Relaxed),
            self.kernel_page_faults.load(Ordering::Relaxed)
        ));
        Some(parts.join(" "))
    }
}
