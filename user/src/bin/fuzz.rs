//! Makes 100 000 system calls with random numbers and arguments (seeded by its argument) and
//! checks each returns; calls that would end, block or kill this process are skipped, the rest
//! get whatever garbage the generator makes (writes go to a closed descriptor, so the console
//! stays readable). Exit 0: the kernel answered every one.
#![no_std]
#![no_main]

use herald_user::{abi, println, syscall};

const CALLS: u32 = 100_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Mostly small numbers, page-ish addresses, kernel addresses and extremes.
    fn argument(&mut self) -> u64 {
        match self.next() % 6 {
            0 => self.next() % 64,
            1 => 0x40_0000 + self.next() % 0x10_0000,
            2 => 0xffff_8000_0000_0000 | self.next(),
            3 => u64::MAX - self.next() % 16,
            4 => self.next() & !0xfff,
            _ => self.next(),
        }
    }
}

fn main(args: &str) -> i32 {
    let mut rng = Rng(args.trim().parse::<u64>().unwrap_or(1).max(1));
    let me = herald_user::getpid();
    let (mut errors, mut successes) = (0u32, 0u32);
    for _ in 0..CALLS {
        let number = match rng.next() % 4 {
            0 => rng.next(),
            _ => rng.next() % (abi::SYSCALL_COUNT + 2),
        };
        let mut arguments = [
            rng.argument(),
            rng.argument(),
            rng.argument(),
            rng.argument(),
            rng.argument(),
            rng.argument(),
        ];
        if number == abi::SYS_WRITE && (arguments[0] == 1 || arguments[0] == 2) {
            // Random memory on the console would bury the test log; `checks` covers `write`.
            arguments[0] = 3;
        }
        if number == abi::SYS_SUBSCRIBE {
            // A kill-producer or backpressure queue of its own events that it never polls would
            // end or block the fuzzer itself at its next `raise`: its own doing, not the
            // kernel's; `hostile` covers those policies.
            arguments[2] = abi::OVERFLOW_DROP_OLDEST;
        }
        let skip = match number {
            abi::SYS_EXIT | abi::SYS_READ | abi::SYS_SLEEP | abi::SYS_WAIT | abi::SYS_IRQ_WAIT => {
                true
            }
            abi::SYS_KILL => arguments[0] == me,
            _ => false,
        };
        if skip {
            continue;
        }
        // SAFETY: not safe in general — the point is to hand the kernel garbage. The kernel may
        // write only through pointers into this process's writable memory, and nothing here
        // relies on that memory's contents.
        let result = unsafe { syscall(number, arguments) };
        if result > u64::MAX - 4096 { errors += 1 } else { successes += 1 }
    }
    println!("fuzz: {CALLS} calls answered ({successes} succeeded, {errors} refused)");
    0
}

herald_user::main!(main, syscalls: [SYS_READ, SYS_WRITE, SYS_GETPID, SYS_YIELD, SYS_SLEEP, SYS_SPAWN, SYS_WAIT, SYS_KILL, SYS_MAP, SYS_UNMAP, SYS_PROTECT, SYS_SHARE, SYS_SUBSCRIBE, SYS_POLL, SYS_UPTIME, SYS_RAISE, SYS_IRQ_CLAIM, SYS_IRQ_WAIT, SYS_IRQ_ACK, SYS_IRQ_RELEASE, SYS_IRQ_PROGRAM, SYS_IRQ_READ], irq_lines: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
