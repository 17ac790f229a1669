//! Port I/O: the only place that executes `in` and `out`.

use ::x86_64::instructions::port::Port;

/// Writes `value` to the 8-bit I/O port `port`.
///
/// # Safety
///
/// The caller must own the device behind `port` and know that this write is valid for its
/// current state; a wrong write can reprogram hardware the kernel relies on.
pub(super) unsafe fn write_u8(port: u16, value: u8) {
    // SAFETY: forwarded from the caller.
    unsafe { Port::new(port).write(value) }
}

/// Reads the 8-bit I/O port `port`.
///
/// # Safety
///
/// As for [`write_u8`]: reads can have side effects (e.g. popping a FIFO).
pub(super) unsafe fn read_u8(port: u16) -> u8 {
    // SAFETY: forwarded from the caller.
    unsafe { Port::new(port).read() }
}

/// Writes `value` to the 32-bit I/O port `port`.
///
/// # Safety
///
/// As for [`write_u8`].
pub(super) unsafe fn write_u32(port: u16, value: u32) {
    // SAFETY: forwarded from the caller.
    unsafe { Port::new(port).write(value) }
}

/// Writes `value` to the 16-bit I/O port `port`.
///
/// # Safety
///
/// As for [`write_u8`].
pub(super) unsafe fn write_u16(port: u16, value: u16) {
    // SAFETY: forwarded from the caller.
    unsafe { Port::new(port).write(value) }
}
