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

/// Masks maskable interrupts; returns whether they were enabled (for [`restore_interrupts`]).
pub fn mask_interrupts() -> bool {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack and clears IF; no other state changes. Masking is
    // what every caller asks for, and `restore_interrupts` undoes it. Not `nomem`: like a lock
    // acquire, no memory access may move across it.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(preserves_flags)) };
    flags & RFLAGS_INTERRUPT_ENABLE != 0
}

/// RFLAGS.IF (SDM Vol. 1, §3.4.3.3).
const RFLAGS_INTERRUPT_ENABLE: u64 = 1 << 9;

/// Enables interrupts again if they `were_enabled` before [`mask_interrupts`].
pub fn restore_interrupts(were_enabled: bool) {
    if were_enabled {
        interrupts::enable();
    }
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

/// CPUID leaf 7 (structured extended features), EBX bits (SDM Vol. 2A, CPUID, Table 3-8).
const CPUID_EXTENDED_FEATURES: u32 = 7;
const CPUID_EBX_SMEP: u32 = 1 << 7;
const CPUID_EBX_SMAP: u32 = 1 << 20;

static SMAP_ENABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether SMAP is on (the CPU has it and boot enabled it).
pub fn smap_enabled() -> bool {
    SMAP_ENABLED.load(core::sync::atomic::Ordering::Relaxed)
}

/// Which supervisor protections are on.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct SupervisorProtection {
    /// SMEP: the kernel cannot execute user pages.
    pub smep: bool,
    /// SMAP: the kernel cannot touch user pages unless it says so ([`with_user_access`]).
    pub smap: bool,
}

/// Turns on SMEP and SMAP if the CPU has them (SDM Vol. 3A §4.6). The kernel reaches user
/// memory only through mm's copies via the physical-memory window, so neither gets in its way.
pub(super) fn enable_supervisor_protection() -> SupervisorProtection {
    use ::x86_64::registers::control::{Cr4, Cr4Flags};

    let features = core::arch::x86_64::__cpuid_count(CPUID_EXTENDED_FEATURES, 0);
    let protection = SupervisorProtection {
        smep: features.ebx & CPUID_EBX_SMEP != 0,
        smap: features.ebx & CPUID_EBX_SMAP != 0,
    };
    // SAFETY: setting CR4 bits the CPU reports; the kernel neither executes nor (outside
    // `with_user_access`) touches user pages.
    unsafe {
        Cr4::update(|flags| {
            flags.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, protection.smep);
            flags.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, protection.smap);
        });
    }
    SMAP_ENABLED.store(protection.smap, core::sync::atomic::Ordering::Relaxed);
    protection
}

/// Clears RFLAGS.AC on kernel entry, so ring-3 code that set it cannot lend the kernel its
/// SMAP exemption (Linux's ASM_CLAC).
#[inline]
pub(super) fn forbid_user_access() {
    if SMAP_ENABLED.load(core::sync::atomic::Ordering::Relaxed) {
        // SAFETY: `clac` exists when SMAP does; it only clears RFLAGS.AC.
        unsafe { asm!("clac", options(nomem, nostack)) };
    }
}

/// Runs `f` with kernel access to user pages allowed (RFLAGS.AC set while SMAP is on). Only
/// for tests and benchmarks that touch a user page from the kernel on purpose; kernel code
/// uses mm's user copies.
pub fn with_user_access<R>(f: impl FnOnce() -> R) -> R {
    let smap = SMAP_ENABLED.load(core::sync::atomic::Ordering::Relaxed);
    if smap {
        // SAFETY: `stac` exists when SMAP does; it only sets RFLAGS.AC.
        unsafe { asm!("stac", options(nomem, nostack)) };
    }
    let result = f();
    if smap {
        // SAFETY: as above, clearing it again.
        unsafe { asm!("clac", options(nomem, nostack)) };
    }
    result
}

/// IA32_FS_BASE (SDM Vol. 4, Table 2-2): the FS segment's base, a Linux program's thread
/// pointer.
const IA32_FS_BASE: u32 = 0xc000_0100;

/// Loads `base` as this CPU's FS base: the running task's (called at each switch to it, and by
/// `arch_prctl`). `base` must be a user-half address (the caller checked: a non-canonical one
/// would fault here, in the kernel).
pub fn set_user_fs_base(base: u64) {
    debug_assert!(base < 0x0000_8000_0000_0000, "a user-half FS base");
    // SAFETY: the kernel never uses FS, so its base only matters to ring 3; the value is
    // canonical (the caller keeps it in the user half), so the write cannot fault.
    unsafe { ::x86_64::registers::model_specific::Msr::new(IA32_FS_BASE).write(base) };
}

/// What Linux reports as `AT_HWCAP` on x86: CPUID leaf 1's EDX feature bits.
pub fn hardware_capabilities() -> u64 {
    u64::from(core::arch::x86_64::__cpuid(1).edx)
}
