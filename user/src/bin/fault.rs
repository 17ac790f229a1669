//! Commits the fault named by its argument, to show the kernel kills only this process:
//! `pf` (null read), `kernel` (read kernel memory), `wx` (write own code), `gp` (`hlt` in ring
//! 3), `cli` (privileged), `de` (divide by zero), `ud` (invalid opcode), `stack` (overflow).
#![no_std]
#![no_main]

use core::arch::asm;

use herald_user::println;

#[expect(unconditional_recursion, reason = "the stack overflow is the point")]
fn recurse(depth: u64) -> u64 {
    core::hint::black_box(recurse(core::hint::black_box(depth) + 1)) + 1
}

fn main(args: &str) -> i32 {
    println!("fault: committing {args:?}");
    // SAFETY: none of these is safe; each is meant to fault and end the process.
    unsafe {
        match args {
            "pf" => {
                let value = core::ptr::read_volatile(core::hint::black_box(8usize) as *const u64);
                println!("read {value}");
            }
            "kernel" => {
                let value = core::ptr::read_volatile(0xffff_8000_0010_0000usize as *const u64);
                println!("read {value}");
            }
            "wx" => core::ptr::write_volatile(main as fn(&str) -> i32 as *mut u8, 0xc3),
            "gp" => asm!("hlt"),
            "cli" => asm!("cli"),
            "de" => {
                asm!("xor edx, edx", "xor eax, eax", "div {0:e}", in(reg) 0, out("eax") _, out("edx") _)
            }
            "ud" => asm!("ud2"),
            "stack" => {
                recurse(0);
            }
            _ => return 2,
        }
    }
    1
}

herald_user::main!(main, syscalls: [SYS_WRITE]);
