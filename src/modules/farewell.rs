//! The module from the README's walkthrough: says goodbye to every process that ends, and
//! counts them.

use alloc::{format, string::String};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Module, ModuleError, Registrar};
use crate::events::{Event, EventKind, Priority, Verdict};

/// Counts processes seen off.
pub(super) struct Farewell {
    seen: AtomicU64,
}

pub(super) static MODULE: Farewell = Farewell { seen: AtomicU64::new(0) };

impl Module for Farewell {
    fn name(&self) -> &'static str {
        "farewell"
    }

    fn description(&self) -> &'static str {
        "logs every process that ends"
    }

    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError> {
        // An observer: it sees every process-exited event and cannot change anything.
        registrar.subscribe(EventKind::ProcessExited, Priority::OBSERVER, |event, _reply| {
            if let Event::ProcessExited { pid, code } = *event {
                self.seen.fetch_add(1, Ordering::Relaxed);
                log::info!("farewell, pid {pid} ({})", crate::task::describe_end(code));
            }
            Verdict::Continue
        })
    }

    fn stats(&self) -> Option<String> {
        let seen = self.seen.load(Ordering::Relaxed);
        Some(format!("{seen} process{} seen off", if seen == 1 { "" } else { "es" }))
    }
}
