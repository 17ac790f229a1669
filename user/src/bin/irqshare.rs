//! Two user-space drivers on one interrupt line: `com2echo shared` for COM2 and `com2echo com4
//! shared` for COM4, both on IRQ 3, each with a verified top half that answers for its own
//! UART and not for the other. Runs them side by side and waits for both.
//!
//! Arguments: `BYTES`, what each driver takes before it reports and exits.
//! Exit codes: 0 both drivers ended with 0; 2 one could not be started; 3 one failed.
#![no_std]
#![no_main]

use herald_user::{println, spawn, wait};

fn main(args: &str) -> i32 {
    let bytes = args.trim();
    let mut drivers = [("com2echo", 0), ("com4echo", 0)];
    for ((name, pid), ports) in drivers.iter_mut().zip(["shared", "com4 shared"]) {
        let mut buffer = [0u8; 64];
        match spawn("com2echo", join(&mut buffer, &[ports, " ", bytes])) {
            Ok(child) => *pid = child,
            Err(errno) => {
                println!("irqshare: cannot start {name}: {errno}");
                return 2;
            }
        }
    }
    let mut failed = false;
    for (name, pid) in drivers {
        match wait(pid) {
            Ok((_, 0)) => println!("irqshare: {name} done"),
            Ok((_, code)) => {
                println!("irqshare: {name} exited with code {code}");
                failed = true;
            }
            Err(errno) => {
                println!("irqshare: waiting for {name}: {errno}");
                failed = true;
            }
        }
    }
    if failed { 3 } else { 0 }
}

/// `parts` joined in `buffer` (no allocator here); what does not fit is cut.
fn join<'a>(buffer: &'a mut [u8], parts: &[&str]) -> &'a str {
    let mut len = 0;
    for part in parts {
        let end = (len + part.len()).min(buffer.len());
        buffer[len..end].copy_from_slice(&part.as_bytes()[..end - len]);
        len = end;
    }
    core::str::from_utf8(&buffer[..len]).unwrap_or("")
}

// Its drivers get no more than it has: it declares what they need too.
herald_user::main!(
    main,
    syscalls: [
        SYS_WRITE,
        SYS_SLEEP,
        SYS_SPAWN,
        SYS_WAIT,
        SYS_IRQ_CLAIM,
        SYS_IRQ_WAIT,
        SYS_IRQ_ACK,
        SYS_IRQ_PROGRAM,
        SYS_IRQ_READ
    ],
    irq_lines: [3]
);
