//! The Linux personality: the system calls Herald serves Linux programs, by Linux's numbers
//! and meanings, as the owner of a `syscall` event whose caller is a Linux program. A call not
//! served answers `ENOSYS` and is logged once per program, by its Linux name.
//!
//! Each group of calls has its file: `console` (the three standard descriptors), `memory`,
//! `signals` (recorded until delivery exists), `time`, `system` (identity, limits, threads).
//! What a program's calls set up lives in its task as a [`LinuxState`].

#![forbid(unsafe_code)]

mod console;
mod exec;
mod files;
mod memory;
mod pipes;
mod processes;
mod signal_frame;
mod signals;
mod system;
mod time;
pub(super) mod tty;

use alloc::collections::BTreeSet;

pub(super) use self::signals::{
    Return, before_user_return, fault_signal, fault_to_handler, name as signal_name,
};
use super::{
    Pid, scheduler,
    syscalls::{self, Served},
};
use crate::{
    abi::linux,
    events::{BUS, Errno, Event, Priority, Reply, SpaceId, SyscallAbi, Verdict},
    sync::IrqSpinLock,
};

/// The `dirfd` meaning "the working directory", and `fstatat`'s "do not follow a final link"
/// flag (`fcntl.h`), for the calls that are their `*at` form from the working directory.
const AT_FDCWD: u64 = -100i64 as u64;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;

/// Unknown calls already logged, as (pid, number), so a program that keeps asking logs once.
/// Bounded: when full, the entries of processes that have ended make room; if every entry is a
/// live process's, further unknown calls go unlogged.
const MAX_LOGGED_UNKNOWN: usize = 256;
static LOGGED_UNKNOWN: IrqSpinLock<BTreeSet<(Pid, u64)>> = IrqSpinLock::new(BTreeSet::new());

/// What a Linux program's calls have set up, kept in its task and dropped with it.
#[derive(Default)]
pub(super) struct LinuxState {
    signals: signals::SignalState,
    /// A call in progress (a `poll`'s or a sleep's time limit).
    console: console::ConsoleState,
    files: files::Files,
}

impl LinuxState {
    /// What a `fork`'s child starts with: the same descriptors (sharing the open files), working
    /// directory, umask and signal state; no call in progress.
    pub(super) fn fork_copy(&self) -> Self {
        Self {
            signals: self.signals.fork_copy(),
            console: console::ConsoleState::default(),
            files: self.files.clone(),
        }
    }
}

impl LinuxState {
    /// Whether a signal is pending and not blocked: the program must check in before ring 3.
    pub(super) fn has_deliverable(&self) -> bool {
        self.signals.deliverable() != 0
    }

    /// Whether the process's ended children are dropped rather than left as zombies
    /// (`SIGCHLD` ignored, or `SA_NOCLDWAIT`).
    pub(super) fn discards_children(&self) -> bool {
        self.signals.discards_children()
    }

    /// Whether the way back to ring 3 has signal work: a signal to deliver, a handler's frame
    /// to restore, a restarting call to settle.
    pub(super) fn has_return_work(&self) -> bool {
        self.signals.has_return_work()
    }
}

/// Subscribes the Linux calls' owner, for Linux programs' calls only (Herald's own calls never
/// visit it, nor Linux calls Herald's owner).
pub(super) fn subscribe() {
    BUS.subscribe_syscalls(SyscallAbi::Linux, "linux-calls", Priority::OWNER, on_syscall)
        .expect("the Linux calls subscribe at boot")
        .keep_forever();
}

fn on_syscall(event: &Event, reply: &mut Reply) -> Verdict {
    // Only Linux programs' calls reach this list (`subscribe_syscalls`), so never the kernel's.
    let Event::Syscall { number, ref args, pid, abi: SyscallAbi::Linux } = *event else {
        return Verdict::Continue;
    };
    scheduler::count_syscall();
    // The call that only answers stays in this small frame (as Herald's own `getpid` does);
    // every other call pays for `serve_and_reply`'s large one.
    if number == linux::GETPID || number == linux::GETTID {
        reply.value = u64::from(pid);
        return Verdict::Handled;
    }
    serve_and_reply(number, args, pid, reply)
}

#[inline(never)]
fn serve_and_reply(number: u64, args: &[u64; 6], pid: Pid, reply: &mut Reply) -> Verdict {
    let served = serve(number, args, pid, scheduler::current_space());
    if let Ok(Served::Restart) = served {
        // A signal may come before it starts again: how the call goes on after a handler.
        let never_after_handler = matches!(
            number,
            linux::POLL
                | linux::PPOLL
                | linux::SELECT
                | linux::PSELECT6
                | linux::NANOSLEEP
                | linux::CLOCK_NANOSLEEP
                | linux::PAUSE
                | linux::RT_SIGSUSPEND
        );
        signals::note_restart(if never_after_handler {
            signals::Restart::Never
        } else {
            signals::Restart::UnlessHandled
        });
    }
    syscalls::answer(served, reply)
}

