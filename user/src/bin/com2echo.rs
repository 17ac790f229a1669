//! A user-space driver for the second serial port (COM2, a 16550 at 0x2f8 on IRQ 3): it
//! claims the line and the UART's eight ports, sleeps until the UART interrupts, reads every
//! byte the UART holds, echoes each line back out of COM2 and acknowledges the interrupt.
//! The README's "User-space drivers" walkthrough explains it step by step.
//!
//! With `top-half` first, it loads a verified handler that runs in the interrupt: it reads the
//! byte, queues it for the driver and acknowledges the line, and wakes the driver only at the
//! end of a line — one wake-up per line instead of one per byte.
//!
//! With `shared` it joins the drivers sharing the line rather than owning it, with a top half
//! (a sharer's interrupts are served by its top half alone) that answers "not mine" when its
//! UART holds no byte; with `com4` it drives the fourth serial port (0x2e8), which a PC wires
//! to COM2's line — two of them, one per port, share IRQ 3 (`irqshare` runs the pair).
//!
//! Arguments: `[com4] [shared | top-half [lagging]] BYTES`, how many bytes to take before it
//! reports and exits (0 or none: forever). A lagging driver dawdles after its wake-ups, so its ring is often
//! full: the top half then leaves the byte in the UART and holds the line until it is read.
//! Exit codes: 0 done, 2 the claim was refused (no COM2 in this machine, or it is taken).
#![no_std]
#![no_main]

use herald_user::{
    bpf::{self, Instruction},
    inb, irq_ack, irq_claim, irq_claim_shared, irq_program, irq_read, irq_wait, outb, println,
    sleep_ms,
};

/// The ports' first registers and their shared interrupt line (the PC convention).
const COM2_BASE: u16 = 0x2f8;
const COM4_BASE: u16 = 0x2e8;
const LINE: u64 = 3;
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
/// How long a lagging driver dawdles after a wake-up: 0, 1, 2 or 3 steps in turn. The flood
/// (about 7 bytes a millisecond in QEMU) fills its 512-record ring in some 70 ms, so it comes
/// back sometimes to a full ring and sometimes to one about to fill.
const LAGGING_STEP_MS: u64 = 30;
const LAGGING_STEPS: u64 = 4;
/// Longest line kept before it is echoed anyway.
const LINE_CAPACITY: usize = 256;

/// Bytes the top half reads per interrupt at most: a 16550's FIFO.
const FIFO_BYTES: usize = 16;
/// Instructions per byte read, before the reads, and after them.
const READ_LENGTH: usize = 14;
const PROLOGUE_LENGTH: usize = 2;
const TAIL_LENGTH: usize = 11;
const TOP_HALF_LENGTH: usize = PROLOGUE_LENGTH + FIFO_BYTES * READ_LENGTH + TAIL_LENGTH;

