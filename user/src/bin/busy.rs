//! One worker of the several-CPU stress test: subscribes to user events, then makes its
//! argument's number of rounds of `getpid` (checking the answer) and `raise(its pid)`, polling
//! its own subscription now and then, and exits — dropping the subscription on whichever CPU
//! it ends on. Exit 0: every call was answered right; 1: a wrong `getpid`; 3: a call failed.
#![no_std]
#![no_main]

use herald_user::{EventRecord, abi, getpid, poll, raise, subscribe};

/// Rounds between two polls of its own subscription.
const POLL_EVERY: u64 = 64;

fn main(args: &str) -> i32 {
    let rounds: u64 = args.trim().parse().unwrap_or(0);
    let me = getpid();
    let Ok(handle) = subscribe(abi::EVENT_USER, 16) else { return 3 };
    let mut records = [EventRecord::default(); 16];
    let mut wrong = 0u64;
    for round in 0..rounds {
        if getpid() != me {
            wrong += 1;
        }
        if raise(me).is_err() {
            return 3;
        }
        if round % POLL_EVERY == 0 && poll(handle, &mut records).is_err() {
            return 3;
        }
    }
    i32::from(wrong != 0)
}

herald_user::main!(main, syscalls: [SYS_GETPID, SYS_RAISE, SYS_SUBSCRIBE, SYS_POLL]);
