//! Kernel context switches: each task has its own kernel stack, and switching tasks is
//! switching stacks. A task that is not running is parked inside `herald_switch_context`, its
//! callee-saved registers pushed on its own stack; a new task's stack is prepared so its first
//! switch "returns" into the trap exit path and from there `iretq`s to ring 3.

use core::{arch::global_asm, mem::size_of};

use super::frame::TrapFrame;
pub use super::gdt::{USER_CODE_SELECTOR, USER_DATA_SELECTOR};

/// RFLAGS for a new user task: IF set, and bit 1, which is always 1 (SDM Vol. 1 §3.4.3).
const USER_ENTRY_RFLAGS: u64 = (1 << 9) | (1 << 1);
/// Registers `herald_switch_context` pushes: rbp, rbx, r12–r15.
const CALLEE_SAVED_COUNT: usize = 6;

global_asm!(
    r#"
    .section .text.herald_context, "ax"
    .global herald_switch_context
// rdi: where to store the old stack pointer; rsi: the stack pointer to load.
herald_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

// Where a new task's first switch "returns": the scheduler's after-switch work, then the trap
// exit into ring 3. The stack is 16-byte aligned here (the frame above is 22 words).
    .global herald_task_first_run
herald_task_first_run:
    call herald_task_first_run_rust
    jmp herald_trap_return
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn herald_switch_context(save_stack_pointer: *mut u64, load_stack_pointer: u64);
    static herald_task_first_run: u8;
}

#[unsafe(no_mangle)]
extern "C" fn herald_task_first_run_rust() {
    super::traps::after_first_switch();
}

/// Saves the running task's kernel context into `*save` and resumes the one parked at `load`.
/// Returns when some later switch resumes the saved context.
///
/// # Safety
/// Interrupts must be off; `load` must be a stack pointer saved by this function or made by
/// [`prepare_user_entry`], on a stack that stays mapped; `save` must stay valid until resumed.
pub unsafe fn switch(save: *mut u64, load: u64) {
    // SAFETY: forwarded from this function's contract; the asm follows the C ABI (it preserves
    // the callee-saved registers across the switch, the caller saves the rest).
    unsafe { herald_switch_context(save, load) }
}

/// What a new task starts running in ring 3.
#[derive(Clone, Copy, Debug)]
pub struct UserEntry {
    /// First instruction.
    pub rip: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// First two arguments (`rdi`, `rsi`).
    pub args: [u64; 2],
}

/// Writes a new task's first frames at the top of the kernel stack ending at `stack_top` and
/// returns the stack pointer to pass to [`switch`].
///
/// # Safety
/// `stack_top` must be the 16-byte aligned top of a mapped, unused kernel stack of at least a
/// page.
pub unsafe fn prepare_user_entry(stack_top: u64, entry: UserEntry) -> u64 {
    let mut frame = TrapFrame::default();
    enter(&mut frame, entry);
    // SAFETY: forwarded from this function's contract.
    unsafe { prepare_user_return(stack_top, frame) }
}

/// The flags a program may have set for itself and keeps across a `fork`: the arithmetic
/// flags, DF and AC (SDM Vol. 1 §3.4.3). Everything else (IF, IOPL, TF, ...) is the kernel's.
const USER_KEPT_RFLAGS: u64 = 0x0cd5 | (1 << 18);

/// `rflags` for ring 3 made of `requested`: the user's own flags from it, IF and bit 1 set,
/// everything else the kernel's (what a signal handler's return may ask for).
pub const fn user_rflags(requested: u64) -> u64 {
    USER_ENTRY_RFLAGS | (requested & USER_KEPT_RFLAGS)
}

/// Makes `frame` (the registers about to return to ring 3) start `entry` as a new program
/// does: every other register zero, fresh flags, the user's selectors. `rcx` and `r11` hold
/// what `sysretq` would put there, so either way out gives the same registers.
pub fn enter(frame: &mut TrapFrame, entry: UserEntry) {
    *frame = TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: USER_ENTRY_RFLAGS,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: entry.args[0],
        rsi: entry.args[1],
        rdx: 0,
        rcx: entry.rip,
        rbx: 0,
        rax: 0,
        vector: frame.vector,
        error_code: 0,
        rip: entry.rip,
        cs: u64::from(USER_CODE_SELECTOR),
        rflags: USER_ENTRY_RFLAGS,
        rsp: entry.rsp,
        ss: u64::from(USER_DATA_SELECTOR),
    };
}

/// The user registers of the running task, saved as its `syscall` entered the kernel: the
/// frame at the top of its kernel stack (what a `fork`'s child starts from).
///
/// # Safety
/// `stack_top` must be the top of the running task's kernel stack, and the task must be in a
/// system call it entered from ring 3 with `syscall` (so the frame there is its own).
pub unsafe fn user_registers(stack_top: u64) -> TrapFrame {
    let frame_address = stack_top - size_of::<TrapFrame>() as u64;
    // SAFETY: per the contract the entry stub pushed a whole frame just below `stack_top`,
    // and it stays there until the call returns.
    unsafe { (frame_address as *const TrapFrame).read() }
}

/// [`prepare_user_entry`] with a whole register set: the new task resumes ring 3 with
/// `registers` (a `fork`'s child, with the parent's registers but its own `rax`). The code and
/// stack selectors are the user's, and only the user's own flags are kept.
///
/// # Safety
/// As for [`prepare_user_entry`]; `registers.rip` and `rsp` must be user addresses (they come
/// from a frame `syscall` saved, whose rip is canonical and below the user limit).
pub unsafe fn prepare_user_return(stack_top: u64, registers: TrapFrame) -> u64 {
    let frame = TrapFrame {
        cs: u64::from(USER_CODE_SELECTOR),
        ss: u64::from(USER_DATA_SELECTOR),
        rflags: user_rflags(registers.rflags),
        vector: 0,
        error_code: 0,
        ..registers
    };
    let frame_address = stack_top - size_of::<TrapFrame>() as u64;
    // Below the frame: the return address (the first-run stub, then the trap exit), then the
    // callee-saved registers `herald_switch_context` pops (all zero).
    let return_slot = frame_address - 8;
    let saved_stack_pointer = return_slot - (CALLEE_SAVED_COUNT * 8) as u64;
    // SAFETY: per the contract the stack is mapped, unused and large enough for these
    // 7 + 22 words; the addresses are 8-byte aligned.
    unsafe {
        (frame_address as *mut TrapFrame).write(frame);
        (return_slot as *mut u64).write(&raw const herald_task_first_run as u64);
        core::ptr::write_bytes(saved_stack_pointer as *mut u64, 0, CALLEE_SAVED_COUNT);
    }
    saved_stack_pointer
}
