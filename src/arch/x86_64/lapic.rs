//! The local APIC, in xAPIC mode through its memory-mapped registers: its id, enable, EOI, the
//! timer, and IPIs through the interrupt command register. Register offsets: SDM Vol. 3A
//! §11.4.1, Table 11-1; the command register: §11.6.1.
//!
//! Each CPU reaches only its own APIC at the shared address, so two CPUs never race on a
//! register. On one CPU, an IPI is two writes (destination, then command), made with
//! interrupts off so that no handler sending its own IPI lands between them (the timer's
//! watchdog sends NMIs, a line's unmask resends an interrupt). An NMI handler never sends one;
//! the panic path's stop may (a panic inside the NMI handler), and it ends every CPU anyway.

use core::sync::atomic::{AtomicU64, Ordering};

/// End-of-interrupt register: any write acknowledges the interrupt in service.
const EOI_REGISTER: u64 = 0xb0;
/// Spurious-interrupt vector register; bit 8 enables the APIC in software (§11.9).
const SPURIOUS_REGISTER: u64 = 0xf0;
const SOFTWARE_ENABLE: u32 = 1 << 8;
/// The timer's local vector table entry, initial count, current count and divide
/// configuration (§11.5.4); periodic mode is bit 17 of the entry, masked bit 16.
const TIMER_ENTRY_REGISTER: u64 = 0x320;
const TIMER_INITIAL_COUNT_REGISTER: u64 = 0x380;
const TIMER_CURRENT_COUNT_REGISTER: u64 = 0x390;
const TIMER_DIVIDE_REGISTER: u64 = 0x3e0;
const TIMER_PERIODIC: u32 = 1 << 17;
const ENTRY_MASKED: u32 = 1 << 16;
/// Divide configuration value for "divide by 16" (§11.5.4, Figure 11-10).
const DIVIDE_BY_16: u32 = 0b0011;
/// The ID register; the id is in bits 31:24.
const ID_REGISTER: u64 = 0x20;
/// Interrupt command register, low half (writing it sends the IPI) and high half (destination).
const COMMAND_LOW_REGISTER: u64 = 0x300;
const COMMAND_HIGH_REGISTER: u64 = 0x310;
/// Delivery status: the IPI has not been accepted yet (bit 12).
const COMMAND_SEND_PENDING: u32 = 1 << 12;
/// Delivery modes (bits 10:8) with the level bit (14) the SDM asks of INIT and STARTUP.
const DELIVERY_INIT: u32 = 0b101 << 8 | 1 << 14;
const DELIVERY_STARTUP: u32 = 0b110 << 8 | 1 << 14;
const DELIVERY_NMI: u32 = 0b100 << 8 | 1 << 14;
const DELIVERY_FIXED: u32 = 1 << 14;
/// Destination shorthand "all excluding self" (bits 19:18).
const ALL_EXCLUDING_SELF: u32 = 0b11 << 18;
/// Polls of the delivery status before an IPI counts as lost.
const MAX_SEND_POLLS: u32 = 1_000_000;

/// Kernel address of the registers (0: not set up).
static REGISTERS: AtomicU64 = AtomicU64::new(0);

/// Why an IPI failed.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum ApicError {
    /// It was never accepted.
    SendTimedOut,
}

/// Uses the registers at kernel address `registers` (the MADT's local APIC address in the
/// physical-memory window, which the caller checked is mapped).
pub(super) fn init(registers: u64) {
    REGISTERS.store(registers, Ordering::Relaxed);
}

fn register(offset: u64) -> *mut u32 {
    let base = REGISTERS.load(Ordering::Relaxed);
    assert_ne!(base, 0, "lapic::init has run");
    (base + offset) as *mut u32
}

fn read(offset: u64) -> u32 {
    // SAFETY: `init`'s caller checked the page is mapped; the offset is a register of Table 11-1, read
    // with the 32-bit access the SDM requires.
    unsafe { register(offset).read_volatile() }
}