/// A child of `parent` ended with `code`: a Linux parent gets `SIGCHLD` (ignored unless it
/// asked for it).
pub(super) fn child_ended(parent: Pid, child: Pid, code: i32) {
    let signalled = code >= crate::abi::SIGNALLED_EXIT_CODE_BASE;
    let origin = signals::Origin {
        // CLD_EXITED, CLD_KILLED.
        code: if signalled { 2 } else { 1 },
        pid: child,
        status: if signalled { code - crate::abi::SIGNALLED_EXIT_CODE_BASE } else { code },
        ..signals::Origin::KERNEL
    };
    // The parent may have ended meanwhile: nothing to tell.
    let _ = signals::send(parent, signals::SIGCHLD, origin);
}

fn serve(number: u64, args: &[u64; 6], pid: Pid, space: SpaceId) -> Result<Served, Errno> {
    let [a0, a1, a2, a3, ..] = *args;
    let value = match number {
        linux::READ => return files::read(a0, a1, a2, space),
        linux::READV => return files::vectored(a0, a1, a2, false, space),
        linux::WRITE => return files::write(a0, a1, a2, space),
        linux::FORK => processes::fork(false)?,
        linux::VFORK => processes::fork(true)?,
        linux::CLONE => processes::clone(a0, a1, a2, a3, args[4])?,
        linux::EXECVE => exec::execveat(AT_FDCWD, a0, a1, a2, 0, space)?,
        linux::EXECVEAT => exec::execveat(a0, a1, a2, a3, args[4], space)?,
        linux::WAIT4 => return processes::wait4(a0, a1, a2, a3, pid, space),
        linux::WAITID => return processes::waitid(a0, a1, a2, a3, args[4], pid, space),
        linux::PIPE => pipes::pipe2(a0, 0, space)?,
        linux::PIPE2 => pipes::pipe2(a0, a1, space)?,
        linux::WRITEV => return files::vectored(a0, a1, a2, true, space),
        linux::PREAD64 => files::positional(a0, a1, a2, a3, false, space)?,
        linux::PWRITE64 => files::positional(a0, a1, a2, a3, true, space)?,
        linux::OPEN => files::openat(AT_FDCWD, a0, a1, a2, space)?,
        linux::OPENAT => files::openat(a0, a1, a2, a3, space)?,
        linux::CLOSE => files::close(a0)?,
        linux::FSTAT => files::fstat(a0, a1, space)?,
        linux::STAT => files::fstatat(AT_FDCWD, a0, a1, 0, space)?,
        linux::LSTAT => files::fstatat(AT_FDCWD, a0, a1, AT_SYMLINK_NOFOLLOW, space)?,
        linux::NEWFSTATAT => files::fstatat(a0, a1, a2, a3, space)?,
        linux::STATX => files::statx(a0, a1, a2, a3, args[4], space)?,
        linux::LSEEK => files::lseek(a0, a1, a2)?,
        linux::GETDENTS64 => files::getdents64(a0, a1, a2, space)?,
        linux::DUP => files::dup(a0)?,
        linux::DUP2 => files::dup3(a0, a1, 0, true)?,
        linux::DUP3 => files::dup3(a0, a1, a2, false)?,
        linux::FCNTL => files::fcntl(a0, a1, a2)?,
        linux::GETCWD => files::getcwd(a0, a1, space)?,
        linux::CHDIR => files::chdir(a0, space)?,
        linux::FCHDIR => files::fchdir(a0)?,
        linux::MKDIR => files::mkdirat(AT_FDCWD, a0, a1, space)?,
        linux::MKDIRAT => files::mkdirat(a0, a1, a2, space)?,
        linux::UNLINK => files::unlinkat(AT_FDCWD, a0, 0, space)?,
        linux::RMDIR => files::unlinkat(AT_FDCWD, a0, AT_REMOVEDIR, space)?,
        linux::UNLINKAT => files::unlinkat(a0, a1, a2, space)?,
        linux::RENAME => files::renameat(AT_FDCWD, a0, AT_FDCWD, a1, 0, space)?,
        linux::RENAMEAT => files::renameat(a0, a1, a2, a3, 0, space)?,
        linux::RENAMEAT2 => files::renameat(a0, a1, a2, a3, args[4], space)?,
        linux::SYMLINK => files::symlinkat(a0, AT_FDCWD, a1, space)?,
        linux::SYMLINKAT => files::symlinkat(a0, a1, a2, space)?,
        linux::READLINK => files::readlinkat(AT_FDCWD, a0, a1, a2, space)?,
        linux::READLINKAT => files::readlinkat(a0, a1, a2, a3, space)?,
        linux::ACCESS => files::faccessat(AT_FDCWD, a0, a1, space)?,
        linux::FACCESSAT | linux::FACCESSAT2 => files::faccessat(a0, a1, a2, space)?,
        linux::UMASK => files::umask(a0),
        linux::FTRUNCATE => files::ftruncate(a0, a1)?,
        linux::FSYNC | linux::FDATASYNC => files::fstat_exists(a0)?,
        // Nothing is written back anywhere: the tree lives in memory.
        linux::SYNC => 0,
        linux::IOCTL => return console::ioctl(a0, a1, a2, pid, space),
        linux::POLL => return console::poll(a0, a1, a2 as i32, space),
        linux::PPOLL => return console::ppoll(a0, a1, a2, space),
        linux::SELECT => return console::select(args, false, space),
        linux::PSELECT6 => return console::select(args, true, space),
        linux::MMAP => memory::mmap(args, pid, space)?,
        linux::MUNMAP => memory::munmap(a0, a1, pid, space)?,
        linux::MPROTECT => memory::mprotect(a0, a1, a2, pid, space)?,
        linux::MADVISE => memory::madvise(a0, a1)?,
        linux::BRK => memory::brk(),
        linux::RT_SIGACTION => signals::rt_sigaction(a0, a1, a2, a3, space)?,
        linux::RT_SIGPROCMASK => signals::rt_sigprocmask(a0, a1, a2, a3, space)?,
        linux::RT_SIGPENDING => signals::rt_sigpending(a0, a1, space)?,
        linux::RT_SIGRETURN => signals::rt_sigreturn(),
        linux::RT_SIGSUSPEND => {
            signals::rt_sigsuspend(a0, a1, space)?;
            return Ok(Served::Restart);
        }
        linux::PAUSE => {
            signals::pause()?;
            return Ok(Served::Restart);
        }
        linux::SIGALTSTACK => {
            signals::sigaltstack(a0, a1, super::process::current_user_rsp()?, space)?
        }
        linux::KILL => signals::kill(a0, a1, pid)?,
        linux::TKILL => signals::tgkill(None, a0, a1, pid)?,
        linux::TGKILL => signals::tgkill(Some(a0), a1, a2, pid)?,
        linux::GETPGID => processes::getpgid(a0, pid)?,
        linux::GETPGRP => processes::getpgid(0, pid)?,
        linux::SETPGID => processes::setpgid(a0, a1, pid)?,
        linux::GETSID => processes::getsid(a0, pid)?,
        linux::SETSID => processes::setsid(pid)?,
        linux::SCHED_YIELD => syscalls::sleep(0)?,
        linux::NANOSLEEP => return time::nanosleep(a0, a1, space),
        linux::CLOCK_NANOSLEEP => return time::clock_nanosleep(a0, a1, a2, a3, space),
        linux::CLOCK_GETTIME => time::clock_gettime(a0, a1, space)?,
        linux::CLOCK_GETRES => time::clock_getres(a0, a1, space)?,
        linux::GETTIMEOFDAY => time::gettimeofday(a0, space)?,
        linux::TIME => time::time(a0, space)?,
        // One thread per process: its thread id is its pid.
        linux::GETPID | linux::GETTID | linux::SET_TID_ADDRESS => u64::from(pid),
        linux::GETPPID => u64::from(scheduler::parent_of(pid)),
        // One user, root.
        linux::GETUID | linux::GETGID | linux::GETEUID | linux::GETEGID => 0,
        linux::UNAME => system::uname(a0, space)?,
        linux::PRLIMIT64 => system::prlimit64(a0, a1, a2, a3, pid, space)?,
        linux::GETRLIMIT => system::prlimit64(0, a0, 0, a1, pid, space)?,
        linux::GETRANDOM => system::getrandom(a0, a1, space)?,
        linux::ARCH_PRCTL => system::arch_prctl(a0, a1, space)?,
        linux::FUTEX => system::futex(args, space)?,
        linux::SET_ROBUST_LIST => system::set_robust_list(a1)?,
        linux::PRCTL => system::prctl(a0, a1, space)?,
        linux::SYSINFO => system::sysinfo(a0, space)?,
        // Not served, on purpose and without a warning: glibc registers restartable sequences
        // when it can and carries on without; busybox copies with read/write when sendfile
        // is refused.
        linux::RSEQ | linux::SENDFILE => return Err(Errno::ENOSYS),
        linux::EXIT | linux::EXIT_GROUP => {
            // Linux keeps the low 8 bits of the status.
            syscalls::exit(i32::from(a0 as u8));
            0
        }
        _ => {
            log_unknown_once(pid, number);
            return Err(Errno::ENOSYS);
        }
    };
    Ok(Served::Value(value))
}

/// Runs `f` on the calling program's [`LinuxState`].
fn with_state<R>(f: impl FnOnce(&mut LinuxState) -> R) -> R {
    scheduler::with_linux_state(f).expect("a Linux call comes from a running process")
}

/// Reads a little-endian `u64` at `at` in `bytes`.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cold]
fn log_unknown_once(pid: Pid, number: u64) {
    let mut logged = LOGGED_UNKNOWN.lock();
    if logged.len() >= MAX_LOGGED_UNKNOWN {
        logged.retain(|&(logged_pid, _)| scheduler::is_alive(logged_pid));
    }
    if logged.len() < MAX_LOGGED_UNKNOWN && logged.insert((pid, number)) {
        drop(logged);
        let name = linux::name(number).unwrap_or("a call Herald does not know");
        log::warn!("pid {pid}: Linux system call {number} ({name}) is not served: ENOSYS");
    }
}
