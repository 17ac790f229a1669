//! A Linux program's signals: dispositions, the blocked mask and the alternate stack (the
//! `rt_sigaction`, `rt_sigprocmask`, `sigaltstack` calls); sending (`kill`, `tkill`, `tgkill`,
//! and the kernel's own: `SIGCHLD`, `SIGPIPE`, faults, the console's `SIGINT`); and delivery
//! on the way back to ring 3 — a default action, or a handler entered on a frame
//! `signal_frame` lays out, left through `rt_sigreturn`. Calls a signal interrupts return
//! `EINTR`, or start again after the handler if its action has `SA_RESTART` (not `poll`,
//! `pause`, sleeps or `rt_sigsuspend`, which never restart after a handler, as on Linux).
//!
//! One thread per process, so a signal is always for the process's one thread; standard and
//! real-time signals alike are pending at most once each (real-time ones do not queue).
//!
//! Job control: the stop signals' default action (`SIGSTOP`, and `SIGTSTP`, `SIGTTIN`,
//! `SIGTTOU` unless the process group is orphaned) stops the process where it would have
//! entered ring 3 — the call it was in starts again when it goes on. Stopped, nothing but
//! `SIGCONT` or its end (`SIGKILL`, any signal whose default ends it) makes it run; other
//! signals wait, pending. Sending `SIGCONT` continues it whatever its action or mask (and
//! drops pending stops; a stop drops a pending `SIGCONT`). The parent hears of both through
//! `SIGCHLD` (`CLD_STOPPED`, `CLD_CONTINUED`; not with `SA_NOCLDSTOP`) and its wait
//! (`WUNTRACED`, `WCONTINUED`). A process outside the terminal's foreground group that reads
//! it, or changes its settings or foreground group, gets `SIGTTIN` or `SIGTTOU`
//! ([`background_access`]).

#![forbid(unsafe_code)]

use alloc::boxed::Box;

use super::{signal_frame, u64_at, with_state};
use crate::{
    abi::{self, linux},
    arch::TrapFrame,
    events::{Errno, SpaceId},
    mm::user_copy,
    task::{
        Pid, process,
        scheduler::{self, BlockReason, JobChange, SCHEDULER, State},
    },
};

/// Bytes of the kernel's `struct sigaction` on x86-64: handler, flags, restorer, mask.
const SIGACTION_BYTES: usize = 32;
/// Bytes of `stack_t`: `ss_sp`, `ss_flags` (i32, padded), `ss_size`.
pub(super) const STACK_T_BYTES: usize = 24;
/// Bytes of a signal set as the kernel takes it (`sigsetsize` must be this).
const SIGSET_BYTES: u64 = 8;
/// `sigaltstack` flag: disarm the stack while a handler runs on it; accepted, as Linux does.
const SS_AUTODISARM: u64 = 1 << 31;
/// `stack_t` flag: the thread is running on the alternate stack now.
pub(super) const SS_ONSTACK: u32 = 1;
/// The handler values that take the default action and that ignore a signal.
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
/// `sa_flags` (`asm/signal.h`).
pub(super) const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTART: u64 = 0x1000_0000;
/// `SIGCHLD`'s `sa_flags`: not told of children stopping or continuing; children leave no
/// zombies.
const SA_NOCLDSTOP: u64 = 1;
const SA_NOCLDWAIT: u64 = 2;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
/// The signals a program can be sent by number (`asm/signal.h`).
pub(super) const SIGHUP: u64 = 1;
pub(super) const SIGINT: u64 = 2;
const SIGILL: u64 = 4;
const SIGTRAP: u64 = 5;
const SIGBUS: u64 = 7;
const SIGFPE: u64 = 8;
const SIGSEGV: u64 = 11;
pub(super) const SIGPIPE: u64 = 13;
pub(super) const SIGCHLD: u64 = 17;
const SIGCONT: u64 = 18;
const SIGTSTP: u64 = 20;
pub(super) const SIGTTIN: u64 = 21;
pub(super) const SIGTTOU: u64 = 22;
const SIGURG: u64 = 23;
const SIGWINCH: u64 = 28;
const SIGSYS: u64 = 31;
/// The signals that cannot be blocked, as a set.
const UNBLOCKABLE: u64 = bit(linux::SIGKILL) | bit(linux::SIGSTOP);
/// Signals whose default action is to do nothing (`SIGCONT`'s continuing is not an action:
/// it happens when it is sent).
const DEFAULT_IGNORED: u64 = bit(SIGCHLD) | bit(SIGCONT) | bit(SIGURG) | bit(SIGWINCH);
/// Signals whose default action is to stop the process.
const STOP_SIGNALS: u64 = bit(linux::SIGSTOP) | bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU);
/// `SIGCHLD`'s `si_code`s for a child that stopped or continued.
const CLD_STOPPED: i32 = 5;
const CLD_CONTINUED: i32 = 6;
/// Signals a fault raises: delivered before any other pending one, as Linux does.
const SYNCHRONOUS: u64 =
    bit(SIGSEGV) | bit(SIGBUS) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGFPE) | bit(SIGSYS);
