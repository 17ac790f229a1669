//! The I/O APIC that carries the ISA lines once it takes over from the 8259s: one redirection
//! entry per line (vector, wiring, destination CPU, mask). Registers: Intel 82093AA I/O APIC
//! datasheet §3.0 (IOREGSEL at offset 0, IOWIN at 0x10; IOAPICVER 0x01; the redirection table
//! from 0x10, two registers per entry).
//!
//! Edge-triggered lines are masked lazily: the I/O APIC *ignores* an edge on a masked input
//! (82093AA §3.2.4: not delivered, not held pending), where the 8259 latched it in its request
//! register — and a UART whose byte arrived while its line was masked keeps its output high
//! and never makes another edge, so its input would stop for good. So masking an edge line
//! only marks it; an interrupt that arrives while it is marked is held (`PENDING`), and the
//! input masked for real until the line is unmasked, when the held interrupt is sent again
//! as an IPI on the line's vector (Linux does the same: `check_irq_resend`). Level-triggered
//! lines stay asserted while masked, so they are masked at the chip.
//!
//! Reentrancy: an entry is reached through two accesses (select, then read or write the
//! window), and a line's marks change together with its entry, so both happen holding
//! `REGISTERS`, an interrupt-masking lock: a mask from an interrupt handler (mask until
//! acknowledged) cannot land between another access's two steps on this CPU, and another CPU
//! waits its turn. NMIs never touch it.

use core::sync::atomic::{AtomicBool, Ordering};

use super::{IrqMutex, acpi, lapic, paging};

/// Register select and data window offsets (82093AA §3.0).
const SELECT_OFFSET: u64 = 0x00;
const WINDOW_OFFSET: u64 = 0x10;
/// The version register; bits 23:16 hold the index of the last redirection entry.
const VERSION_REGISTER: u32 = 0x01;
/// First register of the redirection table; entry `n` is `0x10 + 2n` (low) and `0x11 + 2n`.
const REDIRECTION_TABLE: u32 = 0x10;
/// Redirection entry bits (82093AA §3.2.4): polarity (13, 1 = active low), trigger mode
/// (15, 1 = level), mask (16); fixed delivery to a physical destination is all zeros; the
/// destination APIC id is in bits 63:56 (31:24 of the high register).
const ACTIVE_LOW: u32 = 1 << 13;
const LEVEL_TRIGGERED: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;
const DESTINATION_SHIFT: u32 = 24;

/// The registers' kernel address (0: no I/O APIC in use), behind the lock every access holds.
static REGISTERS: IrqMutex<u64> = IrqMutex::new(0);
/// How an ISA line was routed.
#[derive(Clone, Copy, Debug)]
struct Route {
    /// Its input on the I/O APIC.
    input: u32,
    edge_triggered: bool,
    vector: u8,
    destination_apic_id: u32,
}

/// Each ISA line's route, if it has one.
static ROUTES: spin::Once<[Option<Route>; acpi::ISA_LINE_COUNT]> = spin::Once::new();
/// Edge lines the bus has masked, and those of them whose interrupt arrived meanwhile.
static MARKED_MASKED: [AtomicBool; acpi::ISA_LINE_COUNT] =
    [const { AtomicBool::new(false) }; acpi::ISA_LINE_COUNT];
static PENDING: [AtomicBool; acpi::ISA_LINE_COUNT] =
    [const { AtomicBool::new(false) }; acpi::ISA_LINE_COUNT];
/// The I/O APIC carries the ISA lines now (the 8259s are masked).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Why the I/O APIC cannot take over.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum IoApicError {
    /// Its registers' page is outside the physical-memory window.
    NotMapped,
}

fn read(base: u64, register: u32) -> u32 {
    // SAFETY: `base` maps the I/O APIC's registers (checked by `take_over`); selecting and
    // reading a register has no other effect. The caller holds the lock, so the pair is atomic.
    unsafe {
        ((base + SELECT_OFFSET) as *mut u32).write_volatile(register);
        ((base + WINDOW_OFFSET) as *const u32).read_volatile()
    }
}

fn write(base: u64, register: u32, value: u32) {
    // SAFETY: as in `read`; writing a redirection entry changes only how its input is
    // delivered.
    unsafe {
        ((base + SELECT_OFFSET) as *mut u32).write_volatile(register);
        ((base + WINDOW_OFFSET) as *mut u32).write_volatile(value);
    }
}

