//! Spawns its argument's number of children one after another, each `spin` for a long time,
//! and waits for each: the other side of the test that kills children while they are being
//! born. Exit 0: every spawn and wait succeeded (however the children ended).
#![no_std]
#![no_main]

use herald_user::{spawn, wait};

fn main(args: &str) -> i32 {
    let children: u64 = args.trim().parse().unwrap_or(0);
    for _ in 0..children {
        let Ok(pid) = spawn("spin", "60000") else { return 2 };
        if wait(pid).is_err() {
            return 3;
        }
    }
    0
}

herald_user::main!(main, syscalls: [SYS_SPAWN, SYS_WAIT]);
