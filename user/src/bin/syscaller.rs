//! Makes the number of `getpid` calls in its argument and checks every answer; the load side
//! of the interrupt-flood test. Exit 0: every call answered correctly.
#![no_std]
#![no_main]

use herald_user::{getpid, println, uptime_ms};

fn main(args: &str) -> i32 {
    let calls: u64 = args.trim().parse().unwrap_or(0);
    let me = getpid();
    let started = uptime_ms();
    let mut wrong = 0u64;
    for _ in 0..calls {
        if getpid() != me {
            wrong += 1;
        }
    }
    println!("syscaller: {calls} calls in {} ms, {wrong} wrong answers", uptime_ms() - started);
    i32::from(wrong != 0)
}

herald_user::main!(main, syscalls: [SYS_WRITE, SYS_GETPID, SYS_UPTIME]);
