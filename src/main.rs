//! The Herald kernel binary: boots through [`herald::init`], starts the shell, then the idle
//! task serves interrupts, processes and commands.
#![no_std]
#![no_main]
// `cargo clippy --all-targets` checks this binary in test mode too, which needs a test runner.
#![cfg_attr(test, feature(custom_test_frameworks))]
#![cfg_attr(test, test_runner(herald::testing::run_tests))]

herald::kernel_entry!(kernel_main);

fn kernel_main() -> ! {
    log::info!("boot complete (in a terminal, Ctrl-A X quits QEMU)");
    herald::shell::start();
    herald::idle()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    herald::panic::report(info)
}
