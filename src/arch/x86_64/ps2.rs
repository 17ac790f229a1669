//! The PS/2 controller's keyboard port (8042): scancode bytes on IRQ 1. Decoding them is not
//! the machine's business; `drivers::keyboard` does it.
//!
//! Ports and status bits: IBM PC/AT Technical Reference, "Keyboard Controller"; OSDev "8042 PS/2
//! Controller".

use super::port;

/// Data port: the next scancode byte.
const DATA: u16 = 0x60;
/// Status register (read).
const STATUS: u16 = 0x64;
/// Status: the output buffer holds a byte for the CPU.
const STATUS_OUTPUT_FULL: u8 = 0x01;
/// PIC line the keyboard interrupts on.
pub const KEYBOARD_IRQ_LINE: u8 = 1;

/// Takes one scancode byte, if the controller has one.
pub fn read_scancode() -> Option<u8> {
    // SAFETY: reading the status register has no side effects; reading the data port when the
    // output buffer is full takes that byte and nothing else.
    unsafe { (port::read_u8(STATUS) & STATUS_OUTPUT_FULL != 0).then(|| port::read_u8(DATA)) }
}
