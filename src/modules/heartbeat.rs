//! A deferred handler in action: timer ticks are queued (coalescing, capacity 4) and handled
//! later by the idle task, outside interrupt context. Its counters show how many ticks arrived
//! one by one and how many the queue folded together while the CPU was busy.

use alloc::{format, string::String};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Module, ModuleError, Registrar};
use crate::events::{Event, EventKind, OverflowPolicy, Priority};

/// Ticks handled, and the highest tick seen.
pub(super) struct Heartbeat {
    handled: AtomicU64,
    latest_tick: AtomicU64,
}

pub(super) static MODULE: Heartbeat =
    Heartbeat { handled: AtomicU64::new(0), latest_tick: AtomicU64::new(0) };

/// Queue length: a handful is enough, since the newest tick is all that matters.
const QUEUE_CAPACITY: usize = 4;

impl Module for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn description(&self) -> &'static str {
        "a deferred timer handler: ticks queued in interrupt context, handled by the idle task"
    }

    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError> {
        registrar.subscribe_deferred(
            EventKind::Timer,
            Priority::OBSERVER,
            QUEUE_CAPACITY,
            OverflowPolicy::Coalesce,
            |event| {
                if let Event::Timer { tick } = *event {
                    self.handled.fetch_add(1, Ordering::Relaxed);
                    self.latest_tick.fetch_max(tick, Ordering::Relaxed);
                }
            },
        )
    }

    fn stats(&self) -> Option<String> {
        let handled = self.handled.load(Ordering::Relaxed);
        let latest = self.latest_tick.load(Ordering::Relaxed);
        Some(format!(
            "{handled} ticks handled of {latest}; {} folded by the queue",
            latest.saturating_sub(handled)
        ))
    }
}
