//! How the tracer shows a Linux call, strace-style: each argument by its meaning — a
//! descriptor as a number, a buffer the call reads as a quoted string, protection and mapping
//! flags, clocks, signals and codes by their names, pointers in hex (`NULL` for 0) — and the
//! result as a number, an address, or `-1 ERRNO`.

#![forbid(unsafe_code)]

use alloc::{format, string::String, vec::Vec};
use core::fmt::Write as _;

use crate::abi::linux;

/// Bytes of a buffer shown before `...`.
const SHOWN_BYTES: usize = 32;

/// What an argument means.
#[derive(Clone, Copy)]
enum Argument {
    /// A signed number (descriptors, counts, codes).
    Int,
    /// An address or opaque word, in hex.
    Pointer,
    /// A buffer the call reads, of the length in argument `n`.
    Bytes(usize),
    /// `PROT_*` bits.
    Protection,
    /// `MAP_*` bits.
    MapFlags,
    /// A clock id.
    Clock,
    /// A signal number.
    Signal,
    /// `rt_sigprocmask`'s `how`.
    SignalHow,
    /// An `ioctl` request.
    Ioctl,
    /// An `arch_prctl` code.
    ArchCode,
    /// A `futex` operation.
    FutexOp,
    /// A NUL-terminated path.
    Path,
    /// A directory descriptor (`AT_FDCWD` by name).
    Dirfd,
    /// `open` flags.
    OpenFlags,
    /// Permission bits, in octal.
    Mode,
}

use Argument::{
    ArchCode, Bytes, Clock, Dirfd, FutexOp, Int, Ioctl, MapFlags, Mode, OpenFlags, Path, Pointer,
    Protection, Signal, SignalHow,
};

/// Bytes of a path shown before `...`.
const SHOWN_PATH_BYTES: usize = 64;
/// The `dirfd` meaning the working directory.
const AT_FDCWD: i64 = -100;

/// The arguments of call `number`, if Herald knows its shape.
fn shape(number: u64) -> Option<&'static [Argument]> {
    Some(match number {
        linux::READ => &[Int, Pointer, Int],
        linux::WRITE => &[Int, Bytes(2), Int],
        linux::PREAD64 => &[Int, Pointer, Int, Int],
        linux::PWRITE64 => &[Int, Bytes(2), Int, Int],
        linux::OPEN => &[Path, OpenFlags, Mode],
        linux::OPENAT => &[Dirfd, Path, OpenFlags, Mode],
        linux::STAT | linux::LSTAT => &[Path, Pointer],
        linux::NEWFSTATAT => &[Dirfd, Path, Pointer, Int],
        linux::ACCESS => &[Path, Int],
        linux::FACCESSAT | linux::FACCESSAT2 => &[Dirfd, Path, Int],
        linux::MKDIR => &[Path, Mode],
        linux::MKDIRAT => &[Dirfd, Path, Mode],
        linux::UNLINK | linux::RMDIR | linux::CHDIR => &[Path],
        linux::UNLINKAT => &[Dirfd, Path, Int],
        linux::RENAME | linux::SYMLINK => &[Path, Path],
        linux::RENAMEAT => &[Dirfd, Path, Dirfd, Path],
        linux::RENAMEAT2 => &[Dirfd, Path, Dirfd, Path, Int],
        linux::SYMLINKAT => &[Path, Dirfd, Path],
        linux::READLINK => &[Path, Pointer, Int],
        linux::READLINKAT => &[Dirfd, Path, Pointer, Int],
        linux::GETDENTS64 => &[Int, Pointer, Int],
        linux::DUP | linux::FCHDIR | linux::FSYNC | linux::FDATASYNC => &[Int],
        linux::DUP2 | linux::FTRUNCATE => &[Int, Int],
        linux::DUP3 | linux::FCNTL => &[Int, Int, Int],
        linux::GETCWD => &[Pointer, Int],
        linux::WAIT4 => &[Int, Pointer, Int, Pointer],
        linux::PIPE => &[Pointer],
        linux::PIPE2 => &[Pointer, OpenFlags],
        linux::UMASK => &[Mode],
        linux::CLOSE | linux::EXIT | linux::EXIT_GROUP => &[Int],
        linux::FSTAT => &[Int, Pointer],
        linux::POLL | linux::LSEEK | linux::MADVISE => &[Pointer, Int, Int],
        linux::MMAP => &[Pointer, Int, Protection, MapFlags, Int, Int],
        linux::MPROTECT => &[Pointer, Int, Protection],
        linux::MUNMAP | linux::SET_ROBUST_LIST => &[Pointer, Int],
        linux::BRK | linux::SET_TID_ADDRESS | linux::UNAME | linux::TIME => &[Pointer],
        linux::RT_SIGACTION => &[Signal, Pointer, Pointer, Int],
        linux::RT_SIGPROCMASK => &[SignalHow, Pointer, Pointer, Int],
        linux::IOCTL => &[Int, Ioctl, Pointer],
        linux::READV | linux::WRITEV => &[Int, Pointer, Int],
        linux::NANOSLEEP | linux::SIGALTSTACK | linux::GETTIMEOFDAY => &[Pointer, Pointer],
        linux::ARCH_PRCTL => &[ArchCode, Pointer],
        linux::FUTEX => &[Pointer, FutexOp, Int, Pointer],
        linux::CLOCK_GETTIME | linux::CLOCK_GETRES => &[Clock, Pointer],
        linux::CLOCK_NANOSLEEP => &[Clock, Int, Pointer, Pointer],
        linux::GETRANDOM => &[Pointer, Int, Int],
        linux::PRLIMIT64 => &[Int, Int, Pointer, Pointer],
        linux::GETRLIMIT => &[Int, Pointer],
        linux::GETPID
        | linux::GETTID
        | linux::GETPPID
        | linux::GETUID
        | linux::GETGID
        | linux::GETEUID
        | linux::GETEGID
        | linux::SCHED_YIELD
        | linux::FORK
        | linux::VFORK
        | linux::RT_SIGRETURN
        | linux::PAUSE
        | linux::SETSID
        | linux::GETPGRP => &[],
        linux::EXECVE => &[Path, Pointer, Pointer],
        linux::EXECVEAT => &[Dirfd, Path, Pointer, Pointer, Int],
        linux::KILL | linux::TKILL => &[Int, Signal],
        linux::TGKILL => &[Int, Int, Signal],
        linux::CLONE => &[Pointer, Pointer, Pointer, Pointer, Pointer],
        linux::SETPGID => &[Int, Int],
        linux::GETPGID | linux::GETSID => &[Int],
        linux::RT_SIGSUSPEND | linux::RT_SIGPENDING => &[Pointer, Int],
        linux::PRCTL => &[Int, Pointer],
        linux::SYSINFO => &[Pointer],
        _ => return None,
    })
}

