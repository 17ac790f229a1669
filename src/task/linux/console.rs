//! A Linux program's standard descriptors 0, 1 and 2: the console, a character device that
//! reads what the shell hands the foreground program and writes to the screen and serial line.
//! There are no other descriptors until files exist (issue 18); a program may close these.

#![forbid(unsafe_code)]

use alloc::vec;

use super::{u64_at, with_state};
use crate::{
    abi::linux,
    events::{Errno, SpaceId},
    mm::user_copy,
    task::{
        input,
        syscalls::{self, Served},
    },
};

/// Bytes of one `struct iovec` (`base`, `len`).
const IOVEC_BYTES: u64 = 16;
/// Descriptors a program starts with.
const STANDARD_DESCRIPTORS: u64 = 3;
/// Bytes of `struct stat` on x86-64 (`asm/stat.h`).
const STAT_BYTES: usize = 144;
/// `st_mode` of the console: a character device (`S_IFCHR`), read-write for its owner, writable
/// by its group, as Linux shows a terminal.
const CONSOLE_MODE: u32 = 0o020_620;
/// `st_rdev` of the console: major 5, minor 1 (`/dev/console` on Linux).
const CONSOLE_DEVICE: u64 = (5 << 8) | 1;
/// `st_blksize`: the size a program's stdio should buffer in.
const CONSOLE_BLOCK_BYTES: u64 = 1024;
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
/// Most descriptors one `poll` looks at (Linux's default `RLIMIT_NOFILE`).
const MAX_POLL_FDS: u64 = 1024;

/// Which standard descriptors the program has closed, and a `poll`'s time limit while it waits.
#[derive(Default)]
pub(super) struct ConsoleState {
    closed: [bool; STANDARD_DESCRIPTORS as usize],
    poll_until_ms: Option<u64>,
}

/// Whether `fd` is one of the console descriptors the program still has open.
fn is_open(fd: u64) -> bool {
    fd < STANDARD_DESCRIPTORS && !with_state(|state| state.console.closed[fd as usize])
}

fn open_console(fd: u64) -> Result<(), Errno> {
    if is_open(fd) { Ok(()) } else { Err(Errno::EBADF) }
}

/// `read`: descriptor 0 only (1 and 2 are the console's output side: `EBADF`, as for a
/// terminal opened write-only).
pub(super) fn read(fd: u64, buffer: u64, len: u64, space: SpaceId) -> Result<Served, Errno> {
    if fd != 0 {
        return Err(Errno::EBADF);
    }
    open_console(fd)?;
    syscalls::read(fd, buffer, syscalls::length(len)?, space)
}

/// `readv(fd, iov, iovcnt)`: reads into the first non-empty buffer (a console read returns
/// what has been typed, which one buffer holds up to its length).
pub(super) fn readv(fd: u64, vector: u64, count: u64, space: SpaceId) -> Result<Served, Errno> {
    for index in 0..check_vector_count(count)? {
        let (base, len) = iovec(vector, index, space)?;
        if len != 0 {
            return read(fd, base, len, space);
        }
    }
    open_console(fd)?;
    Ok(Served::Value(0))
}

pub(super) fn write(fd: u64, buffer: u64, len: u64, space: SpaceId) -> Result<u64, Errno> {
    if fd == 0 {
        return Err(Errno::EBADF);
    }
    open_console(fd)?;
    syscalls::write(fd, buffer, len, space)
}

/// `writev(fd, iov, iovcnt)`: each buffer in turn, through `write`; stops at the first short
/// or failed one, answering what was written (or that error, if nothing was).
pub(super) fn writev(fd: u64, vector: u64, count: u64, space: SpaceId) -> Result<u64, Errno> {
    let mut written = 0u64;
    for index in 0..check_vector_count(count)? {
        let (base, len) = iovec(vector, index, space)?;
        if len == 0 {
            continue;
        }
        match write(fd, base, len, space) {
            Ok(done) => {
                written += done;
                if done < len {
                    break;
                }
            }
            Err(errno) if written == 0 => return Err(errno),
            Err(_) => break,
        }
    }
    Ok(written)
}

fn check_vector_count(count: u64) -> Result<u64, Errno> {
    if count > linux::IOV_MAX { Err(Errno::EINVAL) } else { Ok(count) }
}

fn iovec(vector: u64, index: u64, space: SpaceId) -> Result<(u64, u64), Errno> {
    let mut iovec = [0u8; IOVEC_BYTES as usize];
    let at = vector.checked_add(index * IOVEC_BYTES).ok_or(Errno::EFAULT)?;
    user_copy::copy_from_user(space, at, &mut iovec)?;
    Ok((u64_at(&iovec, 0), u64_at(&iovec, 8)))
}

/// `close`: a standard descriptor is closed for good (later calls on it: `EBADF`).
pub(super) fn close(fd: u64) -> Result<u64, Errno> {
    open_console(fd)?;
    with_state(|state| state.console.closed[fd as usize] = true);
    Ok(0)
}

/// `fstat`: the console as a character device.
pub(super) fn fstat(fd: u64, out: u64, space: SpaceId) -> Result<u64, Errno> {
    open_console(fd)?;
    let mut stat = [0u8; STAT_BYTES];
    // st_dev 0, st_ino = the descriptor + 1 (distinct, stable), st_nlink 1.
    stat[8..16].copy_from_slice(&(fd + 1).to_le_bytes());
    stat[16..24].copy_from_slice(&1u64.to_le_bytes());
    stat[24..28].copy_from_slice(&CONSOLE_MODE.to_le_bytes());
    // st_uid, st_gid 0 (root); st_rdev; st_size 0; st_blksize; st_blocks 0; times 0.
    stat[40..48].copy_from_slice(&CONSOLE_DEVICE.to_le_bytes());
    stat[56..64].copy_from_slice(&CONSOLE_BLOCK_BYTES.to_le_bytes());
    user_copy::copy_to_user(space, out, &stat)?;
    Ok(0)
}

/// `lseek`: a terminal cannot seek.
pub(super) fn lseek(fd: u64) -> Result<u64, Errno> {
    open_console(fd)?;
    Err(Errno::ESPIPE)
}

/// `ioctl`: a terminal's settings (`TCGETS`) and size (`TIOCGWINSZ`); other requests `ENOTTY`,
/// as Linux's terminals answer requests they do not know.
pub(super) fn ioctl(fd: u64, request: u64, argument: u64, space: SpaceId) -> Result<u64, Errno> {
    open_console(fd)?;
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

/// `poll(fds, nfds, timeout_ms)`: descriptor 0 is readable when input waits, 1 and 2 are
/// always writable, anything else is `POLLNVAL`. With nothing ready it waits for input up to
/// `timeout_ms` (negative: no limit).
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
        let revents = match u64::try_from(fd) {
            // A negative descriptor is skipped, as Linux does.
            Err(_) => 0,
            Ok(fd) if !is_open(fd) => linux::POLLNVAL,
            Ok(0) => {
                wants_input |= events & linux::POLLIN != 0;
                if input_waiting { events & linux::POLLIN } else { 0 }
            }
            Ok(_) => events & linux::POLLOUT,
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
