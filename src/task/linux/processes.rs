//! A Linux program's processes: `fork` (and `vfork`, served as a `fork`: the child gets its
//! own copy, which a `vfork` user cannot tell apart), `wait4` and `waitid` with Linux's status
//! encoding — an exit code in bits 8–15, or the signal that ended the process in bits 0–6; a
//! stop as `0x7f` with the signal in bits 8–15 (`WUNTRACED`), a continue as `0xffff`
//! (`WCONTINUED`) — and process groups and sessions (`setpgid`, `getpgid`, `setsid`, `getsid`).

#![forbid(unsafe_code)]

use crate::{
    abi,
    events::{Errno, SpaceId},
    mm::{space, user_copy},
    task::{
        Pid,
        process::{self, ForkOptions, Reaped, Reports, Waited},
        scheduler::SCHEDULER,
        syscalls::Served,
    },
};

/// `wait4` option: answer at once if no child has ended.
const WNOHANG: u64 = 1;
/// `WUNTRACED` (`WSTOPPED` to `waitid`): report a child stopped; `WCONTINUED`: one continued.
const WSTOPPED: u64 = 2;
const WCONTINUED: u64 = 8;
const KNOWN_OPTIONS: u64 = WNOHANG | WSTOPPED | WCONTINUED;
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

/// The `wait4` status word for a stop by `signal`.
const fn stop_status(signal: u8) -> u32 {
    (signal as u32) << 8 | 0x7f
}

/// The `wait4` status word for a continue.
const CONTINUED_STATUS: u32 = 0xffff;

/// Where a wait stands: a child's end, stop or continue to report, none yet (`WNOHANG`), or
/// blocked (the call runs again when a child changes).
enum Waiting {
    Ended(Pid, i32),
    Stopped(Pid, u8),
    Continued(Pid),
    NoneYet,
    Blocked,
}

/// Looks for a child of `caller` among `waited` with something `reports` asks for, blocking
/// unless `no_hang`.
fn wait_for(
    caller: Pid,
    waited: Waited,
    no_hang: bool,
    reports: Reports,
) -> Result<Waiting, Errno> {
    let reaped = if no_hang {
        process::reap_ended(caller, waited, reports)?
    } else {
        process::reap_or_block(caller, waited, reports)?
    };
    Ok(match reaped {
        Reaped::Child(child, code) => Waiting::Ended(child, code),
        Reaped::Stopped(child, signal) => Waiting::Stopped(child, signal),
        Reaped::Continued(child) => Waiting::Continued(child),
        Reaped::NotYet if no_hang => Waiting::NoneYet,
        // Blocked for a moment, until the ended child's CPU has left it: then it is reaped.
        Reaped::Leaving => Waiting::Blocked,
        // Blocked in the same lock hold that found no ended child.
        Reaped::NotYet => Waiting::Blocked,
    })
}

/// The process group of `caller`.
fn own_group(caller: Pid) -> Result<Pid, Errno> {
    SCHEDULER.lock().tasks.get(&caller).map(|task| task.group).ok_or(Errno::ESRCH)
}

/// `wait4(pid, status, options, rusage)`: `pid` > 0 that child, -1 any child, 0 any child in
/// the caller's process group, < -1 any child in group `-pid`.
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
    let waited = match target as i64 as i32 {
        -1 => Waited::Any,
        0 => Waited::Group(own_group(caller)?),
        pid if pid > 0 => Waited::Pid(pid as Pid),
        group => Waited::Group(group.checked_neg().ok_or(Errno::ECHILD)? as Pid),
    };
    // Checked before reaping, so a bad pointer does not lose the child's status.
    if status_out != 0 {
        space::check_user(space, status_out, 4, true)?;
    }
    if rusage != 0 {
        space::check_user(space, rusage, RUSAGE_BYTES as u64, true)?;
    }
    let reports = Reports {
        exited: true,
        stopped: options & WSTOPPED != 0,
        continued: options & WCONTINUED != 0,
        consume: true,
    };
    let (child, status) = match wait_for(caller, waited, options & WNOHANG != 0, reports)? {
        Waiting::Ended(child, code) => (child, wait_status(code)),
        Waiting::Stopped(child, signal) => (child, stop_status(signal)),
        Waiting::Continued(child) => (child, CONTINUED_STATUS),
        Waiting::NoneYet => return Ok(Served::Value(0)),
        Waiting::Blocked => return Ok(Served::Restart),
    };
    if status_out != 0 {
        user_copy::copy_to_user(space, status_out, &status.to_le_bytes())?;
    }
    if rusage != 0 {
        user_copy::copy_to_user(space, rusage, &[0; RUSAGE_BYTES])?;
    }
    Ok(Served::Value(u64::from(child)))
}

