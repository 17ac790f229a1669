//! The README's first program: greets whoever its arguments name.
#![no_std]
#![no_main]

fn main(args: &str) -> i32 {
    herald_user::println!("hello, {args}");
    0 // the exit code
}

// The calls it makes, which `policy-sandbox` allows and nothing more (`exit` always is).
herald_user::main!(main, syscalls: [SYS_WRITE]);
