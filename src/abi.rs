//! The system-call ABI shared by the kernel and `user/` (which includes this file by path): call
//! numbers, error numbers, flag bits and the records calls exchange. Plain data only, no
//! dependencies.
//!
//! Calling convention: `syscall` with the number in `rax` and arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9`; the result comes back in `rax`, a negative value being `-errno`. `rcx` and
//! `r11` are clobbered (the CPU uses them), every other register is preserved.
#![forbid(unsafe_code)]

/// Reads console input into a buffer: `read(fd = 0, buf, len)` → bytes read (blocks until ≥ 1).
pub const SYS_READ: u64 = 0;
/// Writes a buffer to the console: `write(fd = 1 or 2, buf, len)` → bytes written.
pub const SYS_WRITE: u64 = 1;
/// Ends the calling process: `exit(code)`; does not return.
pub const SYS_EXIT: u64 = 2;
/// `getpid()` → the caller's process id.
pub const SYS_GETPID: u64 = 3;
/// `yield()` → 0, after other ready processes have had a turn.
pub const SYS_YIELD: u64 = 4;
/// `sleep(milliseconds)` → 0.
pub const SYS_SLEEP: u64 = 5;
/// `spawn(name, name_len, args, args_len, withheld_rights)` → the child's pid; the program comes
/// from the boot image (`/bin/NAME`, or a path); `withheld_rights` (`RIGHT_*` bits, usually 0)
/// narrow what the child may do under `policy-capability`.
pub const SYS_SPAWN: u64 = 6;
/// `wait(pid or 0 for any child, status_out or 0)` → the pid that ended; its exit code is stored
/// at `status_out` as an `i32`.
pub const SYS_WAIT: u64 = 7;
/// `kill(pid)` → 0; the process ends with [`KILLED_EXIT_CODE`].
pub const SYS_KILL: u64 = 8;
/// `map(address or 0, len, protection)` → the address of new zero-filled memory.
pub const SYS_MAP: u64 = 9;
/// `unmap(address, len)` → 0.
pub const SYS_UNMAP: u64 = 10;
/// `protect(address, len, protection)` → 0.
pub const SYS_PROTECT: u64 = 11;
/// `share(address, len, pid, target_address or 0, protection)` → where the caller's memory now
/// also appears in process `pid`.
pub const SYS_SHARE: u64 = 12;
/// `subscribe(event_kind, capacity, overflow)` → a handle for [`SYS_POLL`]; `overflow` is one
/// of the `OVERFLOW_*` policies (only [`EVENT_USER`] takes more than the default).
pub const SYS_SUBSCRIBE: u64 = 13;
/// `poll(handle, records, max_records)` → records written (0 if none waiting; never blocks).
pub const SYS_POLL: u64 = 14;
/// `uptime()` → milliseconds since boot.
pub const SYS_UPTIME: u64 = 15;
/// `raise(value)` → 0: publishes an [`EVENT_USER`] event to every subscription. Blocks while a
/// `backpressure` subscription is full; overrunning a `kill-producer` one ends the caller with
/// [`FLOODED_EXIT_CODE`].
pub const SYS_RAISE: u64 = 16;
/// `irq_claim(line, port_base, port_count, flags)` → a handle: the caller becomes the owner of
/// interrupt `line` and of the device ports `port_base..port_base + port_count`, which must
/// lie within one device the kernel knows on that line (`port_count` 0: the line alone). The
/// line is unmasked; each interrupt then masks it until [`SYS_IRQ_ACK`]. With
/// [`IRQ_CLAIM_SHARED`] the caller joins the line's sharers instead. Refused: the timer, the
/// PICs' cascade and lines the kernel's drivers hold (`EBUSY`, as is a line another process
/// owns, or shares when the caller does not ask to share, or does not share when it does, or
/// that has [`MAX_LINE_SHARERS`]), ports of no device on the line (`EACCES`), more than
/// [`MAX_CLAIMED_LINES`] (`EAGAIN`), unknown flags (`EINVAL`).
pub const SYS_IRQ_CLAIM: u64 = 17;
/// `irq_claim` flag: share the line with other drivers, each serving its own device. A
/// sharer's interrupts are served by its top half alone ([`SYS_IRQ_PROGRAM`]), which answers
/// [`bpf::MINE`] for its device's (the others are not asked) or [`bpf::NOT_MINE`] (the next
/// sharer is); until it loads one it answers for none.
pub const IRQ_CLAIM_SHARED: u64 = 1 << 0;
/// Most drivers sharing one line.
pub const MAX_LINE_SHARERS: u32 = 4;
/// `irq_wait(handle, last_seq)` → the line's sequence number: blocks until it is past
/// `last_seq` (interrupts since the claim, starting at 1; the difference is how many came
/// since the caller last looked, the interrupts it did not see one by one).
pub const SYS_IRQ_WAIT: u64 = 18;
/// `irq_ack(handle)` → 0: the owner has served its device; the line is unmasked. Unanswered,
/// the kernel unmasks it anyway after the line's backoff (50 ms, doubling to 12.8 s).
pub const SYS_IRQ_ACK: u64 = 19;
/// `irq_release(handle)` → 0: gives the line and its ports up (the line stays masked until the
/// next claim). A process that ends releases all its lines.
pub const SYS_IRQ_RELEASE: u64 = 20;
/// `irq_program(handle, instructions, count, refusal_out)` → 0: loads a verified top half (see
/// [`bpf`]) for the claimed line, run in the interrupt itself from then on. A program the
/// verifier refuses gets `EINVAL`, and its instruction and rule go to `refusal_out` (a
/// `bpf::RefusalRecord`, if not 0). `count` 0 unloads it. A loaded program that faults or runs
/// out of its budget is unloaded (counted): the line falls back to waking the driver.
pub const SYS_IRQ_PROGRAM: u64 = 21;
/// `irq_read(handle, records, max)` → how many `u64` records the top half queued were moved
/// to `records` (never blocks; `irq_wait` is the wait).
pub const SYS_IRQ_READ: u64 = 22;
/// Number of defined calls; numbers at or above it get `ENOSYS`.
pub const SYSCALL_COUNT: u64 = 23;

