//! Exercises the system calls from a real process and checks every answer: bad pointers get
//! EFAULT, unknown calls ENOSYS, memory calls work and refuse what they must, children can be
//! spawned, waited for and killed, events arrive with sequence numbers. Exits with 0, or with
//! the number of the first failed check.
#![no_std]
#![no_main]

use herald_user::{
    Errno, EventRecord, abi, getpid, kill, map, poll, println, protect, share, sleep_ms, spawn,
    subscribe, subscribe_with, syscall, unmap, wait, write,
};

fn raw(number: u64, args: [u64; 6]) -> Result<u64, Errno> {
    // SAFETY: the calls below pass pointers the kernel must refuse, or none.
    Errno::from_return_value(unsafe { syscall(number, args) })
}

/// Compares two values of one type (so `Err(..)` literals infer their `Ok` type).
fn same<T: PartialEq>(actual: &T, expected: &T) -> bool {
    actual == expected
}

fn main(_: &str) -> i32 {
    let mut check = 0;
    macro_rules! expect {
        ($actual:expr, $expected:expr) => {{
            check += 1;
            let actual = $actual;
            let expected = $expected;
            if !same(&actual, &expected) {
                println!(
                    "check {check} failed: {} = {actual:?}, expected {expected:?}",
                    stringify!($actual)
                );
                return check;
            }
        }};
    }
    // Pointer validation.
    expect!(raw(abi::SYS_WRITE, [1, 0xffff_8000_0000_0000, 8, 0, 0, 0]), Err(Errno::EFAULT));
    expect!(raw(abi::SYS_WRITE, [1, 0x10_0000_0000, 8, 0, 0, 0]), Err(Errno::EFAULT));
    expect!(raw(abi::SYS_WRITE, [1, 0x40_0000, u64::MAX, 0, 0, 0]), Err(Errno::EFAULT));
    // Starts in our image, runs past its end: refused before anything is printed.
    expect!(raw(abi::SYS_WRITE, [1, 0x40_0000, 1 << 20, 0, 0, 0]), Err(Errno::EFAULT));
    expect!(raw(abi::SYS_WRITE, [1, 0, 1, 0, 0, 0]), Err(Errno::EFAULT));
    expect!(raw(abi::SYS_WRITE, [7, 0x40_0000, 1, 0, 0, 0]), Err(Errno::EBADF));
    expect!(raw(abi::SYS_WAIT, [0, 0xffff_8000_0000_0000, 0, 0, 0, 0]), Err(Errno::EFAULT));
    expect!(raw(abi::SYS_POLL, [1, 0x40_0000, 1, 0, 0, 0]), Err(Errno::EFAULT));
    expect!(raw(999, [0; 6]), Err(Errno::ENOSYS));
    expect!(raw(abi::SYSCALL_COUNT, [0; 6]), Err(Errno::ENOSYS));
    expect!(write(1, b"checks: pointers ok\n"), Ok(20));

    // Memory.
    let page = 4096;
    let address = map(0, 2 * page, abi::PROT_WRITE).unwrap_or(0);
    expect!(address != 0, true);
    // SAFETY: two fresh read-write pages.
    unsafe { (address as *mut u64).write_volatile(42) };
    // SAFETY: as above.
    expect!(unsafe { (address as *const u64).read_volatile() }, 42);
    expect!(protect(address, page, 0), Ok(()));
    expect!(protect(address, page, abi::PROT_WRITE | abi::PROT_EXECUTE), Err(Errno::EINVAL));
    expect!(map(address, page, abi::PROT_WRITE), Err(Errno::EEXIST));
    expect!(map(0xffff_8000_0000_0000, page, abi::PROT_WRITE), Err(Errno::EINVAL));
    // A read-only page cannot be the target of a kernel write on our behalf either.
    expect!(raw(abi::SYS_READ, [0, address, 1, 0, 0, 0]), Err(Errno::EFAULT));

    // Processes.
    expect!(wait(0), Err(Errno::ECHILD));
    let hello = spawn("hello", "from checks").unwrap_or(0);
    expect!(wait(hello), Ok((hello, 7)));
    expect!(spawn("no-such-program", ""), Err(Errno::ENOENT));
    let sleeper = spawn("sleeper", "60000").unwrap_or(0);
    expect!(sleeper != 0, true);
    let shared = share(address + page, page, sleeper, 0, abi::PROT_WRITE);
    expect!(shared.is_ok(), true);
    expect!(share(address, page, sleeper, 0, abi::PROT_WRITE), Err(Errno::EACCES));
    expect!(share(address, page, 9999, 0, 0), Err(Errno::ESRCH));
    expect!(kill(sleeper), Ok(()));
    expect!(wait(sleeper), Ok((sleeper, abi::KILLED_EXIT_CODE)));
    expect!(kill(sleeper), Err(Errno::ESRCH));
    expect!(kill(0), Err(Errno::EPERM));
    expect!(unmap(address, 2 * page), Ok(()));

    // Events, pulled with sequence numbers.
    let handle = subscribe(abi::EVENT_TIMER, 4).unwrap_or(0);
    expect!(handle != 0, true);
    expect!(subscribe(99, 4), Err(Errno::EINVAL));
    expect!(subscribe(abi::EVENT_TIMER, 0), Err(Errno::EINVAL));
    // The timer cannot wait or be stopped: only user events take those policies.
    expect!(subscribe_with(abi::EVENT_TIMER, 4, abi::OVERFLOW_BACKPRESSURE), Err(Errno::EINVAL));
    expect!(subscribe_with(abi::EVENT_USER, 4, 99), Err(Errno::EINVAL));
    sleep_ms(50);
    // A poll of the full queue's 4 records. Calls run with interrupts on, so ticks landing
    // while it drains may replace records not yet taken (drop-oldest): the offer numbers then
    // jump, which is exactly how a process learns what it missed.
    let mut records = [EventRecord::default(); 4];
    let count = poll(handle, &mut records).unwrap_or(0);
    expect!(count, 4);
    let delivered = &records[..count];
    expect!(delivered.windows(2).all(|pair| pair[1].seq > pair[0].seq), true);
    let missed = delivered[0].seq - 1;
    expect!(missed >= 40, true);
    println!(
        "checks: timer events: {count} delivered, {missed} missed before them (seq {})",
        delivered[0].seq
    );
    expect!(poll(handle + 1000, &mut records), Err(Errno::EINVAL));
    println!("checks: all {check} passed, pid {}", getpid());
    0
}

herald_user::main!(main, syscalls: [SYS_READ, SYS_WRITE, SYS_GETPID, SYS_SLEEP, SYS_SPAWN, SYS_WAIT, SYS_KILL, SYS_MAP, SYS_UNMAP, SYS_PROTECT, SYS_SHARE, SYS_SUBSCRIBE, SYS_POLL]);
