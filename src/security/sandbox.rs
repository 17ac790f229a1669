//! `policy-sandbox`: deny by default. Each program declares, in its executable, the system
//! calls it needs (OpenBSD's pledge, seccomp's allow-list); it may make those and no others.
//! A child never gets more than its parent had. `exit` is always allowed, so a process can
//! always end.

use alloc::collections::BTreeMap;

use spin::Mutex;

use super::{Policy, Processes, SpawnInfo};
use crate::{
    abi,
    events::{Errno, MemoryRequest},
    vocab::Pid,
};

const ALWAYS_ALLOWED: u64 = 1 << abi::SYS_EXIT;

/// The sandbox's state: each live process's allowed calls.
#[derive(Debug)]
pub struct Sandbox {
    allowed: Mutex<BTreeMap<Pid, u64>>,
}

impl Sandbox {
    /// A policy with no processes yet.
    pub const fn new() -> Self {
        Self { allowed: Mutex::new(BTreeMap::new()) }
    }

    fn allows(&self, pid: Pid, number: u64) -> Result<(), Errno> {
        let allowed = self.allowed.lock().get(&pid).copied().unwrap_or(ALWAYS_ALLOWED);
        let bit = 1u64.checked_shl(number as u32).unwrap_or(0);
        if allowed & bit != 0 { Ok(()) } else { Err(Errno::EPERM) }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn summary(&self) -> &'static str {
        "deny by default: each program may make only the system calls its executable declares"
    }

    fn on_spawn(&self, spawn: &SpawnInfo<'_>) {
        let mut allowed = self.allowed.lock();
        let declared = spawn.declared_syscalls.unwrap_or(0) | ALWAYS_ALLOWED;
        let ceiling = if spawn.parent == 0 {
            u64::MAX
        } else {
            allowed.get(&spawn.parent).copied().unwrap_or(ALWAYS_ALLOWED)
        };
        allowed.insert(spawn.child, declared & (ceiling | ALWAYS_ALLOWED));
    }

    fn on_exit(&self, pid: Pid) {
        self.allowed.lock().remove(&pid);
    }

    fn tracked_processes(&self) -> usize {
        self.allowed.lock().len()
    }

    fn check_linux_syscall(&self, _pid: Pid, number: u64) -> Result<(), Errno> {
        // A Linux program declares nothing (no `.herald_syscalls`; a manifest beside it is
        // still to come): it may set up its own thread (libc's start needs its thread pointer)
        // and end, nothing more.
        use crate::abi::linux;
        match number {
            linux::ARCH_PRCTL | linux::SET_TID_ADDRESS | linux::EXIT | linux::EXIT_GROUP => Ok(()),
            _ => Err(Errno::EPERM),
        }
    }

    #[inline]
    fn check_syscall(
        &self,
        pid: Pid,
        number: u64,
        _: &[u64; 6],
        _: &dyn Processes,
    ) -> Result<(), Errno> {
        self.allows(pid, number)
    }

    fn check_memory(
        &self,
        pid: Pid,
        request: &MemoryRequest,
        _: &dyn Processes,
    ) -> Result<(), Errno> {
        if pid == 0 {
            return Ok(());
        }
        let number = match request {
            MemoryRequest::Map { .. } => abi::SYS_MAP,
            MemoryRequest::Unmap { .. } => abi::SYS_UNMAP,
            MemoryRequest::Protect { .. } => abi::SYS_PROTECT,
            MemoryRequest::Share { .. } => abi::SYS_SHARE,
        };
        self.allows(pid, number)
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::*;
    use crate::security::tests::Table;

    fn spawn(policy: &Sandbox, parent: Pid, child: Pid, declared: Option<u64>) {
        policy.on_spawn(&SpawnInfo {
            parent,
            child,
            program: "p",
            declared_syscalls: declared,
            withheld_rights: 0,
        });
    }

    #[test_case]
    fn only_declared_calls_pass_and_children_never_gain() {
        let policy = Sandbox::new();
        let table = Table::with(&[1, 2, 3]);
        spawn(&policy, 0, 1, Some(1 << abi::SYS_WRITE | 1 << abi::SYS_SPAWN));
        spawn(&policy, 1, 2, Some(1 << abi::SYS_WRITE | 1 << abi::SYS_KILL));
        spawn(&policy, 0, 3, None);
        assert_eq!(policy.check_syscall(1, abi::SYS_WRITE, &[0; 6], &table), Ok(()));
        assert_eq!(policy.check_syscall(1, abi::SYS_GETPID, &[0; 6], &table), Err(Errno::EPERM));
        assert_eq!(
            policy.check_syscall(2, abi::SYS_KILL, &[0; 6], &table),
            Err(Errno::EPERM),
            "the parent could not kill, so neither can its child"
        );
        assert_eq!(policy.check_syscall(2, abi::SYS_WRITE, &[0; 6], &table), Ok(()));
        assert_eq!(policy.check_syscall(3, abi::SYS_WRITE, &[0; 6], &table), Err(Errno::EPERM));
        for pid in [1, 2, 3] {
            assert_eq!(policy.check_syscall(pid, abi::SYS_EXIT, &[0; 6], &table), Ok(()));
        }
        assert_eq!(policy.check_syscall(1, 200, &[0; 6], &table), Err(Errno::EPERM));
    }
}
