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
/// Status: the input buffer still holds a byte for the controller (wait before writing).
const STATUS_INPUT_FULL: u8 = 0x02;
/// Command (to the status port): the next byte written to the data port appears in the output
/// buffer as if the keyboard had sent it ("write first PS/2 port output buffer").
const COMMAND_WRITE_KEYBOARD_OUTPUT: u8 = 0xd2;
/// Polls of the input-buffer flag before the controller counts as not listening.
const MAX_INPUT_POLLS: u32 = 100_000;
/// ISA line the keyboard interrupts on.
pub const KEYBOARD_IRQ_LINE: u8 = 1;

/// Takes one scancode byte, if the controller has one.
pub fn read_scancode() -> Option<u8> {
    // SAFETY: reading the status register has no side effects; reading the data port when the
    // output buffer is full takes that byte and nothing else.
    unsafe { (port::read_u8(STATUS) & STATUS_OUTPUT_FULL != 0).then(|| port::read_u8(DATA)) }
}

fn wait_until_listening() -> Result<(), &'static str> {
    for _ in 0..MAX_INPUT_POLLS {
        // SAFETY: reading the status register has no side effects.
        if unsafe { port::read_u8(STATUS) } & STATUS_INPUT_FULL == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err("the PS/2 controller is not taking bytes")
}

/// Makes the controller deliver `byte` as if the keyboard had sent it, interrupt included: a
/// real edge on the keyboard's line, for tests of interrupt delivery.
pub fn inject_scancode(byte: u8) -> Result<(), &'static str> {
    wait_until_listening()?;
    // SAFETY: a controller command that only fills its output buffer with the next data byte.
    unsafe { port::write_u8(STATUS, COMMAND_WRITE_KEYBOARD_OUTPUT) };
    wait_until_listening()?;
    // SAFETY: the data byte the command above waits for.
    unsafe { port::write_u8(DATA, byte) };
    Ok(())
}
