//! The process system calls, served as the owner of `syscall` events. Every user pointer goes
//! through mm's checked copies (`EFAULT` for anything the process may not touch); memory calls
//! become `memory` events, so mm serves them after the security band has seen them. The event
//! calls (`subscribe`, `poll`, `raise`) are `subscriptions`'.

#![forbid(unsafe_code)]

use alloc::vec;

use super::{
    Pid, drivers, input,
    process::{self, Reaped},
    scheduler::{self, BlockReason, SCHEDULER, State},
    subscriptions,
};
use crate::{
    abi, console,
    events::{
        BUS, Errno, Event, MemoryRequest, Priority, Protection, Reply, SpaceId, SyscallAbi, Verdict,
    },
    mm::{self, space, user_copy},
};

/// Most bytes one `write` or `read` moves; the caller loops for more (a short count, as POSIX
/// allows).
pub const MAX_IO_BYTES_PER_CALL: usize = 64 * 1024;
/// Longest program name `spawn` accepts.
const MAX_NAME_LEN_BYTES: usize = 32;
/// Longest sleep: a day. Longer requests are refused rather than overflowing tick arithmetic.
const MAX_SLEEP_MS: u64 = 24 * 60 * 60 * 1000;

pub(super) fn subscribe() {
    BUS.subscribe_syscalls(SyscallAbi::Herald, "process-calls", Priority::OWNER, on_syscall)
        .expect("the scheduler subscribes at boot")
        .keep_forever();
}

/// What a call did, beyond an ordinary result.
pub(super) enum Served {
    /// Return this value.
    Value(u64),
    /// The caller blocked; issue the call again when it is woken.
    Restart,
}

fn on_syscall(event: &Event, reply: &mut Reply) -> Verdict {
    let Event::Syscall { number, ref args, pid, abi: SyscallAbi::Herald } = *event else {
        // A Linux program's call is `linux.rs`'s.
        return Verdict::Continue;
    };
    if pid == 0 || number >= abi::SYSCALL_COUNT {
        // Kernel-raised test syscalls and unknown numbers are not ours (the default: ENOSYS).
        return Verdict::Continue;
    }
    scheduler::count_syscall();
    // The call that does nothing but answer stays in this small frame; every other call pays
    // for `serve`'s large one.
    if number == abi::SYS_GETPID {
        reply.value = u64::from(pid);
        return Verdict::Handled;
    }
    serve_and_reply(number, args, pid, reply)
}

#[inline(never)]
fn serve_and_reply(number: u64, args: &[u64; 6], pid: Pid, reply: &mut Reply) -> Verdict {
    answer(serve(number, args, pid, scheduler::current_space()), reply)
}

/// Puts a served call's result in the reply (Herald's calls and Linux's alike).
pub(super) fn answer(result: Result<Served, Errno>, reply: &mut Reply) -> Verdict {
    match result {
        Ok(Served::Value(value)) => {
            reply.value = value;
            Verdict::Handled
        }
        Ok(Served::Restart) => {
            reply.restart = true;
            Verdict::Handled
        }
        Err(errno) => Verdict::Deny(errno),
    }
}

fn protection(bits: u64) -> Result<Protection, Errno> {
    Protection::from_bits(bits).ok_or(Errno::EINVAL)
}

pub(super) fn length(len: u64) -> Result<usize, Errno> {
    usize::try_from(len).map_err(|_| Errno::EFAULT)
}

