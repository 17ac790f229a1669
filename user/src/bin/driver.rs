//! A user-space driver's checks against the kernel, for `tests/drivers.rs`. Modes (the first
//! word of the arguments):
//! - `refusals`: every claim the kernel must refuse, each with its errno, and the claims it
//!   must grant, shared ones too; exit 0 if every answer was the documented one.
//! - `stray-port PORT`: claims COM2 and its ports, uses one, then reads port `PORT` (hex); the
//!   kernel must end it with `PORT_FAULT_EXIT_CODE` (it prints `survived` and exits 0 if not).
//! - `released-port`: claims COM2, releases it, then reads one of its ports: must be ended too.
//! - `wait N`: claims the software line (16), then serves N interrupts (wait, acknowledge).
//! - `hold`: claims the software line, takes one interrupt and never acknowledges it.
//! - `declared-lines`: claims line 5, which it declares, and line 10, which it does not;
//!   exit 0 both granted, 1 only line 10 refused (`EPERM`: the sandbox), 2 anything else.
#![no_std]
#![no_main]

use herald_user::{
    Errno, inb, irq_ack, irq_claim, irq_claim_shared, irq_release, irq_wait, println, sleep_ms,
};

const COM2_BASE: u16 = 0x2f8;
const COM2_LINE: u64 = 3;
const SOFTWARE_LINE: u64 = 16;
/// COM2's line status register: reading it has no side effect.
const COM2_LINE_STATUS: u16 = COM2_BASE + 5;

fn refusals() -> i32 {
    let mut checks = 0;
    let mut wrong = 0;
    let mut expect = |what: &str, got: Result<u64, Errno>, want: Result<(), Errno>| {
        checks += 1;
        if got.map(|_| ()) != want {
            wrong += 1;
            println!("refusals: {what}: got {got:?}, expected {want:?}");
        }
        got.unwrap_or(0)
    };
    expect("the timer", irq_claim(0, 0, 0), Err(Errno::EBUSY));
    expect("the keyboard (a kernel driver's)", irq_claim(1, 0, 0), Err(Errno::EBUSY));
    expect("the cascade", irq_claim(2, 0, 0), Err(Errno::EBUSY));
    expect("COM1 (the kernel's console)", irq_claim(4, 0, 0), Err(Errno::EBUSY));
    expect("line 17 (no such line)", irq_claim(17, 0, 0), Err(Errno::EINVAL));
    expect("line 2^64-1", irq_claim(u64::MAX, 0, 0), Err(Errno::EINVAL));
    expect("COM1's ports on COM2's line", irq_claim(COM2_LINE, 0x3f8, 8), Err(Errno::EACCES));
    expect("one port past COM2", irq_claim(COM2_LINE, COM2_BASE, 9), Err(Errno::EACCES));
    expect("COM2's ports on another line", irq_claim(5, COM2_BASE, 8), Err(Errno::EACCES));
    expect("the PIT's ports on COM2's line", irq_claim(COM2_LINE, 0x40, 4), Err(Errno::EACCES));
    let com2 = expect("COM2 and its ports", irq_claim(COM2_LINE, COM2_BASE, 8), Ok(()));
    expect("COM2 twice", irq_claim(COM2_LINE, COM2_BASE + 2, 1), Err(Errno::EBUSY));
    let mut others = [0; 3];
    for (handle, line) in others.iter_mut().zip([5, 6, 7]) {
        *handle = expect("a free line", irq_claim(line, 0, 0), Ok(()));
    }
    expect("a fifth line", irq_claim(9, 0, 0), Err(Errno::EAGAIN));
    expect("a wait on no claim", irq_wait(12_345, 0), Err(Errno::EINVAL));
    expect("a wait past the count", irq_wait(com2, 5), Err(Errno::EINVAL));
    expect("an ack of no claim", irq_ack(12_345).map(|()| 0), Err(Errno::EINVAL));
    expect("an ack before any interrupt", irq_ack(com2).map(|()| 0), Ok(()));
    expect("a release", irq_release(com2).map(|()| 0), Ok(()));
    expect("a second release", irq_release(com2).map(|()| 0), Err(Errno::EINVAL));
    let com2 = expect("COM2 again, once released", irq_claim(COM2_LINE, COM2_BASE, 8), Ok(()));
    for handle in others {
        expect("a release", irq_release(handle).map(|()| 0), Ok(()));
    }
    // Sharing: only with sharers, never with an owner.
    let share = |count| irq_claim_shared(COM2_LINE, COM2_BASE, count);
    expect("sharing COM2's line, owned", share(8), Err(Errno::EBUSY));
    expect("sharing the keyboard's line", irq_claim_shared(1, 0, 0), Err(Errno::EBUSY));
    expect("a release", irq_release(com2).map(|()| 0), Ok(()));
    let first = expect("sharing COM2's line", share(8), Ok(()));
    expect("owning a shared line", irq_claim(COM2_LINE, COM2_BASE, 8), Err(Errno::EBUSY));
    expect("a second sharer of COM2's ports", share(1), Err(Errno::EBUSY));
    let second = expect("a second sharer, portless", irq_claim_shared(COM2_LINE, 0, 0), Ok(()));
    expect("a sharer's ack with nothing held", irq_ack(second).map(|()| 0), Ok(()));
    for handle in [first, second] {
        expect("a sharer's release", irq_release(handle).map(|()| 0), Ok(()));
    }
    expect("COM2 alone, once nobody shares", irq_claim(COM2_LINE, COM2_BASE, 8), Ok(()));
    println!("refusals: {checks} checks, {wrong} wrong");
    if wrong == 0 { 0 } else { 1 }
}