/// The top half, in eBPF: while the driver's ring has room and the UART holds a byte (up to a
/// FIFO's worth: loops are not allowed, so the reads are unrolled), read the byte and queue it
/// for the driver, noting a newline; then acknowledge the line and, if a line ended, wake the
/// driver. A full ring leaves the byte in the UART, wakes the driver and keeps the line held
/// until it has read the ring. Registers: r6 bytes read, r7 a newline seen, r8 the byte
/// (r1-r5 do not survive a helper call).
fn top_half(base: u16) -> [Instruction; TOP_HALF_LENGTH] {
    use bpf::{
        ALU_ADD, CLASS_ALU64, HELPER_ACKNOWLEDGE, HELPER_PORT_IN, HELPER_QUEUE, HELPER_RING_SPACE,
        HELPER_WAKE, JMP_JA, JMP_JEQ, JMP_JNE, JMP_JSET, SOURCE_IMMEDIATE, call, exit, jump_if,
        mov, mov_reg,
    };
    const TAIL: usize = PROLOGUE_LENGTH + FIFO_BYTES * READ_LENGTH;
    /// Where a full ring goes: the last three instructions of the tail.
    const FULL: usize = TAIL + TAIL_LENGTH - 3;
    let mut code = [exit(); TOP_HALF_LENGTH];
    code[0] = mov(6, 0);
    code[1] = mov(7, 0);
    for read in 0..FIFO_BYTES {
        let at = PROLOGUE_LENGTH + read * READ_LENGTH;
        // Jump distances count from the instruction after the jump.
        let to_full = (FULL - (at + 2)) as i16;
        let to_tail = (TAIL - (at + 6)) as i16;
        let step = [
            call(HELPER_RING_SPACE),
            jump_if(JMP_JEQ, 0, 0, to_full),
            mov(1, i32::from(base + LINE_STATUS)),
            call(HELPER_PORT_IN),
            jump_if(JMP_JSET, 0, i32::from(LSR_DATA_READY), 1),
            jump_if(JMP_JA, 0, 0, to_tail),
            mov(1, i32::from(base + DATA)),
            call(HELPER_PORT_IN),
            mov_reg(8, 0),
            mov_reg(1, 8),
            call(HELPER_QUEUE),
            Instruction::new(CLASS_ALU64 | ALU_ADD | SOURCE_IMMEDIATE, 6, 0, 0, 1),
            jump_if(JMP_JNE, 8, i32::from(b'\n'), 1),
            mov(7, 1),
        ];
        code[at..at + READ_LENGTH].copy_from_slice(&step);
    }
    let tail = [
        // Served (or nothing to serve: not this device's interrupt) either way.
        call(HELPER_ACKNOWLEDGE),
        jump_if(JMP_JEQ, 6, 0, 4),
        jump_if(JMP_JEQ, 7, 0, 1),
        call(HELPER_WAKE),
        mov(0, bpf::MINE as i32),
        exit(),
        mov(0, bpf::NOT_MINE as i32),
        exit(),
        // The ring is full: the driver empties it, then acknowledges.
        call(HELPER_WAKE),
        mov(0, bpf::MINE as i32),
        exit(),
    ];
    code[TAIL..].copy_from_slice(&tail);
    code
}

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace().peekable();
    let (name, port, base) = if words.next_if_eq(&"com4").is_some() {
        ("com4", "COM4", COM4_BASE)
    } else {
        ("com2", "COM2", COM2_BASE)
    };
    let shared = words.next_if_eq(&"shared").is_some();
    let with_top_half = shared || words.next_if_eq(&"top-half").is_some();
    let lagging = with_top_half && words.next_if_eq(&"lagging").is_some();
    let stop_after: u64 = words.next().and_then(|count| count.parse().ok()).unwrap_or(0);
    let claimed = if shared { irq_claim_shared(LINE, base, 8) } else { irq_claim(LINE, base, 8) };
    let handle = match claimed {
        Ok(handle) => handle,
        Err(errno) => {
            println!("{name}echo: cannot claim {port} (line {LINE}): {errno}");
            return 2;
        }
    };
    // The top half first: the UART interrupts as soon as it may, if a byte waits, and an
    // interrupt served by nobody would leave its line high with no new edge to come.
    if with_top_half && let Err(error) = irq_program(handle, &top_half(base)) {
        println!("{name}echo: top half {error}");
        return 3;
    }
    // 115 200 baud 8N1; the FIFO is left as it was (switching it clears what it holds).
    outb(base + LINE_CONTROL, LCR_DLAB);
    outb(base + DATA, 1);
    outb(base + INTERRUPT_ENABLE, 0);
    outb(base + LINE_CONTROL, LCR_8N1);
    outb(base + MODEM_CONTROL, MCR_DTR_RTS_OUT2);
    outb(base + INTERRUPT_ENABLE, IER_RECEIVED);
    println!(
        "{name}echo: driving {port}{}{}",
        if shared { ", sharing its line," } else { "" },
        if with_top_half { " with a verified top half" } else { "" }
    );
    let (mut seq, mut wakes, mut received, mut lines) = (0, 0u64, 0u64, 0u64);
    let mut full_rings = 0u64;
    let mut line = [0u8; LINE_CAPACITY];
    let mut len = 0;
    // A byte that arrived before the interrupt was enabled raised no edge: serve it first
    // (with a top half, enabling the interrupt with a byte waiting runs it at once).
    let mut serve = !with_top_half;
    let mut records = [0u64; 512];
    while stop_after == 0 || received < stop_after {
        if !serve {
            seq = match irq_wait(handle, seq) {
                Ok(seq) => seq,
                Err(errno) => {
                    println!("{name}echo: irq_wait: {errno}");
                    return 1;
                }
            };
            wakes += 1;
        }
        serve = false;
        if lagging {
            sleep_ms(wakes % LAGGING_STEPS * LAGGING_STEP_MS);
        }
        if with_top_half {
            // What the top half queued first: a full ring it held the line for is empty
            // then, and the acknowledgement runs the top half again for the bytes it left in
            // the UART. (The top half acknowledged the line itself otherwise — unless the
            // interrupt came before it was loaded: then this is what opens the line again.)
            let count = irq_read(handle, &mut records).unwrap_or(0);
            full_rings += u64::from(count == records.len());
            let _ = irq_ack(handle);
            for &record in &records[..count] {
                received += 1;
                line[len] = record as u8;
                len += 1;
                if record == u64::from(b'\n') || len == LINE_CAPACITY {
                    send(base, &line[..len]);
                    lines += 1;
                    len = 0;
                }
            }
            continue;
        }
        while inb(base + LINE_STATUS) & LSR_DATA_READY != 0 {
            let byte = inb(base + DATA);
            received += 1;
            line[len] = byte;
            len += 1;
            if byte == b'\n' || len == LINE_CAPACITY {
                send(base, &line[..len]);
                lines += 1;
                len = 0;
            }
        }
        // The UART is empty: it may interrupt again.
        let _ = irq_ack(handle);
    }
    send(base, &line[..len]);
    println!(
        "{name}echo: {received} bytes received, {lines} lines echoed, {wakes} wake-ups for {seq} \
         interrupts"
    );
    if lagging {
        println!("{name}echo: its ring filled {full_rings} times");
    }
    if with_top_half && !lagging && wakes > lines {
        println!("{name}echo: the top half woke the driver more often than a line ended");
        return 4;
    }
    0
}

/// Sends `bytes` out of the UART at `base`, each once the transmitter has room.
fn send(base: u16, bytes: &[u8]) {
    for &byte in bytes {
        while inb(base + LINE_STATUS) & LSR_TRANSMIT_EMPTY == 0 {}
        outb(base + DATA, byte);
    }
}

herald_user::main!(
    main,
    syscalls: [
        SYS_WRITE,
        SYS_SLEEP,
        SYS_IRQ_CLAIM,
        SYS_IRQ_WAIT,
        SYS_IRQ_ACK,
        SYS_IRQ_PROGRAM,
        SYS_IRQ_READ
    ],
    irq_lines: [3]
);