fn serve(number: u64, args: &[u64; 6], pid: Pid, space: SpaceId) -> Result<Served, Errno> {
    let value = match number {
        abi::SYS_READ => return read(args[0], args[1], length(args[2])?, space),
        abi::SYS_WRITE => write(args[0], args[1], args[2], space)?,
        abi::SYS_EXIT => {
            // The return path sees the pending exit and never comes back to ring 3.
            exit(args[0] as i32);
            0
        }
        abi::SYS_GETPID => u64::from(pid),
        abi::SYS_YIELD => {
            SCHEDULER.lock().request_resched();
            0
        }
        abi::SYS_SLEEP => sleep(args[0])?,
        abi::SYS_SPAWN => spawn(*args, space, pid)?,
        abi::SYS_WAIT => return wait(args[0], args[1], pid, space),
        abi::SYS_KILL => {
            let target = Pid::try_from(args[0]).map_err(|_| Errno::ESRCH)?;
            if target == 0 {
                return Err(Errno::EPERM);
            }
            process::kill(target)?;
            0
        }
        abi::SYS_MAP => mm::request(
            pid,
            MemoryRequest::Map {
                space,
                address: args[0],
                len_bytes: args[1],
                protection: protection(args[2])?,
            },
        )?,
        abi::SYS_UNMAP => {
            mm::request(pid, MemoryRequest::Unmap { space, address: args[0], len_bytes: args[1] })?
        }
        abi::SYS_PROTECT => mm::request(
            pid,
            MemoryRequest::Protect {
                space,
                address: args[0],
                len_bytes: args[1],
                protection: protection(args[2])?,
            },
        )?,
        abi::SYS_SHARE => {
            let target = Pid::try_from(args[2]).map_err(|_| Errno::ESRCH)?;
            let into = space_of(target)?;
            mm::request(
                pid,
                MemoryRequest::Share {
                    from: space,
                    from_address: args[0],
                    len_bytes: args[1],
                    into,
                    into_address: args[3],
                    protection: protection(args[4])?,
                },
            )?
        }
        abi::SYS_SUBSCRIBE => subscriptions::subscribe(pid, args[0], args[1], args[2])?,
        abi::SYS_RAISE => {
            return match subscriptions::raise(args[0], pid)? {
                subscriptions::Raised::Taken => Ok(Served::Value(0)),
                subscriptions::Raised::MustWait => Ok(Served::Restart),
            };
        }
        abi::SYS_POLL => subscriptions::poll(pid, args[0], args[1], args[2], space)?,
        abi::SYS_UPTIME => crate::arch::milliseconds(),
        abi::SYS_IRQ_CLAIM => drivers::claim(pid, args[0], args[1], args[2], args[3])?,
        abi::SYS_IRQ_WAIT => {
            return Ok(match drivers::wait(pid, args[0], args[1])? {
                drivers::Waited::Count(seq) => Served::Value(seq),
                drivers::Waited::Blocked => Served::Restart,
            });
        }
        abi::SYS_IRQ_ACK => drivers::acknowledge(pid, args[0])?,
        abi::SYS_IRQ_RELEASE => drivers::release(pid, args[0])?,
        abi::SYS_IRQ_PROGRAM => {
            drivers::load_program(pid, args[0], args[1], args[2], args[3], space)?
        }
        abi::SYS_IRQ_READ => drivers::read(pid, args[0], args[1], args[2], space)?,
        _ => return Err(Errno::ENOSYS),
    };
    Ok(Served::Value(value))
}

fn space_of(pid: Pid) -> Result<SpaceId, Errno> {
    let scheduler = SCHEDULER.lock();
    match scheduler.tasks.get(&pid) {
        Some(task) if !matches!(task.state, State::Zombie(_)) => Ok(task.space),
        _ => Err(Errno::ESRCH),
    }
}

pub(super) fn exit(code: i32) {
    let pid = SCHEDULER.lock().current();
    scheduler::request_exit(pid, code);
}

pub(super) fn write(fd: u64, buffer: u64, len: u64, space: SpaceId) -> Result<u64, Errno> {
    if fd != 1 && fd != 2 {
        return Err(Errno::EBADF);
    }
    // The whole buffer must be the caller's, even the part beyond this call's share.
    space::check_user(space, buffer, len, false)?;
    let requested = length(len)?;
    let len = requested.min(MAX_IO_BYTES_PER_CALL);
    // A piece at a time, printed with no lock on the caller's memory and a preempt point
    // between pieces: a long write keeps neither interrupts nor other processes waiting.
    let mut piece = [0u8; 2 * WRITE_PIECE_BYTES + MAX_UTF8_TAIL_BYTES];
    let mut carried = 0;
    let mut offset = 0;
    while offset < len {
        let count = (len - offset).min(WRITE_PIECE_BYTES);
        let filled = carried + count;
        user_copy::copy_from_user(space, buffer + offset as u64, &mut piece[carried..filled])?;
        offset += count;
        // A piece ends after its last whole line, so a line of up to a piece is printed in one
        // go (another CPU's output never lands inside it); the rest starts the next piece. A
        // character cut by the piece's end waits for the rest in the next piece, or, cut by
        // the end of a short write, for the caller's next call.
        let more_follows = offset < len || requested > len;
        let line_end = piece[..filled].iter().rposition(|&byte| byte == b'\n').map(|at| at + 1);
        let keep = match line_end {
            _ if !more_follows => 0,
            Some(end) if filled - end < WRITE_PIECE_BYTES => filled - end,
            _ => incomplete_utf8_tail(&piece[..filled]),
        };
        print_text(&piece[..filled - keep]);
        piece.copy_within(filled - keep..filled, 0);
        carried = keep;
        if crate::arch::preempt_point() && offset < len {
            // Killed: a short write of what was shown.
            return Ok((offset - carried) as u64);
        }
    }
    Ok((len - carried) as u64)
}

/// Bytes copied from the caller per step of a `write` (a step prints them, or up to its last
/// whole line). Serial and capture take a step's text at once; the framebuffer draws it a few
/// glyphs per console-lock hold, so the lock is never held long.
const WRITE_PIECE_BYTES: usize = 256;
/// Longest UTF-8 sequence less one: what a piece may have to carry over.
const MAX_UTF8_TAIL_BYTES: usize = 3;

