//! The user's floating-point and SIMD registers (x87 and SSE): enabled on every CPU, and saved
//! and restored per task with FXSAVE/FXRSTOR at each switch between tasks.
//!
//! The kernel is built without SSE (`x86_64-unknown-none` is a soft-float target), so it never
//! touches these registers itself: they hold the running task's values for as long as it runs,
//! through its system calls and interrupts, and only a switch has to move them. Eager saving
//! (every switch) rather than lazy (`#NM` on first use) keeps a task's state from ever being
//! left on a CPU it no longer runs on — on several CPUs a lazily kept state would have to be
//! fetched from another CPU.
//!
//! Reentrancy: `save` and `restore` run inside the scheduler's switch, with interrupts off, and
//! nothing in interrupt context — NMIs included — touches these registers, so no interrupt can
//! change them between a save and the restore; another CPU only ever handles other tasks' areas
//! (a task runs on one CPU at a time).
//!
//! SDM Vol. 1 §10.5.1 (the FXSAVE area), Vol. 3A §2.5 and §13.1 (CR0.MP/EM/TS,
//! CR4.OSFXSR/OSXMMEXCPT).

use alloc::boxed::Box;
use core::arch::asm;

use ::x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// Size of the FXSAVE area.
const FXSAVE_AREA_BYTES: usize = 512;
/// Offsets in the area of the x87 control word and of MXCSR (SDM Vol. 1 Table 10-2).
const CONTROL_WORD_OFFSET: usize = 0;
const MXCSR_OFFSET: usize = 24;
/// What FNINIT leaves in the x87 control word: every exception masked, 64-bit precision,
/// round to nearest (SDM Vol. 1 §8.1.5).
const INITIAL_CONTROL_WORD: u16 = 0x037f;
/// MXCSR after reset: every SIMD exception masked, round to nearest (SDM Vol. 1 §10.2.3).
const INITIAL_MXCSR: u32 = 0x1f80;

/// One task's saved x87/SSE registers, in FXSAVE's format.
#[repr(C, align(16))]
pub struct FpuState([u8; FXSAVE_AREA_BYTES]);

impl FpuState {
    /// The registers a new task starts with: all zero, exceptions masked, as after FNINIT and
    /// a reset MXCSR (what the x86-64 psABI promises a process at entry).
    pub fn initial() -> Box<Self> {
        let mut state = Box::new(Self([0; FXSAVE_AREA_BYTES]));
        state.0[CONTROL_WORD_OFFSET..CONTROL_WORD_OFFSET + 2]
            .copy_from_slice(&INITIAL_CONTROL_WORD.to_le_bytes());
        state.0[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&INITIAL_MXCSR.to_le_bytes());
        state
    }

    /// Stores this CPU's x87/SSE registers here (the task leaving the CPU).
    pub fn save(&mut self) {
        // SAFETY: the area is 512 bytes, 16-byte aligned (the type's alignment), writable; the
        // instruction exists on every x86_64 CPU and OSFXSR is set on every CPU (`enable`).
        unsafe { asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// Loads this CPU's x87/SSE registers from here (the task about to run).
    pub fn restore(&self) {
        // SAFETY: as in `save`; the area holds a state FXSAVE wrote or `initial` built, so no
        // reserved MXCSR bit is set (which would fault).
        unsafe { asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) };
    }
}

/// Lets ring 3 use x87 and SSE on this CPU: no emulation, no task-switched trap, FXSAVE and
/// SIMD exceptions enabled. Runs once per CPU at bring-up.
pub(super) fn enable() {
    // SAFETY: these bits only change how x87/SSE instructions behave (SDM Vol. 3A §2.5); the
    // kernel itself executes none, and every task's state is saved and restored from now on.
    unsafe {
        Cr0::update(|flags| {
            flags.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            // NE: an unmasked x87 exception is #MF in the program that caused it, not the
            // legacy FERR# line to the interrupt controller (SDM Vol. 3A §2.5).
            flags.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|flags| {
            flags.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        });
        // A clean state on this CPU until the first task brings its own.
        asm!("fninit", options(nomem, nostack));
    }
}
