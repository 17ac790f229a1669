//! What an interrupt line's arrival does: the timer's tick (time, storms, the watchdog, the
//! scheduler's event) and every other line's event, with its sequence number and line rules.

use super::{nmi_watchdog, pic::TIMER_LINE, pit, watchdog};
use crate::events::{BUS, Event, Reply, irq};

/// ISA line `line`'s interrupt, acknowledged at its controller.
pub(super) fn on_line(line: u8) {
    if line == TIMER_LINE { on_timer() } else { dispatch_irq(line) }
}

/// The timer's interrupt: time always advances and the scheduler always gets its tick. A timer
/// storm (a flooding rate) is throttled at the source: the PIT drops back to its base rate
/// until the backoff is over.
fn on_timer() {
    let tick = pit::on_tick();
    let now_ms = pit::milliseconds();
    let lines = &irq::LINES;
    if let Some((_, Some(report))) = lines.raise(TIMER_LINE, now_ms) {
        log::warn!("{report}; the timer falls back to {} Hz meanwhile", pit::TICK_HZ);
        pit::fall_back_to_base_rate();
    }
    if let Some(report) = lines.tick(now_ms) {
        log::warn!("{report}");
    }
    if pit::fallen_back() && lines.stats(TIMER_LINE).throttled_until_ms.is_none() {
        pit::restore_requested_rate();
    }
    watchdog::on_tick();
    nmi_watchdog::on_tick(0);
    BUS.dispatch(&Event::Timer { tick }, &mut Reply::new());
}

/// Builds and dispatches the event for interrupt `line`, then lets the line state apply the
/// outcome (unhandled count and rule, storm throttling, mask until a deferred handler
/// acknowledges).
pub(super) fn dispatch_irq(line: u8) {
    let now_ms = pit::milliseconds();
    let Some((raised, storm)) = irq::LINES.raise(line, now_ms) else { return };
    if let Some(report) = storm {
        report_line(log::Level::Warn, report);
    }
    let irq::Raised::Dispatch(seq) = raised else { return };
    let mut reply = Reply::new();
    let outcome = BUS.dispatch(&Event::Irq { line, seq }, &mut reply);
    if let Some(report) = irq::LINES.complete(line, outcome, &reply, now_ms) {
        report_line(log::Level::Error, report);
    }
}

/// Logs what a line did; out of line, so formatting never weighs on the interrupt path.
#[cold]
#[inline(never)]
fn report_line(level: log::Level, report: irq::LineReport) {
    log::log!(level, "{report}");
}
