//! Single-instruction CPU operations: interrupt flag, halting, time stamps, stack pointer.

use core::arch::asm;

use ::x86_64::instructions::interrupts;

/// Returns whether maskable interrupts are enabled (RFLAGS.IF).
pub fn interrupts_enabled() -> bool {
    interrupts::are_enabled()
}

/// Enables maskable interrupts.
pub fn enable_interrupts() {
    interrupts::enable();
}

/// Disables maskable interrupts.
pub fn disable_interrupts() {
    interrupts::disable();
}

/// Runs `f` with maskable interrupts disabled, restoring the previous state afterwards.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Sleeps until the next interrupt.
pub fn halt() {
    ::x86_64::instructions::hlt();
}

/// Enables interrupts and waits for the next one, atomically: `sti` delays interrupt recognition
/// by one instruction, so a wake-up cannot slip in between the check that decided to sleep and
/// the `hlt` (SDM Vol. 2B, STI).
pub fn enable_interrupts_and_halt() {
    interrupts::enable_and_hlt();
}

/// Halts forever, still serving interrupts.
pub fn halt_forever() -> ! {
    loop {
        enable_interrupts_and_halt();
    }
}

/// Reads the time-stamp counter. Under `qemu -icount shift=0` it advances exactly once per
/// guest instruction, which makes it the benchmark clock.
pub fn read_timestamp() -> u64 {
    // SAFETY: `rdtsc` has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Returns the current stack pointer.
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: copies RSP into a register; touches no memory and no flags.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Raises a breakpoint exception (`int3`).
pub fn breakpoint() {
    ::x86_64::instructions::interrupts::int3();
}