/// Console text: invalid UTF-8 is shown with replacement characters, never refused.
fn print_text(bytes: &[u8]) {
    // A scroll moves megabytes of framebuffer: between its steps the caller may be preempted
    // (a kill is seen by the caller's own preempt point after the piece).
    let between_steps = || {
        let _killed = crate::arch::preempt_point();
    };
    for chunk in bytes.utf8_chunks() {
        console::write_text(chunk.valid(), between_steps);
        if !chunk.invalid().is_empty() {
            console::write_text("\u{fffd}", between_steps);
        }
    }
}

/// How many bytes at the end of `bytes` begin a UTF-8 sequence that continues past it.
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    for back in 1..=MAX_UTF8_TAIL_BYTES.min(bytes.len()) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xc0 == 0x80 {
            continue;
        }
        let needed = match byte {
            0xf0.. => 4,
            0xe0.. => 3,
            0xc0.. => 2,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

pub(super) fn read(fd: u64, buffer: u64, len: usize, space: SpaceId) -> Result<Served, Errno> {
    if fd != 0 {
        return Err(Errno::EBADF);
    }
    if len == 0 {
        return Ok(Served::Value(0));
    }
    // Check the whole buffer before taking input, so a bad pointer loses no bytes.
    space::check_user(space, buffer, len as u64, true)?;
    let len = len.min(MAX_IO_BYTES_PER_CALL);
    let Some(taken) = input::take_or_block(len) else { return Ok(Served::Restart) };
    user_copy::copy_to_user(space, buffer, &taken)?;
    // Cooked console: what a program reads is shown, as a terminal echoes typed keys.
    print_text(&taken);
    Ok(Served::Value(taken.len() as u64))
}

pub(super) fn sleep(milliseconds: u64) -> Result<u64, Errno> {
    if milliseconds > MAX_SLEEP_MS {
        return Err(Errno::EINVAL);
    }
    if milliseconds == 0 {
        SCHEDULER.lock().request_resched();
    } else {
        sleep_until(crate::arch::milliseconds() + milliseconds);
    }
    Ok(0)
}

/// Blocks the caller until `until_ms` (milliseconds since boot; `u64::MAX`: until it is
/// killed). The block takes effect on the way back to ring 3.
pub(super) fn sleep_until(until_ms: u64) {
    SCHEDULER.lock().block_current(BlockReason::Sleep { until_ms });
}

fn spawn(args: [u64; 6], space: SpaceId, parent: Pid) -> Result<u64, Errno> {
    let name_len = length(args[1])?;
    let args_len = length(args[3])?;
    if name_len == 0 || name_len > MAX_NAME_LEN_BYTES {
        return Err(Errno::EINVAL);
    }
    if args_len > process::MAX_ARGS_LEN_BYTES {
        return Err(Errno::E2BIG);
    }
    let mut name = vec![0; name_len];
    user_copy::copy_from_user(space, args[0], &mut name)?;
    let mut arguments = vec![0; args_len];
    user_copy::copy_from_user(space, args[2], &mut arguments)?;
    let name = core::str::from_utf8(&name).map_err(|_| Errno::EINVAL)?;
    let arguments = core::str::from_utf8(&arguments).map_err(|_| Errno::EINVAL)?;
    process::spawn_withholding(name, arguments, parent, args[4])
        .map(u64::from)
        .map_err(|error| error.errno())
}

fn wait(target: u64, status_out: u64, pid: Pid, space: SpaceId) -> Result<Served, Errno> {
    let target = Pid::try_from(target).map_err(|_| Errno::ECHILD)?;
    if status_out != 0 {
        // Check before reaping, so a bad pointer does not lose the child's status.
        space::check_user(space, status_out, 4, true)?;
    }
    match process::reap_or_block(pid, process::Waited::of(target), process::Reports::ENDS)? {
        Reaped::Child(child, code) => {
            if status_out != 0 {
                user_copy::copy_to_user(space, status_out, &code.to_le_bytes())?;
            }
            Ok(Served::Value(u64::from(child)))
        }
        // Blocked already, in the same hold of the lock that found no ended child, so an exit
        // on another CPU in between cannot be missed. (Stops and continues are not asked for.)
        _ => Ok(Served::Restart),
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::incomplete_utf8_tail;

    #[test_case]
    fn a_character_cut_at_a_pieces_end_is_carried_whole() {
        let euro = "€".as_bytes(); // three bytes
        assert_eq!(incomplete_utf8_tail(b"abc"), 0);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0]]), 1);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0], euro[1]]), 2);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0], euro[1], euro[2]]), 0);
        let crab = "🦀".as_bytes(); // four bytes
        assert_eq!(incomplete_utf8_tail(&crab[..3]), 3);
        assert_eq!(incomplete_utf8_tail(crab), 0);
        // Stray continuation bytes are not a character to wait for.
        assert_eq!(incomplete_utf8_tail(&[0x80, 0x80, 0x80]), 0);
    }
}
