//! Pipes for Linux programs: `pipe` and `pipe2`, and reading and writing their ends — a reader
//! of an empty pipe waits for a writer (or the last writer's close: the end of the data), a
//! writer of a full one for a reader; `O_NONBLOCK` makes both `EAGAIN` instead. A write with no
//! reader left is `EPIPE` (the `SIGPIPE` Linux also sends comes with signals).
//!
//! Waiting: the check and the block happen in one hold of the scheduler's lock, and every change
//! to a pipe wakes its waiters under that lock after it — so a waiter that found nothing is
//! always woken (the rule `input.rs` follows for console input).

#![forbid(unsafe_code)]

use alloc::{sync::Arc, vec};

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

/// Reads from a pipe's read end.
pub(super) fn read(
    pipe: &Arc<Pipe>,
    inode: u64,
    nonblock: bool,
    buffer: u64,
    len: u64,
    space: SpaceId,
) -> Result<Served, Errno> {
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    // Checked first: once bytes leave the pipe they must reach the caller.
    space::check_user(space, buffer, len as u64, true)?;
    // No bigger than what the pipe holds now: a large read of a few bytes (a shell reading a
    // line, a 64 KiB read as a pipe fills) does not zero 64 KiB to hand back four.
    let mut bytes = vec![0u8; len.min(pipe.len_bytes().max(1))];
    let outcome = try_or_block(inode, nonblock, || pipe.read(&mut bytes));
    if let PipeIo::Done(count) = outcome {
        user_copy::copy_to_user(space, buffer, &bytes[..count])?;
        if count > 0 {
            wake(inode);
        }
    }
    answer(outcome, nonblock)
}

/// Tries `io` under the scheduler's lock, blocking the caller there (unless `nonblock`) if it
/// would have to wait: a change to the pipe after the try always finds the caller blocked.
fn try_or_block(inode: u64, nonblock: bool, io: impl FnOnce() -> PipeIo) -> PipeIo {
    let mut scheduler = SCHEDULER.lock();
    let outcome = io();
    if outcome == PipeIo::WouldWait && !nonblock {
        scheduler.block_current(BlockReason::Pipe { inode });
    }
    outcome
}

/// The call's answer for what the pipe did.
fn answer(outcome: PipeIo, nonblock: bool) -> Result<Served, Errno> {
    match outcome {
        PipeIo::Done(count) => Ok(Served::Value(count as u64)),
        PipeIo::WouldWait if nonblock => Err(Errno::EAGAIN),
        PipeIo::WouldWait => Ok(Served::Restart),
        PipeIo::Broken => Err(Errno::EPIPE),
    }
}

/// Writes to a pipe's write end.
pub(super) fn write(
    pipe: &Arc<Pipe>,
    inode: u64,
    nonblock: bool,
    buffer: u64,
    len: u64,
    space: SpaceId,
) -> Result<Served, Errno> {
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    // Only what could go in now is copied in: a writer that waits for a full pipe (and runs
    // this again each time it is woken) does not copy its whole buffer each time. A small
    // write goes in whole or not at all, so it is copied whole.
    let room = pipe.room_bytes();
    let take = if len <= fs::PIPE_ATOMIC_BYTES { len } else { len.min(room.max(1)) };
    let mut bytes = vec![0u8; take];
    user_copy::copy_from_user(space, buffer, &mut bytes)?;
    let outcome = try_or_block(inode, nonblock, || pipe.write(&bytes));
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
        PipeIo::WouldWait => {}
    }
    answer(outcome, nonblock)
}
