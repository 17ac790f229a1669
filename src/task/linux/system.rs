//! A Linux program's questions about the system and itself — `uname`, resource limits,
//! randomness — and the per-thread set-up calls (`arch_prctl`, futexes, the robust list).

#![forbid(unsafe_code)]

use super::time;
use crate::{
    abi::linux,
    arch::{self, paging},
    events::{Errno, SpaceId},
    mm::{self, user_copy},
    task::{Pid, image, scheduler, start_stack, syscalls},
};

/// Bytes of each `struct utsname` field.
const UTSNAME_FIELD_BYTES: usize = 65;
/// What `uname` reports: the system, the node, the release (the Linux interface level Herald
/// follows, then Herald's own version: a libc that checks for a minimum kernel, as glibc does
/// for 3.2, reads the first part), the build, the machine, the domain.
const UTSNAME: [&str; 6] = [
    "Herald",
    "herald",
    concat!("6.1.0-herald-", env!("CARGO_PKG_VERSION")),
    "#1 SMP",
    "x86_64",
    "(none)",
];
/// Bytes of `struct robust_list_head` (what `set_robust_list` must be told).
const ROBUST_LIST_HEAD_BYTES: u64 = 24;

/// `uname(buf)`.
pub(super) fn uname(out: u64, space: SpaceId) -> Result<u64, Errno> {
    let mut utsname = [0u8; UTSNAME_FIELD_BYTES * UTSNAME.len()];
    for (field, text) in utsname.as_chunks_mut::<UTSNAME_FIELD_BYTES>().0.iter_mut().zip(UTSNAME) {
        field[..text.len()].copy_from_slice(text.as_bytes());
    }
    user_copy::copy_to_user(space, out, &utsname)?;
    Ok(0)
}

/// The (soft = hard) limit on `resource`, each one Herald enforces.
fn limit(resource: u64) -> Result<u64, Errno> {
    Ok(match resource {
        linux::RLIMIT_STACK => image::USER_STACK_SIZE_BYTES,
        linux::RLIMIT_NOFILE => super::files::MAX_DESCRIPTORS as u64,
        linux::RLIMIT_AS => mm::user_memory_bytes(),
        // RLIMIT_NPROC: processes at once.
        6 => scheduler::MAX_PROCESSES as u64,
        // RLIMIT_CORE: no core dumps.
        4 => 0,
        0..linux::RLIMIT_COUNT => linux::RLIM_INFINITY,
        _ => return Err(Errno::EINVAL),
    })
}

/// `prlimit64(pid, resource, new, old)` (and `getrlimit`): every process has the same fixed
/// limits; setting one is refused with `EPERM`.
pub(super) fn prlimit64(
    pid: u64,
    resource: u64,
    new: u64,
    old: u64,
    caller: Pid,
    space: SpaceId,
) -> Result<u64, Errno> {
    let limit = limit(resource)?;
    let target = Pid::try_from(pid).map_err(|_| Errno::ESRCH)?;
    if target != 0 && target != caller && !scheduler::is_alive(target) {
        return Err(Errno::ESRCH);
    }
    if new != 0 {
        return Err(Errno::EPERM);
    }
    if old != 0 {
        let mut rlimit = [0u8; 16];
        rlimit[..8].copy_from_slice(&limit.to_le_bytes());
        rlimit[8..].copy_from_slice(&limit.to_le_bytes());
        user_copy::copy_to_user(space, old, &rlimit)?;
    }
    Ok(0)
}

