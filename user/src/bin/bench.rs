//! User-side benchmarks, printed in the kernel benchmark's format (`cargo xtask bench` runs
//! them under `-icount`, where the TSC counts guest instructions): a null system call through
//! the bus beside a bare `syscall`/`sysretq` stub, a context switch, and spawn + exit + wait.
#![no_std]
#![no_main]

use core::arch::x86_64::_rdtsc;

use herald_user::{abi, getpid, map, println, spawn, syscall, unmap, wait, yield_now};

const SYSCALLS: u64 = 20_000;
const SWITCH_ROUNDS: u64 = 2_000;
const SPAWNS: u64 = 50;

fn row(name: &str, hundredths: u64, baseline: Option<u64>) {
    match baseline.filter(|&b| b > 0) {
        Some(baseline) => {
            let ratio = hundredths * 100 / baseline;
            println!(
                "  {name:<56} {:>6}.{:02}   {:>3}.{:02}x",
                hundredths / 100,
                hundredths % 100,
                ratio / 100,
                ratio % 100
            );
        }
        None => println!("  {name:<56} {:>6}.{:02}", hundredths / 100, hundredths % 100),
    }
}

/// Mean cost of `op` over `count` runs, in hundredths of a TSC tick, loop overhead removed.
fn hundredths_per_op(count: u64, mut op: impl FnMut()) -> u64 {
    let measure = |op: &mut dyn FnMut()| {
        // SAFETY: `rdtsc` is allowed in ring 3 (Herald leaves CR4.TSD clear).
        let start = unsafe { _rdtsc() };
        for _ in 0..count {
            op();
        }
        // SAFETY: as above.
        let end = unsafe { _rdtsc() };
        end - start
    };
    let empty = measure(&mut || core::hint::black_box(()));
    let full = measure(&mut op);
    full.saturating_sub(empty) * 100 / count
}

fn main(args: &str) -> i32 {
    if args == "partner" {
        // The other side of the context-switch benchmark.
        for _ in 0..SWITCH_ROUNDS + 10 {
            yield_now();
        }
        return 0;
    }
    if args == "tiny" {
        return 0;
    }
    let bare = hundredths_per_op(SYSCALLS, || {
        // SAFETY: the bare stub returns at once without touching memory.
        core::hint::black_box(unsafe { syscall(u64::MAX, [0; 6]) });
    });
    let null = hundredths_per_op(SYSCALLS, || {
        core::hint::black_box(getpid());
    });
    row("bare syscall + sysretq stub (baseline)", bare, None);
    row("null syscall (getpid) -> bus -> owner -> sysretq", null, Some(bare));
    let map_unmap = hundredths_per_op(SYSCALLS / 10, || {
        let address = map(0, 4096, abi::PROT_WRITE).unwrap_or(0);
        core::hint::black_box(unmap(address, 4096)).ok();
    });
    row("map + unmap syscalls (memory events through mm)", map_unmap, Some(null));

    let partner = spawn("bench", "partner").unwrap_or(0);
    yield_now();
    // Each round: this process yields to the partner, which yields back: two switches.
    let round = hundredths_per_op(SWITCH_ROUNDS, yield_now);
    let _ = wait(partner);
    row("context switch (yield between two processes) / 2", round / 2, Some(null));

    let spawn_wait = hundredths_per_op(SPAWNS, || {
        let child = spawn("bench", "tiny").unwrap_or(0);
        let _ = wait(child);
    });
    row("spawn + run + exit + wait of a tiny program", spawn_wait, Some(null));
    0
}

herald_user::main!(main, syscalls: [SYS_WRITE, SYS_GETPID, SYS_YIELD, SYS_SPAWN, SYS_WAIT, SYS_MAP, SYS_UNMAP]);
