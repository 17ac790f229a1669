//! A `-smp 3` machine (the runner boots this kernel so): the firmware's three processors are
//! counted and every one is started (so far the others wait; the boot CPU runs everything).
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

herald::test_kernel!();

#[test_case]
fn the_three_processors_qemu_gives_are_counted() {
    assert_eq!(herald::arch::processors_found(), 3);
}

#[test_case]
fn every_processor_starts_and_says_it_is_online() {
    let cpus = herald::arch::cpus();
    let numbers: alloc::vec::Vec<usize> = cpus.iter().map(|cpu| cpu.index).collect();
    assert_eq!(numbers, [0, 1, 2], "{cpus:?}");
    assert!(cpus.iter().all(|cpu| cpu.online), "{cpus:?}");
    let mut apic_ids: alloc::vec::Vec<u32> = cpus.iter().map(|cpu| cpu.apic_id).collect();
    apic_ids.dedup();
    assert_eq!(apic_ids.len(), 3, "each has its own local APIC: {cpus:?}");
}

#[test_case]
fn the_boot_processor_is_number_zero() {
    assert_eq!(herald::arch::cpu_index(), 0);
}
