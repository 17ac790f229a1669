//! Boots a full kernel and checks what `init` promises: console, heap, interrupts, timer, traps.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use alloc::{boxed::Box, vec::Vec};

use herald::{arch, println};

herald::test_kernel!();

#[test_case]
fn the_firmwares_processors_are_counted() {
    // One, unless a suite boots this kernel with `-smp`; never none.
    assert!(arch::processors_found() >= 1);
}

#[test_case]
fn interrupts_are_enabled_after_init() {
    assert!(arch::cpu::interrupts_enabled());
}

#[test_case]
fn the_timer_ticks() {
    let start = arch::ticks();
    // `hlt` returns on the next interrupt; with only the timer unmasked, 20 halts ≈ 20 ticks.
    for _ in 0..20 {
        arch::cpu::halt();
    }
    let elapsed = arch::ticks() - start;
    assert!(elapsed >= 10, "only {elapsed} ticks in 20 halts");
}

#[test_case]
fn a_breakpoint_is_reported_and_execution_continues() {
    let before = arch::ticks();
    arch::cpu::breakpoint();
    // Reaching this line is the test; the tick read keeps the call from being reordered away.
    assert!(arch::ticks() >= before);
}

#[test_case]
fn printing_many_lines_scrolls_without_deadlock() {
    for line in 0..60 {
        println!("scroll test line {line}");
    }
}

#[test_case]
fn printing_with_interrupts_disabled_does_not_deadlock() {
    arch::cpu::without_interrupts(|| println!("printed with interrupts off"));
}

#[test_case]
fn heap_serves_small_large_and_reused_allocations() {
    let boxed = Box::new(41u64);
    assert_eq!(*boxed + 1, 42);
    let large: Vec<u8> = (0..=255u8).cycle().take(512 * 1024).collect();
    assert_eq!(large.iter().map(|&b| u64::from(b)).sum::<u64>(), 2048 * (255 * 256 / 2));
    drop(large);
    let before = herald::mm::heap::stats().used_bytes;
    for round in 0..10_000u64 {
        let value = Box::new(round);
        assert_eq!(*value, round);
    }
    assert_eq!(herald::mm::heap::stats().used_bytes, before, "freed memory was not reused");
}

#[test_case]
fn no_spurious_interrupts_at_rest() {
    assert_eq!(arch::spurious_interrupt_count(), 0);
}
