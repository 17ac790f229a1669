//! The Linux system calls Herald serves Linux programs (issue 17, first set: what a static
//! musl "hello world" makes), by Linux's numbers and meanings, as the owner of a `syscall`
//! event whose caller is a Linux program. A call not here answers `ENOSYS` and is logged once
//! per program (by number; its name when Herald knows it).

#![forbid(unsafe_code)]

use alloc::collections::BTreeSet;

use super::{Pid, scheduler, start_stack, syscalls};
use crate::{
    abi::linux,
    arch::{self, paging},
    events::{
        BUS, Errno, Event, EventKind, MemoryRequest, Priority, Protection, Reply, SpaceId,
        SyscallAbi, Verdict,
    },
    mm::{self, user_copy},
    sync::IrqSpinLock,
};

/// Bytes of one `struct iovec` (`base`, `len`).
const IOVEC_BYTES: u64 = 16;
/// Unknown calls already logged, as (pid, number), so a program that keeps asking logs once.
/// Bounded: when full, the entries of processes that have ended make room; if every entry is a
/// live process's, further unknown calls go unlogged.
const MAX_LOGGED_UNKNOWN: usize = 256;
static LOGGED_UNKNOWN: IrqSpinLock<BTreeSet<(Pid, u64)>> = IrqSpinLock::new(BTreeSet::new());

/// Subscribes the Linux calls' owner, after Herald's own (which passes Linux programs' calls).
pub(super) fn subscribe() {
    BUS.subscribe(EventKind::Syscall, "linux-calls", Priority::OWNER, on_syscall)
        .expect("the Linux calls subscribe at boot")
        .keep_forever();
}

fn on_syscall(event: &Event, reply: &mut Reply) -> Verdict {
    let Event::Syscall { number, ref args, pid, abi: SyscallAbi::Linux } = *event else {
        return Verdict::Continue;
    };
    if pid == 0 {
        return Verdict::Continue;
    }
    scheduler::count_syscall();
    match serve(number, args, pid, scheduler::current_space()) {
        Ok(value) => {
            reply.value = value;
            Verdict::Handled
        }
        Err(errno) => Verdict::Deny(errno),
    }
}

fn serve(number: u64, args: &[u64; 6], pid: Pid, space: SpaceId) -> Result<u64, Errno> {
    match number {
        linux::WRITE => syscalls::write(args[0], args[1], args[2], space),
        linux::WRITEV => writev(args[0], args[1], args[2], space),
        // The console is not a terminal yet (termios comes with the tty, part 2).
        linux::IOCTL => Err(Errno::ENOTTY),
        // One thread per process: its thread id is its pid.
        linux::GETPID | linux::GETTID | linux::SET_TID_ADDRESS => Ok(u64::from(pid)),
        linux::GETPPID => Ok(u64::from(scheduler::parent_of(pid))),
        // One user, root.
        linux::GETUID | linux::GETGID | linux::GETEUID | linux::GETEGID => Ok(0),
        linux::ARCH_PRCTL => arch_prctl(args[0], args[1], space),
        linux::MMAP => mmap(args, pid, space),
        linux::MUNMAP => mm::request(
            pid,
            MemoryRequest::Unmap { space, address: args[0], len_bytes: whole_pages(args[1])? },
        ),
        linux::MPROTECT => mm::request(
            pid,
            MemoryRequest::Protect {
                space,
                address: args[0],
                len_bytes: whole_pages(args[1])?,
                protection: protection(args[2])?,
            },
        ),
        // No heap break: answering 0 for every request makes libc use `mmap` instead.
        linux::BRK => Ok(0),
        linux::SCHED_YIELD => syscalls::sleep(0),
        linux::NANOSLEEP => sleep_for(args[0], space),
        linux::CLOCK_NANOSLEEP if args[1] == 0 => sleep_for(args[2], space),
        linux::CLOCK_NANOSLEEP => Err(Errno::EINVAL),
        linux::CLOCK_GETTIME => clock_gettime(args[0], args[1], space),
        linux::GETRANDOM => getrandom(args[0], args[1], space),
        linux::EXIT | linux::EXIT_GROUP => {
            // Linux keeps the low 8 bits of the status.
            syscalls::exit(i32::from(args[0] as u8));
            Ok(0)
        }
        _ => {
            log_unknown_once(pid, number);
            Err(Errno::ENOSYS)
        }
    }
}

