//! A failing assertion must reach the panic handler with its message; the test passes only then.
#![no_std]
#![no_main]

use herald::{
    arch::qemu::{self, ExitCode},
    print, println,
};

herald::kernel_entry!(main);

fn main() -> ! {
    println!("running 1 test");
    print!("should_panic::a_failing_assertion_panics_with_its_message ... ");
    let answer = core::hint::black_box(41);
    assert_eq!(answer, 42, "deliberate failure");
    println!("FAILED: the assertion did not panic\n0 passed, 1 failed");
    qemu::exit(ExitCode::Failure)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    herald::testing::conclude_expected_panic(info, &["deliberate failure", "left: 41"], None)
}
