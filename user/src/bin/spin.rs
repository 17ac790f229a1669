//! CPU-bound: counts loop iterations for a while and exits with the count in thousands, so a
//! test can compare processes' shares of the CPU.
//!
//! Arguments: `MS` runs for MS milliseconds from its start (`run spin 2000`); `--until MS`
//! runs until uptime reaches MS, so processes started one after another stop together;
//! `--work N` counts N million iterations and exits with the milliseconds that took (a fixed
//! amount of work, for the several-CPU benchmark).
#![no_std]
#![no_main]

use herald_user::{println, uptime_ms};

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    let deadline = match (words.next(), words.next()) {
        (Some("--work"), Some(millions)) => {
            let Ok(millions) = millions.parse::<u64>() else { return 2 };
            let started = uptime_ms();
            let mut iterations: u64 = 0;
            for _ in 0..millions * 1_000_000 {
                iterations = core::hint::black_box(iterations + 1);
            }
            core::hint::black_box(iterations);
            return i32::try_from(uptime_ms() - started).unwrap_or(i32::MAX);
        }
        (Some("--until"), Some(ms)) => ms.parse().ok(),
        (Some(ms), None) => ms.parse().ok().map(|duration: u64| uptime_ms() + duration),
        _ => None,
    };
    let Some(deadline) = deadline else {
        println!("usage: spin MS | spin --until UPTIME_MS | spin --work MILLIONS");
        return 2;
    };
    let mut iterations: u64 = 0;
    while uptime_ms() < deadline {
        for _ in 0..1000 {
            iterations = core::hint::black_box(iterations + 1);
        }
    }
    (iterations / 1000) as i32
}

herald_user::main!(main, syscalls: [SYS_UPTIME, SYS_WRITE]);
