//! A Linux program's processes: `fork` (and `vfork`, served as a `fork`: the child gets its
//! own copy, which a `vfork` user cannot tell apart), `wait4` with Linux's status encoding —
//! an exit code in bits 8–15, or the signal that ended the process in bits 0–6 — and process
//! groups and sessions (`setpgid`, `getpgid`, `setsid`, `getsid`).

#![forbid(unsafe_code)]

use crate::{
    abi,
    events::{Errno, SpaceId},
    mm::{space, user_copy},
    task::{
        Pid,
        process::{self, ForkOptions, Reaped},
        scheduler::SCHEDULER,
        syscalls::Served,
    },
};

/// `wait4` option: answer at once if no child has ended.
const WNOHANG: u64 = 1;
/// Options Herald accepts (`WUNTRACED`/`WCONTINUED` mean nothing without stop signals; they
/// are accepted and change nothing).
const KNOWN_OPTIONS: u64 = WNOHANG | 2 | 8;
/// The exit signal `clone` may ask for.
const SIGCHLD: u64 = 17;
/// Bytes of `struct rusage`, zero-filled (no usage accounting yet).
const RUSAGE_BYTES: usize = 144;

/// `clone` flags (`uapi/linux/sched.h`).
const CSIGNAL: u64 = 0xff;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;

/// `fork()`, and `vfork()`: the parent waits until the child execs or ends.
pub(super) fn fork(vfork: bool) -> Result<u64, Errno> {
    process::fork_current(&ForkOptions { vfork, ..ForkOptions::default() }).map(u64::from)
}

/// `clone(flags, stack, parent_tid, child_tid, tls)` for a new process: what glibc's `fork`
/// (`CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID`) and musl's `posix_spawn` (`CLONE_VM |
/// CLONE_VFORK` on a stack of its own) ask. A `CLONE_VM` child gets a copy-on-write copy
/// rather than the parent's memory itself — which a `vfork`-style child, whose parent waits
/// until it execs or ends, cannot tell apart — so `CLONE_VM` is taken only with
/// `CLONE_VFORK`. Threads (`CLONE_THREAD`, or `CLONE_VM` alone) are not served: `ENOSYS`, as
/// are shared descriptor tables, working directories or signal actions (`EINVAL`).
/// The exit signal (the low byte) must be `SIGCHLD` or none; the parent is told with
/// `SIGCHLD` either way.
pub(super) fn clone(
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
) -> Result<u64, Errno> {
    if flags & CLONE_THREAD != 0 || (flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0) {
        log::debug!("clone with flags {flags:#x}: threads are not served");
        return Err(Errno::ENOSYS);
    }
    let known = CSIGNAL
        | CLONE_VM
        | CLONE_VFORK
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID
        | CLONE_CHILD_SETTID;
    if flags & (CLONE_FS | CLONE_FILES | CLONE_SIGHAND) != 0 || flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    if !matches!(flags & CSIGNAL, 0 | SIGCHLD) {
        return Err(Errno::EINVAL);
    }
    let options = ForkOptions {
        stack: (stack != 0).then_some(stack),
        tls: (flags & CLONE_SETTLS != 0).then_some(tls),
        child_tid_at: (flags & CLONE_CHILD_SETTID != 0).then_some(child_tid),
        parent_tid_at: (flags & CLONE_PARENT_SETTID != 0).then_some(parent_tid),
        vfork: flags & CLONE_VFORK != 0,
    };
    process::fork_current(&options).map(u64::from)
}

/// The `wait4` status word for an end code: an exit status in bits 8–15, or the signal that
/// ended the process in bits 0–6.
pub(super) fn wait_status(code: i32) -> u32 {
    match code.checked_sub(abi::SIGNALLED_EXIT_CODE_BASE) {
        Some(signal) if signal >= 0 => (signal as u32) & 0x7f,
        _ => ((code as u32) & 0xff) << 8,
    }
}

