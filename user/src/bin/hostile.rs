//! Asks the kernel for too much, the way a hostile or broken program would, and reports what
//! the kernel answered. `tests/hostile.rs` runs each mode and checks the answers, that the
//! kernel still serves others, and that every frame comes back.
//!
//! Modes (the first word of the arguments):
//! - `reserve-loop`: 1000 reservations of 1 GiB each; prints how many were accepted.
//! - `touch-all`: reserves and touches memory 4 MiB at a time until the kernel ends it.
//! - `many-maps`: 100 000 one-page maps; prints how many the limit allowed and the cycles per
//!   map at the start and at the end (flat if placement is O(log n)).
//! - `bomb DEPTH FANOUT`: every process spawns FANOUT copies of itself, DEPTH levels deep; exit
//!   code: processes in its tree (at most 127), plus 128 if any spawn was refused with EAGAIN.
//! - `long-calls MS`: the longest calls it can make (share, protect and unmap of 16 MiB
//!   regions, a 4 KiB write) for MS milliseconds.
//! - `latency MS`: sleeps 1 ms at a time for MS milliseconds; prints the worst lateness.
//! - `flood-kill`: subscribes to user events with a kill-producer queue of 4 and never polls;
//!   a child raising 100 events must be ended with `FLOODED_EXIT_CODE`.
//! - `flood-block`: the same with a backpressure queue: the child must block after 4 events,
//!   then deliver all 64 in order, none lost, as this process polls.
//! - `raise N`: raises the values 0..N.
//! - `kill-parked`: spawns `long-calls`, lets it run into its calls, kills it; the child must
//!   end with 137 however often it was parked inside a call when the kill came.
//! - `long-calls-int80 MS`: `long-calls` entering the kernel through `int 0x80`.
#![no_std]
#![no_main]

use herald_user::{
    Errno, EventRecord, abi, getpid, map, poll, println, protect, raise, share, sleep_ms, spawn,
    subscribe_with, unmap, uptime_ms, wait, write,
};

const PAGE: u64 = 4096;
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn cycles() -> u64 {
    // SAFETY: `rdtsc` only reads the time-stamp counter, which ring 3 may (CR4.TSD is clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn reserve_loop() -> i32 {
    let started = uptime_ms();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..1000 {
        match map(0, GIB, abi::PROT_WRITE) {
            Ok(_) => accepted += 1,
            Err(Errno::ENOMEM) => refused += 1,
            Err(errno) => {
                println!("reserve-loop: unexpected {errno}");
                return 1;
            }
        }
    }
    // A modest reservation still works after all those refusals.
    let Ok(small) = map(0, MIB, abi::PROT_WRITE) else { return 2 };
    // SAFETY: the page was just mapped writable for this process.
    unsafe { (small as *mut u8).write_volatile(1) };
    println!(
        "reserve-loop: 1000 tries of 1 GiB, {accepted} accepted, {refused} refused with ENOMEM \
         in {} ms",
        uptime_ms() - started
    );
    0
}

fn touch_all() -> i32 {
    let mut touched = 0u64;
    loop {
        let base = match map(0, 4 * MIB, abi::PROT_WRITE) {
            Ok(base) => base,
            Err(errno) => {
                println!("touch-all: map refused with {errno} after {} MiB", touched / MIB);
                return 3;
            }
        };
        for page in (base..base + 4 * MIB).step_by(PAGE as usize) {
            // SAFETY: the page lies in the writable region just mapped.
            unsafe { (page as *mut u8).write_volatile(1) };
        }
        touched += 4 * MIB;
        if touched.is_multiple_of(32 * MIB) {
            println!("touch-all: {} MiB touched", touched / MIB);
        }
    }
}

fn many_maps() -> i32 {
    const TRIES: u64 = 100_000;
    const BATCH: u64 = 256;
    const BATCHES_COMPARED: usize = 4;
    let (mut mapped, mut refused, mut refusal_cycles) = (0u64, 0u64, 0u64);
    let mut first_batches = [u64::MAX; BATCHES_COMPARED];
    let mut last_batches = [u64::MAX; BATCHES_COMPARED];
    let (mut batch_cycles, mut batch_len, mut full_batches) = (0u64, 0u64, 0usize);
    let mut lowest = u64::MAX;
    for _ in 0..TRIES {
        let before = cycles();
        let result = map(0, PAGE, abi::PROT_WRITE);
        let spent = cycles() - before;
        match result {
            Ok(address) => {
                lowest = lowest.min(address);
                mapped += 1;
                batch_cycles += spent;
                batch_len += 1;
                if batch_len == BATCH {
                    if full_batches < BATCHES_COMPARED {
                        first_batches[full_batches] = batch_cycles;
                    }
                    last_batches[full_batches % BATCHES_COMPARED] = batch_cycles;
                    full_batches += 1;
                    batch_cycles = 0;
                    batch_len = 0;
                }
            }
            Err(Errno::ENOMEM) => {
                refused += 1;
                refusal_cycles += spent;
            }
            Err(errno) => {
                println!("many-maps: unexpected {errno}");
                return 1;
            }
        }
    }
    // The quietest batch of each end: what the kernel costs, without the host's noise.
    let first = first_batches.iter().min().copied().unwrap_or(0) / BATCH;
    let last = last_batches.iter().min().copied().unwrap_or(0) / BATCH;
    let per_refusal = refusal_cycles.checked_div(refused).unwrap_or(0);
    let started = uptime_ms();
    // One call takes them all back: thousands of regions, freed in preemptible steps.
    let unmapped = unmap(lowest, mapped * PAGE);
    println!(
        "many-maps: {mapped} mapped, {refused} refused with ENOMEM; cycles per map: first \
         {first}, last {last}; per refusal {per_refusal}; unmap of all: {unmapped:?} in {} ms",
        uptime_ms() - started
    );
    0
}

