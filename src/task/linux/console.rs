//! The console as a Linux program sees it through a descriptor: a terminal (`/dev/console`,
//! `/dev/tty`) that reads what the shell hands the foreground program and writes to the screen
//! and serial line — its `ioctl`s, and `poll` over descriptors (the console is the one that can
//! wait; files and the other devices are always ready).

#![forbid(unsafe_code)]

use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{
    files,
    signals::{self, Background},
    tty, with_state,
};
use crate::{
    abi::linux,
    events::{Errno, SpaceId},
    fs::Device,
    mm::user_copy,
    task::{
        Pid,
        scheduler::{self, BlockReason, SCHEDULER},
        syscalls::Served,
    },
};

/// The size a terminal reports (`TIOCGWINSZ`): the serial console has no way to tell its real
/// size, so the conventional one.
const CONSOLE_ROWS: u16 = 24;
/// See [`CONSOLE_ROWS`].
const CONSOLE_COLUMNS: u16 = 80;
/// `struct pollfd`: `fd` (i32), `events`, `revents` (i16 each).
const POLLFD_BYTES: u64 = 8;
/// Most descriptors one `poll` looks at (the descriptor limit).
const MAX_POLL_FDS: u64 = files::MAX_DESCRIPTORS as u64;

/// A `poll`'s time limit while it waits.
#[derive(Default)]
pub(super) struct ConsoleState {
    poll_until_ms: Option<u64>,
    /// A sleep's deadline while it waits, and where its time left goes if a handler
    /// interrupts it (`nanosleep`'s `rem`).
    pub(super) sleep_until_ms: Option<u64>,
    pub(super) sleep_remaining_at: Option<u64>,
}

/// Reads the terminal's input into the caller's buffer: a line in canonical mode, what was
/// typed in raw mode; blocks until there is some (unless `nonblock`: `EAGAIN`).
pub(super) fn read(
    buffer: u64,
    len: usize,
    nonblock: bool,
    space: SpaceId,
) -> Result<Served, Errno> {
    if len == 0 {
        return Ok(Served::Value(0));
    }
    // The whole buffer is checked before input is taken: a bad pointer loses no bytes.
    crate::mm::space::check_user(space, buffer, len as u64, true)?;
    if let Background::Signalled = from_background(signals::SIGTTIN)? {
        return Ok(Served::Restart);
    }
    if nonblock && !tty::readable() {
        return Err(Errno::EAGAIN);
    }
    let Some(taken) = tty::take_or_block(len) else { return Ok(Served::Restart) };
    user_copy::copy_to_user(space, buffer, &taken)?;
    Ok(Served::Value(taken.len() as u64))
}

/// Job control for the running process's access to the terminal (see
/// [`signals::background_access`]).
fn from_background(signal: u64) -> Result<Background, Errno> {
    let (caller, _) = scheduler::current_caller();
    signals::background_access(caller, signal, tty::foreground())
}

/// Shows `bytes` on the console (the terminal's echo).
pub(super) fn show(bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        crate::console::write_text(chunk.valid(), || {});
    }
}

fn is_console(fd: u64) -> Result<bool, Errno> {
    Ok(files::file(fd)?.node.device() == Some(Device::Console))
}

/// What `poll` sees of descriptor `fd`: `None` if it is closed; else whether it is the console,
/// and (for a pipe) whether a read and a write would go on without waiting.
fn poll_kind(fd: u64) -> Option<(bool, (bool, bool))> {
    let file = files::file(fd).ok()?;
    let console = file.node.device() == Some(Device::Console);
    let ready = crate::fs::pipe_of(&file.node).map_or((true, true), |pipe| pipe.ready());
    Some((console, ready))
}

/// `ioctl` requests on a terminal (`asm-generic/ioctls.h`).
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TCFLSH: u64 = 0x540b;
const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const TIOCNOTTY: u64 = 0x5422;
const TIOCGSID: u64 = 0x5429;
/// `TCFLSH`'s queue selectors: input, output, both.
const TCIFLUSH: u64 = 0;
const TCOFLUSH: u64 = 1;
const TCIOFLUSH: u64 = 2;

