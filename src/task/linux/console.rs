//! The console as a Linux program sees it through a descriptor: a terminal (`/dev/console`,
//! `/dev/tty`) that reads what the shell hands the foreground program and writes to the screen
//! and serial line — its `ioctl`s, and `poll` over descriptors (the console is the one that can
//! wait; files and the other devices are always ready).

#![forbid(unsafe_code)]

use alloc::vec;

use super::{files, with_state};
use crate::{
    abi::linux,
    events::{Errno, SpaceId},
    fs::Device,
    mm::user_copy,
    task::{
        input,
        syscalls::{self, Served},
    },
};

/// The size a terminal reports (`TIOCGWINSZ`): the serial console has no way to tell its real
/// size, so the conventional one.
const CONSOLE_ROWS: u16 = 24;
/// See [`CONSOLE_ROWS`].
const CONSOLE_COLUMNS: u16 = 80;
/// Bytes of the kernel's `struct termios` (`TCGETS`): four flag words, the line discipline,
/// 19 control characters.
const TERMIOS_BYTES: usize = 36;
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

/// Reads console input into the caller's buffer (blocks until a byte comes).
pub(super) fn read(buffer: u64, len: usize, space: SpaceId) -> Result<Served, Errno> {
    syscalls::read(0, buffer, len, space)
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

/// `ioctl`: a terminal's settings (`TCGETS`) and size (`TIOCGWINSZ`); other requests, and
/// anything that is not the console, `ENOTTY`.
pub(super) fn ioctl(fd: u64, request: u64, argument: u64, space: SpaceId) -> Result<u64, Errno> {
    if !is_console(fd)? {
        return Err(Errno::ENOTTY);
    }
    match request {
        linux::TCGETS => {
            user_copy::copy_to_user(space, argument, &console_termios())?;
            Ok(0)
        }
        linux::TIOCGWINSZ => {
            let mut size = [0u8; 8];
            size[0..2].copy_from_slice(&CONSOLE_ROWS.to_le_bytes());
            size[2..4].copy_from_slice(&CONSOLE_COLUMNS.to_le_bytes());
            user_copy::copy_to_user(space, argument, &size)?;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// The console's line settings, as they behave: input arrives as typed (no line editing: that
/// is the shell's) and is echoed; output turns `\n` into `\r\n`; 38400 baud, 8 bits.
fn console_termios() -> [u8; TERMIOS_BYTES] {
    const ICRNL: u32 = 0o400;
    const OPOST: u32 = 0o1;
    const ONLCR: u32 = 0o4;
    const B38400: u32 = 0o17;
    const CS8: u32 = 0o60;
    const CREAD: u32 = 0o200;
    const ECHO: u32 = 0o10;
    /// `c_cc` indices (`asm-generic/termbits.h`).
    const VTIME: usize = 5;
    const VMIN: usize = 6;
    let mut termios = [0u8; TERMIOS_BYTES];
    termios[0..4].copy_from_slice(&ICRNL.to_le_bytes());
    termios[4..8].copy_from_slice(&(OPOST | ONLCR).to_le_bytes());
    termios[8..12].copy_from_slice(&(B38400 | CS8 | CREAD).to_le_bytes());
    termios[12..16].copy_from_slice(&ECHO.to_le_bytes());
    // c_line 0 (N_TTY); then c_cc: a read returns after one byte, with no timer.
    let control_characters = 17;
    termios[control_characters + VMIN] = 1;
    termios[control_characters + VTIME] = 0;
    termios
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
    let input_waiting = input::ready_or_block(None);
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
                input::ready_or_block(Some(until_ms));
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
