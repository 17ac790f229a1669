//! An unhandled kernel exception is reported with its name, vector and faulting instruction.
#![no_std]
#![no_main]

herald::panic_test! {
    name: "fault_report::invalid_opcode_is_named_with_its_rip",
    expect: ["unhandled CPU exception: #UD invalid opcode (vector 6) in kernel mode at rip 0x"],
    // SAFETY: `ud2` raises #UD by definition; the test expects the resulting panic.
    run: || unsafe { core::arch::asm!("ud2", options(nomem, nostack)) },
}