/// Programs one entry per ISA line (the cascade line excepted): line `n` on vector
/// `vector_base + n`, to the CPU with local APIC id `destination_apic_id`, masked where
/// `masked(n)` says so. The caller then masks the 8259s and calls [`activate`]; interrupts are
/// off meanwhile. Lines whose input the I/O APIC lacks stay with nobody (logged).
pub(super) fn take_over(
    info: acpi::IoApicInfo,
    wiring: &[acpi::IsaWiring; acpi::ISA_LINE_COUNT],
    vector_base: u8,
    destination_apic_id: u32,
    skip_line: u8,
    masked: impl Fn(u8) -> bool,
) -> Result<(), IoApicError> {
    let base = paging::phys_to_virt(info.address) as u64;
    if !paging::is_mapped(base) {
        return Err(IoApicError::NotMapped);
    }
    let mut registers = REGISTERS.lock();
    *registers = base;
    let inputs = (read(base, VERSION_REGISTER) >> 16 & 0xff) + 1;
    let mut routes = [None; acpi::ISA_LINE_COUNT];
    for (line, wire) in wiring.iter().enumerate() {
        let line = line as u8;
        let input = wire.global_interrupt.wrapping_sub(info.first_global_interrupt);
        if line == skip_line || input >= inputs {
            if line != skip_line {
                log::warn!("ioapic: ISA line {line} (input {input}) is beyond its {inputs} inputs");
            }
            continue;
        }
        let vector = vector_base + line;
        let mut low = u32::from(vector);
        if wire.active_low {
            low |= ACTIVE_LOW;
        }
        if wire.level_triggered {
            low |= LEVEL_TRIGGERED;
            if masked(line) {
                low |= MASKED;
            }
        } else {
            MARKED_MASKED[usize::from(line)].store(masked(line), Ordering::Relaxed);
        }
        write(base, REDIRECTION_TABLE + 2 * input + 1, destination_apic_id << DESTINATION_SHIFT);
        write(base, REDIRECTION_TABLE + 2 * input, low);
        routes[usize::from(line)] = Some(Route {
            input,
            edge_triggered: !wire.level_triggered,
            vector,
            destination_apic_id,
        });
    }
    ROUTES.call_once(|| routes);
    Ok(())
}

/// From now on masks go to the I/O APIC ([`take_over`] has run and the 8259s are masked).
pub(super) fn activate() {
    ACTIVE.store(true, Ordering::Release);
}

/// Whether ISA `line` is routed level-triggered (acknowledged after it is served).
pub(super) fn is_level_triggered(line: u8) -> bool {
    route_of(line).is_some_and(|route| !route.edge_triggered)
}

/// Whether the I/O APIC carries the ISA lines.
pub(super) fn is_active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

fn route_of(line: u8) -> Option<Route> {
    ROUTES.get()?.get(usize::from(line)).copied().flatten()
}

fn entry_register(route: Route) -> u32 {
    REDIRECTION_TABLE + 2 * route.input
}

fn set_entry_masked(base: u64, route: Route, masked: bool) {
    let entry = entry_register(route);
    let low = read(base, entry);
    write(base, entry, if masked { low | MASKED } else { low & !MASKED });
}

/// Masks or unmasks ISA `line` (lazily for an edge line: see the top of the file); lines with
/// no route are ignored.
pub(super) fn set_masked(line: u8, masked: bool) {
    let Some(route) = route_of(line) else { return };
    let registers = REGISTERS.lock();
    if !route.edge_triggered {
        set_entry_masked(*registers, route, masked);
        return;
    }
    let index = usize::from(line);
    MARKED_MASKED[index].store(masked, Ordering::Release);
    if !masked && PENDING[index].swap(false, Ordering::AcqRel) {
        set_entry_masked(*registers, route, false);
        // The held interrupt, delivered as the chip would have: to the line's CPU, on its
        // vector. Accepted or not, the device's state is read by the next interrupt anyway.
        let _ = lapic::send_fixed(route.destination_apic_id, route.vector);
    }
}

/// Called for each interrupt on an ISA line once the I/O APIC carries them: `false` if the
/// line is marked masked, in which case the interrupt is held for the unmask and the input
/// masked at the chip until then. (Level lines are never marked: `true`.)
pub(super) fn admit(line: u8) -> bool {
    let index = usize::from(line);
    if !MARKED_MASKED.get(index).is_some_and(|marked| marked.load(Ordering::Acquire)) {
        return true;
    }
    let Some(route) = route_of(line) else { return true };
    let registers = REGISTERS.lock();
    // Unmasked between the look and the lock: an ordinary interrupt after all.
    if !MARKED_MASKED[index].load(Ordering::Acquire) {
        return true;
    }
    PENDING[index].store(true, Ordering::Release);
    set_entry_masked(*registers, route, true);
    false
}

/// Whether ISA `line` is masked as the bus sees it (`None`: no route): an edge line's mark, or
/// a level line's entry, read back from the I/O APIC.
pub(super) fn is_masked(line: u8) -> Option<bool> {
    let route = route_of(line)?;
    if route.edge_triggered {
        return Some(MARKED_MASKED[usize::from(line)].load(Ordering::Acquire));
    }
    let registers = REGISTERS.lock();
    Some(read(*registers, entry_register(route)) & MASKED != 0)
}