fn bomb(depth: u32, fanout: u32) -> i32 {
    if depth == 0 {
        return 1;
    }
    let mut children = [0u64; 8];
    let mut refused = false;
    let arguments = format_bomb_args(depth - 1, fanout);
    let arguments = core::str::from_utf8(&arguments.0[..arguments.1]).unwrap_or("");
    let mut started = 0;
    for _ in 0..fanout.min(8) {
        match spawn("hostile", arguments) {
            // Kept together: a refused spawn leaves no hole (a later one may succeed once
            // another process has ended, and waiting for pid 0 would take any child).
            Ok(pid) => {
                children[started] = pid;
                started += 1;
            }
            Err(Errno::EAGAIN) => refused = true,
            Err(errno) => {
                println!("bomb: spawn failed with {errno}");
                return 255;
            }
        }
    }
    let mut total = 1;
    for &pid in &children[..started] {
        match wait(pid) {
            Ok((_, code)) => {
                total += code & 0x7f;
                refused |= code & 0x80 != 0;
            }
            Err(errno) => {
                println!("bomb: wait failed with {errno}");
                return 255;
            }
        }
    }
    total.min(0x7f) | if refused { 0x80 } else { 0 }
}

/// `bomb DEPTH FANOUT` as bytes, without an allocator.
fn format_bomb_args(depth: u32, fanout: u32) -> ([u8; 32], usize) {
    let mut text = [0u8; 32];
    let mut len = 0;
    for byte in b"bomb ".iter().copied().chain(digits(depth)).chain(*b" ").chain(digits(fanout)) {
        text[len] = byte;
        len += 1;
    }
    (text, len)
}