fn write(offset: u64, value: u32) {
    // SAFETY: as in `read`; writing these registers affects only interrupt delivery.
    unsafe { register(offset).write_volatile(value) }
}

fn send(apic_id: u32, command: u32) -> Result<(), ApicError> {
    super::cpu::without_interrupts(|| {
        write(COMMAND_HIGH_REGISTER, apic_id << 24);
        write(COMMAND_LOW_REGISTER, command);
        for _ in 0..MAX_SEND_POLLS {
            if read(COMMAND_LOW_REGISTER) & COMMAND_SEND_PENDING == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(ApicError::SendTimedOut)
    })
}

/// Sends an ordinary interrupt on `vector` to the processor with local APIC id `apic_id`
/// (fixed delivery, edge: the IPIs the kernel uses between its CPUs).
pub(super) fn send_fixed(apic_id: u32, vector: u8) -> Result<(), ApicError> {
    send(apic_id, DELIVERY_FIXED | u32::from(vector))
}

/// Sends INIT to the processor with local APIC id `apic_id`: it resets and waits for STARTUP.
pub(super) fn send_init(apic_id: u32) -> Result<(), ApicError> {
    send(apic_id, DELIVERY_INIT)
}

/// Sends STARTUP: the processor starts in real mode at physical `page << 12`.
pub(super) fn send_startup(apic_id: u32, page: u8) -> Result<(), ApicError> {
    send(apic_id, DELIVERY_STARTUP | u32::from(page))
}

/// Sends an NMI to the processor with local APIC id `apic_id`.
pub(super) fn send_nmi(apic_id: u32) -> Result<(), ApicError> {
    send(apic_id, DELIVERY_NMI)
}

/// Sends an NMI to every other processor (the panic's stop); does nothing before [`init`].
pub(super) fn send_nmi_to_others() {
    if is_ready() {
        let _ = send(0, DELIVERY_NMI | ALL_EXCLUDING_SELF);
    }
}

/// Whether [`init`] has run (the registers are reachable).
pub(super) fn is_ready() -> bool {
    REGISTERS.load(Ordering::Relaxed) != 0
}

/// This CPU's local APIC id.
pub(super) fn id() -> u32 {
    read(ID_REGISTER) >> 24
}

/// Enables this CPU's local APIC in software, spurious interrupts on `spurious_vector`.
pub(super) fn enable(spurious_vector: u8) {
    write(SPURIOUS_REGISTER, SOFTWARE_ENABLE | u32::from(spurious_vector));
}

/// Acknowledges the interrupt this CPU's local APIC has in service.
pub(super) fn end_of_interrupt() {
    write(EOI_REGISTER, 0);
}

/// Timer counts (at divide-by-16) in `window_ms` milliseconds, measured with `wait_ms`: the
/// timer runs masked from the largest count meanwhile.
pub(super) fn calibrate_timer(window_ms: u64, wait_ms: impl Fn(u64)) -> u32 {
    write(TIMER_DIVIDE_REGISTER, DIVIDE_BY_16);
    write(TIMER_ENTRY_REGISTER, ENTRY_MASKED);
    write(TIMER_INITIAL_COUNT_REGISTER, u32::MAX);
    wait_ms(window_ms);
    let left = read(TIMER_CURRENT_COUNT_REGISTER);
    write(TIMER_INITIAL_COUNT_REGISTER, 0);
    let per_window = u32::MAX - left;
    u32::try_from(u64::from(per_window) / window_ms.max(1)).unwrap_or(u32::MAX)
}

/// Starts this CPU's timer: an interrupt on `vector` every `count` counts (divide-by-16).
pub(super) fn start_periodic_timer(vector: u8, count: u32) {
    write(TIMER_DIVIDE_REGISTER, DIVIDE_BY_16);
    write(TIMER_ENTRY_REGISTER, TIMER_PERIODIC | u32::from(vector));
    write(TIMER_INITIAL_COUNT_REGISTER, count.max(1));
}
