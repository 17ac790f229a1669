//! Which controller carries the ISA lines — the 8259s from boot, the I/O APIC once it takes
//! over — so that the bus's masks, each interrupt's acknowledgement and read-backs go to the
//! one in charge. The per-line meaning (sequence numbers, storms, mask until acknowledged) is
//! the bus's and does not change with the controller.
//!
//! Reentrancy: nothing here keeps state of its own; a mask from an interrupt handler landing
//! inside one from a task, or from another CPU, meets the controller's own interrupt-masking
//! lock (`pic.rs`, `ioapic.rs`). The switch to the I/O APIC runs once, before other CPUs start,
//! with interrupts off.

use super::{
    acpi, cpu, ioapic, lapic, pic,
    pic::{CASCADE_LINE, TIMER_LINE},
    vectors::IOAPIC_VECTOR_BASE,
};
use crate::events::irq::LineControl;

/// Masks and unmasks single lines for the bus's mask-until-acknowledged rule.
pub(super) struct LineController;

impl LineControl for LineController {
    fn mask(&self, line: u8) {
        set_masked(line, true);
    }

    fn unmask(&self, line: u8) {
        set_masked(line, false);
    }
}

fn set_masked(line: u8, masked: bool) {
    // The timer is never masked: its interrupts keep time and drive the retries of throttled
    // lines, itself included. A throttled timer has its events suppressed instead.
    if line == TIMER_LINE {
        return;
    }
    if ioapic::is_active() {
        ioapic::set_masked(line, masked);
    } else {
        pic::set_line_masked(line, masked);
    }
}

/// Whether ISA `line` is masked at the controller in charge, read back from it (`None`: a line
/// it does not carry).
pub fn line_masked(line: u8) -> Option<bool> {
    if ioapic::is_active() {
        ioapic::is_masked(line)
    } else {
        (usize::from(line) < acpi::ISA_LINE_COUNT && line != CASCADE_LINE)
            .then(|| pic::is_line_masked(line))
    }
}

/// Which controller carries the ISA lines, for the boot log and `cpus`.
pub fn name() -> &'static str {
    if ioapic::is_active() { "I/O APIC" } else { "8259 PIC" }
}

/// Serves the I/O APIC's interrupt for `line` with `serve` (unless the line is masked: then
/// it is held for the unmask, `ioapic.rs`), acknowledging it at this CPU's local APIC: an edge
/// line first, so the next edge is not lost meanwhile; a level line last, once `serve` has
/// masked it or quieted the device — an earlier EOI would let the still-asserted input deliver
/// the same interrupt again at once (Linux's "fasteoi" order).
pub(super) fn serve_routed(line: u8, serve: impl FnOnce(u8)) {
    if ioapic::is_level_triggered(line) {
        if ioapic::admit(line) {
            serve(line);
        }
        lapic::end_of_interrupt();
    } else {
        lapic::end_of_interrupt();
        if ioapic::admit(line) {
            serve(line);
        }
    }
}

/// Serves an interrupt that arrived on the PICs' vector for `line` with `serve`, unless it was
/// spurious. After the hand-over this is an edge the 8259 had latched before it was masked:
/// the I/O APIC never saw it, and dropping it could leave a device that waits to be served
/// (its line still high, no new edge) silent for good, so it is served — or held, if the line
/// is masked — like one of the I/O APIC's.
pub(super) fn serve_legacy(line: u8, serve: impl FnOnce(u8)) {
    if pic::acknowledge(line) && (!ioapic::is_active() || ioapic::admit(line)) {
        serve(line);
    }
}

/// Hands the ISA lines to the I/O APIC the MADT names, each keeping its mask, all delivered to
/// the boot CPU (`boot_apic_id`), whose local APIC is enabled already. On failure the 8259s
/// keep them. Runs once on the boot CPU before the others start.
pub(super) fn take_over(madt: &acpi::Madt, boot_apic_id: u32) -> Result<(), &'static str> {
    let info = madt.io_apic.ok_or("no I/O APIC listed")?;
    cpu::without_interrupts(|| {
        ioapic::take_over(
            info,
            &madt.isa_wiring,
            IOAPIC_VECTOR_BASE,
            boot_apic_id,
            CASCADE_LINE,
            |line| line != TIMER_LINE && pic::is_line_masked(line),
        )
        .map_err(|_| "its registers are outside the loader's memory window")?;
        // An interrupt the PICs raised but had not delivered yet turns up, at worst, as a
        // spurious IRQ 7 or 15 (counted), never as a line's.
        pic::mask_all();
        ioapic::activate();
        Ok(())
    })
}
