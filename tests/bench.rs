//! Runs the event-path benchmarks (`cargo xtask bench` runs this under `-icount`); as part of
//! the test suite it checks that every benchmark completes.
#![no_std]
#![no_main]

use herald::{
    arch::qemu::{self, ExitCode},
    println,
};

herald::kernel_entry!(main);

fn main() -> ! {
    println!("running 1 test");
    herald::bench::run();
    println!("bench::every_benchmark_completes ... ok\n1 passed, 0 failed");
    qemu::exit(ExitCode::Success)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    herald::testing::panic_handler(info)
}
