//! Watches one page of its own from another CPU, for the TLB shootdown test: maps it at a fixed
//! address, fills it with a marker and reads it in a tight loop. Another CPU then removes the
//! page; the next read must fault (the process ends with the page-fault code), never see other
//! data through a stale translation (exit 3), and never go on reading the old frame for long
//! (exit 2 after the time given as its argument, in milliseconds; default 10 000).
#![no_std]
#![no_main]

use herald_user::{abi::PROT_WRITE, map, println, uptime_ms};

/// Where the watched page goes; the test unmaps it here.
const WATCHED_PAGE: u64 = 0x5000_0000;
/// What every word of the page holds.
const MARKER: u64 = 0x5a5a_0123_4567_a5a5;

fn main(args: &str) -> i32 {
    let patience_ms = args.trim().parse().unwrap_or(10_000);
    if map(WATCHED_PAGE, 4096, PROT_WRITE) != Ok(WATCHED_PAGE) {
        println!("watcher: could not map its page");
        return 4;
    }
    let words = WATCHED_PAGE as *mut u64;
    for index in 0..512 {
        // SAFETY: the page was just mapped writable at this address, 512 words long.
        unsafe { words.add(index).write_volatile(MARKER) };
    }
    let deadline = uptime_ms() + patience_ms;
    loop {
        for index in 0..512 {
            // SAFETY: mapped above; once the test removes it, this read faults and ends us.
            let word = unsafe { words.add(index).read_volatile() };
            if word != MARKER {
                println!("watcher: read {word:#x} instead of the marker at word {index}");
                return 3;
            }
        }
        if uptime_ms() > deadline {
            println!("watcher: still reading the page after {patience_ms} ms");
            return 2;
        }
    }
}

herald_user::main!(main, syscalls: [SYS_MAP, SYS_UPTIME, SYS_WRITE]);
