//! A kernel stack overflow must hit the guard page below the boot stack, end in the
//! double-fault handler on its own IST stack, and be reported as a stack overflow naming the
//! stack — not triple-fault and reset the machine.
#![no_std]
#![no_main]

use herald::{
    arch::{self, IstSlot, qemu},
    print, println,
};

herald::kernel_entry!(main);

fn main() -> ! {
    println!("running 1 test");
    print!("stack_overflow::overflow_is_caught_on_the_double_fault_stack ... ");
    recurse_forever(0);
    println!("FAILED: recursion returned\n0 passed, 1 failed");
    qemu::exit(qemu::ExitCode::Failure)
}

#[expect(unconditional_recursion, reason = "the overflow is the test")]
fn recurse_forever(depth: u64) -> u64 {
    // black_box keeps the frame alive and stops the compiler from turning this into a loop.
    core::hint::black_box(recurse_forever(core::hint::black_box(depth) + 1)) + 1
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let on_double_fault_stack =
        arch::ist_stack_range(IstSlot::DoubleFault).contains(&arch::cpu::stack_pointer());
    let extra_failure =
        (!on_double_fault_stack).then_some("panic is not on the double-fault IST stack");
    herald::testing::conclude_expected_panic(
        info,
        &["kernel stack overflow: guard page", "below the boot stack", "double fault at rip"],
        extra_failure,
    )
}
