//! Pipes for Linux programs: `pipe` and `pipe2`, and reading and writing their ends — a reader
//! of an empty pipe waits for a writer (or the last writer's close: the end of the data), a
//! writer of a full one for a reader; `O_NONBLOCK` makes both `EAGAIN` instead. A write with no
//! reader left is `EPIPE` (the `SIGPIPE` Linux also sends comes with signals).
//!
//! Waiting: a pipe counts its changes; a waiter blocks, in one hold of the scheduler's lock,
//! only if the count is still what it was when it found it must wait, and every change wakes
//! the pipe's waiters under that lock after it is made — so a waiter is always woken, and no
//! copy of a process's memory happens under the scheduler's lock.

#![forbid(unsafe_code)]

use alloc::sync::Arc;

use super::{files, with_state};
use crate::{
    events::{Errno, SpaceId},
    fs::{self, Pipe, PipeIo},
    mm::{space, user_copy},
    task::{
        scheduler::{self, BlockReason, SCHEDULER},
        syscalls::{self, MAX_IO_BYTES_PER_CALL, Served},
    },
};

/// `pipe2` flags: close-on-exec and non-blocking ends.
const O_NONBLOCK: u64 = 0o4000;
const O_CLOEXEC: u64 = 0o2_000_000;

/// `pipe2(fds, flags)` (and `pipe`): two descriptors, `fds[0]` the read end, `fds[1]` the write.
pub(super) fn pipe2(fds: u64, flags: u64, space: SpaceId) -> Result<u64, Errno> {
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    space::check_user(space, fds, 8, true)?;
    let (node, pipe) = fs::new_pipe();
    let nonblock = if flags & O_NONBLOCK != 0 { files::O_NONBLOCK } else { 0 };
    let read_end = files::OpenFile::pipe_end(node.clone(), &pipe, true, nonblock);
    let write_end = files::OpenFile::pipe_end(node, &pipe, false, nonblock);
    let close_on_exec = flags & O_CLOEXEC != 0;
    let installed =
        with_state(|state| state.files.install_pair(&read_end, &write_end, close_on_exec));
    // On failure the ends drop here, after the lock (their drop wakes waiters).
    let (read_fd, write_fd) = installed?;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(read_fd as u32).to_le_bytes());
    out[4..].copy_from_slice(&(write_fd as u32).to_le_bytes());
    user_copy::copy_to_user(space, fds, &out)?;
    Ok(0)
}

/// Wakes every task waiting on `pipe_inode`.
pub(super) fn wake(pipe_inode: u64) {
    // Pollers wake on any pipe's change and look again.
    super::console::note_poll_event();
    SCHEDULER.lock().wake_matching(|reason| {
        reason == BlockReason::Pipe { inode: pipe_inode }
            || matches!(reason, BlockReason::Poll { .. })
    });
}

/// Reads from a pipe's read end, straight from the pipe's chunks into the caller's buffer.
pub(super) fn read(
    pipe: &Arc<Pipe>,
    inode: u64,
    nonblock: bool,
    buffer: u64,
    len: u64,
    space: SpaceId,
) -> Result<Served, Errno> {
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    // Checked first: once bytes leave the pipe they must reach the caller (a piece the copy
    // still refuses stays in the pipe).
    space::check_user(space, buffer, len as u64, true)?;
    let mut copied = 0u64;
    let outcome = pipe.read_with(len, |piece| {
        user_copy::copy_to_user(space, buffer + copied, piece)?;
        copied += piece.len() as u64;
        Ok::<(), Errno>(())
    })?;
    if let PipeIo::Done(count) = outcome
        && count > 0
    {
        wake(inode);
    }
    answer(pipe, inode, outcome, nonblock)
}

/// The call's answer for what the pipe did. One that must wait blocks, unless the pipe
/// changed since it looked (then it tries again at once): the check and the block are one
/// hold of the scheduler's lock, and every change wakes the pipe's waiters under that lock
/// after it is made, so no change is missed.
fn answer(pipe: &Pipe, inode: u64, outcome: PipeIo, nonblock: bool) -> Result<Served, Errno> {
    match outcome {
        PipeIo::Done(count) => Ok(Served::Value(count as u64)),
        PipeIo::WouldWait(_) if nonblock => Err(Errno::EAGAIN),
        PipeIo::WouldWait(seen) => {
            let mut scheduler = SCHEDULER.lock();
            if pipe.changes() == seen {
                scheduler.block_current(BlockReason::Pipe { inode });
            }
            Ok(Served::Restart)
        }
        PipeIo::Broken => Err(Errno::EPIPE),
    }
}

/// Writes to a pipe's write end, straight from the caller's buffer into the pipe's chunks
/// (only what fits now: a writer woken again and again by a slow reader copies each byte
/// once).
pub(super) fn write(
    pipe: &Arc<Pipe>,
    inode: u64,
    nonblock: bool,
    buffer: u64,
    len: u64,
    space: SpaceId,
) -> Result<Served, Errno> {
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    let outcome = pipe
        .write_with(len, |at, piece| user_copy::copy_from_user(space, buffer + at as u64, piece))?;
    match outcome {
        PipeIo::Done(_) => wake(inode),
        // Nobody will read it: the writer also gets SIGPIPE, which ends it unless caught or
        // ignored (then it sees only EPIPE).
        PipeIo::Broken => {
            let caller = scheduler::current_caller().0;
            let _ = super::signals::send(
                caller,
                super::signals::SIGPIPE,
                super::signals::Origin::KERNEL,
            );
        }
        PipeIo::WouldWait(_) => {}
    }
    answer(pipe, inode, outcome, nonblock)
}
