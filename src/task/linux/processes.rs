//! A Linux program's processes: `fork` (and `vfork`, served as a `fork`: the child gets its
//! own copy, which a `vfork` user cannot tell apart), and `wait4` with Linux's status
//! encoding — an exit code in bits 8–15, or the signal that ended the process in bits 0–6.
//! Herald's own end codes map to the signal Linux would have sent: a kill to `SIGKILL`, a
//! fault to `SIGSEGV`, `SIGILL` or `SIGFPE`.

#![forbid(unsafe_code)]

use crate::{
    abi,
    events::{Errno, SpaceId},
    mm::{space, user_copy},
    task::{
        Pid,
        process::{self, Reaped},
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
/// Signals (`asm/signal.h`) a Herald end code stands for.
const SIGILL: i32 = 4;
const SIGFPE: i32 = 8;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;
/// CPU exception vectors (SDM Vol. 3A §6.15) and the signal each is on Linux.
const FAULT_SIGNALS: [(i32, i32); 6] =
    [(0, SIGFPE), (6, SIGILL), (13, SIGSEGV), (14, SIGSEGV), (16, SIGFPE), (19, SIGFPE)];

/// `fork()`.
pub(super) fn fork() -> Result<u64, Errno> {
    process::fork_current().map(u64::from)
}

/// The `wait4` status word for a Herald end code.
pub(super) fn wait_status(code: i32) -> u32 {
    let signal = match code {
        abi::KILLED_EXIT_CODE => Some(SIGKILL),
        _ => code
            .checked_sub(abi::FAULT_EXIT_CODE_BASE)
            .and_then(|vector| FAULT_SIGNALS.iter().find(|(known, _)| *known == vector))
            .map(|(_, signal)| *signal),
    };
    match signal {
        Some(signal) => signal as u32,
        None => ((code as u32) & 0xff) << 8,
    }
}

/// `wait4(pid, status, options, rusage)`: `pid` > 0 that child, -1 (or any other value: there
/// are no process groups yet) any child.
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
