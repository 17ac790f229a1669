//! Fixed instruction sequences the benchmarks and stress tests run against the kernel: two
//! `nop`s (the `-icount` calibration), a bare interrupt, the software IRQ, and the
//! cross-processor round trips (a ping, a shootdown). Safe to call: the vectors they raise are
//! installed by `idt` before anything can call them.

use core::arch::asm;

use super::vectors::{BARE_IRET_VECTOR, NMI_VECTOR, SOFTWARE_IRQ_VECTOR};

/// Two `nop`s: under `-icount shift=0` the time-stamp counter must advance by exactly 2.
#[inline(always)]
pub fn two_nops() {
    // SAFETY: two `nop`s touch no register, memory or flag.
    unsafe { asm!("nop", "nop", options(nomem, nostack, preserves_flags)) };
}

/// `int` to a gate that is a lone `iretq`: the floor under every interrupt path.
#[inline(always)]
pub fn bare_interrupt() {
    // SAFETY: the gate of this vector is a lone `iretq`, which returns here with every register
    // as it was.
    unsafe { asm!("int {v}", v = const BARE_IRET_VECTOR) };
}

/// Raises the software IRQ line: a real interrupt that dispatches an `Irq` event for line
/// `events::irq::SOFTWARE_LINE` and returns.
#[inline(always)]
pub fn raise_software_irq() {
    // SAFETY: the software IRQ vector runs the ordinary trap path, which preserves every
    // register the interrupted code can see.
    unsafe { asm!("int {v}", v = const SOFTWARE_IRQ_VECTOR) };
}

/// `int 2`: runs the NMI handler as an NMI would (without the CPU's NMI blocking), for tests.
pub fn software_nmi() {
    // SAFETY: the NMI gate runs the handler on its IST stack, which counts it and returns; no
    // register the caller can see changes.
    unsafe { asm!("int {v}", v = const NMI_VECTOR) };
}

/// One IPI round trip to processor `index`: a ping sent, its answer awaited.
pub fn ipi_round_trip(index: usize) -> Result<(), &'static str> {
    super::cpu_events::ping(index)
}

/// A TLB shootdown of one kernel-half page to every other online processor: this CPU flushes
/// the page, each other one flushes its TLB, and this returns once all have answered.
pub fn shootdown_everywhere(address: u64) {
    ::x86_64::instructions::tlb::flush(::x86_64::VirtAddr::new(address));
    super::shootdown::after_change(0, true);
}

/// `int 0x80` from ring 0 with call `number` and no arguments: the system-call event's whole
/// path (trap, bus, security, the owner) but the ring change. Returns `rax`.
pub fn kernel_syscall(number: u64) -> u64 {
    let result: u64;
    // SAFETY: the syscall gate runs the ordinary trap path, which preserves every register but
    // `rax`, the result.
    unsafe {
        asm!("int {v}", v = const super::vectors::SYSCALL_VECTOR, inlateout("rax") number => result);
    }
    result
}
