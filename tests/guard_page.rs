//! Touching the guard page below a kernel stack is reported as a stack overflow that names the
//! stack, the access and the instruction, not as an anonymous page fault.
#![no_std]
#![no_main]

herald::panic_test! {
    name: "guard_page::a_write_below_a_kernel_stack_is_a_reported_overflow",
    expect: ["kernel stack overflow: write of guard page", "below the kernel thread stack", "at rip 0x"],
    run: || {
        let stack = herald::mm::KernelStack::new(16 * 1024).expect("a kernel stack");
        // The top page is usable, the guard page below the stack is not.
        let top_word = (stack.top() - 8) as *mut u64;
        // SAFETY: the stack's pages are mapped and owned by `stack`; the volatile write to its
        // guard page is the access under test and must fault.
        unsafe {
            top_word.write_volatile(1);
            (stack.guard_page() as *mut u64).write_volatile(1);
        }
    },
}
