//! Sleeps for the milliseconds in its argument (default: a minute), then exits 0.
#![no_std]
#![no_main]

fn main(args: &str) -> i32 {
    herald_user::sleep_ms(args.trim().parse().unwrap_or(60_000));
    0
}

herald_user::main!(main, syscalls: [SYS_SLEEP]);
