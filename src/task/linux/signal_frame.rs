//! The frame a Linux signal handler runs on, laid out as Linux lays it out on x86-64
//! (`arch/x86/kernel/signal.c`, `uapi/asm/sigcontext.h`): from the handler's stack pointer up,
//! the return address (the action's `sa_restorer`, which calls `rt_sigreturn`), a `ucontext`
//! (flags, link, the alternate stack, the interrupted registers as a `sigcontext`, the mask to
//! give back), the `siginfo_t`, and above them, 64-byte aligned, the FPU state in the XSAVE
//! standard format. A program may read and change all of it — a `SIGSEGV` handler that skips
//! the faulting instruction — and `rt_sigreturn` takes back whatever it finds, made safe: user
//! selectors and flags only, a `rip` and `rsp` in user space, a valid FPU image.

#![forbid(unsafe_code)]

use alloc::vec;

use super::{
    signals::{self, Action, Origin, SA_ONSTACK, SS_ONSTACK, STACK_T_BYTES},
    u64_at, with_state,
};
use crate::{
    arch::{self, TrapFrame, context, paging},
    events::{Errno, SpaceId},
    mm::user_copy,
};

/// Bytes below the interrupted stack pointer a handler's frame leaves alone: the psABI's red
/// zone, which leaf functions use without moving `rsp`.
const RED_ZONE_BYTES: u64 = 128;
/// Layout of `struct rt_sigframe`: the return address, `struct ucontext` (304 bytes:
/// `uc_flags`, `uc_link`, `uc_stack`, `uc_mcontext`, `uc_sigmask`), `struct siginfo` (128).
const UCONTEXT_OFFSET: usize = 8;
const UCONTEXT_BYTES: usize = 304;
const SIGINFO_OFFSET: usize = UCONTEXT_OFFSET + UCONTEXT_BYTES;
const SIGINFO_BYTES: usize = 128;
const FRAME_BYTES: usize = SIGINFO_OFFSET + SIGINFO_BYTES;
/// Offsets in `struct ucontext`.
const UC_STACK: usize = 16;
const UC_MCONTEXT: usize = 40;
const UC_SIGMASK: usize = 296;
/// Offsets in `struct sigcontext` (`uc_mcontext`): the general registers in this order, then
/// rip, eflags, the selectors, err, trapno, oldmask, cr2, the FPU state's address.
const GENERAL_REGISTERS: usize = 16;
const SC_RIP: usize = 8 * 16;
const SC_EFLAGS: usize = 8 * 17;
const SC_SELECTORS: usize = 8 * 18;
const SC_ERR: usize = 8 * 19;
const SC_TRAPNO: usize = 8 * 20;
const SC_OLDMASK: usize = 8 * 21;
const SC_CR2: usize = 8 * 22;
const SC_FPSTATE: usize = 8 * 23;
/// `rflags` bits a handler starts with clear: DF (the psABI wants it clear at a call), TF.
const HANDLER_CLEARED_RFLAGS: u64 = (1 << 10) | (1 << 8);
/// The offset of `rip` past the two-byte `syscall` a restarting call is backed up over.
const SYSCALL_INSTRUCTION_BYTES: u64 = 2;
/// An interrupted call's answer.
const EINTR: u64 = Errno::EINTR.as_return_value();

/// A signal about to run its handler.
pub(super) struct Delivery {
    pub(super) signal: u64,
    pub(super) action: Action,
    pub(super) origin: Origin,
    /// The mask `rt_sigreturn` gives back.
    pub(super) saved_mask: u64,
}

/// Where `frame` keeps each general register, in `sigcontext`'s order (r8–r15, rdi, rsi, rbp,
/// rbx, rdx, rax, rcx, rsp).
fn general_registers(frame: &mut TrapFrame) -> [&mut u64; GENERAL_REGISTERS] {
    [
        &mut frame.r8,
        &mut frame.r9,
        &mut frame.r10,
        &mut frame.r11,
        &mut frame.r12,
        &mut frame.r13,
        &mut frame.r14,
        &mut frame.r15,
        &mut frame.rdi,
        &mut frame.rsi,
        &mut frame.rbp,
        &mut frame.rbx,
        &mut frame.rdx,
        &mut frame.rax,
        &mut frame.rcx,
        &mut frame.rsp,
    ]
}

