//! Console input for processes' `read`: the bytes the shell hands the foreground program, and
//! the wake-up of readers blocked on them.
//!
//! Lock order: the scheduler's lock, then this one. A `read` checks for bytes and blocks in one
//! hold of the scheduler's lock; a push adds its bytes first and wakes readers under the
//! scheduler's lock after, so a reader that found nothing is always woken.

#![forbid(unsafe_code)]

use alloc::{collections::VecDeque, vec::Vec};

use super::scheduler::{BlockReason, SCHEDULER};
use crate::arch::IrqMutex;

/// Console input kept for readers; the shell holds back the rest until they read.
const INPUT_CAPACITY_BYTES: usize = 4096;

static PENDING: IrqMutex<VecDeque<u8>> = IrqMutex::new(VecDeque::new());

/// Appends console input for `read`. Returns `false`, taking nothing, if it does not all fit:
/// the caller keeps it until the reader has made room.
pub fn push_input(bytes: &[u8]) -> bool {
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
    PENDING.lock().drain(..).collect()
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

/// For `poll`: whether input is waiting; if not and `until_ms` is given, blocks the caller until
/// input arrives or that time (the call restarts then).
pub(super) fn ready_or_block(until_ms: Option<u64>) -> bool {
    let mut scheduler = SCHEDULER.lock();
    if !PENDING.lock().is_empty() {
        return true;
    }
    if let Some(until_ms) = until_ms {
        scheduler.block_current(BlockReason::Input { until_ms });
    }
    false
}
