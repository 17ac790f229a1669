//! Taking the CPU back from a deferred handler that never returns. Each deferred handler runs
//! inside `herald_guarded_call`, which records the stack pointer to come back to; when the
//! watchdog (on the timer interrupt) finds a handler over its budget, the bus quarantines it
//! and the trap exit resumes not in the handler but at `herald_guard_abort`, which unwinds to
//! that recorded point as if the call had returned "aborted".
//!
//! What this cannot do: catch a handler spinning with interrupts off (no timer interrupt
//! arrives; that needs an NMI watchdog), or release locks the handler held (they stay held;
//! the kernel's own `IrqMutex` cannot be held, since it keeps interrupts off). Values the
//! abandoned frames owned are leaked, never dropped.

use core::{
    arch::global_asm,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

use super::frame::TrapFrame;
use crate::events::BUS;

/// How long a deferred handler may run before it is quarantined.
pub const DEFERRED_BUDGET_MS: u64 = 100;

/// Stack pointer to resume at after an abort (inside `herald_guarded_call`'s frame).
static GUARD_STACK_POINTER: AtomicU64 = AtomicU64::new(0);
/// A guarded call is running.
static GUARD_ACTIVE: AtomicBool = AtomicBool::new(false);
/// The watchdog asked for the running guarded call to be abandoned.
static ABORT_REQUESTED: AtomicBool = AtomicBool::new(false);

global_asm!(
    r#"
    .section .text.herald_watchdog, "ax"
    .global herald_guarded_call
// rdi: data, rsi: trampoline(data), rdx: where to store the resume stack pointer.
// Returns 0 if the trampoline returned, 1 if the watchdog aborted it.
herald_guarded_call:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    // Entered with rsp = 8 (mod 16); six pushes and this keep the call below 16-byte aligned.
    subq $8, %rsp
    movq %rsp, (%rdx)
    call *%rsi
    xorl %eax, %eax
    jmp 5f
    .global herald_guard_abort
herald_guard_abort:
    movl $1, %eax
5:
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn herald_guarded_call(
        data: *mut u8,
        trampoline: extern "C" fn(*mut u8),
        resume_stack_pointer: *mut u64,
    ) -> u64;
    static herald_guard_abort: u8;
}

extern "C" fn trampoline(data: *mut u8) {
    // SAFETY: `data` is the `&mut &mut dyn FnMut()` that `run_guarded` passed, alive for the
    // whole call.
    let call = unsafe { &mut *data.cast::<&mut dyn FnMut()>() };
    call();
}

/// Runs `call` so that the watchdog can abandon it. Returns `false` if it did.
fn run_guarded(call: &mut dyn FnMut()) -> bool {
    let mut call = call;
    GUARD_ACTIVE.store(true, Ordering::Release);
    // SAFETY: the asm saves and restores every callee-saved register and returns normally, or
    // through `herald_guard_abort` onto the very frame it saved; `data` points at a live local.
    let aborted = unsafe {
        herald_guarded_call((&raw mut call).cast::<u8>(), trampoline, GUARD_STACK_POINTER.as_ptr())
    };
    GUARD_ACTIVE.store(false, Ordering::Release);
    aborted == 0
}

/// Connects the bus's deferred handlers to the guard and the clock.
pub(super) fn init() {
    BUS.set_deferred_guard(run_guarded, super::pit::milliseconds);
}

/// On each timer tick: quarantine a deferred handler that overran its budget, and arrange for
/// the trap exit to abandon it.
pub(super) fn on_tick() {
    if let Some(overrun) = BUS.watchdog(super::pit::milliseconds(), DEFERRED_BUDGET_MS) {
        log::error!(
            "watchdog: deferred handler `{}` (queue {}) ran {} ms, over its {} ms budget; \
             quarantined and abandoned",
            overrun.name,
            overrun.queue.0,
            overrun.ran_ms,
            DEFERRED_BUDGET_MS
        );
        ABORT_REQUESTED.store(true, Ordering::Release);
    }
}

/// Called at the end of every trap: if an abort is pending and the trap interrupted the guarded
/// handler, resume at `herald_guard_abort` on the guarded call's frame instead.
pub(super) fn apply_abort(frame: &mut TrapFrame) {
    if !ABORT_REQUESTED.load(Ordering::Acquire) || frame.from_user() {
        return;
    }
    if GUARD_ACTIVE.load(Ordering::Acquire) {
        ABORT_REQUESTED.store(false, Ordering::Release);
        frame.rip = &raw const herald_guard_abort as u64;
        frame.rsp = GUARD_STACK_POINTER.load(Ordering::Acquire);
    }
}