/// Records a line's top half can queue before the driver reads them; more are dropped and
/// counted.
pub const IRQ_RING_RECORDS: usize = 512;

/// Most interrupt lines one process owns at once.
pub const MAX_CLAIMED_LINES: usize = 4;

/// `protection` bit: the memory may be written.
pub const PROT_WRITE: u64 = 1 << 0;
/// `protection` bit: the memory may be executed (never together with [`PROT_WRITE`]).
pub const PROT_EXECUTE: u64 = 1 << 1;

/// Event kinds a process may subscribe to.
pub const EVENT_TIMER: u64 = 0;
/// See [`EVENT_TIMER`].
pub const EVENT_IRQ: u64 = 1;
/// See [`EVENT_TIMER`].
pub const EVENT_PROCESS_EXITED: u64 = 2;
/// An event a process raised with [`SYS_RAISE`].
pub const EVENT_USER: u64 = 3;

/// `subscribe` overflow policy: a full queue drops its oldest record (the default; `seq` gaps
/// show what was missed).
pub const OVERFLOW_DROP_OLDEST: u64 = 0;
/// A full queue ends the process whose `raise` overran it ([`FLOODED_EXIT_CODE`]).
pub const OVERFLOW_KILL_PRODUCER: u64 = 1;
/// A full queue makes the raising process wait until the subscriber has polled.
pub const OVERFLOW_BACKPRESSURE: u64 = 2;

/// Largest queue a subscription may ask for.
pub const MAX_SUBSCRIPTION_CAPACITY: u64 = 256;

/// One delivered event. `seq` counts every event the subscription was offered, delivered or
/// not, starting at 1, so a gap between consecutive records is the number missed.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[repr(C)]
pub struct EventRecord {
    /// Offer number of this event.
    pub seq: u64,
    /// One of the `EVENT_*` kinds.
    pub kind: u64,
    /// Timer: tick. Irq: line. Process exited: pid. User: the raising pid.
    pub a: u64,
    /// Timer: 0. Irq: the line's own sequence number. Process exited: exit code. User: the
    /// raised value.
    pub b: u64,
}

/// Exit code of a process ended by `kill` (as a shell reports 128 + SIGKILL).
pub const KILLED_EXIT_CODE: i32 = 137;
/// A Linux program ended by signal `n` (its default action, a kill, a fault it did not catch)
/// ends with `SIGNALLED_EXIT_CODE_BASE + n`: above every exit status (0–255), so `wait4` tells
/// `exit(137)` from `SIGKILL` as Linux does. Herald programs keep the codes below.
pub const SIGNALLED_EXIT_CODE_BASE: i32 = 256;

/// The end code of a Linux program ended by `signal`.
pub const fn signalled_exit_code(signal: i32) -> i32 {
    SIGNALLED_EXIT_CODE_BASE + signal
}

/// A process killed by CPU exception `vector` exits with `FAULT_EXIT_CODE_BASE + vector`
/// (#DE 200, #UD 206, #GP 213, #PF 214).
pub const FAULT_EXIT_CODE_BASE: i32 = 200;
/// A process that reads or writes an I/O port it was not granted (`in`/`out` take #GP: the
/// task's I/O permission bitmap refuses it) exits with this, as with any other #GP.
pub const PORT_FAULT_EXIT_CODE: i32 = FAULT_EXIT_CODE_BASE + 13;
/// A process that touched a reserved page when no memory was left for processes exits with
/// this (Linux's OOM killer would report 137; Herald keeps the reasons apart).
pub const OUT_OF_MEMORY_EXIT_CODE: i32 = 190;
/// A process that overran a `kill-producer` queue with the events it raised exits with this.
pub const FLOODED_EXIT_CODE: i32 = 191;
/// Exit code the user library's panic handler uses.
pub const PANIC_EXIT_CODE: i32 = 101;

/// Capability rights (`policy-capability`), withheld from a child by `spawn`'s fifth argument:
/// may create processes.
pub const RIGHT_SPAWN: u64 = 1 << 0;
/// May end processes it holds a capability over (its children).
pub const RIGHT_KILL: u64 = 1 << 1;
/// May map memory into processes it holds a capability over.
pub const RIGHT_SHARE: u64 = 1 << 2;
/// May subscribe to events and raise them.
pub const RIGHT_EVENTS: u64 = 1 << 3;
/// Interrupt lines 0–16 (`right_over_line`): may claim that line and its device's ports.
pub const RIGHTS_OVER_LINES: u64 = 0x1_ffff << 32;
/// The right to claim interrupt `line` (and the ports of its devices).
pub const fn right_over_line(line: u64) -> u64 {
    if line < 17 { 1 << (32 + line) } else { 0 }
}
/// Every right.
pub const ALL_RIGHTS: u64 =
    RIGHT_SPAWN | RIGHT_KILL | RIGHT_SHARE | RIGHT_EVENTS | RIGHTS_OVER_LINES;

/// Name of the ELF section in which a program declares the system calls it needs (a `u64`
/// bitmask, bit `n` for call `n`) and the interrupt lines it may claim (bits 32–48,
/// [`declared_line`]); `policy-sandbox` allows only those. See `herald_user::main!`.
pub const SYSCALLS_SECTION: &str = ".herald_syscalls";
/// A declaration's bit for interrupt `line` (the bit of the capability right over it).
pub const fn declared_line(line: u64) -> u64 {
    right_over_line(line)
}
// Calls own the declaration's low 32 bits; a call numbered 32 or more would declare a line.
const _: () = assert!(SYSCALL_COUNT <= 32);
/// ELF section every Herald program has (`main!` puts it there): its system calls use the
/// numbers in this file. An executable without it is a Linux program, whose calls use Linux's
/// numbers and meanings.
pub const ABI_SECTION: &str = ".herald_abi";

