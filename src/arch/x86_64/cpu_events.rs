//! What each processor's own interrupts do: its local timer's ticks, reschedule IPIs, spurious
//! interrupts, NMIs (counted and survived, or, once a panic asked, the end of that CPU), each
//! counted per CPU; and which processors are online, by local APIC id.
//!
//! Reentrancy: every counting operation here is one atomic add to this CPU's own counters (or a
//! load), so an interrupt landing inside another, even an NMI inside a handler, only adds its
//! own count; another CPU touches only its own cache line. A ping's answer is a
//! `sync::handshake` answer, safe against itself. Nothing here takes a lock or prints.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::{
    cpu, lapic, percpu,
    vectors::{PING_VECTOR, RESCHEDULE_VECTOR},
};
use crate::sync::handshake::Handshake;

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
    reschedules: AtomicU64,
    /// Timestamp-counter cycles spent halted in the idle loop (each halt's wake-up interrupt
    /// included), and the counter's value when the processor came online.
    idle_cycles: AtomicU64,
    online_since_cycles: AtomicU64,
}

static COUNTERS: [Counters; MAX_CPUS] = [const {
    Counters {
        ticks: AtomicU64::new(0),
        interrupts: AtomicU64::new(0),
        nmis: AtomicU64::new(0),
        spurious: AtomicU64::new(0),
        reschedules: AtomicU64::new(0),
        idle_cycles: AtomicU64::new(0),
        online_since_cycles: AtomicU64::new(0),
    }
}; MAX_CPUS];
/// Pings asked of each processor and answered by it (the IPI round trip the benchmarks time).
static PINGS: Handshake = Handshake::new();
/// Polls of a ping's answer before it counts as lost.
const MAX_PING_POLLS: u64 = 1 << 28;
/// Per processor: halted in its idle loop.
static HALTED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Processors marked online.
static ONLINE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Local APIC id by processor number, once the processor is online (`u32::MAX`: not online).
static APIC_OF_INDEX: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(u32::MAX) }; MAX_CPUS];
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
    pub(super) reschedules: u64,
    /// Share of the time since it came online spent halted, in percent.
    pub(super) idle_percent: u64,
}

/// Processor `index`'s counts.
pub(super) fn counts(index: usize) -> Option<Counts> {
    let counters = COUNTERS.get(index)?;
    Some(Counts {
        ticks: counters.ticks.load(Ordering::Relaxed),
        interrupts: counters.interrupts.load(Ordering::Relaxed),
        nmis: counters.nmis.load(Ordering::Relaxed),
        spurious: counters.spurious.load(Ordering::Relaxed),
        reschedules: counters.reschedules.load(Ordering::Relaxed),
        idle_percent: {
            let online_cycles = cpu::read_timestamp()
                .saturating_sub(counters.online_since_cycles.load(Ordering::Relaxed));
            let idle = u128::from(counters.idle_cycles.load(Ordering::Relaxed));
            (idle * 100 / u128::from(online_cycles.max(1))).min(100) as u64
        },
    })
}

/// Halts this CPU until the next interrupt with interrupts enabled (atomically: `sti; hlt`),
/// counting the time as idle; the caller has interrupts off and found nothing to do.
pub fn halt_while_idle() {
    let index = percpu::cpu_index();
    let halted = HALTED.get(index);
    if let Some(halted) = halted {
        halted.store(true, Ordering::Relaxed);
    }
    let start = cpu::read_timestamp();
    cpu::enable_interrupts_and_halt();
    if let Some(counters) = COUNTERS.get(index) {
        counters
            .idle_cycles
            .fetch_add(cpu::read_timestamp().saturating_sub(start), Ordering::Relaxed);
    }
    if let Some(halted) = halted {
        halted.store(false, Ordering::Relaxed);
    }
}

/// Whether processor `index` is halted in its idle loop right now (the best one to wake).
pub fn is_halted(index: usize) -> bool {
    HALTED.get(index).is_some_and(|halted| halted.load(Ordering::Relaxed))
}

/// Records that local APIC `apic_id` is processor `index` (before it starts).
pub(super) fn record_processor(apic_id: u32, index: usize) {
    let index = u8::try_from(index).expect("fewer than 256 processors are started");
    INDEX_OF_APIC[(apic_id & 0xff) as usize].store(index, Ordering::Relaxed);
}

/// Records that processor `index` (local APIC id `apic_id`) is online: IPIs may go to it.
pub(super) fn mark_online(index: usize, apic_id: u32) {
    if let Some(slot) = APIC_OF_INDEX.get(index)
        && slot.swap(apic_id, Ordering::AcqRel) == u32::MAX
    {
        ONLINE_COUNT.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(counters) = COUNTERS.get(index)
        && index != 0
    {
        counters.online_since_cycles.store(cpu::read_timestamp(), Ordering::Relaxed);
    }
}

/// Processor `index`'s local APIC id, if it is online.
pub(super) fn apic_id_of(index: usize) -> Option<u32> {
    let apic_id = APIC_OF_INDEX.get(index)?.load(Ordering::Acquire);
    (apic_id != u32::MAX).then_some(apic_id)
}

/// Whether processor `index` is online (the scheduler's choice of whom to wake).
pub fn is_online(index: usize) -> bool {
    apic_id_of(index).is_some()
}

/// Processors online (at least this one).
pub fn online_count() -> usize {
    ONLINE_COUNT.load(Ordering::Relaxed).max(1)
}

/// Asks processor `index` to look at the ready queue now (a reschedule IPI), rather than at
/// its next tick. Does nothing for a processor that is not online.
pub fn wake_processor(index: usize) {
    if let Some(apic_id) = apic_id_of(index) {
        let _ = lapic::send_fixed(apic_id, RESCHEDULE_VECTOR);
    }
}

/// The reschedule IPI: counted and acknowledged; the trap's exit (or the idle loop it woke)
/// looks at the ready queue.
pub(super) fn on_reschedule() {
    if let Some(counters) = COUNTERS.get(percpu::cpu_index()) {
        counters.reschedules.fetch_add(1, Ordering::Relaxed);
    }
    lapic::end_of_interrupt();
}

/// Sends processor `index` a ping IPI and waits for its answer: one IPI round trip.
pub(super) fn ping(index: usize) -> Result<(), &'static str> {
    let apic_id = apic_id_of(index).ok_or("no such CPU online")?;
    let ticket = PINGS.request(index);
    lapic::send_fixed(apic_id, PING_VECTOR).map_err(|_| "the IPI was not accepted")?;
    for _ in 0..MAX_PING_POLLS {
        if PINGS.is_answered(ticket) {
            return Ok(());
        }
        // The target may be waiting for this CPU's shootdown answer, interrupts off.
        crate::sync::local::while_waiting();
        core::hint::spin_loop();
    }
    Err("the ping was never answered")
}

/// The ping IPI: answers every ping asked so far.
pub(super) fn on_ping() {
    PINGS.answer(percpu::cpu_index(), || {});
    lapic::end_of_interrupt();
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

/// An NMI: counted; if a panic is stopping every CPU, this one stops here for good. Returns
/// this CPU's number (found from its APIC id: GS may be the user's). Takes no lock and prints
/// nothing: it may have interrupted the console's holder.
pub(super) fn on_nmi() -> usize {
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
    index
}

/// Stops every other CPU (an NMI each): the panic path, so the message is printed once and
/// nothing else runs meanwhile.
pub fn stop_other_processors() {
    STOPPING.store(true, Ordering::Release);
    lapic::send_nmi_to_others();
}
