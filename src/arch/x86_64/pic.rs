//! The two cascaded 8259A PICs: remapping, masks, end-of-interrupt and spurious detection.
//! They carry the ISA lines until the I/O APIC takes over (`controller.rs` says which does);
//! what a line's interrupt then does is `lines.rs`'s.
//!
//! Port numbers and command words: Intel 8259A datasheet ("Operation Command Words"); the
//! spurious-IRQ rule: OSDev wiki, "8259 PIC", section "Spurious IRQs".

use core::sync::atomic::{AtomicU64, Ordering};

use pic8259::ChainedPics;
use spin::Mutex;

use super::{
    port,
    vectors::{PIC_LINE_COUNT, PIC_VECTOR_BASE},
};

/// Command port of the primary PIC.
const PRIMARY_COMMAND_PORT: u16 = 0x20;
/// Command port of the secondary PIC.
const SECONDARY_COMMAND_PORT: u16 = 0xa0;
/// OCW3 value that makes the next command-port read return the in-service register.
const OCW3_READ_IN_SERVICE: u8 = 0x0b;
/// The primary PIC line the secondary is cascaded into.
pub(super) const CASCADE_LINE: u8 = 2;
/// Line the PIT's channel 0 is wired to.
pub(super) const TIMER_LINE: u8 = 0;
/// Lines on which an 8259A reports a spurious interrupt (lowest priority of each chip).
const SPURIOUS_PRIMARY_LINE: u8 = 7;
const SPURIOUS_SECONDARY_LINE: u8 = 15;

// SAFETY: 32..48 are unused by CPU exceptions (vectors 0–31) and by any other interrupt source.
static PICS: Mutex<ChainedPics> =
    Mutex::new(unsafe { ChainedPics::new(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8) });

static SPURIOUS_COUNT: AtomicU64 = AtomicU64::new(0);

/// Remaps both PICs to vectors 32–47 and unmasks every line: each one becomes an event, and a
/// line without a device simply never fires.
pub(super) fn init() {
    let mut pics = PICS.lock();
    // SAFETY: runs once during boot with interrupts disabled and the IDT already covering
    // vectors 32–47, so no IRQ can arrive half-configured.
    unsafe {
        pics.initialize();
        pics.write_masks(0, 0);
    }
}

/// Masks or unmasks `line` (the cascade line is left alone: the secondary's lines need it).
pub(super) fn set_line_masked(line: u8, masked: bool) {
    if line >= PIC_LINE_COUNT || line == CASCADE_LINE {
        return;
    }
    super::cpu::without_interrupts(|| {
        let mut pics = PICS.lock();
        // SAFETY: reading and writing the mask registers changes only which lines may
        // interrupt; the PIC lock keeps the read-modify-write atomic.
        unsafe {
            let [mut primary, mut secondary] = pics.read_masks();
            let (mask, bit) =
                if line < 8 { (&mut primary, line) } else { (&mut secondary, line - 8) };
            if masked {
                *mask |= 1 << bit;
            } else {
                *mask &= !(1 << bit);
            }
            pics.write_masks(primary, secondary);
        }
    });
}

/// Whether `line` is masked, read back from the PIC.
pub(super) fn is_line_masked(line: u8) -> bool {
    super::cpu::without_interrupts(|| {
        // SAFETY: reading the mask registers has no side effect; the lock orders it.
        let masks = unsafe { PICS.lock().read_masks() };
        let (mask, bit) = if line < 8 { (masks[0], line) } else { (masks[1], line % 8) };
        mask & (1 << bit) != 0
    })
}

/// Masks every line: the I/O APIC carries them from now on.
pub(super) fn mask_all() {
    super::cpu::without_interrupts(|| {
        // SAFETY: masking only stops the PICs from interrupting.
        unsafe { PICS.lock().write_masks(0xff, 0xff) };
    });
}

/// Returns how many spurious interrupts (IRQ 7/15 with no in-service bit) have been seen.
pub fn spurious_interrupt_count() -> u64 {
    SPURIOUS_COUNT.load(Ordering::Relaxed)
}

fn in_service_register(command_port: u16) -> u8 {
    // SAFETY: OCW3 only selects which register the next read returns; reading it back has no
    // other effect. Callers hold the PIC lock, so no one else interleaves commands.
    unsafe {
        port::write_u8(command_port, OCW3_READ_IN_SERVICE);
        port::read_u8(command_port)
    }
}

/// Acknowledges PIC line `line` (0–15); false if it was a spurious interrupt, which has no
/// work to run.
pub(super) fn acknowledge(line: u8) -> bool {
    let mut pics = PICS.lock();
    if line == SPURIOUS_PRIMARY_LINE || line == SPURIOUS_SECONDARY_LINE {
        let (command_port, bit) = if line < 8 {
            (PRIMARY_COMMAND_PORT, line)
        } else {
            (SECONDARY_COMMAND_PORT, line - 8)
        };
        if in_service_register(command_port) & (1 << bit) == 0 {
            SPURIOUS_COUNT.fetch_add(1, Ordering::Relaxed);
            // A spurious IRQ from the secondary still looked real to the primary, which expects
            // an EOI for the cascade line; the secondary itself must not get one.
            if line == SPURIOUS_SECONDARY_LINE {
                // SAFETY: EOI for the cascade line acknowledges exactly the primary's request.
                unsafe { pics.notify_end_of_interrupt(PIC_VECTOR_BASE + CASCADE_LINE) };
            }
            return false;
        }
    }
    // Acknowledged before its work runs: handlers may take a while, and a deferred handler's
    // line is masked (not left un-acknowledged) until it is done.
    // SAFETY: this line is in service (checked above for 7/15; guaranteed by delivery otherwise).
    unsafe { pics.notify_end_of_interrupt(PIC_VECTOR_BASE + line) };
    true
}