/// The name of call `number`, for tracing.
pub const fn syscall_name(number: u64) -> &'static str {
    match number {
        SYS_READ => "read",
        SYS_WRITE => "write",
        SYS_EXIT => "exit",
        SYS_GETPID => "getpid",
        SYS_YIELD => "yield",
        SYS_SLEEP => "sleep",
        SYS_SPAWN => "spawn",
        SYS_WAIT => "wait",
        SYS_KILL => "kill",
        SYS_MAP => "map",
        SYS_UNMAP => "unmap",
        SYS_PROTECT => "protect",
        SYS_SHARE => "share",
        SYS_SUBSCRIBE => "subscribe",
        SYS_POLL => "poll",
        SYS_UPTIME => "uptime",
        SYS_RAISE => "raise",
        SYS_IRQ_CLAIM => "irq_claim",
        SYS_IRQ_WAIT => "irq_wait",
        SYS_IRQ_ACK => "irq_ack",
        SYS_IRQ_RELEASE => "irq_release",
        SYS_IRQ_PROGRAM => "irq_program",
        SYS_IRQ_READ => "irq_read",
        _ => "unknown",
    }
}

/// An error number; user space sees it negated in the syscall return register. The values are
/// POSIX's, so programs can use their usual names; one table for the kernel and `user/`.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Errno(pub u16);

impl Errno {
    /// Operation not permitted: a policy refused a caller that lacks a privilege.
    pub const EPERM: Self = Self(1);
    /// No such file: e.g. no program of that name in the ramdisk.
    pub const ENOENT: Self = Self(2);
    /// No such process.
    pub const ESRCH: Self = Self(3);
    /// Interrupted: the caller was killed while the call ran, and the call stopped early.
    pub const EINTR: Self = Self(4);
    /// Input/output error (a terminal access job control refuses).
    pub const EIO: Self = Self(5);
    /// Argument list too long.
    pub const E2BIG: Self = Self(7);
    /// Executable format error.
    pub const ENOEXEC: Self = Self(8);
    /// Bad file descriptor.
    pub const EBADF: Self = Self(9);
    /// No child processes.
    pub const ECHILD: Self = Self(10);
    /// Try again: a bounded resource is momentarily full.
    pub const EAGAIN: Self = Self(11);
    /// Out of memory.
    pub const ENOMEM: Self = Self(12);
    /// Permission denied: the object's access rules refuse this caller.
    pub const EACCES: Self = Self(13);
    /// Bad address: a pointer argument is not valid caller memory.
    pub const EFAULT: Self = Self(14);
    /// Resource busy.
    pub const EBUSY: Self = Self(16);
    /// Already exists.
    pub const EEXIST: Self = Self(17);
    /// Not the same file system (a rename across mounts).
    pub const EXDEV: Self = Self(18);
    /// Not a directory: a path component, or what a directory call was given.
    pub const ENOTDIR: Self = Self(20);
    /// Is a directory: what a file call was given.
    pub const EISDIR: Self = Self(21);
    /// Invalid argument.
    pub const EINVAL: Self = Self(22);
    /// Too many open files in the process.
    pub const EMFILE: Self = Self(24);
    /// Not a terminal: an `ioctl` the file does not understand.
    pub const ENOTTY: Self = Self(25);
    /// No space left: the file system's capacity is used.
    pub const ENOSPC: Self = Self(28);
    /// Broken pipe: a write with no reader left.
    pub const EPIPE: Self = Self(32);
    /// Illegal seek: the file is a terminal or pipe.
    pub const ESPIPE: Self = Self(29);
    /// A name or path is longer than the limit.
    pub const ENAMETOOLONG: Self = Self(36);
    /// Function not implemented: unknown system call.
    pub const ENOSYS: Self = Self(38);
    /// The directory is not empty.
    pub const ENOTEMPTY: Self = Self(39);
    /// Too many symbolic links on the way.
    pub const ELOOP: Self = Self(40);
    /// A wait's time limit passed.
    pub const ETIMEDOUT: Self = Self(110);