/// `si_code` values (`asm-generic/siginfo.h`): sent by `kill`, by `tkill`/`tgkill`, by the
/// kernel.
const SI_USER: i32 = 0;
const SI_TKILL: i32 = -6;
pub(super) const SI_KERNEL: i32 = 0x80;

pub(super) const fn bit(signal: u64) -> u64 {
    1 << (signal - 1)
}

/// Where a pending signal came from, for its `siginfo_t`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Origin {
    /// `si_code`.
    pub(super) code: i32,
    /// `si_pid`: the sender (or the child, for `SIGCHLD`).
    pub(super) pid: Pid,
    /// `si_status` (`SIGCHLD`: the exit code or signal).
    pub(super) status: i32,
    /// `si_addr` (a fault's address), and the fault's vector and error code for the frame.
    pub(super) address: u64,
    pub(super) vector: u8,
    pub(super) error_code: u64,
}

impl Origin {
    /// A signal sent by process `pid` with `kill` (`tkill`: `SI_TKILL`).
    const fn sent_by(pid: Pid, thread: bool) -> Self {
        Self { code: if thread { SI_TKILL } else { SI_USER }, pid, ..Self::KERNEL }
    }

    /// A signal the kernel raised (a broken pipe, the console's interrupt key).
    pub(super) const KERNEL: Self =
        Self { code: SI_KERNEL, pid: 0, status: 0, address: 0, vector: 0, error_code: 0 };
}

/// How the call a task returns from would go on (`Served::Restart`): restarted after a handler
/// only if its action asks (`SA_RESTART`), or never after a handler.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub(super) enum Restart {
    /// The call answered: nothing to restart.
    #[default]
    None,
    /// An interrupted read, write, wait, ...: restarts after a handler with `SA_RESTART`.
    UnlessHandled,
    /// `poll`, sleeps, `pause`, `rt_sigsuspend`: `EINTR` whenever a handler runs.
    Never,
}

/// Signal dispositions (as the raw `struct sigaction` bytes), blocked and pending sets, where
/// pending ones came from, the alternate stack, and what the call returning now needs.
#[derive(Clone)]
pub(super) struct SignalState {
    /// Each signal's action and the origin of its pending instance: 4.5 KiB, on the heap so
    /// a process's state moves cheaply (a `fork` copies it on a kernel stack).
    table: Box<SignalTable>,
    blocked: u64,
    pending: u64,
    pub(super) alternate_stack: [u8; STACK_T_BYTES],
    /// The mask `rt_sigsuspend` replaced, given back when a handler returns.
    suspended_mask: Option<u64>,
    /// The call being returned from restarts (see [`Restart`]).
    pub(super) restart: Restart,
    /// `rt_sigreturn` was called: the registers come from the handler's frame.
    returning_from_handler: bool,
}

#[derive(Clone)]
struct SignalTable {
    actions: [[u8; SIGACTION_BYTES]; linux::SIGNAL_COUNT as usize],
    origins: [Origin; linux::SIGNAL_COUNT as usize],
}

impl Default for SignalState {
    fn default() -> Self {
        let mut alternate_stack = [0; STACK_T_BYTES];
        alternate_stack[8..12].copy_from_slice(&(linux::SS_DISABLE as u32).to_le_bytes());
        Self {
            table: Box::new(SignalTable {
                actions: [[0; SIGACTION_BYTES]; linux::SIGNAL_COUNT as usize],
                origins: [Origin::default(); linux::SIGNAL_COUNT as usize],
            }),
            blocked: 0,
            pending: 0,
            alternate_stack,
            suspended_mask: None,
            restart: Restart::None,
            returning_from_handler: false,
        }
    }
}

/// A signal's action, decoded.
#[derive(Clone, Copy, Debug)]
pub(super) struct Action {
    pub(super) handler: u64,
    pub(super) flags: u64,
    pub(super) restorer: u64,
    pub(super) mask: u64,
}

