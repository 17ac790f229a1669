//! A `-smp 3` machine (the runner boots this kernel so): the firmware's three processors are
//! counted and reported, though Herald runs on the boot CPU only until SMP support.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

herald::test_kernel!();

#[test_case]
fn the_three_processors_qemu_gives_are_counted() {
    assert_eq!(herald::arch::processors_found(), 3);
}
