//! Fixed instruction sequences the benchmarks and stress tests run against the kernel: two
//! `nop`s (the `-icount` calibration), a bare interrupt and the software IRQ. Safe to call:
//! the vectors they raise are installed by `idt` before anything can call them.

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
