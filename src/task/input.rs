//! Console input for processes' `read`: the bytes the shell hands the foreground program, and
//! the wake-up of readers blocked on them. A Herald program reads them as typed; while a Linux
//! program is in the foreground they go through its terminal's line discipline
//! (`linux::tty`) instead.
//!
//! Lock order: the scheduler's lock, then this one. A `read` checks for bytes and blocks in one
//! hold of the scheduler's lock; a push adds its bytes first and wakes readers under the
//! scheduler's lock after, so a reader that found nothing is always woken.

#![forbid(unsafe_code)]

use alloc::{collections::VecDeque, vec::Vec};
use core::sync::atomic::{AtomicBool, Ordering};

use super::scheduler::{BlockReason, SCHEDULER};
use crate::arch::IrqMutex;

/// Console input kept for readers; the shell holds back the rest until they read.
const INPUT_CAPACITY_BYTES: usize = 4096;

static PENDING: IrqMutex<VecDeque<u8>> = IrqMutex::new(VecDeque::new());

/// Appends console input for `read`. Returns `false`, taking nothing, if it does not all fit:
/// the caller keeps it until the reader has made room.
pub fn push_input(bytes: &[u8]) -> bool {
    if TERMINAL.load(Ordering::Acquire) {
        // One at a time, as the shell hands them: all or nothing holds for one byte.
        return bytes.iter().all(|&byte| super::linux::tty::push(byte));
    }
    {
        let mut pending = PENDING.lock();
        if pending.len() + bytes.len() > INPUT_CAPACITY_BYTES {
            return false;
        }
        pending.extend(bytes.iter().copied());
    }
    SCHEDULER.lock().wake_matching(|reason| matches!(reason, BlockReason::Input { .. }));
    true
}

/// Takes the console input no process has read (the shell gets it back when its foreground
/// program ends, as a terminal would).
pub fn take_input() -> Vec<u8> {
    if TERMINAL.swap(false, Ordering::AcqRel) {
        return super::linux::tty::take_unread();
    }
    PENDING.lock().drain(..).collect()
}

/// Console input goes to the Linux terminal (a Linux program is in the foreground).
static TERMINAL: AtomicBool = AtomicBool::new(false);

/// Herald's shell made `pid` the foreground program: if it is a Linux program, the console is
/// its terminal from now on, fresh, with `pid`'s group in the foreground. Returns whether it
/// is (then the interrupt key goes to it as input, for its terminal to turn into `SIGINT`).
pub fn start_foreground(pid: super::Pid) -> bool {
    let linux = SCHEDULER
        .lock()
        .tasks
        .get(&pid)
        .is_some_and(|task| task.abi == crate::events::SyscallAbi::Linux);
    if linux {
        super::linux::tty::start_foreground(pid);
    }
    TERMINAL.store(linux, Ordering::Release);
    linux
}

/// For `read`: takes up to `max_bytes` waiting bytes, or, if there are none, blocks the caller
/// until a push wakes it (`None`: the call restarts then).
pub(super) fn take_or_block(max_bytes: usize) -> Option<Vec<u8>> {
    let mut scheduler = SCHEDULER.lock();
    let mut pending = PENDING.lock();
    if pending.is_empty() {
        scheduler.block_current(BlockReason::Input { until_ms: u64::MAX });
        return None;
    }
    let count = max_bytes.min(pending.len());
    Some(pending.drain(..count).collect())
}