fn stray_port(port: &str) -> i32 {
    let Ok(port) = u16::from_str_radix(port.trim_start_matches("0x"), 16) else { return 3 };
    if let Err(errno) = irq_claim(COM2_LINE, COM2_BASE, 8) {
        println!("stray-port: claim: {errno}");
        return 2;
    }
    let status = inb(COM2_LINE_STATUS);
    println!("stray-port: COM2 line status {status:#x}; now port {port:#x}");
    let _ = inb(port);
    println!("stray-port: survived");
    0
}

fn released_port() -> i32 {
    let Ok(handle) = irq_claim(COM2_LINE, COM2_BASE, 8) else { return 2 };
    let _ = inb(COM2_LINE_STATUS);
    let _ = irq_release(handle);
    println!("released-port: released; reading COM2 again");
    let _ = inb(COM2_LINE_STATUS);
    println!("released-port: survived");
    0
}

fn serve(count: u64) -> i32 {
    let Ok(handle) = irq_claim(SOFTWARE_LINE, 0, 0) else { return 2 };
    let (mut seq, mut served) = (0, 0);
    while served < count {
        match irq_wait(handle, seq) {
            Ok(now) => seq = now,
            Err(errno) => {
                println!("wait: {errno}");
                return 1;
            }
        }
        served += 1;
        let _ = irq_ack(handle);
    }
    println!("wait: served {served} wake-ups for {seq} interrupts");
    0
}

fn declared_lines() -> i32 {
    let declared = irq_claim(5, 0, 0);
    let undeclared = irq_claim(10, 0, 0);
    println!("declared-lines: line 5 {declared:?}, line 10 {undeclared:?}");
    for handle in [declared, undeclared].into_iter().flatten() {
        let _ = irq_release(handle);
    }
    match (declared, undeclared) {
        (Ok(_), Ok(_)) => 0,
        (Ok(_), Err(Errno::EPERM)) => 1,
        _ => 2,
    }
}

fn hold() -> i32 {
    let Ok(handle) = irq_claim(SOFTWARE_LINE, 0, 0) else { return 2 };
    println!("hold: claimed");
    let Ok(seq) = irq_wait(handle, 0) else { return 1 };
    println!("hold: holding interrupt {seq}");
    loop {
        sleep_ms(1000);
    }
}

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    match (words.next(), words.next()) {
        (Some("refusals"), None) => refusals(),
        (Some("stray-port"), Some(port)) => stray_port(port),
        (Some("released-port"), None) => released_port(),
        (Some("wait"), Some(count)) => serve(count.parse().unwrap_or(1)),
        (Some("hold"), None) => hold(),
        (Some("declared-lines"), None) => declared_lines(),
        _ => {
            println!("driver: unknown mode {args:?}");
            64
        }
    }
}

herald_user::main!(
    main,
    syscalls: [SYS_WRITE, SYS_SLEEP, SYS_IRQ_CLAIM, SYS_IRQ_WAIT, SYS_IRQ_ACK, SYS_IRQ_RELEASE],
    // Line 10 is left out: `declared-lines` shows the sandbox refusing it.
    irq_lines: [0, 1, 2, 3, 4, 5, 6, 7, 9, 16]
);