/// `name(arguments)` of call `number`; `read_user` copies caller memory (false: unreadable).
pub(super) fn call(
    name: &str,
    number: u64,
    args: &[u64; 6],
    read_user: &dyn Fn(u64, &mut [u8]) -> bool,
) -> String {
    let mut text = format!("{name}(");
    match shape(number) {
        Some(shape) => {
            for (index, argument) in shape.iter().enumerate() {
                if index > 0 {
                    text.push_str(", ");
                }
                show(&mut text, *argument, args, args[index], read_user);
            }
        }
        // Unknown shape: the first three words, as they are.
        None => {
            let _ = write!(text, "{:#x}, {:#x}, {:#x}", args[0], args[1], args[2]);
        }
    }
    text.push(')');
    text
}

/// The result of call `number` as strace shows it: addresses in hex, the rest in decimal.
pub(super) fn result(number: u64, value: u64) -> String {
    if matches!(number, linux::MMAP | linux::BRK) {
        format!("{value:#x}")
    } else {
        format!("{}", value as i64)
    }
}

fn show(
    text: &mut String,
    argument: Argument,
    args: &[u64; 6],
    value: u64,
    read_user: &dyn Fn(u64, &mut [u8]) -> bool,
) {
    let _ = match argument {
        Int => write!(text, "{}", value as i64),
        Pointer if value == 0 => write!(text, "NULL"),
        Pointer => write!(text, "{value:#x}"),
        Bytes(len_index) => {
            quoted(text, value, args[len_index], read_user);
            Ok(())
        }
        Path => {
            path(text, value, read_user);
            Ok(())
        }
        Dirfd if i64::from(value as i32) == AT_FDCWD => write!(text, "AT_FDCWD"),
        Dirfd => write!(text, "{}", value as i64),
        Mode => write!(text, "0{value:03o}"),
        OpenFlags => {
            let access = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][(value & 3) as usize];
            let _ = write!(text, "{access}");
            let names = [
                (0o100, "O_CREAT"),
                (0o200, "O_EXCL"),
                (0o400, "O_NOCTTY"),
                (0o1000, "O_TRUNC"),
                (0o2000, "O_APPEND"),
                (0o4000, "O_NONBLOCK"),
                (0o100_000, "O_LARGEFILE"),
                (0o200_000, "O_DIRECTORY"),
                (0o400_000, "O_NOFOLLOW"),
                (0o2_000_000, "O_CLOEXEC"),
            ];
            if value & !3 == 0 {
                Ok(())
            } else {
                text.push('|');
                flags(text, value & !3, &names, "")
            }
        }
        Protection => flags(
            text,
            value,
            &[(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")],
            "PROT_NONE",
        ),
        MapFlags => flags(
            text,
            value,
            &[
                (linux::MAP_SHARED, "MAP_SHARED"),
                (linux::MAP_PRIVATE, "MAP_PRIVATE"),
                (linux::MAP_FIXED, "MAP_FIXED"),
                (linux::MAP_ANONYMOUS, "MAP_ANONYMOUS"),
                (0x2_0000, "MAP_STACK"),
                (linux::MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"),
            ],
            "0",
        ),
        Clock => named(
            text,
            value,
            &[
                (linux::CLOCK_REALTIME, "CLOCK_REALTIME"),
                (linux::CLOCK_MONOTONIC, "CLOCK_MONOTONIC"),
                (linux::CLOCK_PROCESS_CPUTIME_ID, "CLOCK_PROCESS_CPUTIME_ID"),
                (linux::CLOCK_THREAD_CPUTIME_ID, "CLOCK_THREAD_CPUTIME_ID"),
                (linux::CLOCK_MONOTONIC_RAW, "CLOCK_MONOTONIC_RAW"),
                (linux::CLOCK_REALTIME_COARSE, "CLOCK_REALTIME_COARSE"),
                (linux::CLOCK_MONOTONIC_COARSE, "CLOCK_MONOTONIC_COARSE"),
                (linux::CLOCK_BOOTTIME, "CLOCK_BOOTTIME"),
            ],
        ),
        Signal => match signal_name(value) {
            Some(name) => write!(text, "{name}"),
            None => write!(text, "{value}"),
        },
        SignalHow => named(
            text,
            value,
            &[
                (linux::SIG_BLOCK, "SIG_BLOCK"),
                (linux::SIG_UNBLOCK, "SIG_UNBLOCK"),
                (linux::SIG_SETMASK, "SIG_SETMASK"),
            ],
        ),
        Ioctl => {
            named(text, value, &[(linux::TCGETS, "TCGETS"), (linux::TIOCGWINSZ, "TIOCGWINSZ")])
        }
        ArchCode => named(
            text,
            value,
            &[(linux::ARCH_SET_FS, "ARCH_SET_FS"), (linux::ARCH_GET_FS, "ARCH_GET_FS")],
        ),
        FutexOp => {
            let base = value & !(linux::FUTEX_PRIVATE_FLAG | linux::FUTEX_CLOCK_REALTIME);
            let name = match base {
                linux::FUTEX_WAIT => "FUTEX_WAIT",
                linux::FUTEX_WAKE => "FUTEX_WAKE",
                _ => "",
            };
            if name.is_empty() {
                write!(text, "{value:#x}")
            } else if value & linux::FUTEX_PRIVATE_FLAG != 0 {
                write!(text, "{name}_PRIVATE")
            } else {
                write!(text, "{name}")
            }
        }
    };
}

fn named(text: &mut String, value: u64, names: &[(u64, &str)]) -> core::fmt::Result {
    match names.iter().find(|(known, _)| *known == value) {
        Some((_, name)) => write!(text, "{name}"),
        None => write!(text, "{value:#x}"),
    }
}

fn flags(text: &mut String, value: u64, names: &[(u64, &str)], none: &str) -> core::fmt::Result {
    if value == 0 {
        return write!(text, "{none}");
    }
    let mut parts: Vec<String> = names
        .iter()
        .filter(|(bit, _)| value & bit != 0)
        .map(|(_, name)| String::from(*name))
        .collect();
    let rest = names.iter().fold(value, |rest, (bit, _)| rest & !bit);
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    write!(text, "{}", parts.join("|"))
}

fn signal_name(signal: u64) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let index = usize::try_from(signal).ok()?.checked_sub(1)?;
    NAMES.get(index).copied()
}

/// A NUL-terminated string the caller handed in (a path), quoted: the first
/// [`SHOWN_PATH_BYTES`], `...` if it goes on; its address if it cannot be read. Read a page's
/// remainder at a time, so a string ending just before an unmapped page still reads.
fn path(text: &mut String, address: u64, read_user: &dyn Fn(u64, &mut [u8]) -> bool) {
    let mut bytes = Vec::new();
    let mut at = address;
    let ended = loop {
        let to_page_end = (4096 - at % 4096) as usize;
        let mut chunk = [0u8; SHOWN_PATH_BYTES + 1];
        let want = to_page_end.min(SHOWN_PATH_BYTES + 1 - bytes.len());
        if !read_user(at, &mut chunk[..want]) {
            let _ = write!(text, "{address:#x}");
            return;
        }
        if let Some(end) = chunk[..want].iter().position(|&byte| byte == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            break true;
        }
        bytes.extend_from_slice(&chunk[..want]);
        if bytes.len() > SHOWN_PATH_BYTES {
            break false;
        }
        at += want as u64;
    };
    let shown = bytes.len().min(SHOWN_PATH_BYTES);
    let _ = quoted_bytes(text, &bytes[..shown]);
    if !ended {
        text.push_str("...");
    }
}

fn quoted_bytes(text: &mut String, bytes: &[u8]) -> core::fmt::Result {
    text.push('"');
    for &byte in bytes {
        match byte {
            b'\n' => write!(text, "\\n")?,
            b'\t' => write!(text, "\\t")?,
            b'\r' => write!(text, "\\r")?,
            b'"' => write!(text, "\\\"")?,
            b'\\' => write!(text, "\\\\")?,
            0x20..=0x7e => write!(text, "{}", char::from(byte))?,
            _ => write!(text, "\\x{byte:02x}")?,
        }
    }
    text.push('"');
    Ok(())
}

/// A buffer the caller handed in, as a C string literal: the first [`SHOWN_BYTES`], escaped,
/// `...` if there is more; its address if it cannot be read.
fn quoted(
    text: &mut String,
    address: u64,
    len_bytes: u64,
    read_user: &dyn Fn(u64, &mut [u8]) -> bool,
) {
    let shown = usize::try_from(len_bytes).unwrap_or(usize::MAX).min(SHOWN_BYTES);
    let mut bytes = [0u8; SHOWN_BYTES];
    if !read_user(address, &mut bytes[..shown]) {
        let _ = write!(text, "{address:#x}");
        return;
    }
    let _ = quoted_bytes(text, &bytes[..shown]);
    if len_bytes > shown as u64 {
        text.push_str("...");
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::*;

    /// One mapped page at 0x1000: a string, then zeros.
    fn memory(address: u64, out: &mut [u8]) -> bool {
        let text = b"hi \"you\"\n\x01 and a long tail that goes on and on";
        let Some(start) = address.checked_sub(0x1000) else { return false };
        let (start, end) = (start as usize, start as usize + out.len());
        if end > 4096 {
            return false;
        }
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = text.get(start + index).copied().unwrap_or(0);
        }
        true
    }

    #[test_case]
    fn calls_show_their_arguments_by_meaning() {
        let write = call("write", linux::WRITE, &[1, 0x1000, 10, 0, 0, 0], &memory);
        assert_eq!(write, r#"write(1, "hi \"you\"\n\x01", 10)"#);
        let long = call("write", linux::WRITE, &[2, 0x1000, 40, 0, 0, 0], &memory);
        assert!(long.ends_with(r#"and a long tail that "..., 40)"#), "{long}");
        let unreadable = call("write", linux::WRITE, &[1, 0x10, 5, 0, 0, 0], &memory);
        assert_eq!(unreadable, "write(1, 0x10, 5)");
        let mmap = call("mmap", linux::MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0], &memory);
        assert_eq!(
            mmap,
            "mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
        );
        let none = call("mprotect", linux::MPROTECT, &[0x5000, 4096, 0, 0, 0, 0], &memory);
        assert_eq!(none, "mprotect(0x5000, 4096, PROT_NONE)");
        let action = call("rt_sigaction", linux::RT_SIGACTION, &[11, 0x10, 0, 8, 0, 0], &memory);
        assert_eq!(action, "rt_sigaction(SIGSEGV, 0x10, NULL, 8)");
        let futex = call("futex", linux::FUTEX, &[0x10, 128, 5, 0, 0, 0], &memory);
        assert_eq!(futex, "futex(0x10, FUTEX_WAIT_PRIVATE, 5, NULL)");
        let open =
            call("openat", linux::OPENAT, &[-100i64 as u64, 0x1000, 0o101, 0o644, 0, 0], &memory);
        assert_eq!(
            open,
            r#"openat(AT_FDCWD, "hi \"you\"\n\x01 and a long tail that goes on and on", O_WRONLY|O_CREAT, 0644)"#
        );
        let unknown = call("syscall_400", 400, &[1, 2, 3, 0, 0, 0], &memory);
        assert_eq!(unknown, "syscall_400(0x1, 0x2, 0x3)");
        assert_eq!(result(linux::MMAP, 0x7000), "0x7000");
        assert_eq!(result(linux::WRITE, 11), "11");
    }
}