/// `writev(fd, iov, iovcnt)`: each buffer in turn, through `write`; stops at the first short
/// or failed one, answering what was written (or that error, if nothing was).
fn writev(fd: u64, vector: u64, count: u64, space: SpaceId) -> Result<u64, Errno> {
    if count > linux::IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut written = 0u64;
    for index in 0..count {
        let mut iovec = [0u8; IOVEC_BYTES as usize];
        let at = vector.checked_add(index * IOVEC_BYTES).ok_or(Errno::EFAULT)?;
        user_copy::copy_from_user(space, at, &mut iovec)?;
        let base = u64::from_le_bytes(iovec[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(iovec[8..].try_into().expect("8 bytes"));
        if len == 0 {
            continue;
        }
        match syscalls::write(fd, base, len, space) {
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

/// Linux protection bits as Herald's (every mapping is readable; `PROT_NONE` is not
/// available, and writable-and-executable is refused by mm, W^X).
fn protection(bits: u64) -> Result<Protection, Errno> {
    if bits & !(0x1 | linux::PROT_WRITE | linux::PROT_EXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Protection { write: bits & linux::PROT_WRITE != 0, execute: bits & linux::PROT_EXEC != 0 })
}

/// `mmap`: anonymous private memory, anywhere or (`MAP_FIXED`) exactly at `addr`, replacing
/// what was there. Files cannot be mapped (there are none yet).
fn mmap(args: &[u64; 6], pid: Pid, space: SpaceId) -> Result<u64, Errno> {
    let [address, len_bytes, prot, flags, _fd, offset] = *args;
    if flags & linux::MAP_ANONYMOUS == 0 {
        return Err(Errno::EBADF);
    }
    if flags & linux::MAP_PRIVATE == 0 || offset != 0 {
        return Err(Errno::EINVAL);
    }
    let protection = protection(prot)?;
    let len_bytes = whole_pages(len_bytes)?;
    let fixed = flags & linux::MAP_FIXED != 0;
    if fixed {
        mm::request(pid, MemoryRequest::Unmap { space, address, len_bytes })?;
    }
    let address = if fixed { address } else { 0 };
    mm::request(pid, MemoryRequest::Map { space, address, len_bytes, protection })
}

/// A length in whole pages, as Linux's memory calls take it (rounded up; 0 is invalid).
fn whole_pages(len_bytes: u64) -> Result<u64, Errno> {
    match len_bytes.checked_next_multiple_of(mm::FRAME_SIZE_BYTES) {
        Some(0) | None => Err(Errno::EINVAL),
        Some(len) => Ok(len),
    }
}

/// Reads a `struct timespec` (seconds, nanoseconds) and sleeps that long, rounded up to the
/// timer's millisecond.
fn sleep_for(request: u64, space: SpaceId) -> Result<u64, Errno> {
    let mut timespec = [0u8; 16];
    user_copy::copy_from_user(space, request, &mut timespec)?;
    let seconds = u64::from_le_bytes(timespec[..8].try_into().expect("8 bytes"));
    let nanoseconds = u64::from_le_bytes(timespec[8..].try_into().expect("8 bytes"));
    if nanoseconds >= 1_000_000_000 || seconds > i64::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    let milliseconds = seconds.saturating_mul(1000).saturating_add(nanoseconds.div_ceil(1_000_000));
    syscalls::sleep(milliseconds)
}

/// `clock_gettime`: every clock counts from boot, in the timer's milliseconds (there is no
/// real-time clock reading yet, so `CLOCK_REALTIME` is time since boot too).
fn clock_gettime(clock: u64, out: u64, space: SpaceId) -> Result<u64, Errno> {
    match clock {
        linux::CLOCK_REALTIME
        | linux::CLOCK_MONOTONIC
        | linux::CLOCK_MONOTONIC_RAW
        | linux::CLOCK_BOOTTIME => {}
        _ => return Err(Errno::EINVAL),
    }
    let milliseconds = arch::milliseconds();
    let mut timespec = [0u8; 16];
    timespec[..8].copy_from_slice(&(milliseconds / 1000).to_le_bytes());
    timespec[8..].copy_from_slice(&((milliseconds % 1000) * 1_000_000).to_le_bytes());
    user_copy::copy_to_user(space, out, &timespec)?;
    Ok(0)
}

/// `getrandom`: a time-stamp counter reading, stirred (`start_stack::stir`) — varied, not
/// secret (there is no entropy source yet). At most a page per call, as a short count.
fn getrandom(buffer: u64, len: u64, space: SpaceId) -> Result<u64, Errno> {
    const MAX_BYTES_PER_CALL: u64 = 4096;
    let len = len.min(MAX_BYTES_PER_CALL);
    let mut bytes = alloc::vec![0u8; len as usize];
    let mut state = arch::cpu::read_timestamp();
    for chunk in bytes.chunks_mut(8) {
        state = start_stack::stir(state);
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    user_copy::copy_to_user(space, buffer, &bytes)?;
    Ok(len)
}

/// `arch_prctl`: the FS base (a program's thread pointer), set or read.
fn arch_prctl(code: u64, address: u64, space: SpaceId) -> Result<u64, Errno> {
    match code {
        linux::ARCH_SET_FS => {
            // A base outside the user half would be the kernel's to use, and a non-canonical
            // one would fault when loaded.
            if !paging::USER_SPACE.contains(&address) && address != 0 {
                return Err(Errno::EPERM);
            }
            // Recorded for later switches, then loaded now. No switch can come between the two:
            // a task in a system call is switched only at a preempt point, and there is none.
            scheduler::set_current_fs_base(address);
            arch::set_user_fs_base(address);
            Ok(0)
        }
        linux::ARCH_GET_FS => {
            let base = scheduler::current_fs_base();
            user_copy::copy_to_user(space, address, &base.to_le_bytes())?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
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
        log::info!("pid {pid}: Linux system call {number} ({name}) is not served: ENOSYS");
    }
}
