//! Reads the number of console bytes in its argument and checks they are the repeating
//! alphabet `abc…z` in order: the flood test's receiver. Prints how many arrived in order and
//! how many were out of place; exits 0 only if all arrived in order. It never reads past the
//! count, so several readers can share one burst of input.
#![no_std]
#![no_main]

use herald_user::{println, read};

fn main(args: &str) -> i32 {
    let expected_total: u64 = args.trim().parse().unwrap_or(0);
    let (mut received, mut out_of_place) = (0u64, 0u64);
    let mut buffer = [0u8; 512];
    while received < expected_total {
        // Never more than it expects: the rest is left for other readers.
        let wanted = (expected_total - received).min(buffer.len() as u64) as usize;
        let Ok(count) = read(0, &mut buffer[..wanted]) else { return 2 };
        for &byte in &buffer[..count as usize] {
            let expected = b'a' + (received % 26) as u8;
            if byte != expected {
                out_of_place += 1;
            }
            received += 1;
        }
    }
    println!();
    println!("keylog: {received} bytes received, {out_of_place} out of place");
    i32::from(out_of_place != 0)
}

herald_user::main!(main, syscalls: [SYS_READ, SYS_WRITE]);