/// What posting a signal does.
enum Posted {
    /// Ignored: gone.
    Discarded,
    /// Pending; `true` if deliverable now (not blocked), so the task must hear of it.
    Pending(bool),
    /// Its default action ends the process now, with this code.
    Ends(i32),
}

impl SignalState {
    fn action(&self, signal: u64) -> Action {
        let bytes = &self.table.actions[(signal - 1) as usize];
        Action {
            handler: u64_at(bytes, 0),
            flags: u64_at(bytes, 8),
            restorer: u64_at(bytes, 16),
            mask: u64_at(bytes, 24),
        }
    }

    /// Whether `signal` would be dropped on arrival: ignored, explicitly or by default, and
    /// not blocked (a blocked signal stays pending: the action may change before it is
    /// unblocked).
    fn ignores(&self, signal: u64) -> bool {
        let handler = self.action(signal).handler;
        self.blocked & bit(signal) == 0
            && (handler == SIG_IGN || (handler == SIG_DFL && DEFAULT_IGNORED & bit(signal) != 0))
    }

    /// Whether `signal` would run a handler now (caught and not blocked): a fault raising it
    /// goes to the handler rather than ending the process.
    fn catches(&self, signal: u64) -> bool {
        self.blocked & bit(signal) == 0 && self.action(signal).handler > SIG_IGN
    }

    /// Posts `signal` to a process; `stopped`: the process is stopped, so only `SIGKILL` ends
    /// it now (a signal that would end it waits, as on Linux, until `SIGCONT`).
    fn post(&mut self, signal: u64, origin: Origin, stopped: bool) -> Posted {
        if signal == linux::SIGKILL {
            return Posted::Ends(abi::signalled_exit_code(signal as i32));
        }
        // A stop and a continue cancel what is pending of the other, even ignored.
        if signal == SIGCONT {
            self.pending &= !STOP_SIGNALS;
        } else if STOP_SIGNALS & bit(signal) != 0 {
            self.pending &= !bit(SIGCONT);
        }
        if self.ignores(signal) {
            return Posted::Discarded;
        }
        let unblocked = self.blocked & bit(signal) == 0;
        let stops = STOP_SIGNALS & bit(signal) != 0;
        if unblocked && self.action(signal).handler == SIG_DFL && !stops && !stopped {
            return Posted::Ends(abi::signalled_exit_code(signal as i32));
        }
        self.pending |= bit(signal);
        self.table.origins[(signal - 1) as usize] = origin;
        Posted::Pending(unblocked)
    }

    /// Whether the process's children leave no zombies when they end (POSIX: `SIGCHLD` set to
    /// `SIG_IGN`, or `SA_NOCLDWAIT`): nobody waits for them, and a wait, once they are gone,
    /// answers `ECHILD`.
    pub(super) fn discards_children(&self) -> bool {
        let action = self.action(SIGCHLD);
        action.handler == SIG_IGN || action.flags & SA_NOCLDWAIT != 0
    }

    /// Whether [`before_user_return`] has anything to do.
    pub(super) fn has_return_work(&self) -> bool {
        self.returning_from_handler || self.restart != Restart::None || self.deliverable() != 0
    }

    /// The pending signals not blocked.
    pub(super) fn deliverable(&self) -> u64 {
        self.pending & !self.blocked
    }

    /// What survives an `execve`: the mask, and which signals are ignored; caught signals go
    /// back to their default action (the handlers were the old program's), and the alternate
    /// stack is gone.
    pub(super) fn reset_for_exec(&mut self) {
        for action in &mut self.table.actions {
            if u64_at(action, 0) != SIG_IGN {
                *action = [0; SIGACTION_BYTES];
            }
        }
        self.alternate_stack = Self::default().alternate_stack;
    }

    /// What a `fork`'s child starts with: the same actions, mask and alternate stack; nothing
    /// pending (Linux's rule), no call in progress.
    pub(super) fn fork_copy(&self) -> Self {
        let mut copy = Self {
            table: self.table.clone(),
            blocked: self.blocked,
            alternate_stack: self.alternate_stack,
            ..Self::default()
        };
        copy.table.origins = [Origin::default(); linux::SIGNAL_COUNT as usize];
        copy
    }
}

