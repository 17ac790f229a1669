//! `syscall`/`sysretq`: the MSRs that route the instruction to Herald, the entry stub that swaps
//! in the per-CPU block and the task's kernel stack, and the per-CPU block itself.
//!
//! The stub builds the same [`TrapFrame`] the interrupt stubs build, so a system call is one
//! more trap to the rest of the kernel, and returns with `sysretq` (SDM Vol. 2B, SYSCALL and
//! SYSRET; Vol. 3A §5.8.8).

use core::arch::global_asm;

use ::x86_64::registers::model_specific::Msr;

use super::{
    frame::TrapFrame,
    gdt::{USER_CODE_SELECTOR, USER_DATA_SELECTOR},
    percpu::PerCpu,
    traps::{self, handle_user_syscall},
    vectors::SYSCALL_VECTOR,
};

/// IA32_EFER and its System Call Enable bit (SDM Vol. 3A §2.2.1, Table 2-1).
const IA32_EFER: u32 = 0xc000_0080;
const EFER_SYSCALL_ENABLE: u64 = 1 << 0;
/// IA32_STAR: kernel CS in bits 47:32, sysret base selector in bits 63:48.
const IA32_STAR: u32 = 0xc000_0081;
/// IA32_LSTAR: the 64-bit entry point.
const IA32_LSTAR: u32 = 0xc000_0082;
/// IA32_FMASK: RFLAGS bits cleared on entry.
const IA32_FMASK: u32 = 0xc000_0084;
/// IA32_GS_BASE and IA32_KERNEL_GS_BASE, exchanged by `swapgs` (SDM Vol. 3A §2.2.1.1).
const IA32_GS_BASE: u32 = 0xc000_0101;
const IA32_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// RFLAGS bits masked on entry: IF (interrupts stay off until the stub is on the kernel stack),
/// TF (no single-stepping into the kernel), DF (the ABI wants it clear), AC (no user alignment
/// checks in the kernel) (SDM Vol. 1 §3.4.3).
const ENTRY_RFLAGS_MASK: u64 = (1 << 9) | (1 << 8) | (1 << 10) | (1 << 18);

/// Kernel code selector; `syscall` loads CS from STAR[47:32] and SS from that plus 8.
const KERNEL_CODE_SELECTOR: u64 = 1 << 3;
/// `sysretq` loads CS from STAR[63:48] + 16 and SS from STAR[63:48] + 8, both with RPL 3.
const SYSRET_BASE_SELECTOR: u64 = (USER_DATA_SELECTOR as u64 & !3) - 8;

/// Call number the stub answers itself, straight back with `sysretq`: the benchmark's baseline
/// for a bare `syscall`/`sysretq` round trip, measured in the same boot as the real path.
pub const BARE_SYSCALL_NUMBER: u64 = u64::MAX;

global_asm!(
    r#"
    .section .text.herald_syscall, "ax"
    .global herald_syscall_entry
herald_syscall_entry:
    cmpq ${bare}, %rax
    je 9f
    swapgs
    movq %rsp, %gs:8
    movq %gs:0, %rsp
    // The frame the CPU would push for an interrupt, then vector and error code.
    pushq ${user_ss}
    pushq %gs:8
    pushq %r11
    pushq ${user_cs}
    pushq %rcx
    pushq $0
    pushq ${vector}
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call herald_syscall_rust
    // Non-zero: every register comes back as the frame holds it, through `iretq`. Interrupts
    // are off from the Rust half's return to sysretq/iretq (iretq restores IF from the frame),
    // so nothing lands between the test and the frame's restore; the frame is this task's on
    // its own kernel stack, so another CPU running this stub touches none of it.
    testb %al, %al
    jnz herald_trap_return
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    // Skip vector and error code; sysretq takes rip from rcx and rflags from r11.
    addq $16, %rsp
    popq %rcx
    addq $8, %rsp
    popq %r11
    popq %rsp
    swapgs
9:
    sysretq
"#,
    bare = const BARE_SYSCALL_NUMBER,
    user_ss = const USER_DATA_SELECTOR,
    user_cs = const USER_CODE_SELECTOR,
    vector = const SYSCALL_VECTOR,
    options(att_syntax)
);

unsafe extern "C" {
    static herald_syscall_entry: u8;
}

/// Rust half of the entry: the frame is on the task's kernel stack, interrupts are masked
/// (`handle_user_syscall` enables them for the call itself and masks them again). The
/// `syscall` instruction comes only from ring 3 (the kernel's own test calls use `int 0x80`),
/// so nothing here asks where it came from.
///
/// Returns whether to leave through `iretq` (the frame's every register, `rcx` and `r11`
/// included) rather than `sysretq`.
#[unsafe(no_mangle)]
extern "C" fn herald_syscall_rust(frame: &mut TrapFrame) -> bool {
    handle_user_syscall(frame);
    let full_restore = traps::before_ring3_return(frame);
    // `sysretq` must not return to a non-canonical rip (it would fault in ring 0 with the user
    // stack loaded). User space ends a page below the canonical boundary, and a new rip the
    // task layer sets (a handler, a new program) is checked to be a user address; check anyway,
    // it is one compare.
    assert!(frame.rip < super::paging::USER_SPACE.end, "sysret to non-user rip {:#x}", frame.rip);
    full_restore
}

/// Points this CPU's `syscall` at the stub and GS at its block `per_cpu`. Runs once on each CPU.
pub(super) fn init(per_cpu: *mut PerCpu) {
    let per_cpu = per_cpu as u64;
    // SAFETY: the MSRs exist on every x86_64 CPU (SDM Vol. 4); the values route `syscall` to a
    // stub that is valid for the kernel's lifetime, with the GDT layout asserted in `gdt::init`.
    // GS holds the per-CPU block from now on while in the kernel; the user's base starts at 0.
    unsafe {
        let mut efer = Msr::new(IA32_EFER);
        efer.write(efer.read() | EFER_SYSCALL_ENABLE);
        Msr::new(IA32_STAR).write((SYSRET_BASE_SELECTOR << 48) | (KERNEL_CODE_SELECTOR << 32));
        Msr::new(IA32_LSTAR).write(&raw const herald_syscall_entry as u64);
        Msr::new(IA32_FMASK).write(ENTRY_RFLAGS_MASK);
        Msr::new(IA32_GS_BASE).write(per_cpu);
        Msr::new(IA32_KERNEL_GS_BASE).write(0);
    }
}
