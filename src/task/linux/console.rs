//! The console as a Linux program sees it through a descriptor: a terminal (`/dev/console`,
//! `/dev/tty`) that reads what the shell hands the foreground program and writes to the screen
//! and serial line — its `ioctl`s, and `poll` over descriptors (the console is the one that can
//! wait; files and the other devices are always ready).

#![forbid(unsafe_code)]

use alloc::vec;

use super::{files, tty, with_state};
use crate::{
    abi::linux,
    events::{Errno, SpaceId},
    fs::Device,
    mm::user_copy,
    task::{
        Pid, scheduler,
        syscalls::{self, Served},
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
    /// A sleep's deadline while it waits.
    pub(super) sleep_until_ms: Option<u64>,
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
    if nonblock && !tty::readable_or_block(None) {
        return Err(Errno::EAGAIN);
    }
    let Some(taken) = tty::take_or_block(len) else { return Ok(Served::Restart) };
    user_copy::copy_to_user(space, buffer, &taken)?;
    Ok(Served::Value(taken.len() as u64))
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
/// requests, and anything that is not the console, `ENOTTY`.
pub(super) fn ioctl(
    fd: u64,
    request: u64,
    argument: u64,
    pid: Pid,
    space: SpaceId,
) -> Result<u64, Errno> {
    if !is_console(fd)? {
        return Err(Errno::ENOTTY);
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
    Ok(0)
}

/// `poll(fds, nfds, timeout_ms)`: the console is readable when input waits and always
/// writable; files and the other devices are always both; a closed descriptor is `POLLNVAL`.
/// With nothing ready it waits for input up to `timeout_ms` (negative: no limit).
pub(super) fn poll(fds: u64, count: u64, timeout_ms: i32, space: SpaceId) -> Result<Served, Errno> {
    if count > MAX_POLL_FDS {
        return Err(Errno::EINVAL);
    }
    let len_bytes = (count * POLLFD_BYTES) as usize;
    let mut records = vec![0u8; len_bytes];
    user_copy::copy_from_user(space, fds, &mut records)?;
    let input_waiting = tty::readable_or_block(None);
    let mut ready = 0u64;
    let mut wants_input = false;
    for record in records.as_chunks_mut::<{ POLLFD_BYTES as usize }>().0 {
        let fd = i32::from_le_bytes(record[0..4].try_into().expect("4 bytes"));
        let events = u16::from_le_bytes(record[4..6].try_into().expect("2 bytes"));
        let revents = match u64::try_from(fd).map(poll_kind) {
            // A negative descriptor is skipped, as Linux does.
            Err(_) => 0,
            Ok(None) => linux::POLLNVAL,
            Ok(Some((true, _))) => {
                wants_input |= events & linux::POLLIN != 0;
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
    if ready == 0 && timeout_ms != 0 {
        let now_ms = crate::arch::milliseconds();
        let until_ms = with_state(|state| {
            *state.console.poll_until_ms.get_or_insert_with(|| match u64::try_from(timeout_ms) {
                Ok(timeout_ms) => now_ms.saturating_add(timeout_ms),
                Err(_) => u64::MAX,
            })
        });
        if now_ms < until_ms {
            // Only input can make any of them ready; without a wish for it this is a sleep.
            // Either way the call looks again when woken (at once, if input came meanwhile).
            if wants_input {
                tty::readable_or_block(Some(until_ms));
            } else {
                syscalls::sleep_until(until_ms);
            }
            return Ok(Served::Restart);
        }
    }
    with_state(|state| state.console.poll_until_ms = None);
    user_copy::copy_to_user(space, fds, &records)?;
    Ok(Served::Value(ready))
}
