//! The local APIC, in xAPIC mode through its memory-mapped registers: for now only what starting
//! the other processors needs (its id, the interrupt command register). Register offsets: SDM
//! Vol. 3A §11.4.1, Table 11-1; the command register: §11.6.1.

use core::sync::atomic::{AtomicU64, Ordering};

use super::paging;

/// Interrupt command register, low half (writing it sends the IPI) and high half (destination).
const COMMAND_LOW_REGISTER: u64 = 0x300;
const COMMAND_HIGH_REGISTER: u64 = 0x310;
/// Delivery status: the IPI has not been accepted yet (bit 12).
const COMMAND_SEND_PENDING: u32 = 1 << 12;
/// Delivery modes (bits 10:8) with the level bit (14) the SDM asks of INIT and STARTUP.
const DELIVERY_INIT: u32 = 0b101 << 8 | 1 << 14;
const DELIVERY_STARTUP: u32 = 0b110 << 8 | 1 << 14;
/// Polls of the delivery status before an IPI counts as lost.
const MAX_SEND_POLLS: u32 = 1_000_000;

/// Kernel address of the registers (0: not set up).
static REGISTERS: AtomicU64 = AtomicU64::new(0);

/// Why the local APIC cannot be used.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum ApicError {
    /// The registers' page is outside the physical-memory window.
    NotMapped,
    /// An IPI was never accepted.
    SendTimedOut,
}

/// Uses the registers at physical `address` (the MADT's local APIC address).
pub(super) fn init(address: u64) -> Result<(), ApicError> {
    let registers = paging::phys_to_virt(address) as u64;
    if !paging::is_mapped(registers) {
        return Err(ApicError::NotMapped);
    }
    REGISTERS.store(registers, Ordering::Relaxed);
    Ok(())
}

fn register(offset: u64) -> *mut u32 {
    let base = REGISTERS.load(Ordering::Relaxed);
    assert_ne!(base, 0, "lapic::init has run");
    (base + offset) as *mut u32
}

fn read(offset: u64) -> u32 {
    // SAFETY: `init` checked the page is mapped; the offset is a register of Table 11-1, read
    // with the 32-bit access the SDM requires.
    unsafe { register(offset).read_volatile() }
}

fn write(offset: u64, value: u32) {
    // SAFETY: as in `read`; writing these registers affects only interrupt delivery.
    unsafe { register(offset).write_volatile(value) }
}

fn send(apic_id: u32, command: u32) -> Result<(), ApicError> {
    write(COMMAND_HIGH_REGISTER, apic_id << 24);
    write(COMMAND_LOW_REGISTER, command);
    for _ in 0..MAX_SEND_POLLS {
        if read(COMMAND_LOW_REGISTER) & COMMAND_SEND_PENDING == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(ApicError::SendTimedOut)
}

/// Sends INIT to the processor with local APIC id `apic_id`: it resets and waits for STARTUP.
pub(super) fn send_init(apic_id: u32) -> Result<(), ApicError> {
    send(apic_id, DELIVERY_INIT)
}

/// Sends STARTUP: the processor starts in real mode at physical `page << 12`.
pub(super) fn send_startup(apic_id: u32, page: u8) -> Result<(), ApicError> {
    send(apic_id, DELIVERY_STARTUP | u32::from(page))
}
