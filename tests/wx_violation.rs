//! Kernel code is mapped read-only: a write to it faults, and the kernel-mode fault is reported
//! with the address, the access kind and the faulting instruction.
#![no_std]
#![no_main]

fn some_kernel_code() {}

herald::panic_test! {
    name: "wx_violation::writing_kernel_code_faults",
    expect: ["#PF page fault (vector 14) in kernel mode at rip 0x", ": write of 0x", "protection violation"],
    run: || {
        let code = core::hint::black_box(some_kernel_code as fn() as *mut u8);
        // SAFETY: the target is mapped kernel code; with CR0.WP set the write faults before it
        // changes anything, which is what the test checks.
        unsafe { code.write_volatile(0xc3) };
    },
}
