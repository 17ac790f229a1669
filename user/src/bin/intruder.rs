//! The seed scenario: a process tries to change a stranger's page tables (map its own page into
//! process `args`) and then to kill it. Exit code `10 * share + kill`, each 0 if allowed, 1 if
//! refused with EPERM, 2 for any other answer. It declares `share` but not `kill`.
#![no_std]
#![no_main]

use herald_user::{Errno, abi, kill, map, println, share};

/// Where the intruder asks for its page to appear in the victim.
const TARGET_ADDRESS: u64 = 0x50_0000_0000;

fn outcome<T>(result: &Result<T, Errno>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(Errno::EPERM) => 1,
        Err(_) => 2,
    }
}

fn main(args: &str) -> i32 {
    let victim: u64 = args.trim().parse().unwrap_or(0);
    let Ok(page) = map(0, 4096, abi::PROT_WRITE) else { return 99 };
    // SAFETY: a fresh read-write page of our own.
    unsafe { (page as *mut u64).write_volatile(0x1234) };
    let shared = share(page, 4096, victim, TARGET_ADDRESS, abi::PROT_WRITE);
    let killed = kill(victim);
    println!("intruder: share into pid {victim}: {shared:?}; kill it: {killed:?}");
    10 * outcome(&shared) + outcome(&killed)
}

herald_user::main!(main, syscalls: [SYS_WRITE, SYS_MAP, SYS_SHARE]);