/// `wait4(pid, status, options, rusage)`: `pid` > 0 that child, -1 any child, 0 or < -1 any
/// child (its group is not looked at yet).
pub(super) fn wait4(
    target: u64,
    status_out: u64,
    options: u64,
    rusage: u64,
    caller: Pid,
    space: SpaceId,
) -> Result<Served, Errno> {
    if options & !KNOWN_OPTIONS != 0 {
        return Err(Errno::EINVAL);
    }
    let target = match target as i64 as i32 {
        pid if pid > 0 => pid as Pid,
        _ => 0,
    };
    // Checked before reaping, so a bad pointer does not lose the child's status.
    if status_out != 0 {
        space::check_user(space, status_out, 4, true)?;
    }
    if rusage != 0 {
        space::check_user(space, rusage, RUSAGE_BYTES as u64, true)?;
    }
    let reaped = if options & WNOHANG != 0 {
        process::reap_ended(caller, target)?
    } else {
        process::reap_or_block(caller, target)?
    };
    match reaped {
        Reaped::Child(child, code) => {
            if status_out != 0 {
                user_copy::copy_to_user(space, status_out, &wait_status(code).to_le_bytes())?;
            }
            if rusage != 0 {
                user_copy::copy_to_user(space, rusage, &[0; RUSAGE_BYTES])?;
            }
            Ok(Served::Value(u64::from(child)))
        }
        Reaped::NotYet if options & WNOHANG != 0 => Ok(Served::Value(0)),
        // Blocked for a moment, until the ended child's CPU has left it: then it is reaped.
        Reaped::Leaving => Ok(Served::Restart),
        // Blocked in the same lock hold that found no ended child: the call runs again when
        // one ends.
        Reaped::NotYet => Ok(Served::Restart),
    }
}

/// `getpgid(pid)` (and `getpgrp`, `pid` 0): the process's group.
pub(super) fn getpgid(target: u64, caller: Pid) -> Result<u64, Errno> {
    let target =
        if target == 0 { caller } else { Pid::try_from(target).map_err(|_| Errno::ESRCH)? };
    let scheduler = SCHEDULER.lock();
    let task = scheduler.tasks.get(&target).ok_or(Errno::ESRCH)?;
    Ok(u64::from(task.group))
}

/// `getsid(pid)`: the process's session.
pub(super) fn getsid(target: u64, caller: Pid) -> Result<u64, Errno> {
    let target =
        if target == 0 { caller } else { Pid::try_from(target).map_err(|_| Errno::ESRCH)? };
    let scheduler = SCHEDULER.lock();
    let task = scheduler.tasks.get(&target).ok_or(Errno::ESRCH)?;
    Ok(u64::from(task.session))
}

/// `setpgid(pid, pgid)`: moves the caller or one of its children (0: the caller) into group
/// `pgid` (0: its own id, a new group it leads) of the same session. POSIX's refusals: not
/// the caller or its child `ESRCH`; a session leader, another session or a group that does
/// not exist there `EPERM`.
pub(super) fn setpgid(target: u64, group: u64, caller: Pid) -> Result<u64, Errno> {
    let target =
        if target == 0 { caller } else { Pid::try_from(target).map_err(|_| Errno::ESRCH)? };
    let group = match i64::try_from(group) {
        Ok(0) => target,
        Ok(group) if group > 0 => Pid::try_from(group).map_err(|_| Errno::EPERM)?,
        _ => return Err(Errno::EINVAL),
    };
    let mut scheduler = SCHEDULER.lock();
    let session = scheduler.tasks.get(&caller).ok_or(Errno::ESRCH)?.session;
    let task = scheduler.tasks.get(&target).ok_or(Errno::ESRCH)?;
    if target != caller && task.parent != caller {
        return Err(Errno::ESRCH);
    }
    if task.session != session || task.session == target {
        return Err(Errno::EPERM);
    }
    let exists = group == target
        || scheduler.tasks.values().any(|other| other.group == group && other.session == session);
    if !exists {
        return Err(Errno::EPERM);
    }
    if let Some(task) = scheduler.tasks.get_mut(&target) {
        task.group = group;
    }
    Ok(0)
}

/// `setsid()`: the caller leads a new session and group, unless it leads a group already
/// (`EPERM`).
pub(super) fn setsid(caller: Pid) -> Result<u64, Errno> {
    let mut scheduler = SCHEDULER.lock();
    let leads_group = scheduler.tasks.values().any(|task| task.group == caller);
    let task = scheduler.tasks.get_mut(&caller).ok_or(Errno::ESRCH)?;
    if leads_group {
        return Err(Errno::EPERM);
    }
    task.group = caller;
    task.session = caller;
    Ok(u64::from(caller))
}
