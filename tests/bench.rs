//! Runs the in-kernel benchmarks and the user-space `bench` program (`cargo xtask bench` runs
//! this under `-icount`); as part of the test suite it checks that every benchmark completes.
#![no_std]
#![no_main]

use herald::{
    arch::qemu::{self, ExitCode},
    println,
};

herald::kernel_entry!(main);

fn main() -> ! {
    println!("running 1 test");
    // Benchmarks measure the kernel's paths, not sample modules' log lines (farewell logs
    // every exit; the framebuffer console makes each line cost tens of thousands of
    // instructions).
    herald::logger::set_level(log::LevelFilter::Warn);
    if herald::arch::cpus().iter().filter(|cpu| cpu.online).count() > 1 {
        // On several CPUs (`cargo xtask bench`'s last runs) only what several CPUs change.
        herald::bench::run_smp();
        println!("bench::every_benchmark_completes ... ok\n1 passed, 0 failed");
        qemu::exit(ExitCode::Success)
    }
    herald::bench::run();
    // The user-side rows: system calls, context switches and spawning, from ring 3.
    let pid = herald::task::spawn("bench", "", 0).expect("the bench program is in the ramdisk");
    assert_eq!(herald::task::wait(pid), Ok(0), "the user benchmark failed");
    println!("bench::every_benchmark_completes ... ok\n1 passed, 0 failed");
    qemu::exit(ExitCode::Success)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    herald::testing::panic_handler(info)
}