/// `ioctl` on the console: its settings (`TCGETS`, `TCSETS`, `TCSETSW`, `TCSETSF`), size
/// (`TIOCGWINSZ`; setting it is accepted and changes nothing), foreground group (`TIOCGPGRP`,
/// `TIOCSPGRP`), session (`TIOCGSID`), waiting bytes (`FIONREAD`), flushing (`TCFLSH`), and
/// becoming or leaving the controlling terminal (accepted: it is every process's). Other
/// requests, and anything that is not the console, `ENOTTY`. A process outside the foreground
/// group that changes settings, foreground group or input gets `SIGTTOU` first, as on Linux.
pub(super) fn ioctl(
    fd: u64,
    request: u64,
    argument: u64,
    pid: Pid,
    space: SpaceId,
) -> Result<Served, Errno> {
    if !is_console(fd)? {
        return Err(Errno::ENOTTY);
    }
    let changes = matches!(request, TCSETS | TCSETSW | TCSETSF | TIOCSPGRP | TCFLSH);
    if changes && from_background(signals::SIGTTOU)? == Background::Signalled {
        return Ok(Served::Restart);
    }
    let put_u32 = |value: u32| user_copy::copy_to_user(space, argument, &value.to_le_bytes());
    match request {
        linux::TCGETS => user_copy::copy_to_user(space, argument, &tty::termios())?,
        TCSETS | TCSETSW | TCSETSF => {
            let mut termios = [0u8; tty::TERMIOS_BYTES];
            user_copy::copy_from_user(space, argument, &mut termios)?;
            tty::set_termios(termios, request == TCSETSF);
        }
        linux::TIOCGWINSZ => {
            let mut size = [0u8; 8];
            size[0..2].copy_from_slice(&CONSOLE_ROWS.to_le_bytes());
            size[2..4].copy_from_slice(&CONSOLE_COLUMNS.to_le_bytes());
            user_copy::copy_to_user(space, argument, &size)?;
        }
        TIOCSWINSZ => {
            let mut size = [0u8; 8];
            user_copy::copy_from_user(space, argument, &mut size)?;
        }
        TIOCGPGRP => put_u32(tty::foreground())?,
        TIOCSPGRP => {
            let mut group = [0u8; 4];
            user_copy::copy_from_user(space, argument, &mut group)?;
            let group = i32::from_le_bytes(group);
            if group <= 0 {
                return Err(Errno::EINVAL);
            }
            // A group that exists in the caller's session (POSIX: else EPERM).
            let session = super::processes::getsid(0, pid)?;
            let group = group.unsigned_abs();
            let in_session = scheduler::members(Some(group), 0).into_iter().any(|member| {
                super::processes::getsid(u64::from(member), pid).ok() == Some(session)
            });
            if !in_session {
                return Err(Errno::EPERM);
            }
            tty::set_foreground(group);
        }
        TIOCGSID => put_u32(super::processes::getsid(0, pid)? as u32)?,
        FIONREAD => put_u32(tty::waiting_bytes() as u32)?,
        TCFLSH => match argument {
            TCIFLUSH | TCIOFLUSH => tty::flush_input(),
            TCOFLUSH => {}
            _ => return Err(Errno::EINVAL),
        },
        TIOCSCTTY | TIOCNOTTY => {}
        _ => return Err(Errno::ENOTTY),
    }
    Ok(Served::Value(0))
}

/// Changes a poller may be waiting for (console input, a pipe's change), counted: a poll
/// that saw none of its descriptors ready blocks only if none came since it looked, so a
/// change between its look and its block is never lost.
static POLL_EVENTS: AtomicU64 = AtomicU64::new(0);

/// Something a poller may wait for happened: console input, or a pipe changed.
pub(super) fn note_poll_event() {
    POLL_EVENTS.fetch_add(1, Ordering::AcqRel);
}

/// `poll(fds, nfds, timeout_ms)`: see [`poll_records`]; `timeout_ms` negative: no limit.
pub(super) fn poll(fds: u64, count: u64, timeout_ms: i32, space: SpaceId) -> Result<Served, Errno> {
    if count > MAX_POLL_FDS {
        return Err(Errno::EINVAL);
    }
    let mut records = vec![0u8; (count * POLLFD_BYTES) as usize];
    user_copy::copy_from_user(space, fds, &mut records)?;
    let Some(ready) = poll_records(&mut records, u64::try_from(timeout_ms).ok())? else {
        return Ok(Served::Restart);
    };
    user_copy::copy_to_user(space, fds, &records)?;
    Ok(Served::Value(ready))
}

/// `ppoll(fds, nfds, timeout, sigmask, sigsetsize)`: `poll` with a `timespec` (null: no
/// limit). The signal mask it may name is not applied for the wait.
pub(super) fn ppoll(fds: u64, count: u64, timeout: u64, space: SpaceId) -> Result<Served, Errno> {
    let timeout_ms = match timeout {
        0 => -1,
        at => i32::try_from(super::time::read_timespec_ms(at, space)?).unwrap_or(i32::MAX),
    };
    poll(fds, count, timeout_ms, space)
}

/// Bytes of an `fd_set` (`FD_SETSIZE` 1024 bits).
const FD_SET_BYTES: usize = 128;

