//! Keeps a pattern in all sixteen SSE registers while it is preempted, for the test that each
//! process's x87/SSE state is its own: writes `xmm0`–`xmm15` from its argument (a seed), then
//! for the given milliseconds checks them between system calls and yields. Exit 0: every
//! register read back what it was given; 1: one changed under it (printed).
//!
//! The program is built soft-float (no SSE in compiled code), so the registers hold only what
//! the inline assembly below puts there: any change is the kernel's.
#![no_std]
#![no_main]

use core::arch::asm;

use herald_user::{println, uptime_ms, yield_now};

/// The value register `n` holds for `seed`.
fn pattern(seed: u64, n: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(n as u32 * 4) ^ n
}

macro_rules! each_register {
    ($action:ident) => {
        $action!(0, "xmm0");
        $action!(1, "xmm1");
        $action!(2, "xmm2");
        $action!(3, "xmm3");
        $action!(4, "xmm4");
        $action!(5, "xmm5");
        $action!(6, "xmm6");
        $action!(7, "xmm7");
        $action!(8, "xmm8");
        $action!(9, "xmm9");
        $action!(10, "xmm10");
        $action!(11, "xmm11");
        $action!(12, "xmm12");
        $action!(13, "xmm13");
        $action!(14, "xmm14");
        $action!(15, "xmm15");
    };
}

fn fill(seed: u64) {
    macro_rules! write_register {
        ($n:expr, $name:literal) => {
            // SAFETY: writes one SSE register, which compiled code never uses (soft-float).
            unsafe {
                asm!(concat!("movq ", $name, ", {}"), in(reg) pattern(seed, $n), options(nomem, nostack))
            };
        };
    }
    each_register!(write_register);
}

/// The first register that does not hold its pattern, and what it held.
fn check(seed: u64) -> Option<(u64, u64)> {
    let mut wrong = None;
    macro_rules! read_register {
        ($n:expr, $name:literal) => {
            let value: u64;
            // SAFETY: reads one SSE register into a general one.
            unsafe { asm!(concat!("movq {}, ", $name), out(reg) value, options(nomem, nostack)) };
            if value != pattern(seed, $n) && wrong.is_none() {
                wrong = Some(($n, value));
            }
        };
    }
    each_register!(read_register);
    wrong
}

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    let seed: u64 = words.next().and_then(|word| word.parse().ok()).unwrap_or(1);
    let duration_ms: u64 = words.next().and_then(|word| word.parse().ok()).unwrap_or(300);
    fill(seed);
    let deadline = uptime_ms() + duration_ms;
    let mut rounds = 0u64;
    while uptime_ms() < deadline {
        if let Some((register, value)) = check(seed) {
            println!("simd {seed}: xmm{register} held {value:#x} after {rounds} rounds");
            return 1;
        }
        yield_now();
        rounds += 1;
    }
    0
}

herald_user::main!(main, syscalls: [SYS_UPTIME, SYS_YIELD, SYS_WRITE]);
