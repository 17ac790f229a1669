//! CPU-bound: counts loop iterations until uptime reaches the deadline (ms) in its argument,
//! and exits with the count in thousands, so a test can compare processes' shares of the CPU.
#![no_std]
#![no_main]

use herald_user::uptime_ms;

fn main(args: &str) -> i32 {
    let deadline: u64 = args.trim().parse().unwrap_or(0);
    let mut iterations: u64 = 0;
    while uptime_ms() < deadline {
        for _ in 0..1000 {
            iterations = core::hint::black_box(iterations + 1);
        }
    }
    (iterations / 1000) as i32
}

herald_user::main!(main, syscalls: [SYS_UPTIME]);