fn put(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Whether `rsp` is inside the alternate stack `stack` (a `stack_t`).
pub(super) fn on_alternate_stack(stack: &[u8; STACK_T_BYTES], rsp: u64) -> bool {
    let (base, flags, size) = (u64_at(stack, 0), u64_at(stack, 8) as u32, u64_at(stack, 16));
    flags & linux_ss_disable() == 0 && rsp > base && rsp - base <= size
}

const fn linux_ss_disable() -> u32 {
    crate::abi::linux::SS_DISABLE as u32
}

/// The call being returned from answers `EINTR` instead of starting again: `rip` past its
/// `syscall` again.
pub(super) fn interrupt_call(frame: &mut TrapFrame) {
    frame.rip += SYSCALL_INSTRUCTION_BYTES;
    frame.rax = EINTR;
}

/// Writes the handler's frame for `delivery` below the interrupted stack (or at the top of the
/// alternate stack, if the action asks and the program is not on it already) and points
/// `frame` at the handler: `rdi` the signal, `rsi` the `siginfo_t`, `rdx` the `ucontext`. The
/// handler starts with a fresh FPU state. `EFAULT` if the frame cannot be written: the caller
/// ends the program.
pub(super) fn enter_handler(
    frame: &mut TrapFrame,
    space: SpaceId,
    delivery: &Delivery,
) -> Result<(), Errno> {
    let user_end = paging::USER_SPACE.end;
    if delivery.action.handler >= user_end || delivery.action.restorer >= user_end {
        return Err(Errno::EFAULT);
    }
    let alternate = with_state(|state| state.signals.alternate_stack);
    let on_alternate = on_alternate_stack(&alternate, frame.rsp);
    let use_alternate = delivery.action.flags & SA_ONSTACK != 0
        && u64_at(&alternate, 8) as u32 & linux_ss_disable() == 0
        && !on_alternate;
    let top = if use_alternate {
        u64_at(&alternate, 0).wrapping_add(u64_at(&alternate, 16))
    } else {
        frame.rsp.wrapping_sub(RED_ZONE_BYTES)
    };
    // The registers' FPU half, as the program left it: this CPU's, since nothing since the
    // trap has touched them.
    let mut fpu = arch::FpuState::initial();
    fpu.save();
    let fpu_image = fpu.image();
    let fpu_address = top.checked_sub(fpu_image.len() as u64).ok_or(Errno::EFAULT)? & !63;
    let frame_address =
        (fpu_address.checked_sub(FRAME_BYTES as u64).ok_or(Errno::EFAULT)? & !15) - 8;
    let mut bytes = vec![0u8; FRAME_BYTES];
    put(&mut bytes, 0, delivery.action.restorer);
    let uc = UCONTEXT_OFFSET;
    // uc_flags, uc_link: 0. uc_stack: the alternate stack as the program set it.
    let mut stack = alternate;
    if on_alternate || use_alternate {
        stack[8..12].copy_from_slice(&SS_ONSTACK.to_le_bytes());
    }
    bytes[uc + UC_STACK..uc + UC_STACK + STACK_T_BYTES].copy_from_slice(&stack);
    let context = uc + UC_MCONTEXT;
    let eflags = frame.rflags;
    let (rip, vector, error_code) = (frame.rip, delivery.origin.vector, delivery.origin.error_code);
    for (index, register) in general_registers(frame).into_iter().enumerate() {
        put(&mut bytes, context + 8 * index, *register);
    }
    put(&mut bytes, context + SC_RIP, rip);
    put(&mut bytes, context + SC_EFLAGS, eflags);
    // cs, gs, fs, ss as four 16-bit fields: the user selectors.
    let selectors =
        u64::from(context::USER_CODE_SELECTOR) | (u64::from(context::USER_DATA_SELECTOR) << 48);
    put(&mut bytes, context + SC_SELECTORS, selectors);
    put(&mut bytes, context + SC_ERR, error_code);
    put(&mut bytes, context + SC_TRAPNO, u64::from(vector));
    put(&mut bytes, context + SC_OLDMASK, delivery.saved_mask);
    put(&mut bytes, context + SC_CR2, delivery.origin.address);
    put(&mut bytes, context + SC_FPSTATE, fpu_address);
    put(&mut bytes, uc + UC_SIGMASK, delivery.saved_mask);
    let info = SIGINFO_OFFSET;
    put_u32(&mut bytes, info, delivery.signal as u32);
    put_u32(&mut bytes, info + 8, delivery.origin.code as u32);
    if delivery.origin.vector != 0 || delivery.origin.address != 0 {
        // A fault: si_addr.
        put(&mut bytes, info + 16, delivery.origin.address);
    } else {
        // Sent, or a child's news: si_pid, si_uid (0), si_status.
        put_u32(&mut bytes, info + 16, delivery.origin.pid);
        put_u32(&mut bytes, info + 24, delivery.origin.status as u32);
    }
    user_copy::copy_to_user(space, fpu_address, fpu_image)?;
    user_copy::copy_to_user(space, frame_address, &bytes)?;
    frame.rip = delivery.action.handler;
    frame.rsp = frame_address;
    frame.rdi = delivery.signal;
    frame.rsi = frame_address + SIGINFO_OFFSET as u64;
    frame.rdx = frame_address + UCONTEXT_OFFSET as u64;
    frame.rax = 0;
    frame.rflags = context::user_rflags(eflags) & !HANDLER_CLEARED_RFLAGS;
    // What `sysretq` leaves in them anyway: either way out gives the handler the same.
    frame.rcx = frame.rip;
    frame.r11 = frame.rflags;
    arch::FpuState::initial().restore();
    Ok(())
}

/// `rt_sigreturn`'s work: the registers, mask, alternate stack and FPU state from the
/// `ucontext` the handler returned past (its `ret` popped the return address, so `rsp` points
/// at it). `EFAULT` if it cannot be read or names a `rip` or `rsp` outside user space: the
/// caller ends the program.
pub(super) fn restore(frame: &mut TrapFrame, space: SpaceId) -> Result<(), Errno> {
    let uc_address = frame.rsp;
    let mut uc = vec![0u8; UCONTEXT_BYTES];
    user_copy::copy_from_user(space, uc_address, &mut uc)?;
    let context = UC_MCONTEXT;
    let rip = u64_at(&uc, context + SC_RIP);
    let rsp = u64_at(&uc, context + 8 * (GENERAL_REGISTERS - 1));
    let user_end = paging::USER_SPACE.end;
    if rip >= user_end || rsp >= user_end {
        return Err(Errno::EFAULT);
    }
    let fpu_address = u64_at(&uc, context + SC_FPSTATE);
    let fpu = if fpu_address == 0 {
        arch::FpuState::initial()
    } else {
        let mut image = vec![0u8; arch::FpuState::image_bytes()];
        user_copy::copy_from_user(space, fpu_address, &mut image)?;
        arch::FpuState::from_image(&image)
    };
    for (index, register) in general_registers(frame).into_iter().enumerate() {
        *register = u64_at(&uc, context + 8 * index);
    }
    frame.rip = rip;
    frame.rflags = context::user_rflags(u64_at(&uc, context + SC_EFLAGS));
    frame.cs = u64::from(context::USER_CODE_SELECTOR);
    frame.ss = u64::from(context::USER_DATA_SELECTOR);
    fpu.restore();
    signals::set_blocked(u64_at(&uc, UC_SIGMASK));
    Ok(())
}