/// `select(nfds, readfds, writefds, exceptfds, timeout)` and `pselect6` (`timespec`, the
/// signal mask not applied): the same readiness as `poll`; the sets come back holding the
/// ready descriptors (no exceptional conditions exist); a closed descriptor is `EBADF`. The
/// remaining time is not written back.
pub(super) fn select(args: &[u64; 6], timespec: bool, space: SpaceId) -> Result<Served, Errno> {
    let [count, read_set, write_set, except_set, timeout, _] = *args;
    let count =
        usize::try_from(count).ok().filter(|&n| n <= FD_SET_BYTES * 8).ok_or(Errno::EINVAL)?;
    let set_bytes = count.div_ceil(8);
    let read_in = |at: u64| -> Result<alloc::vec::Vec<u8>, Errno> {
        let mut set = vec![0u8; set_bytes];
        if at != 0 {
            user_copy::copy_from_user(space, at, &mut set)?;
        }
        Ok(set)
    };
    let (readable, writable) = (read_in(read_set)?, read_in(write_set)?);
    let bit = |set: &[u8], fd: usize| set[fd / 8] & (1 << (fd % 8)) != 0;
    let mut records = alloc::vec::Vec::new();
    for fd in 0..count {
        let events = if bit(&readable, fd) { linux::POLLIN } else { 0 }
            | if bit(&writable, fd) { linux::POLLOUT } else { 0 };
        if events != 0 {
            records.extend_from_slice(&(fd as i32).to_le_bytes());
            records.extend_from_slice(&events.to_le_bytes());
            records.extend_from_slice(&[0, 0]);
        }
    }
    let timeout_ms = match timeout {
        0 => None,
        at if timespec => Some(super::time::read_timespec_ms(at, space)?),
        at => Some(super::time::read_timeval_ms(at, space)?),
    };
    let Some(_) = poll_records(&mut records, timeout_ms)? else { return Ok(Served::Restart) };
    let (mut readable, mut writable) = (vec![0u8; set_bytes], vec![0u8; set_bytes]);
    let mut ready = 0;
    for record in records.as_chunks::<{ POLLFD_BYTES as usize }>().0 {
        let fd = i32::from_le_bytes(record[0..4].try_into().expect("4 bytes")) as usize;
        let revents = u16::from_le_bytes(record[6..8].try_into().expect("2 bytes"));
        if revents & linux::POLLNVAL != 0 {
            return Err(Errno::EBADF);
        }
        for (set, wanted) in [(&mut readable, linux::POLLIN), (&mut writable, linux::POLLOUT)] {
            if revents & wanted != 0 {
                set[fd / 8] |= 1 << (fd % 8);
                ready += 1;
            }
        }
    }
    for (at, set) in
        [(read_set, &readable), (write_set, &writable), (except_set, &vec![0; set_bytes])]
    {
        if at != 0 {
            user_copy::copy_to_user(space, at, set)?;
        }
    }
    Ok(Served::Value(ready))
}

/// Fills each `struct pollfd` record's `revents`: the console readable when its terminal
/// would give a read something, always writable; a pipe by its state; files and the other
/// devices always both; a closed descriptor `POLLNVAL`, a negative one skipped. With nothing
/// ready it waits (for console input or any pipe's change) up to `timeout_ms` (`None`: no
/// limit) — `Ok(None)`: blocked, the call starts again when woken. Else how many are ready.
fn poll_records(records: &mut [u8], timeout_ms: Option<u64>) -> Result<Option<u64>, Errno> {
    let seen_events = POLL_EVENTS.load(Ordering::Acquire);
    let input_waiting = tty::readable();
    let mut ready = 0u64;
    for record in records.as_chunks_mut::<{ POLLFD_BYTES as usize }>().0 {
        let fd = i32::from_le_bytes(record[0..4].try_into().expect("4 bytes"));
        let events = u16::from_le_bytes(record[4..6].try_into().expect("2 bytes"));
        let revents = match u64::try_from(fd).map(poll_kind) {
            // A negative descriptor is skipped, as Linux does.
            Err(_) => 0,
            Ok(None) => linux::POLLNVAL,
            Ok(Some((true, _))) => {
                let readable = if input_waiting { events & linux::POLLIN } else { 0 };
                readable | events & linux::POLLOUT
            }
            Ok(Some((false, (readable, writable)))) => {
                let mut revents = 0;
                if readable {
                    revents |= events & linux::POLLIN;
                }
                if writable {
                    revents |= events & linux::POLLOUT;
                }
                revents
            }
        };
        record[6..8].copy_from_slice(&revents.to_le_bytes());
        ready += u64::from(revents != 0);
    }
    if ready == 0 && timeout_ms != Some(0) {
        let now_ms = crate::arch::milliseconds();
        let until_ms = with_state(|state| {
            *state.console.poll_until_ms.get_or_insert_with(|| match timeout_ms {
                Some(timeout_ms) => now_ms.saturating_add(timeout_ms),
                None => u64::MAX,
            })
        });
        if now_ms < until_ms {
            let mut scheduler = SCHEDULER.lock();
            // A change since the look above: look again at once rather than wait.
            if POLL_EVENTS.load(Ordering::Acquire) == seen_events {
                scheduler.block_current(BlockReason::Poll { until_ms });
            }
            return Ok(None);
        }
    }
    with_state(|state| state.console.poll_until_ms = None);
    Ok(Some(ready))
}
