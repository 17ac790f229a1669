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
        process::{self, Reaped},
        scheduler::SCHEDULER,
        syscalls::Served,
    },
};

/// `wait4` option: answer at once if no child has ended.
const WNOHANG: u64 = 1;
/// Options Herald accepts (`WUNTRACED`/`WCONTINUED` mean nothing without stop signals; they
/// are accepted and change nothing).
const KNOWN_OPTIONS: u64 = WNOHANG | 2 | 8;
/// Bytes of `struct rusage`, zero-filled (no usage accounting yet).
const RUSAGE_BYTES: usize = 144;

/// `fork()`.
pub(super) fn fork() -> Result<u64, Errno> {
    process::fork_current().map(u64::from)
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
        process::reap(caller, target)?
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