/// Sends `signal` (0: only checks that `pid` exists) to process `pid` as `origin`.
pub(super) fn send(pid: Pid, signal: u64, origin: Origin) -> Result<(), Errno> {
    if signal > linux::SIGNAL_COUNT {
        return Err(Errno::EINVAL);
    }
    let mut continued_child_of = None;
    let posted = {
        let mut scheduler = SCHEDULER.lock();
        let task = scheduler.tasks.get_mut(&pid).ok_or(Errno::ESRCH)?;
        // A zombie exists until it is reaped (`kill(2)`): signalling it does nothing, and is
        // no error.
        if signal == 0 || matches!(task.state, State::Zombie(_)) {
            return Ok(());
        }
        let stopped = task.state == State::Blocked(BlockReason::Stopped);
        let posted = match task.linux.as_deref_mut() {
            Some(state) => state.signals.post(signal, origin, stopped),
            // A Herald program has no signal actions: anything not ignored by default ends it
            // (and nothing stops it).
            None if (DEFAULT_IGNORED | STOP_SIGNALS) & bit(signal) != 0 => Posted::Discarded,
            None => Posted::Ends(abi::KILLED_EXIT_CODE),
        };
        let continues = signal == SIGCONT && stopped;
        if continues {
            // Continued whatever its action or mask: its parent's wait may report it.
            task.job_change = Some(JobChange::Continued);
            continued_child_of = Some(task.parent);
        }
        if let Posted::Pending(true) = posted {
            // It must check in before ring 3; blocked in a call, the call is interrupted (a
            // stopped process checks in once it is continued).
            scheduler::notify(task);
        }
        let interrupted = matches!(posted, Posted::Pending(true)) && !stopped;
        if continues || (interrupted && matches!(task.state, State::Blocked(_))) {
            scheduler.make_ready(pid);
        }
        if let Some(parent) = continued_child_of {
            scheduler.wake_waiting_parent(parent, pid);
        }
        posted
    };
    if let Some(parent) = continued_child_of {
        tell_parent(parent, pid, JobChange::Continued);
    }
    if let Posted::Ends(code) = posted {
        // Already ending (another signal, an exit) is not an error.
        match process::end(pid, code) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// The signal a fault with CPU exception `vector` raises in a Linux program, and whether that
/// program catches it now: then the fault becomes that pending signal (its handler runs when
/// the fault returns to ring 3, on `origin`'s details) rather than the end of the program.
pub(in crate::task) fn fault_to_handler(vector: u8, origin_address: u64, error_code: u64) -> bool {
    let signal = fault_signal(vector);
    let origin = Origin {
        code: fault_code(vector, error_code),
        pid: 0,
        status: 0,
        address: origin_address,
        vector,
        error_code,
    };
    let mut scheduler = SCHEDULER.lock();
    let Some(task) = scheduler.current_task() else { return false };
    let Some(state) = task.linux.as_deref_mut() else { return false };
    if !state.signals.catches(signal) {
        return false;
    }
    state.signals.pending |= bit(signal);
    state.signals.table.origins[(signal - 1) as usize] = origin;
    scheduler::notify(task);
    true
}

/// The signal Linux raises for CPU exception `vector` (SDM Vol. 3A §6.15).
pub(in crate::task) const fn fault_signal(vector: u8) -> u64 {
    match vector {
        0 | 16 | 19 => SIGFPE,
        6 => SIGILL,
        1 | 3 => SIGTRAP,
        17 => SIGBUS,
        _ => SIGSEGV,
    }
}

/// A fault's `si_code`: a page fault on an unmapped page `SEGV_MAPERR`, on a mapped one
/// `SEGV_ACCERR`; an invalid opcode `ILL_ILLOPN`; a divide error `FPE_INTDIV`, other
/// floating-point faults `FPE_FLTINV`; anything else the kernel's.
const fn fault_code(vector: u8, error_code: u64) -> i32 {
    match vector {
        14 if error_code & 1 == 0 => 1,
        14 => 2,
        6 => 2,
        0 => 1,
        16 | 19 => 7,
        _ => SI_KERNEL,
    }
}

/// Tells `parent` that its child `child` stopped or continued with `SIGCHLD` (`CLD_STOPPED`
/// with the stop signal, `CLD_CONTINUED` with `SIGCONT`) — unless its `SIGCHLD` action has
/// `SA_NOCLDSTOP` (or it is the kernel, or a Herald program, which have no `SIGCHLD`).
fn tell_parent(parent: Pid, child: Pid, change: JobChange) {
    let wants = SCHEDULER
        .lock()
        .tasks
        .get(&parent)
        .and_then(|task| task.linux.as_deref())
        .is_some_and(|state| state.signals.action(SIGCHLD).flags & SA_NOCLDSTOP == 0);
    if !wants {
        return;
    }
    let (code, status) = match change {
        JobChange::Stopped(signal) => (CLD_STOPPED, i32::from(signal)),
        JobChange::Continued => (CLD_CONTINUED, SIGCONT as i32),
    };
    // The parent may have ended meanwhile: nothing to tell.
    let _ = send(parent, SIGCHLD, Origin { code, pid: child, status, ..Origin::KERNEL });
}

/// What the way back to ring 3 must do for a Linux program.
pub(in crate::task) enum Return {
    /// Go back with the frame as it is now; `true`: every register exactly (`iretq`).
    Registers(bool),
    /// The process stopped: switch away until it is continued, then go back with the frame
    /// as it is now (`true`: every register exactly).
    Stop(bool),
    /// End the process with this code (a default action, or a frame that could not be
    /// written or read).
    End(i32),
}

/// The last step before a Linux program's registers go back to ring 3: the registers of a
/// handler that returned (`rt_sigreturn`), else a deliverable signal's action — its handler's
/// frame, or its default. Runs with interrupts off, no lock held.
pub(in crate::task) fn before_user_return(frame: &mut TrapFrame, space: SpaceId) -> Return {
    let Some(work) = take_work() else { return Return::Registers(false) };
    let full_restore = if work.returning_from_handler {
        if signal_frame::restore(frame, space).is_err() {
            return Return::End(abi::signalled_exit_code(SIGSEGV as i32));
        }
        true
    } else {
        false
    };
    let Some((signal, action, origin, saved_mask)) = work.delivering else {
        return Return::Registers(full_restore);
    };
    let handled = action.handler > SIG_IGN;
    // The call returning now was going to start again: after a handler it answers EINTR,
    // unless the action asks for the restart; a default or ignored signal leaves it to
    // restart (the ignored) or ends the process (the rest).
    // Only a system call's own return can be a restart (never an interrupt's frame).
    let from_call = frame.vector == u64::from(crate::arch::SYSCALL_VECTOR);
    if work.restart != Restart::None && handled && from_call {
        let restarts = work.restart == Restart::UnlessHandled && action.flags & SA_RESTART != 0;
        if !restarts {
            signal_frame::interrupt_call(frame);
            let interrupted = with_state(|state| core::mem::take(&mut state.console));
            if let (Some(until_ms), Some(remaining)) =
                (interrupted.sleep_until_ms, interrupted.sleep_remaining_at)
            {
                super::time::write_remaining(until_ms, remaining, space);
            }
        }
    }
    if !handled {
        if let Some((parent, me)) = work.stopped {
            tell_parent(parent, me, JobChange::Stopped(signal as u8));
            return Return::Stop(full_restore);
        }
        // SIG_IGN set since it was posted: nothing. SIG_DFL: the default, which for every
        // signal still pending here (the ignored ones were never queued) ends the process —
        // but a stop signal that did not stop (its group is orphaned), which is dropped.
        if action.handler == SIG_IGN || (DEFAULT_IGNORED | STOP_SIGNALS) & bit(signal) != 0 {
            return Return::Registers(full_restore);
        }
        return Return::End(abi::signalled_exit_code(signal as i32));
    }
    let entry = signal_frame::Delivery { signal, action, origin, saved_mask };
    match signal_frame::enter_handler(frame, space, &entry) {
        Ok(()) => Return::Registers(full_restore),
        // No room for the frame (a bad stack pointer): as Linux, the process gets SIGSEGV.
        Err(_) => Return::End(abi::signalled_exit_code(SIGSEGV as i32)),
    }
}

/// What [`before_user_return`] must do, taken out of the running program's state in one hold
/// of the lock (the signal chosen leaves the pending set; the mask the handler runs with is
/// set).
struct Work {
    returning_from_handler: bool,
    restart: Restart,
    delivering: Option<(u64, Action, Origin, u64)>,
    /// The signal delivered stopped the process: its parent, and its own pid, to tell.
    stopped: Option<(Pid, Pid)>,
}

fn take_work() -> Option<Work> {
    let mut scheduler = SCHEDULER.lock();
    let task = scheduler.current_task()?;
    let (pid, parent, group) = (task.pid, task.parent, task.group);
    let state = &mut task.linux.as_deref_mut()?.signals;
    let returning_from_handler = core::mem::take(&mut state.returning_from_handler);
    let restart = core::mem::take(&mut state.restart);
    let deliverable = state.deliverable();
    let delivering = (deliverable != 0).then(|| {
        let first_of = |set: u64| u64::from(set.trailing_zeros()) + 1;
        let signal = if deliverable & SYNCHRONOUS != 0 {
            first_of(deliverable & SYNCHRONOUS)
        } else {
            first_of(deliverable)
        };
        state.pending &= !bit(signal);
        let action = state.action(signal);
        let origin = state.table.origins[(signal - 1) as usize];
        // The mask the handler's return gives back: the one before `rt_sigsuspend`, if the
        // signal ended one.
        let saved_mask = state.suspended_mask.take().unwrap_or(state.blocked);
        if action.handler > SIG_IGN {
            let own = if action.flags & SA_NODEFER != 0 { 0 } else { bit(signal) };
            state.blocked = (state.blocked | action.mask | own) & !UNBLOCKABLE;
            if action.flags & SA_RESETHAND != 0 {
                state.table.actions[(signal - 1) as usize] = [0; SIGACTION_BYTES];
            }
        } else {
            state.blocked = saved_mask;
        }
        (signal, action, origin, saved_mask)
    });
    // More left: the next return delivers the next one.
    if state.deliverable() != 0 {
        scheduler::notify_current();
    }
    let stops = delivering.is_some_and(|(signal, action, ..)| {
        action.handler == SIG_DFL
            && STOP_SIGNALS & bit(signal) != 0
            // The terminal's stops do not stop a group nobody could continue (POSIX).
            && (signal == linux::SIGSTOP || !scheduler.group_is_orphaned(group))
    });
    let mut stopped = None;
    if let Some((signal, ..)) = delivering
        && stops
    {
        // Stopped in this same hold of the lock: a `SIGCONT` from now on finds it stopped
        // (and one before it had dropped the stop from the pending set).
        scheduler.block_current(BlockReason::Stopped);
        if let Some(task) = scheduler.current_task() {
            task.job_change = Some(JobChange::Stopped(signal as u8));
        }
        scheduler.wake_waiting_parent(parent, pid);
        stopped = Some((parent, pid));
    }
    (returning_from_handler || delivering.is_some()).then_some(Work {
        returning_from_handler,
        restart,
        delivering,
        stopped,
    })
}

/// Sets the running program's mask to `mask` (a handler's frame giving it back).
pub(super) fn set_blocked(mask: u64) {
    with_state(|state| state.signals.blocked = mask & !UNBLOCKABLE);
    notify_if_deliverable();
}

/// The running program must check in on its way out if a signal became deliverable.
fn notify_if_deliverable() {
    if with_state(|state| state.signals.deliverable() != 0) {
        scheduler::notify_current();
    }
}

fn check_sigset_size(size: u64) -> Result<(), Errno> {
    if size == SIGSET_BYTES { Ok(()) } else { Err(Errno::EINVAL) }
}

/// `rt_sigaction(signal, act, oldact, sigsetsize)`: reports the old action, sets the new.
pub(super) fn rt_sigaction(
    signal: u64,
    new: u64,
    old: u64,
    sigset_size: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    check_sigset_size(sigset_size)?;
    if !(1..=linux::SIGNAL_COUNT).contains(&signal) {
        return Err(Errno::EINVAL);
    }
    let fixed = signal == linux::SIGKILL || signal == linux::SIGSTOP;
    let mut action = None;
    if new != 0 {
        if fixed {
            return Err(Errno::EINVAL);
        }
        let mut bytes = [0u8; SIGACTION_BYTES];
        user_copy::copy_from_user(space, new, &mut bytes)?;
        // The mask never holds what cannot be blocked.
        let mask = u64_at(&bytes, 24) & !UNBLOCKABLE;
        bytes[24..].copy_from_slice(&mask.to_le_bytes());
        action = Some(bytes);
    }
    let index = (signal - 1) as usize;
    let previous = with_state(|state| state.signals.table.actions[index]);
    if old != 0 {
        user_copy::copy_to_user(space, old, &previous)?;
    }
    if let Some(action) = action {
        with_state(|state| {
            state.signals.table.actions[index] = action;
            // Ignoring a pending signal discards it (POSIX).
            if state.signals.ignores(signal) {
                state.signals.pending &= !bit(signal);
            }
        });
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`: reports the old mask, applies the change
/// (`SIGKILL` and `SIGSTOP` are never blocked). A pending signal it unblocks is delivered
/// before the call returns to the program.
pub(super) fn rt_sigprocmask(
    how: u64,
    set: u64,
    old: u64,
    sigset_size: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    check_sigset_size(sigset_size)?;
    let mut change = None;
    if set != 0 {
        if !matches!(how, linux::SIG_BLOCK | linux::SIG_UNBLOCK | linux::SIG_SETMASK) {
            return Err(Errno::EINVAL);
        }
        let mut bytes = [0u8; SIGSET_BYTES as usize];
        user_copy::copy_from_user(space, set, &mut bytes)?;
        change = Some(u64::from_le_bytes(bytes));
    }
    let previous = with_state(|state| state.signals.blocked);
    if old != 0 {
        user_copy::copy_to_user(space, old, &previous.to_le_bytes())?;
    }
    if let Some(set) = change {
        set_blocked(match how {
            linux::SIG_BLOCK => previous | set,
            linux::SIG_UNBLOCK => previous & !set,
            _ => set,
        });
    }
    Ok(0)
}

/// `rt_sigpending(set, sigsetsize)`: the signals pending while blocked.
pub(super) fn rt_sigpending(out: u64, sigset_size: u64, space: SpaceId) -> Result<u64, Errno> {
    if sigset_size > SIGSET_BYTES {
        return Err(Errno::EINVAL);
    }
    let pending = with_state(|state| state.signals.pending & state.signals.blocked);
    user_copy::copy_to_user(space, out, &pending.to_le_bytes()[..sigset_size as usize])?;
    Ok(0)
}

/// `rt_sigsuspend(mask, sigsetsize)`: waits with `mask` in place until a signal runs a handler
/// (then `EINTR`, and the old mask is back when the handler returns) or ends the process.
pub(super) fn rt_sigsuspend(mask: u64, sigset_size: u64, space: SpaceId) -> Result<(), Errno> {
    check_sigset_size(sigset_size)?;
    let mut bytes = [0u8; SIGSET_BYTES as usize];
    user_copy::copy_from_user(space, mask, &mut bytes)?;
    with_state(|state| {
        let signals = &mut state.signals;
        // Started again (woken by nothing it waits for): the mask saved first stays saved.
        if signals.suspended_mask.is_none() {
            signals.suspended_mask = Some(signals.blocked);
        }
        signals.blocked = u64::from_le_bytes(bytes) & !UNBLOCKABLE;
    });
    pause()
}

/// `pause()` (and the wait of `rt_sigsuspend`): blocks until a signal is delivered; the call
/// starts again whenever it is woken without one.
pub(super) fn pause() -> Result<(), Errno> {
    let mut scheduler = SCHEDULER.lock();
    let deliverable = scheduler
        .current_task()
        .and_then(|task| task.linux.as_deref())
        .is_some_and(|state| state.signals.deliverable() != 0);
    if !deliverable {
        scheduler.block_current(BlockReason::Signal);
    }
    Ok(())
}

/// `rt_sigreturn()`: the handler returned; its frame's registers and mask are restored on the
/// way back to ring 3.
pub(super) fn rt_sigreturn() -> u64 {
    with_state(|state| state.signals.returning_from_handler = true);
    scheduler::notify_current();
    0
}

/// `kill(pid, signal)`: `pid` > 0 that process; 0 the caller's process group; -1 every
/// process but the first and the caller; < -1 the group `-pid`. `ESRCH` if none matched.
pub(super) fn kill(target: u64, signal: u64, caller: Pid) -> Result<u64, Errno> {
    if signal > linux::SIGNAL_COUNT {
        return Err(Errno::EINVAL);
    }
    let origin = Origin::sent_by(caller, false);
    let target = target as i64 as i32;
    if target > 0 {
        send(target as Pid, signal, origin)?;
        return Ok(0);
    }
    let group = match target {
        0 => Some(scheduler::group_of(caller)),
        -1 => None,
        group => Some(group.unsigned_abs()),
    };
    let targets = scheduler::members(group, caller);
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    for pid in targets {
        // One ending meanwhile is not the caller's error.
        let _ = send(pid, signal, origin);
    }
    Ok(0)
}

/// Sends `signal` to every live process of group `group` (the terminal's keys).
pub(super) fn send_group(group: Pid, signal: u64, origin: Origin) {
    for pid in scheduler::members(Some(group), 0) {
        // One ending meanwhile is no error.
        let _ = send(pid, signal, origin);
    }
}

/// What a process may do with the terminal it is outside the foreground group of.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Background {
    /// Go on as if it were in the foreground.
    Proceed,
    /// Its group was sent `SIGTTIN` or `SIGTTOU`: the call starts again after it (once the
    /// group is continued).
    Signalled,
}

/// POSIX's job control for a terminal access by `caller` — `signal` `SIGTTIN` for a read,
/// `SIGTTOU` for changing the terminal's settings or foreground group — when the terminal's
/// foreground group is `foreground` (0: none, so anyone may). In the foreground, or with
/// `SIGTTOU` ignored or blocked for a change: proceed. A read with `SIGTTIN` ignored or
/// blocked, or any access from an orphaned group (nobody could continue it): `EIO`. Else the
/// caller's whole group is sent the signal.
pub(super) fn background_access(
    caller: Pid,
    signal: u64,
    foreground: Pid,
) -> Result<Background, Errno> {
    let (group, declined, orphaned) = {
        let scheduler = SCHEDULER.lock();
        let task = scheduler.tasks.get(&caller).ok_or(Errno::ESRCH)?;
        if foreground == 0 || task.group == foreground {
            return Ok(Background::Proceed);
        }
        let declined = task.linux.as_deref().is_none_or(|state| {
            state.signals.blocked & bit(signal) != 0
                || state.signals.action(signal).handler == SIG_IGN
        });
        (task.group, declined, scheduler.group_is_orphaned(task.group))
    };
    match (signal, declined) {
        (SIGTTOU, true) => Ok(Background::Proceed),
        (_, true) => Err(Errno::EIO),
        _ if orphaned => Err(Errno::EIO),
        _ => {
            send_group(group, signal, Origin::KERNEL);
            Ok(Background::Signalled)
        }
    }
}

/// `tkill(tid, signal)` and `tgkill(tgid, tid, signal)`: one thread per process, so the
/// thread id is the process id (and a `tgid` must match it).
pub(super) fn tgkill(
    group: Option<u64>,
    thread: u64,
    signal: u64,
    caller: Pid,
) -> Result<u64, Errno> {
    let thread = i32::try_from(thread).ok().filter(|&tid| tid > 0).ok_or(Errno::EINVAL)?;
    if group.is_some_and(|group| group != thread as u64) {
        return Err(Errno::ESRCH);
    }
    send(thread as Pid, signal, Origin::sent_by(caller, true))?;
    Ok(0)
}

/// `sigaltstack(ss, old_ss)`: reports the old stack (`SS_ONSTACK` while a handler runs on
/// it), records the new one — refused while on it (`EPERM`).
pub(super) fn sigaltstack(new: u64, old: u64, user_rsp: u64, space: SpaceId) -> Result<u64, Errno> {
    let previous = with_state(|state| state.signals.alternate_stack);
    let on_it = signal_frame::on_alternate_stack(&previous, user_rsp);
    let mut replacement = None;
    if new != 0 {
        let mut bytes = [0u8; STACK_T_BYTES];
        user_copy::copy_from_user(space, new, &mut bytes)?;
        let flags = u64::from(u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")));
        if flags & !(linux::SS_DISABLE | SS_AUTODISARM) != 0 {
            return Err(Errno::EINVAL);
        }
        if on_it {
            return Err(Errno::EPERM);
        }
        if flags & linux::SS_DISABLE == 0 && u64_at(&bytes, 16) < linux::MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        if flags & linux::SS_DISABLE != 0 {
            // A disabled stack reads back as just that.
            bytes = SignalState::default().alternate_stack;
        }
        replacement = Some(bytes);
    }
    if old != 0 {
        let mut report = previous;
        if on_it {
            report[8..12].copy_from_slice(&SS_ONSTACK.to_le_bytes());
        }
        user_copy::copy_to_user(space, old, &report)?;
    }
    if let Some(stack) = replacement {
        with_state(|state| state.signals.alternate_stack = stack);
    }
    Ok(0)
}

/// Marks the call returning now as one that starts again, and how (see [`Restart`]).
pub(super) fn note_restart(restart: Restart) {
    with_state(|state| state.signals.restart = restart);
    // Settled on the way out whether or not the call blocked: a `pause` that found a signal
    // already deliverable must have it delivered now, not start again (and again).
    scheduler::notify_current();
}

/// The signals' numbers Herald names in logs (`SIGINT` for 2, ...).
pub(in crate::task) const fn name(signal: u64) -> &'static str {
    match signal {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        3 => "SIGQUIT",
        SIGILL => "SIGILL",
        SIGTRAP => "SIGTRAP",
        6 => "SIGABRT",
        SIGBUS => "SIGBUS",
        SIGFPE => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        SIGSEGV => "SIGSEGV",
        12 => "SIGUSR2",
        SIGPIPE => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        SIGCHLD => "SIGCHLD",
        SIGCONT => "SIGCONT",
        linux::SIGSTOP => "SIGSTOP",
        SIGTSTP => "SIGTSTP",
        SIGTTIN => "SIGTTIN",
        SIGTTOU => "SIGTTOU",
        _ => "a signal",
    }
}
