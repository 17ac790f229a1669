//! COM1, a 16550-compatible UART: polled transmit for the console and the test protocol, and
//! interrupt-driven receive for the console input (IRQ 4).
//!
//! Register layout and bits: National Semiconductor PC16550D datasheet, section 8 ("Registers").

use core::sync::atomic::{AtomicBool, Ordering};

use super::port;

/// Base I/O port of COM1 on PC-compatible machines.
const COM1_BASE: u16 = 0x3f8;
/// Transmit holding register (write) / receive buffer (read), DLAB = 0.
const DATA: u16 = COM1_BASE;
/// Interrupt enable register, DLAB = 0; divisor latch high byte when DLAB = 1.
const INTERRUPT_ENABLE: u16 = COM1_BASE + 1;
/// Line control register.
const LINE_CONTROL: u16 = COM1_BASE + 3;
/// Modem control register.
const MODEM_CONTROL: u16 = COM1_BASE + 4;
/// Line status register.
const LINE_STATUS: u16 = COM1_BASE + 5;

/// LCR: divisor latch access bit.
const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, 1 stop bit.
const LCR_8N1: u8 = 0x03;
/// MCR: DTR + RTS + OUT2 (OUT2 gates the UART's interrupt line on PCs).
const MCR_DTR_RTS_OUT2: u8 = 0x0b;
/// LSR: transmit holding register empty.
const LSR_TRANSMIT_EMPTY: u8 = 0x20;
/// LSR: a received byte is waiting.
const LSR_DATA_READY: u8 = 0x01;
/// IER: interrupt when received data is available (and on the FIFO's character timeout).
const IER_RECEIVED_DATA: u8 = 0x01;
/// PIC line COM1 interrupts on (PC/AT convention).
pub const COM1_IRQ_LINE: u8 = 4;

/// Divisor for 115 200 baud from the 1.8432 MHz reference clock (1 843 200 / 16 / 115 200).
const DIVISOR_115200_BAUD: u8 = 1;

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Programs COM1 for 115 200 baud 8N1; idempotent. The FIFO control register is left as the
/// firmware set it: switching the FIFOs on or off clears the receiver, which would lose input
/// that arrived during boot (piped commands, typed-ahead keys).
pub(super) fn init() {
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: COM1 belongs to this driver alone; the sequence is the datasheet's initialisation
    // order (interrupts off, set divisor under DLAB, line format, modem control).
    unsafe {
        port::write_u8(INTERRUPT_ENABLE, 0);
        port::write_u8(LINE_CONTROL, LCR_DLAB);
        port::write_u8(DATA, DIVISOR_115200_BAUD);
        port::write_u8(INTERRUPT_ENABLE, 0);
        port::write_u8(LINE_CONTROL, LCR_8N1);
        port::write_u8(MODEM_CONTROL, MCR_DTR_RTS_OUT2);
    }
}

/// Starts interrupting on received bytes (IRQ [`COM1_IRQ_LINE`]); called once a handler is
/// subscribed to that line.
pub fn enable_receive_interrupt() {
    // SAFETY: setting IER only changes which events raise COM1's interrupt line.
    unsafe { port::write_u8(INTERRUPT_ENABLE, IER_RECEIVED_DATA) };
}

/// Takes one received byte, if any.
pub fn read_byte() -> Option<u8> {
    // SAFETY: reading LSR has no side effects; reading DATA when data is ready takes one byte.
    unsafe { (port::read_u8(LINE_STATUS) & LSR_DATA_READY != 0).then(|| port::read_u8(DATA)) }
}

/// Sends `bytes`, translating `\n` to `\r\n` so raw terminals render lines correctly.
///
/// Not locked: callers serialise through the console lock, and the panic path may call this
/// while that lock is held by the code that panicked (interleaving is then acceptable).
pub fn write_bytes(bytes: &[u8]) {
    for &byte in bytes {
        if byte == b'\n' {
            write_byte(b'\r');
        }
        write_byte(byte);
    }
}

fn write_byte(byte: u8) {
    // SAFETY: reading LSR has no side effects; writing DATA once THR is empty queues one byte.
    unsafe {
        while port::read_u8(LINE_STATUS) & LSR_TRANSMIT_EMPTY == 0 {
            core::hint::spin_loop();
        }
        port::write_u8(DATA, byte);
    }
}
