//! The first program: greets, names itself, and exits with a code the test checks.
#![no_std]
#![no_main]

use herald_user::{getpid, println};

fn main(args: &str) -> i32 {
    println!("hello from user space: pid {}, args {args:?}", getpid());
    7
}

herald_user::main!(main, syscalls: [SYS_WRITE, SYS_GETPID]);
