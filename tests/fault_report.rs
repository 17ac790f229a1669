//! An unhandled kernel exception is reported with its name, vector and faulting instruction.
#![no_std]
#![no_main]

use herald::{arch::qemu, print, println};

herald::kernel_entry!(main);

fn main() -> ! {
    println!("running 1 test");
    print!("fault_report::invalid_opcode_is_named_with_its_rip ... ");
    // SAFETY: `ud2` raises #UD by definition; the test expects the resulting panic.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    println!("FAILED: ud2 did not fault\n0 passed, 1 failed");
    qemu::exit(qemu::ExitCode::Failure)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    herald::testing::conclude_expected_panic(
        info,
        &["unhandled CPU exception: #UD invalid opcode (vector 6) in kernel mode at rip 0x"],
        None,
    )
}
