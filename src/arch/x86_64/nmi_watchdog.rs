//! The NMI watchdog: a CPU whose timer has not ticked for [`HARD_STALL_BUDGET_MS`] is spinning
//! with interrupts off (a handler that masked them and does not come back, a lock that never
//! opens), which no ordinary interrupt can reach. The CPU that watches it sends it an NMI; the
//! NMI records where it was — `rip`, user or kernel mode, and the bus handler it was running —
//! and the watcher reports it on its next tick. A CPU that comes back is reported back.
//!
//! Each online CPU watches the next online one (by number, wrapping around), on its own timer
//! tick, counting time in its own ticks: a stuck cpu 0, whose PIT keeps the kernel's clock, is
//! caught too. With one CPU online there is no watcher: the watchdog needs two.
//!
//! What it does not do: take the CPU back. The stuck code may hold any lock, so abandoning it
//! could leave the kernel worse off than a stuck CPU; the report says where to look (Linux's
//! hard-lockup detector also reports and goes on). The report is printed through the log, so a
//! CPU stuck while holding the console's lock delays it until it lets go.
//!
//! Reentrancy: the watcher's part runs in its timer interrupt and touches only the watched
//! CPU's slots, which no other CPU writes (one watcher each); the NMI's part writes only its
//! own CPU's report with atomic stores, taking no lock, so it may land anywhere.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::{cpu_events, cpu_events::MAX_CPUS, lapic, pit};
use crate::events::running;

/// How long a CPU may go without a timer tick (interrupts off) before it is caught.
pub const HARD_STALL_BUDGET_MS: u64 = 500;

/// What the watcher keeps of the CPU it watches, and what that CPU's NMI reports.
struct Watched {
    /// Who watches it (one more than its number; 0: nobody yet). A new watcher starts afresh,
    /// in its own clock.
    watcher: AtomicUsize,
    /// The watched CPU's tick count when the watcher last saw it change, and when that was
    /// by the watcher's clock.
    ticks_seen: AtomicU64,
    changed_at_ms: AtomicU64,
    /// The watchdog's NMI is on its way (so the NMI is not counted as someone else's).
    requested: AtomicBool,
    /// This stall has been caught (cleared when the CPU ticks again).
    caught: AtomicBool,
    /// Written by the NMI: the interrupted `rip`, whether it was in ring 3, the running
    /// handler's mark (`events::running`), then `report_seq` bumped last.
    rip: AtomicU64,
    from_user: AtomicBool,
    handler_mark: AtomicU32,
    report_seq: AtomicU64,
    /// The last report the watcher printed.
    printed_seq: AtomicU64,
    /// Stalls caught so far.
    stalls: AtomicU64,
}

static WATCHED: [Watched; MAX_CPUS] = [const {
    Watched {
        watcher: AtomicUsize::new(0),
        ticks_seen: AtomicU64::new(0),
        changed_at_ms: AtomicU64::new(0),
        requested: AtomicBool::new(false),
        caught: AtomicBool::new(false),
        rip: AtomicU64::new(0),
        from_user: AtomicBool::new(false),
        handler_mark: AtomicU32::new(0),
        report_seq: AtomicU64::new(0),
        printed_seq: AtomicU64::new(0),
        stalls: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// A stall the watchdog caught, as the stuck CPU's NMI found it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct StallReport {
    /// Where the CPU was.
    pub rip: u64,
    /// Whether that was in ring 3.
    pub from_user: bool,
    /// The bus handler it was running, if any.
    pub handler: Option<&'static str>,
    /// Stalls caught on that CPU so far.
    pub stalls: u64,
}

/// The last stall caught on processor `index`, if any.
pub fn last_stall(index: usize) -> Option<StallReport> {
    let watched = WATCHED.get(index)?;
    if watched.report_seq.load(Ordering::Acquire) == 0 {
        return None;
    }
    Some(StallReport {
        rip: watched.rip.load(Ordering::Relaxed),
        from_user: watched.from_user.load(Ordering::Relaxed),
        handler: running::name_of(watched.handler_mark.load(Ordering::Relaxed)),
        stalls: watched.stalls.load(Ordering::Relaxed),
    })
}

fn ticks_of(index: usize) -> u64 {
    if index == 0 { pit::ticks() } else { cpu_events::counts(index).map_or(0, |c| c.ticks) }
}

/// The online CPU after `index`, wrapping around (`None` if it is the only one).
fn next_online(index: usize) -> Option<usize> {
    (1..MAX_CPUS)
        .map(|step| (index + step) % MAX_CPUS)
        .find(|&other| cpu_events::apic_id_of(other).is_some())
}

/// Processor `index`'s own clock in milliseconds: the PIT's on cpu 0, its local timer's
/// ticks (1 kHz) elsewhere.
fn clock_ms(index: usize) -> u64 {
    if index == 0 { pit::milliseconds() } else { ticks_of(index) }
}

/// The watcher's part, on each of its timer ticks (`index`: the watcher).
pub(super) fn on_tick(index: usize) {
    let Some(target) = next_online(index) else { return };
    let watched = &WATCHED[target];
    let now_ms = clock_ms(index);
    let still_ms = now_ms.saturating_sub(watched.changed_at_ms.load(Ordering::Relaxed));
    let seq = watched.report_seq.load(Ordering::Acquire);
    if seq != watched.printed_seq.swap(seq, Ordering::Relaxed)
        && let Some(report) = last_stall(target)
    {
        let mode = if report.from_user { "user" } else { "kernel" };
        log::error!(
            "watchdog: cpu {target} took no timer interrupt for {still_ms} ms (interrupts off): \
             at rip {:#x} in {mode} mode, running handler `{}`",
            report.rip,
            report.handler.unwrap_or("none")
        );
    }
    let ticks = ticks_of(target);
    if watched.watcher.swap(index + 1, Ordering::Relaxed) != index + 1 {
        // First look by this watcher (the target just came online, or the ring changed).
        watched.ticks_seen.store(ticks, Ordering::Relaxed);
        watched.changed_at_ms.store(now_ms, Ordering::Relaxed);
        return;
    }
    if ticks != watched.ticks_seen.swap(ticks, Ordering::Relaxed) {
        watched.changed_at_ms.store(now_ms, Ordering::Relaxed);
        // An NMI that never arrived must not make a later, unrelated one look like the
        // watchdog's.
        watched.requested.store(false, Ordering::Relaxed);
        if watched.caught.swap(false, Ordering::Relaxed) {
            log::warn!("watchdog: cpu {target} ticks again, after about {still_ms} ms");
        }
        return;
    }
    if still_ms >= HARD_STALL_BUDGET_MS && !watched.caught.swap(true, Ordering::Relaxed) {
        watched.requested.store(true, Ordering::Release);
        if let Some(apic_id) = cpu_events::apic_id_of(target) {
            let _ = lapic::send_nmi(apic_id);
        }
    }
}

/// The NMI's part on processor `index`: `true` if the watchdog sent this NMI (and it recorded
/// where the CPU was), `false` if it came from elsewhere.
pub(super) fn on_nmi(index: usize, rip: u64, from_user: bool) -> bool {
    let Some(watched) = WATCHED.get(index) else { return false };
    if !watched.requested.swap(false, Ordering::AcqRel) {
        return false;
    }
    watched.rip.store(rip, Ordering::Relaxed);
    watched.from_user.store(from_user, Ordering::Relaxed);
    watched.handler_mark.store(running::mark_on(index), Ordering::Relaxed);
    watched.stalls.fetch_add(1, Ordering::Relaxed);
    watched.report_seq.fetch_add(1, Ordering::Release);
    true
}
