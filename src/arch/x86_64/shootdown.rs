//! TLB shootdown: which page table each CPU has loaded, and making every other CPU that has a
//! changed table loaded drop its cached translations before the changer frees a frame an old
//! entry named (SDM Vol. 3A §4.10.5, "Propagation of Paging-Structure Changes to Multiple
//! Processors").
//!
//! The protocol (`sync::handshake`, model-checked in `tools/models`): a requester changes the
//! entries, draws a ticket from each CPU that has the table loaded (or every CPU, for the
//! kernel half), sends it an IPI and waits until its ticket is answered. The target reloads
//! CR3 (every user entry goes) and answers every request it had seen. A CPU loading a table
//! publishes it *before* writing CR3, and a requester reads the loaded tables only *after* its
//! change and a full fence: a CPU it skips loads the table after the change and caches nothing
//! stale.
//!
//! Waiting with interrupts off cannot deadlock: a waiter answers its own requests while it
//! polls, and so do the kernel's spin locks while they wait (`serve_pending` is their
//! waiting hook), so two CPUs shooting at each other, or one spinning on a lock the other
//! holds, both get on. A lost IPI is sent again.
//!
//! Reentrancy: the IPI may land inside `serve_pending` (a waiter's poll): both flush, and the
//! answered count never goes back (`Handshake::answer`). NMIs never come here.

use core::sync::atomic::{AtomicU64, Ordering, fence};

use ::x86_64::instructions::tlb;

use super::{cpu_events, cpu_events::MAX_CPUS, lapic, percpu, vectors::TLB_FLUSH_VECTOR};
use crate::sync::handshake::{Handshake, Ticket};

/// Polls of a target's answer between resending its IPI.
const POLLS_PER_RESEND: u64 = 1 << 20;
/// Polls after which a target counts as dead: a CPU that never takes an interrupt and never
/// waits on a lock is stuck, and a frame freed under it could be read or written through a
/// stale entry, so the kernel stops rather than go on.
const POLLS_BEFORE_GIVING_UP: u64 = 1 << 32;

/// Physical address of the root each CPU has loaded (0: not known yet).
static ACTIVE_ROOT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static FLUSHES: Handshake = Handshake::new();
/// Shootdowns this CPU asked for (one per change that reached another CPU), and flushes it
/// made for others'.
static SENT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static FLUSHED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Records that this CPU is about to load `root` (a root's physical address). Called before
/// the CR3 write, with interrupts off or on a CPU that is not yet taking requests.
pub(super) fn record_active(root: u64) {
    ACTIVE_ROOT[percpu::cpu_index() % MAX_CPUS].store(root, Ordering::SeqCst);
    // Ordered before every translation the new table gives (the CR3 write serializes too; the
    // fence says so in the language's terms, as the model in `tools/models` has it).
    fence(Ordering::SeqCst);
}

/// Whether a CPU other than this one has `root` loaded.
pub(super) fn is_active_elsewhere(root: u64) -> bool {
    if cpu_events::online_count() == 1 {
        return false;
    }
    let me = percpu::cpu_index() % MAX_CPUS;
    (0..MAX_CPUS).any(|cpu| cpu != me && ACTIVE_ROOT[cpu].load(Ordering::SeqCst) == root)
}

/// After entries of `root` were removed or narrowed (and this CPU's own TLB flushed of them):
/// returns once every other CPU that could have cached them has flushed. `kernel_half`: the
/// change is in the half every table shares, so every CPU is asked.
pub(super) fn after_change(root: u64, kernel_half: bool) {
    if !lapic::is_ready() || cpu_events::online_count() == 1 {
        return;
    }
    fence(Ordering::SeqCst);
    let me = percpu::cpu_index() % MAX_CPUS;
    let mut tickets: [Option<Ticket>; MAX_CPUS] = [None; MAX_CPUS];
    for (cpu, ticket) in tickets.iter_mut().enumerate() {
        if cpu == me || cpu_events::apic_id_of(cpu).is_none() {
            continue;
        }
        if kernel_half || ACTIVE_ROOT[cpu].load(Ordering::SeqCst) == root {
            *ticket = Some(FLUSHES.request(cpu));
            ask(cpu);
        }
    }
    if tickets.iter().all(Option::is_none) {
        return;
    }
    SENT[me].fetch_add(1, Ordering::Relaxed);
    for (cpu, ticket) in tickets.iter().enumerate() {
        let Some(ticket) = *ticket else { continue };
        let mut polls = 0u64;
        while !FLUSHES.is_answered(ticket) {
            serve_pending();
            core::hint::spin_loop();
            polls += 1;
            if polls.is_multiple_of(POLLS_PER_RESEND) {
                ask(cpu);
            }
            assert!(
                polls < POLLS_BEFORE_GIVING_UP,
                "cpu {cpu} never answered a TLB shootdown (interrupts off for good?)"
            );
        }
    }
}

fn ask(cpu: usize) {
    if let Some(apic_id) = cpu_events::apic_id_of(cpu) {
        let _ = lapic::send_fixed(apic_id, TLB_FLUSH_VECTOR);
    }
}

/// Answers this CPU's outstanding shootdown requests, if any. The kernel's spin locks call it
/// while they wait.
pub(crate) fn serve_pending() {
    // Before any other CPU runs there is nobody to answer (and early in boot GS may not name a
    // per-CPU block yet).
    if !lapic::is_ready() {
        return;
    }
    let me = percpu::cpu_index() % MAX_CPUS;
    FLUSHES.answer(me, || {
        tlb::flush_all();
        FLUSHED[me].fetch_add(1, Ordering::Relaxed);
    });
}

/// The shootdown IPI.
pub(super) fn on_flush_request() {
    serve_pending();
    lapic::end_of_interrupt();
}

/// Shootdowns processor `index` asked for, and flushes it made for others'.
pub(super) fn counts(index: usize) -> (u64, u64) {
    let load = |counts: &[AtomicU64; MAX_CPUS]| {
        counts.get(index).map_or(0, |count| count.load(Ordering::Relaxed))
    };
    (load(&SENT), load(&FLUSHED))
}