/// `getrandom(buf, len, flags)`: a time-stamp counter reading, stirred
/// (`start_stack::stir`) — varied, not secret (there is no entropy source yet). At most a page
/// per call, as a short count.
pub(super) fn getrandom(buffer: u64, len: u64, space: SpaceId) -> Result<u64, Errno> {
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
pub(super) fn arch_prctl(code: u64, address: u64, space: SpaceId) -> Result<u64, Errno> {
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

/// `futex(uaddr, op, val, timeout, ...)`: `FUTEX_WAIT` and `FUTEX_WAKE`, private or not. A
/// process has one thread, so no other thread can wake a waiter: a wait whose word still holds
/// `val` sleeps until its timeout (`ETIMEDOUT`), or with none until the process is killed — as
/// on Linux, where nothing would wake it either. A wake finds no waiters and answers 0.
pub(super) fn futex(args: &[u64; 6], space: SpaceId) -> Result<u64, Errno> {
    let [address, op, value, timeout, ..] = *args;
    if !address.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    match op & !(linux::FUTEX_PRIVATE_FLAG | linux::FUTEX_CLOCK_REALTIME) {
        linux::FUTEX_WAIT => {
            let mut word = [0u8; 4];
            user_copy::copy_from_user(space, address, &mut word)?;
            if u64::from(u32::from_le_bytes(word)) != value & u64::from(u32::MAX) {
                return Err(Errno::EAGAIN);
            }
            if timeout == 0 {
                syscalls::sleep_until(u64::MAX);
                return Ok(0);
            }
            let duration_ms = time::read_timespec_ms(timeout, space)?;
            syscalls::sleep_until(arch::milliseconds().saturating_add(duration_ms));
            Err(Errno::ETIMEDOUT)
        }
        linux::FUTEX_WAKE => {
            // The word must be the caller's, as Linux checks.
            mm::space::check_user(space, address, 4, false)?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `set_robust_list(head, len)`: accepted (with one thread there is nothing to clean up after
/// a thread's death); `len` must be the header's size, as Linux checks.
pub(super) fn set_robust_list(len: u64) -> Result<u64, Errno> {
    if len == ROBUST_LIST_HEAD_BYTES { Ok(0) } else { Err(Errno::EINVAL) }
}

/// `prctl` options served (`uapi/linux/prctl.h`).
const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_DUMPABLE: u64 = 4;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
/// A thread name's bytes, its terminating zero included (`TASK_COMM_LEN`).
const TASK_NAME_BYTES: usize = 16;

/// `prctl(option, ...)`: the process's name (`PR_SET_NAME`/`PR_GET_NAME`, what `ps` shows);
/// dumpable (always, and setting it changes nothing: there are no core dumps); a parent-death
/// signal is accepted and never sent. Other options: `EINVAL`.
pub(super) fn prctl(option: u64, argument: u64, space: SpaceId) -> Result<u64, Errno> {
    match option {
        PR_SET_NAME => {
            // Linux keeps the first 15 bytes, whatever follows: read no further than those.
            let mut name = alloc::vec::Vec::new();
            for at in 0..TASK_NAME_BYTES as u64 - 1 {
                let mut byte = [0u8];
                user_copy::copy_from_user(space, argument.wrapping_add(at), &mut byte)?;
                if byte[0] == 0 {
                    break;
                }
                name.push(byte[0]);
            }
            scheduler::set_current_name(&alloc::string::String::from_utf8_lossy(&name));
            Ok(0)
        }
        PR_GET_NAME => {
            let mut bytes = [0u8; TASK_NAME_BYTES];
            let name = scheduler::current_name();
            let len = name.len().min(TASK_NAME_BYTES - 1);
            bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
            user_copy::copy_to_user(space, argument, &bytes)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE if argument <= 1 => Ok(0),
        PR_SET_PDEATHSIG if argument <= linux::SIGNAL_COUNT => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// Bytes of `struct sysinfo` on x86-64, and its fields' offsets.
const SYSINFO_BYTES: usize = 112;
const SYSINFO_TOTALRAM: usize = 32;
const SYSINFO_FREERAM: usize = 40;
const SYSINFO_PROCS: usize = 80;
const SYSINFO_MEM_UNIT: usize = 104;

/// `sysinfo(info)`: uptime, memory (total and free frames, in bytes: `mem_unit` 1), the number
/// of processes; no load averages (0), no swap, no shared or buffer memory.
pub(super) fn sysinfo(out: u64, space: SpaceId) -> Result<u64, Errno> {
    let stats = mm::frame_stats();
    let frame_bytes = mm::FRAME_SIZE_BYTES;
    let mut info = [0u8; SYSINFO_BYTES];
    let mut put = |at: usize, value: u64| info[at..at + 8].copy_from_slice(&value.to_le_bytes());
    put(0, arch::milliseconds() / 1000);
    put(SYSINFO_TOTALRAM, stats.total as u64 * frame_bytes);
    put(SYSINFO_FREERAM, stats.free as u64 * frame_bytes);
    let processes = u16::try_from(scheduler::process_count()).unwrap_or(u16::MAX);
    info[SYSINFO_PROCS..SYSINFO_PROCS + 2].copy_from_slice(&processes.to_le_bytes());
    info[SYSINFO_MEM_UNIT..SYSINFO_MEM_UNIT + 4].copy_from_slice(&1u32.to_le_bytes());
    user_copy::copy_to_user(space, out, &info)?;
    Ok(0)
}
