//! What each processor's own interrupts do: its local timer's ticks, spurious interrupts, NMIs
//! (counted and survived, or, once a panic asked, the end of that CPU), each counted per CPU.
//!
//! Reentrancy: every operation here is one atomic add to this CPU's own counters (or a load), so
//! an interrupt landing inside another, even an NMI inside a handler, only adds its own count;
//! another CPU touches only its own cache line. Nothing here takes a lock or prints.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use super::{cpu, lapic, percpu};

/// Most processors Herald starts (the size of the bus's per-CPU tables); more are listed in
/// `cpus` and left waiting.
pub const MAX_CPUS: usize = crate::sync::local::MAX_CPUS;

/// What each processor counts, on its own cache line.
#[repr(align(64))]
struct Counters {
    ticks: AtomicU64,
    interrupts: AtomicU64,
    nmis: AtomicU64,
    spurious: AtomicU64,
}

static COUNTERS: [Counters; MAX_CPUS] = [const {
    Counters {
        ticks: AtomicU64::new(0),
        interrupts: AtomicU64::new(0),
        nmis: AtomicU64::new(0),
        spurious: AtomicU64::new(0),
    }
}; MAX_CPUS];
/// Processor number by local APIC id, for the NMI handler, which cannot trust GS (an NMI can
/// land in the `syscall` stub before its `swapgs`).
static INDEX_OF_APIC: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];
/// A panic asked every CPU to stop.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// One processor's counts, read now.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub(super) struct Counts {
    pub(super) ticks: u64,
    pub(super) interrupts: u64,
    pub(super) nmis: u64,
    pub(super) spurious: u64,
}

/// Processor `index`'s counts.
pub(super) fn counts(index: usize) -> Option<Counts> {
    let counters = COUNTERS.get(index)?;
    Some(Counts {
        ticks: counters.ticks.load(Ordering::Relaxed),
        interrupts: counters.interrupts.load(Ordering::Relaxed),
        nmis: counters.nmis.load(Ordering::Relaxed),
        spurious: counters.spurious.load(Ordering::Relaxed),
    })
}

/// Records that local APIC `apic_id` is processor `index` (before it starts).
pub(super) fn record_processor(apic_id: u32, index: usize) {
    let index = u8::try_from(index).expect("fewer than 256 processors are started");
    INDEX_OF_APIC[(apic_id & 0xff) as usize].store(index, Ordering::Relaxed);
}

/// Counts an interrupt on this CPU (GS is the kernel's: the trap stub swapped it in).
pub(super) fn count_interrupt() {
    if let Some(counters) = COUNTERS.get(percpu::cpu_index()) {
        counters.interrupts.fetch_add(1, Ordering::Relaxed);
    }
}

/// The local APIC timer's interrupt.
pub(super) fn on_local_timer() {
    if let Some(counters) = COUNTERS.get(percpu::cpu_index()) {
        counters.ticks.fetch_add(1, Ordering::Relaxed);
    }
    lapic::end_of_interrupt();
}

/// A spurious interrupt from the local APIC: counted, not acknowledged (it sets no in-service
/// bit; SDM Vol. 3A §11.9).
pub(super) fn on_spurious() {
    if let Some(counters) = COUNTERS.get(percpu::cpu_index()) {
        counters.spurious.fetch_add(1, Ordering::Relaxed);
    }
}

/// An NMI: counted; if a panic is stopping every CPU, this one stops here for good. Takes no
/// lock and prints nothing: it may have interrupted the console's holder.
pub(super) fn on_nmi() {
    let index = if lapic::is_ready() {
        usize::from(INDEX_OF_APIC[(lapic::id() & 0xff) as usize].load(Ordering::Relaxed))
    } else {
        0
    };
    COUNTERS[index.min(MAX_CPUS - 1)].nmis.fetch_add(1, Ordering::Relaxed);
    if STOPPING.load(Ordering::Acquire) {
        loop {
            cpu::disable_interrupts();
            cpu::halt();
        }
    }
}

/// Stops every other CPU (an NMI each): the panic path, so the message is printed once and
/// nothing else runs meanwhile.
pub fn stop_other_processors() {
    STOPPING.store(true, Ordering::Release);
    lapic::send_nmi_to_others();
}
