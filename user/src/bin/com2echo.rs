//! A user-space driver for the second serial port (COM2, a 16550 at 0x2f8 on IRQ 3): it
//! claims the line and the UART's eight ports, sleeps until the UART interrupts, reads every
//! byte the UART holds, echoes each line back out of COM2 and acknowledges the interrupt.
//! The README's "User-space drivers" walkthrough explains it step by step.
//!
//! Arguments: how many bytes to take before it reports and exits (0 or none: forever).
//! Exit codes: 0 done, 2 the claim was refused (no COM2 in this machine, or it is taken).
#![no_std]
#![no_main]

use herald_user::{inb, irq_ack, irq_claim, irq_wait, outb, println};

/// COM2's first port and its interrupt line (the PC convention).
const COM2_BASE: u16 = 0x2f8;
const COM2_LINE: u64 = 3;
/// The 16550's registers, as offsets from its base (PC16550D datasheet §8).
const DATA: u16 = 0; // receive buffer (read) / transmit holding (write); divisor low with DLAB
const INTERRUPT_ENABLE: u16 = 1; // divisor high with DLAB
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;
/// LCR: divisor latch access; 8 data bits, no parity, one stop bit.
const LCR_DLAB: u8 = 0x80;
const LCR_8N1: u8 = 0x03;
/// MCR: DTR, RTS and OUT2, which connects the UART's interrupt to the ISA line on a PC.
const MCR_DTR_RTS_OUT2: u8 = 0x0b;
/// IER: interrupt when a byte is received.
const IER_RECEIVED: u8 = 0x01;
/// LSR: a byte waits in the receiver; the transmitter can take a byte.
const LSR_DATA_READY: u8 = 0x01;
const LSR_TRANSMIT_EMPTY: u8 = 0x20;
/// Longest line kept before it is echoed anyway.
const LINE_CAPACITY: usize = 256;

fn main(args: &str) -> i32 {
    let stop_after: u64 = args.trim().parse().unwrap_or(0);
    let handle = match irq_claim(COM2_LINE, COM2_BASE, 8) {
        Ok(handle) => handle,
        Err(errno) => {
            println!("com2echo: cannot claim COM2 (line {COM2_LINE}): {errno}");
            return 2;
        }
    };
    // 115 200 baud 8N1; the FIFO is left as it was (switching it clears what it holds).
    outb(COM2_BASE + LINE_CONTROL, LCR_DLAB);
    outb(COM2_BASE + DATA, 1);
    outb(COM2_BASE + INTERRUPT_ENABLE, 0);
    outb(COM2_BASE + LINE_CONTROL, LCR_8N1);
    outb(COM2_BASE + MODEM_CONTROL, MCR_DTR_RTS_OUT2);
    outb(COM2_BASE + INTERRUPT_ENABLE, IER_RECEIVED);
    println!("com2echo: driving COM2");
    let (mut seq, mut wakes, mut received, mut lines) = (0, 0u64, 0u64, 0u64);
    let mut line = [0u8; LINE_CAPACITY];
    let mut len = 0;
    // A byte that arrived before the interrupt was enabled raised no edge: serve it first.
    let mut serve = true;
    while stop_after == 0 || received < stop_after {
        if !serve {
            seq = match irq_wait(handle, seq) {
                Ok(seq) => seq,
                Err(errno) => {
                    println!("com2echo: irq_wait: {errno}");
                    return 1;
                }
            };
            wakes += 1;
        }
        serve = false;
        while inb(COM2_BASE + LINE_STATUS) & LSR_DATA_READY != 0 {
            let byte = inb(COM2_BASE + DATA);
            received += 1;
            line[len] = byte;
            len += 1;
            if byte == b'\n' || len == LINE_CAPACITY {
                send(&line[..len]);
                lines += 1;
                len = 0;
            }
        }
        // The UART is empty: it may interrupt again.
        let _ = irq_ack(handle);
    }
    send(&line[..len]);
    println!(
        "com2echo: {received} bytes received, {lines} lines echoed, {wakes} wake-ups for {seq} \
         interrupts"
    );
    0
}

/// Sends `bytes` out of COM2, each once the transmitter has room.
fn send(bytes: &[u8]) {
    for &byte in bytes {
        while inb(COM2_BASE + LINE_STATUS) & LSR_TRANSMIT_EMPTY == 0 {}
        outb(COM2_BASE + DATA, byte);
    }
}

herald_user::main!(main, syscalls: [SYS_WRITE, SYS_IRQ_CLAIM, SYS_IRQ_WAIT, SYS_IRQ_ACK]);
