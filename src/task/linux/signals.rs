//! A Linux program's signal dispositions, mask and alternate stack: recorded and reported back
//! exactly, so a libc or Rust's runtime can set them up — but no signal is delivered yet
//! (issue 18 brings delivery; until then a fault ends the program with Herald's fault code).

#![forbid(unsafe_code)]

use super::{u64_at, with_state};
use crate::{
    abi::linux,
    events::{Errno, SpaceId},
    mm::user_copy,
};

/// Bytes of the kernel's `struct sigaction` on x86-64: handler, flags, restorer, mask.
const SIGACTION_BYTES: usize = 32;
/// Bytes of `stack_t`: `ss_sp`, `ss_flags` (i32, padded), `ss_size`.
const STACK_T_BYTES: usize = 24;
/// Bytes of a signal set as the kernel takes it (`sigsetsize` must be this).
const SIGSET_BYTES: u64 = 8;
/// `sigaltstack` flag: disarm the stack while a handler runs on it; accepted, as Linux does.
const SS_AUTODISARM: u64 = 1 << 31;
/// The handler value that ignores a signal.
const SIG_IGN: u64 = 1;
/// The signals that cannot be blocked, as a set.
const UNBLOCKABLE: u64 = bit(linux::SIGKILL) | bit(linux::SIGSTOP);

const fn bit(signal: u64) -> u64 {
    1 << (signal - 1)
}

/// Signal dispositions (as the raw `struct sigaction` bytes), blocked set, alternate stack.
#[derive(Clone)]
pub(super) struct SignalState {
    actions: [[u8; SIGACTION_BYTES]; linux::SIGNAL_COUNT as usize],
    blocked: u64,
    alternate_stack: [u8; STACK_T_BYTES],
}

impl Default for SignalState {
    fn default() -> Self {
        let mut alternate_stack = [0; STACK_T_BYTES];
        alternate_stack[8..12].copy_from_slice(&(linux::SS_DISABLE as u32).to_le_bytes());
        Self {
            actions: [[0; SIGACTION_BYTES]; linux::SIGNAL_COUNT as usize],
            blocked: 0,
            alternate_stack,
        }
    }
}

impl SignalState {
    /// What survives an `execve`: the mask, and which signals are ignored; caught signals go
    /// back to their default action (the handlers were the old program's), and the alternate
    /// stack is gone.
    pub(super) fn reset_for_exec(&mut self) {
        for action in &mut self.actions {
            if u64_at(action, 0) != SIG_IGN {
                *action = [0; SIGACTION_BYTES];
            }
        }
        self.alternate_stack = Self::default().alternate_stack;
    }
}

fn check_sigset_size(size: u64) -> Result<(), Errno> {
    if size == SIGSET_BYTES { Ok(()) } else { Err(Errno::EINVAL) }
}

/// `rt_sigaction(signal, act, oldact, sigsetsize)`: reports the old action, records the new.
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
    let previous = with_state(|state| state.signals.actions[index]);
    if old != 0 {
        user_copy::copy_to_user(space, old, &previous)?;
    }
    if let Some(action) = action {
        with_state(|state| state.signals.actions[index] = action);
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`: reports the old mask, applies the change
/// (`SIGKILL` and `SIGSTOP` are never blocked).
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
        let blocked = match how {
            linux::SIG_BLOCK => previous | set,
            linux::SIG_UNBLOCK => previous & !set,
            _ => set,
        };
        with_state(|state| state.signals.blocked = blocked & !UNBLOCKABLE);
    }
    Ok(0)
}

/// `sigaltstack(ss, old_ss)`: reports the old stack, records the new one.
pub(super) fn sigaltstack(new: u64, old: u64, space: SpaceId) -> Result<u64, Errno> {
    let mut replacement = None;
    if new != 0 {
        let mut bytes = [0u8; STACK_T_BYTES];
        user_copy::copy_from_user(space, new, &mut bytes)?;
        let flags = u64::from(u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")));
        if flags & !(linux::SS_DISABLE | SS_AUTODISARM) != 0 {
            return Err(Errno::EINVAL);
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
    let previous = with_state(|state| state.signals.alternate_stack);
    if old != 0 {
        // Never on it (`SS_ONSTACK` clear): no handler runs yet.
        user_copy::copy_to_user(space, old, &previous)?;
    }
    if let Some(stack) = replacement {
        with_state(|state| state.signals.alternate_stack = stack);
    }
    Ok(0)
}
