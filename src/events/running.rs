//! Which handler each CPU is running right now, for reports made from an NMI (the watchdog's
//! "stuck in handler `x`"): dispatch and the deferred engine write this CPU's slot around each
//! call, and anything — an NMI included — may read any CPU's.
//!
//! A slot holds an index into a table of handler names, interned when a handler subscribes,
//! so reading it needs no lock and no pointer: a number, then a look-up in cells that are
//! written once. One store per call and one per dispatch, on a cache line only this CPU writes.
//!
//! Nesting: each call sets the slot and the dispatch clears it as it ends; the trap path saves
//! the slot as an interrupt or exception arrives and puts it back as it leaves
//! ([`put_back`]), so a timer tick inside a handler — before the handler masked interrupts and
//! spun: a test caught the tick's dispatch leaving the slot empty — gives the interrupted
//! handler's name back. System calls, which never nest, pay nothing for that. A handler that
//! dispatches an event itself reads as running none once that dispatch is over.
//!
//! A handler that lets its task be switched out (mm's long operations pass preempt points) may
//! resume on another CPU; its dispatch keeps writing the slot of the CPU it began on, so a
//! stall report on that CPU can meanwhile name a handler that runs elsewhere. Looking the CPU
//! up per write would cost every dispatch for that rare case.
//!
//! Reentrancy: besides nesting, an NMI only reads.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use conquer_once::spin::OnceCell;

use crate::sync::local::MAX_CPUS;

/// Distinct handler names remembered; later ones report as [`UNNAMED`]. Names are string
/// literals in the kernel's code, so their number is bounded by the code, not by use.
const MAX_NAMES: usize = 512;
/// What a handler whose name did not fit is reported as.
const UNNAMED: &str = "(a handler whose name did not fit the table)";

static NAMES: [OnceCell<&'static str>; MAX_NAMES] = [const { OnceCell::uninit() }; MAX_NAMES];
static NAMES_USED: AtomicUsize = AtomicUsize::new(0);

/// This CPU's innermost running handler: 0 for none, else its name's index plus one.
#[repr(align(64))]
struct Slot(AtomicU32);

static RUNNING: [Slot; MAX_CPUS] = [const { Slot(AtomicU32::new(0)) }; MAX_CPUS];

/// A handler's name, as a slot records it: its index plus one (`u32::MAX`: not in the table).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) struct NameIndex(u32);

/// The index of `name`, interned on first use. Subscription-time work (a scan of the table).
pub(super) fn intern(name: &'static str) -> NameIndex {
    let used = NAMES_USED.load(Ordering::Acquire).min(MAX_NAMES);
    if let Some(index) = NAMES[..used].iter().position(|cell| cell.get() == Some(&name)) {
        return NameIndex(index as u32 + 1);
    }
    let index = NAMES_USED.fetch_add(1, Ordering::AcqRel);
    if index >= MAX_NAMES {
        NAMES_USED.store(MAX_NAMES, Ordering::Release);
        return NameIndex(u32::MAX);
    }
    // Two CPUs interning one name at once take two cells: harmless, both read back the same.
    let _ = NAMES[index].try_init_once(|| name);
    NameIndex(index as u32 + 1)
}

/// Records that `cpu` (the dispatch's) runs the handler named `name`.
#[inline(always)]
pub(super) fn set(cpu: usize, name: NameIndex) {
    RUNNING[cpu % MAX_CPUS].0.store(name.0, Ordering::Relaxed);
}

/// Records that `cpu`'s dispatch (or deferred call) is over.
#[inline(always)]
pub(super) fn clear(cpu: usize) {
    RUNNING[cpu % MAX_CPUS].0.store(0, Ordering::Relaxed);
}

/// Puts back a [`mark_on`] value: the trap path saves the slot as an interrupt or exception
/// arrives and puts it back as it leaves, so the handler the trap interrupted is named again.
#[inline(always)]
pub fn put_back(cpu: usize, mark: u32) {
    RUNNING[cpu % MAX_CPUS].0.store(mark, Ordering::Relaxed);
}

/// What processor `cpu` is running now, as a number to keep (an NMI handler cannot keep a
/// string): turn it into a name with [`name_of`]. Lock-free.
pub fn mark_on(cpu: usize) -> u32 {
    RUNNING.get(cpu).map_or(0, |slot| slot.0.load(Ordering::Relaxed))
}

/// The handler a [`mark_on`] value names (`None`: no handler was running).
pub fn name_of(mark: u32) -> Option<&'static str> {
    let index = usize::try_from(mark).ok()?.checked_sub(1)?;
    Some(NAMES.get(index).and_then(|cell| cell.get().copied()).unwrap_or(UNNAMED))
}

/// The handler processor `cpu` is running now (its innermost one), if any. Lock-free.
pub fn running_on(cpu: usize) -> Option<&'static str> {
    name_of(mark_on(cpu))
}