/// `waitid(idtype, id, infop, options, rusage)`: `P_ALL`, `P_PID` or `P_PGID` (id 0: the
/// caller's group); at least one of `WEXITED`, `WSTOPPED`, `WCONTINUED` says what to report;
/// `WNOWAIT` leaves the child waitable. The child is described in `infop`'s `siginfo_t`
/// (`CLD_EXITED` with its exit status, `CLD_KILLED` with the signal, `CLD_STOPPED` with the
/// stop signal, `CLD_CONTINUED` with `SIGCONT`); with `WNOHANG` and none to report, `si_pid`
/// is 0.
pub(super) fn waitid(
    id_type: u64,
    id: u64,
    info_out: u64,
    options: u64,
    rusage: u64,
    caller: Pid,
    space: SpaceId,
) -> Result<Served, Errno> {
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    const P_PGID: u64 = 2;
    const WEXITED: u64 = 4;
    const WNOWAIT: u64 = 0x0100_0000;
    const KNOWN: u64 = WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT;
    /// Bytes of `siginfo_t`, and where `si_pid`, `si_status` sit in it (x86-64).
    const SIGINFO_BYTES: usize = 128;
    const SI_PID: usize = 16;
    const SI_STATUS: usize = 24;
    const CLD_EXITED: i32 = 1;
    const CLD_KILLED: i32 = 2;
    const CLD_STOPPED: i32 = 5;
    const CLD_CONTINUED: i32 = 6;
    const SIGCONT: i32 = 18;
    if options & !KNOWN != 0 || options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    let id = Pid::try_from(id).map_err(|_| Errno::EINVAL)?;
    let waited = match id_type {
        P_ALL => Waited::Any,
        P_PID if id > 0 => Waited::Pid(id),
        P_PGID if id == 0 => Waited::Group(own_group(caller)?),
        P_PGID => Waited::Group(id),
        _ => return Err(Errno::EINVAL),
    };
    if info_out != 0 {
        space::check_user(space, info_out, SIGINFO_BYTES as u64, true)?;
    }
    if rusage != 0 {
        space::check_user(space, rusage, RUSAGE_BYTES as u64, true)?;
    }
    let reports = Reports {
        exited: options & WEXITED != 0,
        stopped: options & WSTOPPED != 0,
        continued: options & WCONTINUED != 0,
        consume: options & WNOWAIT == 0,
    };
    let reported = match wait_for(caller, waited, options & WNOHANG != 0, reports)? {
        Waiting::Ended(child, code) => match code.checked_sub(abi::SIGNALLED_EXIT_CODE_BASE) {
            Some(signal) if signal >= 0 => Some((child, CLD_KILLED, signal)),
            _ => Some((child, CLD_EXITED, code & 0xff)),
        },
        Waiting::Stopped(child, signal) => Some((child, CLD_STOPPED, i32::from(signal))),
        Waiting::Continued(child) => Some((child, CLD_CONTINUED, SIGCONT)),
        Waiting::NoneYet => None,
        Waiting::Blocked => return Ok(Served::Restart),
    };
    let mut info = [0u8; SIGINFO_BYTES];
    if let Some((child, how, status)) = reported {
        let mut put = |at: usize, value: i32| {
            info[at..at + 4].copy_from_slice(&value.to_le_bytes());
        };
        put(0, SIGCHLD as i32);
        put(8, how);
        put(SI_PID, child as i32);
        put(SI_STATUS, status);
    }
    if info_out != 0 {
        user_copy::copy_to_user(space, info_out, &info)?;
    }
    if rusage != 0 {
        user_copy::copy_to_user(space, rusage, &[0; RUSAGE_BYTES])?;
    }
    Ok(Served::Value(0))
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