fn digits(mut value: u32) -> impl Iterator<Item = u8> {
    let mut reversed = [0u8; 10];
    let mut len = 0;
    loop {
        reversed[len] = b'0' + (value % 10) as u8;
        len += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    (0..len).rev().map(move |index| reversed[index])
}

/// `share` through `int 0x80`, the other way into the kernel.
fn share_via_int80(address: u64, len: u64, pid: u64) -> Result<u64, Errno> {
    let result: u64;
    // SAFETY: `int 0x80` enters the kernel's system-call path like `syscall`; the registers
    // follow the same ABI, and the arguments name only this process's own memory.
    unsafe {
        core::arch::asm!(
            "int 0x80",
            inlateout("rax") abi::SYS_SHARE => result,
            in("rdi") address,
            in("rsi") len,
            in("rdx") pid,
            in("r10") 0u64,
            in("r8") abi::PROT_WRITE,
            in("r9") 0u64,
            options(nostack),
        );
    }
    Errno::from_return_value(result)
}

fn kill_parked() -> i32 {
    let mut slowest = 0;
    for round in 0..5 {
        let Ok(child) = spawn("hostile", "long-calls 3000") else { return 40 };
        sleep_ms(20 + round * 7);
        let killed_at = uptime_ms();
        if herald_user::kill(child).is_err() {
            return 41;
        }
        match wait(child) {
            Ok((_, abi::KILLED_EXIT_CODE)) => slowest = slowest.max(uptime_ms() - killed_at),
            Ok((_, code)) => {
                println!("kill-parked: round {round}: the child ended with {code}, not 137");
                return 42;
            }
            Err(_) => return 43,
        }
    }
    println!("kill-parked: 5 of 5 killed, the slowest {slowest} ms after its kill");
    0
}

fn long_calls(duration_ms: u64, via_int80: bool) -> i32 {
    let me = getpid();
    let deadline = uptime_ms() + duration_ms;
    // 48 lines: more than the 1280x720 console's 45 rows, so at least one scroll (megabytes of
    // framebuffer moved) lands inside the call, wherever the cursor was.
    let mut text = [b'.'; 48 * 128];
    for line_end in text.iter_mut().skip(127).step_by(128) {
        *line_end = b'\n';
    }
    let mut rounds = 0;
    while uptime_ms() < deadline {
        let Ok(region) = map(0, 16 * MIB, abi::PROT_WRITE) else { return 4 };
        // Sharing into itself backs all 4096 pages of the source in one call.
        let shared = if via_int80 {
            share_via_int80(region, 16 * MIB, me)
        } else {
            share(region, 16 * MIB, me, 0, abi::PROT_WRITE)
        };
        let Ok(alias) = shared else { return 5 };
        if protect(region, 16 * MIB, 0).is_err() || unmap(alias, 16 * MIB).is_err() {
            return 6;
        }
        if unmap(region, 16 * MIB).is_err() {
            return 7;
        }
        if rounds == 0 && write(1, &text).is_err() {
            return 8;
        }
        rounds += 1;
    }
    println!("\nlong-calls: {rounds} rounds");
    0
}

fn latency(duration_ms: u64) -> i32 {
    let deadline = uptime_ms() + duration_ms;
    let (mut worst, mut worst_cycles, mut sleeps) = (0, 0, 0);
    while uptime_ms() < deadline {
        let (before, before_cycles) = (uptime_ms(), cycles());
        sleep_ms(1);
        let late = (uptime_ms() - before).saturating_sub(1);
        // The time-stamp counter keeps counting where a kernel that masked interrupts too long
        // would have lost timer ticks (and with them, time by its own clock).
        worst_cycles = worst_cycles.max(cycles() - before_cycles);
        worst = worst.max(late);
        sleeps += 1;
    }
    println!(
        "latency: worst {worst} ms late over {sleeps} sleeps of 1 ms; longest sleep {worst_cycles} \
         cycles"
    );
    0
}

fn flood_kill() -> i32 {
    let Ok(_handle) = subscribe_with(abi::EVENT_USER, 4, abi::OVERFLOW_KILL_PRODUCER) else {
        return 10;
    };
    let Ok(child) = spawn("hostile", "raise 100") else { return 11 };
    match wait(child) {
        Ok((_, code)) => {
            println!("flood-kill: the producer exited with {code}");
            if code == abi::FLOODED_EXIT_CODE { 0 } else { 12 }
        }
        Err(_) => 13,
    }
}

fn flood_block() -> i32 {
    const EVENTS: u64 = 64;
    let Ok(handle) = subscribe_with(abi::EVENT_USER, 4, abi::OVERFLOW_BACKPRESSURE) else {
        return 20;
    };
    let Ok(child) = spawn("hostile", "raise 64") else { return 21 };
    // Long enough for the child to fill the queue and block on the fifth event.
    sleep_ms(50);
    let mut records = [EventRecord::default(); 8];
    let Ok(first_poll) = poll(handle, &mut records) else { return 22 };
    let mut expected = 0;
    if !in_order(&records[..first_poll], child, &mut expected) {
        return 23;
    }
    let deadline = uptime_ms() + 5000;
    while expected < EVENTS && uptime_ms() < deadline {
        let Ok(count) = poll(handle, &mut records) else { return 24 };
        if !in_order(&records[..count], child, &mut expected) {
            return 25;
        }
        if count == 0 {
            sleep_ms(1);
        }
    }
    let code = wait(child).map_or(-1, |(_, code)| code);
    println!(
        "flood-block: {first_poll} queued while the producer was blocked, then {expected} of {EVENTS} in order, none lost; producer exited with {code}"
    );
    if first_poll == 4 && expected == EVENTS && code == 0 { 0 } else { 26 }
}

/// Whether `batch` holds `producer`'s values `expected..` in order, with nothing offered and
/// dropped in between (offer numbers and values advance together); advances `expected`.
fn in_order(batch: &[EventRecord], producer: u64, expected: &mut u64) -> bool {
    for record in batch {
        let right = record.kind == abi::EVENT_USER
            && record.a == producer
            && record.b == *expected
            && record.seq == *expected + 1;
        if !right {
            return false;
        }
        *expected += 1;
    }
    true
}

fn raise_values(count: u64) -> i32 {
    for value in 0..count {
        if raise(value).is_err() {
            return 30;
        }
    }
    0
}

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    let mode = words.next().unwrap_or("");
    let mut number = |default: u64| words.next().and_then(|w| w.parse().ok()).unwrap_or(default);
    match mode {
        "reserve-loop" => reserve_loop(),
        "touch-all" => touch_all(),
        "many-maps" => many_maps(),
        "bomb" => {
            let depth = number(6) as u32;
            bomb(depth, number(3) as u32)
        }
        "long-calls" => long_calls(number(2000), false),
        "long-calls-int80" => long_calls(number(2000), true),
        "kill-parked" => kill_parked(),
        "latency" => latency(number(2000)),
        "flood-kill" => flood_kill(),
        "flood-block" => flood_block(),
        "raise" => raise_values(number(0)),
        _ => {
            println!("hostile: unknown mode {mode:?}");
            64
        }
    }
}

herald_user::main!(
    main,
    syscalls: [SYS_WRITE, SYS_MAP, SYS_UNMAP, SYS_PROTECT, SYS_SHARE, SYS_SPAWN, SYS_WAIT,
               SYS_GETPID, SYS_SLEEP, SYS_UPTIME, SYS_SUBSCRIBE, SYS_POLL, SYS_RAISE, SYS_KILL]
);