    /// Returns the conventional symbolic name, or `None` for numbers Herald does not use.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::EPERM => "EPERM",
            Self::ENOENT => "ENOENT",
            Self::ESRCH => "ESRCH",
            Self::EINTR => "EINTR",
            Self::EIO => "EIO",
            Self::E2BIG => "E2BIG",
            Self::ENOEXEC => "ENOEXEC",
            Self::EBADF => "EBADF",
            Self::ECHILD => "ECHILD",
            Self::EAGAIN => "EAGAIN",
            Self::ENOMEM => "ENOMEM",
            Self::EACCES => "EACCES",
            Self::EFAULT => "EFAULT",
            Self::EBUSY => "EBUSY",
            Self::EEXIST => "EEXIST",
            Self::EXDEV => "EXDEV",
            Self::ENOTDIR => "ENOTDIR",
            Self::EISDIR => "EISDIR",
            Self::EINVAL => "EINVAL",
            Self::EMFILE => "EMFILE",
            Self::ENOSPC => "ENOSPC",
            Self::ENAMETOOLONG => "ENAMETOOLONG",
            Self::ENOTEMPTY => "ENOTEMPTY",
            Self::ELOOP => "ELOOP",
            Self::ENOTTY => "ENOTTY",
            Self::EPIPE => "EPIPE",
            Self::ESPIPE => "ESPIPE",
            Self::ENOSYS => "ENOSYS",
            Self::ETIMEDOUT => "ETIMEDOUT",
            _ => return None,
        })
    }

    /// Returns the value placed in the syscall return register: `-errno` as two's complement.
    pub const fn as_return_value(self) -> u64 {
        (-(self.0 as i64)) as u64
    }

    /// Reads a call's return register: values above `-4096` are `-errno` (Linux's convention;
    /// no valid result is that large), anything else is the result.
    pub fn from_return_value(raw: u64) -> Result<u64, Self> {
        if raw > u64::MAX - 4096 { Err(Self(raw.wrapping_neg() as u16)) } else { Ok(raw) }
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// Linux's x86-64 system-call numbers (`arch/x86/entry/syscalls/syscall_64.tbl`) and the
/// constants of the calls Herald serves for Linux programs. The README's "Linux programs"
/// table says which are served and how.
pub mod linux {
    /// Declares call numbers and the name table `name` reads, in one list.
    macro_rules! calls {
        ($($(#[$doc:meta])* $constant:ident = $number:literal, $name:literal;)*) => {
            $($(#[$doc])* pub const $constant: u64 = $number;)*

            /// The Linux name of call `number`, for logs, the tracer and denials (`None`: a
            /// number Herald does not know).
            pub const fn name(number: u64) -> Option<&'static str> {
                Some(match number {
                    $($number => $name,)*
                    _ => return None,
                })
            }

            /// The number of the Linux call called `name` (a sandbox manifest's words).
            pub fn number(name: &str) -> Option<u64> {
                match name {
                    $($name => Some($number),)*
                    _ => None,
                }
            }
        };
    }

    calls! {
        /// `read(fd, buf, count)`.
        READ = 0, "read";
        /// `write(fd, buf, count)`.
        WRITE = 1, "write";
        /// `open(path, flags, mode)` (files come with part 2).
        OPEN = 2, "open";
        /// `close(fd)`.
        CLOSE = 3, "close";
        /// `stat(path, buf)`.
        STAT = 4, "stat";
        /// `fstat(fd, buf)`.
        FSTAT = 5, "fstat";
        /// `lstat(path, buf)`.
        LSTAT = 6, "lstat";
        /// `poll(fds, nfds, timeout_ms)`.
        POLL = 7, "poll";
        /// `lseek(fd, offset, whence)`.
        LSEEK = 8, "lseek";
        /// `mmap(addr, len, prot, flags, fd, offset)`: anonymous private memory only.
        MMAP = 9, "mmap";
        /// `mprotect(addr, len, prot)`.
        MPROTECT = 10, "mprotect";
        /// `munmap(addr, len)`.
        MUNMAP = 11, "munmap";
        /// `brk(addr)`: there is no break to move; answers 0, and libc falls back to `mmap`.
        BRK = 12, "brk";
        /// `rt_sigaction(signal, act, oldact, sigsetsize)`: recorded.
        RT_SIGACTION = 13, "rt_sigaction";
        /// `rt_sigprocmask(how, set, oldset, sigsetsize)`: recorded.
        RT_SIGPROCMASK = 14, "rt_sigprocmask";
        /// `rt_sigreturn()`.
        RT_SIGRETURN = 15, "rt_sigreturn";
        /// `ioctl(fd, request, arg)`.
        IOCTL = 16, "ioctl";
        /// `pread64(fd, buf, count, offset)`.
        PREAD64 = 17, "pread64";
        /// `pwrite64(fd, buf, count, offset)`.
        PWRITE64 = 18, "pwrite64";
        /// `readv(fd, iov, iovcnt)`.
        READV = 19, "readv";
        /// `writev(fd, iov, iovcnt)`.
        WRITEV = 20, "writev";
        /// `access(path, mode)`.
        ACCESS = 21, "access";
        /// `pipe(fds)`.
        PIPE = 22, "pipe";
        /// `select(nfds, readfds, writefds, exceptfds, timeout)`.
        SELECT = 23, "select";
        /// `sched_yield()`.
        SCHED_YIELD = 24, "sched_yield";
        /// `mremap(old, old_len, new_len, flags, new)`.
        MREMAP = 25, "mremap";
        /// `madvise(addr, len, advice)`: advice is accepted and ignored.
        MADVISE = 28, "madvise";
        /// `dup(fd)`.
        DUP = 32, "dup";
        /// `dup2(fd, newfd)`.
        DUP2 = 33, "dup2";
        /// `nanosleep(req, rem)`.
        NANOSLEEP = 35, "nanosleep";
        /// `getpid()`.
        GETPID = 39, "getpid";
        /// `clone(flags, stack, parent_tid, child_tid, tls)`.
        CLONE = 56, "clone";
        /// `fork()`.
        FORK = 57, "fork";
        /// `vfork()`.
        VFORK = 58, "vfork";
        /// `execve(path, argv, envp)`.
        EXECVE = 59, "execve";
        /// `exit(status)`: ends the thread, here the process.
        EXIT = 60, "exit";
        /// `wait4(pid, status, options, rusage)`.
        WAIT4 = 61, "wait4";
        /// `kill(pid, signal)`.
        KILL = 62, "kill";
        /// `uname(buf)`.
        UNAME = 63, "uname";
        /// `fcntl(fd, cmd, arg)`.
        FCNTL = 72, "fcntl";
        /// `fsync(fd)`: nothing to flush (the file system is memory).
        FSYNC = 74, "fsync";
        /// `fdatasync(fd)`: see [`FSYNC`].
        FDATASYNC = 75, "fdatasync";
        /// `truncate(path, len)`.
        TRUNCATE = 76, "truncate";
        /// `ftruncate(fd, len)`.
        FTRUNCATE = 77, "ftruncate";
        /// `getcwd(buf, size)`.
        GETCWD = 79, "getcwd";
        /// `chdir(path)`.
        CHDIR = 80, "chdir";
        /// `fchdir(fd)`.
        FCHDIR = 81, "fchdir";
        /// `rename(old, new)`.
        RENAME = 82, "rename";
        /// `mkdir(path, mode)`.
        MKDIR = 83, "mkdir";
        /// `rmdir(path)`.
        RMDIR = 84, "rmdir";
        /// `unlink(path)`.
        UNLINK = 87, "unlink";
        /// `symlink(target, path)`.
        SYMLINK = 88, "symlink";
        /// `readlink(path, buf, size)`.
        READLINK = 89, "readlink";
        /// `umask(mask)`.
        UMASK = 95, "umask";
        /// `gettimeofday(tv, tz)`.
        GETTIMEOFDAY = 96, "gettimeofday";
        /// `getrlimit(resource, rlim)`.
        GETRLIMIT = 97, "getrlimit";
        /// `getuid()`, `getgid()`, `geteuid()`, `getegid()`: always 0 (root, the only user).
        GETUID = 102, "getuid";
        /// See [`GETUID`].
        GETGID = 104, "getgid";
        /// See [`GETUID`].
        GETEUID = 107, "geteuid";
        /// See [`GETUID`].
        GETEGID = 108, "getegid";
        /// `getppid()`.
        GETPPID = 110, "getppid";
        /// `sigaltstack(ss, old_ss)`: recorded.
        SIGALTSTACK = 131, "sigaltstack";
        /// `reboot(magic, magic2, cmd, arg)`.
        REBOOT = 169, "reboot";
        /// `arch_prctl(code, addr)`.
        ARCH_PRCTL = 158, "arch_prctl";
        /// `gettid()`: the pid (one thread per process).
        GETTID = 186, "gettid";
        /// `time(tloc)`.
        TIME = 201, "time";
        /// `futex(uaddr, op, val, timeout, uaddr2, val3)`: wait and wake.
        FUTEX = 202, "futex";
        /// `sched_getaffinity(pid, len, mask)`.
        SCHED_GETAFFINITY = 204, "sched_getaffinity";
        /// `getdents64(fd, dirp, count)`.
        GETDENTS64 = 217, "getdents64";
        /// `set_tid_address(tidptr)`: answers the tid.
        SET_TID_ADDRESS = 218, "set_tid_address";
        /// `clock_gettime(clock, tp)`.
        CLOCK_GETTIME = 228, "clock_gettime";
        /// `clock_getres(clock, res)`.
        CLOCK_GETRES = 229, "clock_getres";
        /// `clock_nanosleep(clock, flags, req, rem)`.
        CLOCK_NANOSLEEP = 230, "clock_nanosleep";
        /// `exit_group(status)`.
        EXIT_GROUP = 231, "exit_group";
        /// `tgkill(tgid, tid, signal)`.
        TGKILL = 234, "tgkill";
        /// `openat(dirfd, path, flags, mode)`.
        OPENAT = 257, "openat";
        /// `mkdirat(dirfd, path, mode)`.
        MKDIRAT = 258, "mkdirat";
        /// `newfstatat(dirfd, path, buf, flags)`.
        NEWFSTATAT = 262, "newfstatat";
        /// `unlinkat(dirfd, path, flags)`.
        UNLINKAT = 263, "unlinkat";
        /// `renameat(olddirfd, old, newdirfd, new)`.
        RENAMEAT = 264, "renameat";
        /// `symlinkat(target, newdirfd, path)`.
        SYMLINKAT = 266, "symlinkat";
        /// `readlinkat(dirfd, path, buf, size)`.
        READLINKAT = 267, "readlinkat";
        /// `faccessat(dirfd, path, mode)`.
        FACCESSAT = 269, "faccessat";
        /// `ppoll(fds, nfds, timeout, sigmask, sigsetsize)`.
        PPOLL = 271, "ppoll";
        /// `set_robust_list(head, len)`: accepted (one thread: nothing to clean up after).
        SET_ROBUST_LIST = 273, "set_robust_list";
        /// `dup3(fd, newfd, flags)`.
        DUP3 = 292, "dup3";
        /// `pipe2(fds, flags)`.
        PIPE2 = 293, "pipe2";
        /// `prlimit64(pid, resource, new, old)`.
        PRLIMIT64 = 302, "prlimit64";
        /// `renameat2(olddirfd, old, newdirfd, new, flags)`.
        RENAMEAT2 = 316, "renameat2";
        /// `getrandom(buf, len, flags)`.
        GETRANDOM = 318, "getrandom";
        /// `statx(dirfd, path, flags, mask, buf)`.
        STATX = 332, "statx";
        /// `rseq(rseq, len, flags, sig)`: not served (`ENOSYS`; libc then does without).
        RSEQ = 334, "rseq";
        /// `clone3(args, size)`.
        CLONE3 = 435, "clone3";
        /// `faccessat2(dirfd, path, mode, flags)`.
        FACCESSAT2 = 439, "faccessat2";
        /// `pause()`: waits for a signal.
        PAUSE = 34, "pause";
        /// `getitimer(which, value)`.
        GETITIMER = 36, "getitimer";
        /// `alarm(seconds)`: `SIGALRM` after that long.
        ALARM = 37, "alarm";
        /// `setitimer(which, new, old)`: `ITIMER_REAL` only.
        SETITIMER = 38, "setitimer";
        /// `link(old, new)`.
        LINK = 86, "link";
        /// `chmod(path, mode)`.
        CHMOD = 90, "chmod";
        /// `fchmod(fd, mode)`.
        FCHMOD = 91, "fchmod";
        /// `chown(path, uid, gid)`.
        CHOWN = 92, "chown";
        /// `fchown(fd, uid, gid)`.
        FCHOWN = 93, "fchown";
        /// `lchown(path, uid, gid)`.
        LCHOWN = 94, "lchown";
        /// `getrusage(who, usage)`.
        GETRUSAGE = 98, "getrusage";
        /// `sysinfo(info)`.
        SYSINFO = 99, "sysinfo";
        /// `times(buf)`.
        TIMES = 100, "times";
        /// `setuid(uid)`.
        SETUID = 105, "setuid";
        /// `setgid(gid)`.
        SETGID = 106, "setgid";
        /// `setpgid(pid, pgid)`.
        SETPGID = 109, "setpgid";
        /// `getpgrp()`.
        GETPGRP = 111, "getpgrp";
        /// `setsid()`.
        SETSID = 112, "setsid";
        /// `getgroups(size, list)`.
        GETGROUPS = 115, "getgroups";
        /// `getpgid(pid)`.
        GETPGID = 121, "getpgid";
        /// `getsid(pid)`.
        GETSID = 124, "getsid";
        /// `rt_sigpending(set, sigsetsize)`.
        RT_SIGPENDING = 127, "rt_sigpending";
        /// `rt_sigtimedwait(set, info, timeout, sigsetsize)`.
        RT_SIGTIMEDWAIT = 128, "rt_sigtimedwait";
        /// `rt_sigsuspend(mask, sigsetsize)`.
        RT_SIGSUSPEND = 130, "rt_sigsuspend";
        /// `statfs(path, buf)`.
        STATFS = 137, "statfs";
        /// `fstatfs(fd, buf)`.
        FSTATFS = 138, "fstatfs";
        /// `getpriority(which, who)`.
        GETPRIORITY = 140, "getpriority";
        /// `setpriority(which, who, prio)`.
        SETPRIORITY = 141, "setpriority";
        /// `prctl(option, ...)`.
        PRCTL = 157, "prctl";
        /// `sync()`.
        SYNC = 162, "sync";
        /// `tkill(tid, signal)`.
        TKILL = 200, "tkill";
        /// `waitid(idtype, id, info, options, rusage)`.
        WAITID = 247, "waitid";
        /// `fchownat(dirfd, path, uid, gid, flags)`.
        FCHOWNAT = 260, "fchownat";
        /// `linkat(olddirfd, old, newdirfd, new, flags)`.
        LINKAT = 265, "linkat";
        /// `fchmodat(dirfd, path, mode)`.
        FCHMODAT = 268, "fchmodat";
        /// `pselect6(n, in, out, except, timeout, sigmask)`.
        PSELECT6 = 270, "pselect6";
        /// `utimensat(dirfd, path, times, flags)`.
        UTIMENSAT = 280, "utimensat";
        /// `sendfile(out_fd, in_fd, offset, count)`: not served (`ENOSYS`; busybox falls back).
        SENDFILE = 40, "sendfile";
        /// `execveat(dirfd, path, argv, envp, flags)`.
        EXECVEAT = 322, "execveat";
    }

    /// `mmap` protection bits and flags (`asm-generic/mman-common.h`).
    pub const PROT_WRITE: u64 = 0x2;
    /// See [`PROT_WRITE`].
    pub const PROT_EXEC: u64 = 0x4;
    /// See [`PROT_WRITE`].
    pub const MAP_SHARED: u64 = 0x01;
    /// See [`PROT_WRITE`].
    pub const MAP_PRIVATE: u64 = 0x02;
    /// See [`PROT_WRITE`].
    pub const MAP_FIXED: u64 = 0x10;
    /// See [`PROT_WRITE`].
    pub const MAP_ANONYMOUS: u64 = 0x20;
    /// `MAP_FIXED`, but failing with `EEXIST` rather than replacing a mapping.
    pub const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
    /// Clocks (`linux/time.h`): wall time, and time since boot (the others alias these).
    pub const CLOCK_REALTIME: u64 = 0;
    /// See [`CLOCK_REALTIME`].
    pub const CLOCK_MONOTONIC: u64 = 1;
    /// See [`CLOCK_REALTIME`].
    pub const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
    /// See [`CLOCK_REALTIME`].
    pub const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
    /// See [`CLOCK_REALTIME`].
    pub const CLOCK_MONOTONIC_RAW: u64 = 4;
    /// See [`CLOCK_REALTIME`].
    pub const CLOCK_REALTIME_COARSE: u64 = 5;
    /// See [`CLOCK_REALTIME`].
    pub const CLOCK_MONOTONIC_COARSE: u64 = 6;
    /// See [`CLOCK_REALTIME`].
    pub const CLOCK_BOOTTIME: u64 = 7;
    /// `clock_nanosleep` flag: `req` is an absolute time on the clock.
    pub const TIMER_ABSTIME: u64 = 1;

    /// `arch_prctl` codes (`asm/prctl.h`).
    pub const ARCH_SET_FS: u64 = 0x1002;
    /// See [`ARCH_SET_FS`].
    pub const ARCH_GET_FS: u64 = 0x1003;
    /// `ioctl` requests on a terminal (`asm-generic/ioctls.h`): read its termios.
    pub const TCGETS: u64 = 0x5401;
    /// See [`TCGETS`]: the terminal's size.
    pub const TIOCGWINSZ: u64 = 0x5413;
    /// Most `iovec`s one `readv`/`writev` takes (`IOV_MAX`).
    pub const IOV_MAX: u64 = 1024;

    /// `futex` operations (`linux/futex.h`), and the flags that may accompany them.
    pub const FUTEX_WAIT: u64 = 0;
    /// See [`FUTEX_WAIT`].
    pub const FUTEX_WAKE: u64 = 1;
    /// See [`FUTEX_WAIT`]: the futex is not shared with other processes.
    pub const FUTEX_PRIVATE_FLAG: u64 = 128;
    /// See [`FUTEX_WAIT`]: a timeout is measured on `CLOCK_REALTIME`.
    pub const FUTEX_CLOCK_REALTIME: u64 = 256;

    /// `poll` events (`asm-generic/poll.h`).
    pub const POLLIN: u16 = 0x001;
    /// See [`POLLIN`].
    pub const POLLOUT: u16 = 0x004;
    /// See [`POLLIN`]: the descriptor is not open.
    pub const POLLNVAL: u16 = 0x020;

    /// Signals (`asm/signal.h`) that cannot be caught or blocked.
    pub const SIGKILL: u64 = 9;
    /// See [`SIGKILL`].
    pub const SIGSTOP: u64 = 19;
    /// Number of signals (1..=64); a signal set is one 64-bit word.
    pub const SIGNAL_COUNT: u64 = 64;
    /// `rt_sigprocmask` ways to change the mask.
    pub const SIG_BLOCK: u64 = 0;
    /// See [`SIG_BLOCK`].
    pub const SIG_UNBLOCK: u64 = 1;
    /// See [`SIG_BLOCK`].
    pub const SIG_SETMASK: u64 = 2;
    /// `sigaltstack` flags: the stack is off; and the smallest stack it takes.
    pub const SS_DISABLE: u64 = 2;
    /// See [`SS_DISABLE`].
    pub const MINSIGSTKSZ: u64 = 2048;

    /// `prlimit64` resources (`asm-generic/resource.h`) and "no limit".
    pub const RLIMIT_STACK: u64 = 3;
    /// See [`RLIMIT_STACK`].
    pub const RLIMIT_NOFILE: u64 = 7;
    /// See [`RLIMIT_STACK`].
    pub const RLIMIT_AS: u64 = 9;
    /// See [`RLIMIT_STACK`]: the number of resources.
    pub const RLIMIT_COUNT: u64 = 16;
    /// See [`RLIMIT_STACK`].
    pub const RLIM_INFINITY: u64 = u64::MAX;
}

/// Verified interrupt handlers ("top halves"): eBPF programs a user-space driver loads for its
/// line (`SYS_IRQ_PROGRAM`), checked by the kernel's verifier and run in the interrupt itself.
/// The encoding is eBPF's (`Documentation/bpf/standardization/instruction-set.rst`): 8-byte
/// instructions, `opcode`, `dst | src << 4`, a 16-bit offset, a 32-bit immediate. Herald
/// takes the 64-bit ALU, the 32-bit ALU, loads and stores (`MEM` mode) and the 64-bit jumps;
/// `lddw`, atomics, byte swaps and `JMP32` are refused as unknown opcodes.
pub mod bpf {
    /// One instruction, as the program's memory holds it (little-endian fields).
    #[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
    #[repr(C)]
    pub struct Instruction {
        /// Class, size/mode or operation, source.
        pub opcode: u8,
        /// `dst` in the low nibble, `src` in the high one.
        pub registers: u8,
        /// Memory offset or jump distance (in instructions, from the next one).
        pub offset: i16,
        /// The immediate operand (a helper's number for `call`).
        pub immediate: i32,
    }

    impl Instruction {
        /// An instruction from its parts.
        pub const fn new(opcode: u8, dst: u8, src: u8, offset: i16, immediate: i32) -> Self {
            Self { opcode, registers: (dst & 0xf) | (src << 4), offset, immediate }
        }

        /// The destination register.
        pub const fn dst(self) -> u8 {
            self.registers & 0xf
        }

        /// The source register.
        pub const fn src(self) -> u8 {
            self.registers >> 4
        }
    }

    /// Instruction classes (the opcode's low three bits).
    pub const CLASS_LDX: u8 = 0x01;
    /// See [`CLASS_LDX`].
    pub const CLASS_ST: u8 = 0x02;
    /// See [`CLASS_LDX`].
    pub const CLASS_STX: u8 = 0x03;
    /// See [`CLASS_LDX`].
    pub const CLASS_ALU: u8 = 0x04;
    /// See [`CLASS_LDX`].
    pub const CLASS_JMP: u8 = 0x05;
    /// See [`CLASS_LDX`].
    pub const CLASS_ALU64: u8 = 0x07;
    /// Memory access mode (bits 5–7) of loads and stores: register plus offset.
    pub const MODE_MEM: u8 = 0x60;
    /// Access sizes (bits 3–4): 4, 2, 1 and 8 bytes.
    pub const SIZE_W: u8 = 0x00;
    /// See [`SIZE_W`].
    pub const SIZE_H: u8 = 0x08;
    /// See [`SIZE_W`].
    pub const SIZE_B: u8 = 0x10;
    /// See [`SIZE_W`].
    pub const SIZE_DW: u8 = 0x18;
    /// Operand source (bit 3) of ALU and jump instructions: the immediate, or `src`.
    pub const SOURCE_IMMEDIATE: u8 = 0x00;
    /// See [`SOURCE_IMMEDIATE`].
    pub const SOURCE_REGISTER: u8 = 0x08;
    /// ALU operations (bits 4–7).
    pub const ALU_ADD: u8 = 0x00;
    /// See [`ALU_ADD`].
    pub const ALU_SUB: u8 = 0x10;
    /// See [`ALU_ADD`].
    pub const ALU_MUL: u8 = 0x20;
    /// See [`ALU_ADD`].
    pub const ALU_DIV: u8 = 0x30;
    /// See [`ALU_ADD`].
    pub const ALU_OR: u8 = 0x40;
    /// See [`ALU_ADD`].
    pub const ALU_AND: u8 = 0x50;
    /// See [`ALU_ADD`].
    pub const ALU_LSH: u8 = 0x60;
    /// See [`ALU_ADD`].
    pub const ALU_RSH: u8 = 0x70;
    /// See [`ALU_ADD`].
    pub const ALU_NEG: u8 = 0x80;
    /// See [`ALU_ADD`].
    pub const ALU_MOD: u8 = 0x90;
    /// See [`ALU_ADD`].
    pub const ALU_XOR: u8 = 0xa0;
    /// See [`ALU_ADD`].
    pub const ALU_MOV: u8 = 0xb0;
    /// See [`ALU_ADD`].
    pub const ALU_ARSH: u8 = 0xc0;
    /// Jump operations (bits 4–7).
    pub const JMP_JA: u8 = 0x00;
    /// See [`JMP_JA`].
    pub const JMP_JEQ: u8 = 0x10;
    /// See [`JMP_JA`].
    pub const JMP_JGT: u8 = 0x20;
    /// See [`JMP_JA`].
    pub const JMP_JGE: u8 = 0x30;
    /// See [`JMP_JA`].
    pub const JMP_JSET: u8 = 0x40;
    /// See [`JMP_JA`].
    pub const JMP_JNE: u8 = 0x50;
    /// See [`JMP_JA`].
    pub const JMP_CALL: u8 = 0x80;
    /// See [`JMP_JA`].
    pub const JMP_EXIT: u8 = 0x90;
    /// See [`JMP_JA`].
    pub const JMP_JLT: u8 = 0xa0;
    /// See [`JMP_JA`].
    pub const JMP_JLE: u8 = 0xb0;

    /// Most instructions a program may have.
    pub const MAX_INSTRUCTIONS: usize = 256;
    /// Bytes of stack below `r10`, the read-only frame pointer.
    pub const STACK_BYTES: i64 = 64;
    /// The context `r1` points at on entry, read-only: the line (8 bytes at offset 0) and its
    /// sequence number (8 bytes at offset 8).
    pub const CONTEXT_BYTES: i64 = 16;
    /// Offset of the line in the context.
    pub const CONTEXT_LINE: i16 = 0;
    /// Offset of the sequence number in the context.
    pub const CONTEXT_SEQ: i16 = 8;

    /// Helpers, called with `call N` (arguments in `r1`…, result in `r0`; `r1`–`r5` are
    /// clobbered): `r0 = inb(r1)`, `r1` a constant port of the driver's grant.
    pub const HELPER_PORT_IN: i32 = 1;
    /// `outb(r1, r2)`: `r1` a constant granted port, `r2` a number (its low byte is written).
    pub const HELPER_PORT_OUT: i32 = 2;
    /// `r0 = queue(r1)`: queues the number `r1` as a record for the driver (`irq_read`); 0,
    /// or 1 if its ring was full (the record is dropped and counted).
    pub const HELPER_QUEUE: i32 = 3;
    /// `wake()`: the driver's `irq_wait` returns (without a program every interrupt wakes it).
    pub const HELPER_WAKE: i32 = 4;
    /// `acknowledge()`: the handler served the device itself; the line is not held for the
    /// driver's `irq_ack`.
    pub const HELPER_ACKNOWLEDGE: i32 = 5;
    /// `r0 = seq()`: the line's sequence number.
    pub const HELPER_SEQ: i32 = 6;
    /// `r0 = ring_space()`: records the driver's ring still takes. A handler that finds it 0
    /// should leave its device's data where it is, wake the driver and not acknowledge: the
    /// line is held until the driver has read the ring and acknowledged, and the kernel then
    /// runs the handler once more for what waited.
    pub const HELPER_RING_SPACE: i32 = 7;

    /// The program's answer in `r0`: this interrupt was its device's (on a shared line, the
    /// others' handlers are not asked).
    pub const MINE: u64 = 1;
    /// The program's answer in `r0`: not its device's.
    pub const NOT_MINE: u64 = 0;

    /// The verifier's rules, by the number `irq_program` reports a refusal with.
    pub const REFUSAL_RULES: [&str; 22] = [
        "a program needs at least one instruction",
        "too many instructions",
        "unknown opcode",
        "no such register (r0-r10)",
        "backward jump (a loop may never end)",
        "jump out of the program",
        "the program can run past its last instruction",
        "read of an uninitialised register",
        "the frame pointer r10 is read-only",
        "pointer arithmetic other than adding a constant",
        "a pointer used as a number",
        "memory access through a number",
        "load outside the context and the stack",
        "misaligned access",
        "store to the read-only event",
        "store outside the stack frame",
        "load of stack bytes never written",
        "division by a possibly-zero value",
        "unknown helper",
        "helper argument of the wrong type",
        "port not granted to this driver",
        "a register's type differs between paths",
    ];

    /// A refusal as `irq_program` writes it to its fourth argument.
    #[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
    #[repr(C)]
    pub struct RefusalRecord {
        /// The instruction's index.
        pub index: u32,
        /// The rule's number in [`REFUSAL_RULES`].
        pub rule: u32,
    }

    /// An assembler for handler programs: one function per instruction form.
    pub mod assemble {
        use super::*;

        /// `dst = immediate` (64-bit).
        pub const fn mov(dst: u8, immediate: i32) -> Instruction {
            Instruction::new(CLASS_ALU64 | ALU_MOV | SOURCE_IMMEDIATE, dst, 0, 0, immediate)
        }
        /// `dst = src`.
        pub const fn mov_reg(dst: u8, src: u8) -> Instruction {
            Instruction::new(CLASS_ALU64 | ALU_MOV | SOURCE_REGISTER, dst, src, 0, 0)
        }
        /// `dst OP= src` (`op`: an `ALU_*`), 64-bit.
        pub const fn alu_reg(op: u8, dst: u8, src: u8) -> Instruction {
            Instruction::new(CLASS_ALU64 | op | SOURCE_REGISTER, dst, src, 0, 0)
        }
        /// `dst OP= immediate` (`op`: an `ALU_*`), 64-bit.
        pub const fn alu_imm(op: u8, dst: u8, immediate: i32) -> Instruction {
            Instruction::new(CLASS_ALU64 | op | SOURCE_IMMEDIATE, dst, 0, 0, immediate)
        }
        /// `dst = *(size *)(src + offset)`.
        pub const fn load(size: u8, dst: u8, src: u8, offset: i16) -> Instruction {
            Instruction::new(CLASS_LDX | MODE_MEM | size, dst, src, offset, 0)
        }
        /// `*(size *)(dst + offset) = src`.
        pub const fn store(size: u8, dst: u8, src: u8, offset: i16) -> Instruction {
            Instruction::new(CLASS_STX | MODE_MEM | size, dst, src, offset, 0)
        }
        /// `*(size *)(dst + offset) = immediate`.
        pub const fn store_imm(size: u8, dst: u8, offset: i16, immediate: i32) -> Instruction {
            Instruction::new(CLASS_ST | MODE_MEM | size, dst, 0, offset, immediate)
        }
        /// `if dst OP immediate: skip offset instructions` (`op`: a `JMP_*`).
        pub const fn jump_if(op: u8, dst: u8, immediate: i32, offset: i16) -> Instruction {
            Instruction::new(CLASS_JMP | op | SOURCE_IMMEDIATE, dst, 0, offset, immediate)
        }
        /// Skip `offset` instructions.
        pub const fn jump(offset: i16) -> Instruction {
            Instruction::new(CLASS_JMP | JMP_JA, 0, 0, offset, 0)
        }
        /// `r0 = helper(r1, r2, ...)`.
        pub const fn call(helper: i32) -> Instruction {
            Instruction::new(CLASS_JMP | JMP_CALL, 0, 0, 0, helper)
        }
        /// Return `r0`.
        pub const fn exit() -> Instruction {
            Instruction::new(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)
        }
    }
}
