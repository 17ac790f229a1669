//! `policy-sandbox`: deny by default. Each program declares the system calls it needs
//! (OpenBSD's pledge, seccomp's allow-list); it may make those and no others. A Herald program
//! declares them in its executable (`.herald_syscalls`); a Linux program in a manifest beside
//! it, `NAME.syscalls`, listing Linux call names. A child never gets more than its parent had.
//! A Herald program declares the interrupt lines it may claim there too (`irq_claim` of any
//! other is refused, `EPERM`), as a user-space driver's manifest of its devices.
//! Ending (`exit`; for a Linux program also `exit_group`) is always allowed, so a process can
//! always end; a Linux program may also set up its thread (`arch_prctl`, `set_tid_address`),
//! which libc does before `main`. Without a manifest that is all a Linux program may do.
//!
//! A manifest may also name the paths its program may read, write and execute (`path rw /tmp`,
//! see `manifest`); then every file call is checked against them, and the program's children
//! and the programs it runs stay within them.

use alloc::{collections::BTreeMap, sync::Arc};

use spin::Mutex;

use super::{DeclaredCalls, PathAccess, PathRules, Policy, Processes, SpawnInfo};
use crate::{
    abi::{self, linux},
    events::{Errno, MemoryRequest},
    vocab::{LinuxCallSet, Pid},
};

const ALWAYS_ALLOWED: u64 = 1 << abi::SYS_EXIT;
/// What every Linux program may do: start (its libc sets up the thread) and end.
const LINUX_ALWAYS_ALLOWED: LinuxCallSet = LinuxCallSet::of(&[
    linux::ARCH_PRCTL,
    linux::SET_TID_ADDRESS,
    linux::EXIT,
    linux::EXIT_GROUP,
]);
/// The Linux calls that change memory: a program allowed one of them may have mm carry out
/// the memory requests they make (`mmap` with `MAP_FIXED` unmaps first, for one).
const LINUX_MEMORY_CALLS: [u64; 3] = [linux::MMAP, linux::MUNMAP, linux::MPROTECT];

/// A live process's allowed calls, in its program's numbering.
#[derive(Clone, Copy, Debug)]
enum Allowed {
    Herald(u64),
    Linux(LinuxCallSet),
}

/// What a program declaring `declared` may make, in a process that could make `ceiling` (`None`:
/// anything — the kernel's own children). A Linux allowance holds no Herald calls and a
/// Herald one no Linux calls, so crossing numberings leaves only starting and ending.
fn narrowed(declared: DeclaredCalls<'_>, ceiling: Option<Allowed>) -> Allowed {
    match declared {
        DeclaredCalls::Inherited => ceiling.unwrap_or(Allowed::Linux(LINUX_ALWAYS_ALLOWED)),
        DeclaredCalls::Herald(declared) => {
            let declared = declared.unwrap_or(0) | ALWAYS_ALLOWED;
            let ceiling = match ceiling {
                None => u64::MAX,
                Some(Allowed::Herald(calls)) => calls,
                Some(Allowed::Linux(_)) => ALWAYS_ALLOWED,
            };
            Allowed::Herald(declared & (ceiling | ALWAYS_ALLOWED))
        }
        DeclaredCalls::Linux(manifest) => {
            let declared = manifest
                .map(|manifest| manifest.calls)
                .unwrap_or_default()
                .union(&LINUX_ALWAYS_ALLOWED);
            let ceiling = match ceiling {
                None => declared,
                Some(Allowed::Linux(calls)) => calls,
                Some(Allowed::Herald(_)) => LinuxCallSet::default(),
            };
            Allowed::Linux(declared.intersection(&ceiling.union(&LINUX_ALWAYS_ALLOWED)))
        }
    }
}

/// The paths a program declaring `declared` may use in a process confined to `ceiling`.
fn narrowed_paths(
    declared: DeclaredCalls<'_>,
    ceiling: Option<&Arc<PathRules>>,
) -> Option<Arc<PathRules>> {
    let declared = match declared {
        DeclaredCalls::Linux(Some(manifest)) => manifest.paths.as_ref(),
        _ => None,
    };
    match (declared, ceiling) {
        (None, ceiling) => ceiling.cloned(),
        (declared, ceiling) => {
            PathRules::narrowed(declared, ceiling.map(|rules| &**rules)).map(Arc::new)
        }
    }
}

/// The sandbox's state: each live process's allowed calls, and the paths of those confined.
#[derive(Debug)]
pub struct Sandbox {
    allowed: Mutex<BTreeMap<Pid, Allowed>>,
    paths: Mutex<BTreeMap<Pid, Arc<PathRules>>>,
}

impl Sandbox {
    /// A policy with no processes yet.
    pub const fn new() -> Self {
        Self { allowed: Mutex::new(BTreeMap::new()), paths: Mutex::new(BTreeMap::new()) }
    }

    /// Records `pid`'s paths (`None`: not confined).
    fn set_paths(&self, pid: Pid, rules: Option<Arc<PathRules>>) {
        let mut paths = self.paths.lock();
        match rules {
            Some(rules) => paths.insert(pid, rules),
            None => paths.remove(&pid),
        };
    }

    fn allowed(&self, pid: Pid) -> Option<Allowed> {
        self.allowed.lock().get(&pid).copied()
    }

    fn allows(&self, pid: Pid, number: u64) -> Result<(), Errno> {
        let allowed = match self.allowed(pid) {
            Some(Allowed::Herald(calls)) => calls,
            _ => ALWAYS_ALLOWED,
        };
        // Only calls have bits below the declared lines'.
        let bit = if number < 32 { 1 << number } else { 0 };
        if allowed & bit != 0 { Ok(()) } else { Err(Errno::EPERM) }
    }

    /// Whether `pid` declared interrupt `line` (a line that does not exist passes: the owner
    /// answers `EINVAL`, whatever the policy).
    fn allows_line(&self, pid: Pid, line: u64) -> Result<(), Errno> {
        let bit = abi::declared_line(line);
        let declared = match self.allowed(pid) {
            Some(Allowed::Herald(declared)) => declared,
            _ => 0,
        };
        if bit == 0 || declared & bit != 0 { Ok(()) } else { Err(Errno::EPERM) }
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
        "deny by default: each program may make only the system calls it declares (in its \
         executable, or a Linux program's NAME.syscalls manifest) and claim only the interrupt \
         lines it declares"
    }

    fn on_spawn(&self, spawn: &SpawnInfo<'_>) {
        let mut allowed = self.allowed.lock();
        // The kernel's children get what they declare; a parent the policy does not know
        // (none should be) hands down nothing beyond starting and ending.
        let ceiling = (spawn.parent != 0).then(|| {
            allowed.get(&spawn.parent).copied().unwrap_or(Allowed::Linux(LINUX_ALWAYS_ALLOWED))
        });
        allowed.insert(spawn.child, narrowed(spawn.declared, ceiling));
        drop(allowed);
        let ceiling = self.paths.lock().get(&spawn.parent).cloned();
        self.set_paths(spawn.child, narrowed_paths(spawn.declared, ceiling.as_ref()));
    }

    /// The new program may make what it declares and the process could make already: an
    /// `execve` never widens a sandbox.
    fn on_exec(&self, pid: Pid, _program: &str, declared: DeclaredCalls<'_>) {
        let mut allowed = self.allowed.lock();
        if let Some(&had) = allowed.get(&pid) {
            allowed.insert(pid, narrowed(declared, Some(had)));
        }
        drop(allowed);
        let had = self.paths.lock().get(&pid).cloned();
        self.set_paths(pid, narrowed_paths(declared, had.as_ref()));
    }

    fn on_exit(&self, pid: Pid) {
        self.allowed.lock().remove(&pid);
        self.paths.lock().remove(&pid);
    }

    fn confines_paths(&self, pid: Pid) -> bool {
        self.paths.lock().contains_key(&pid)
    }

    fn check_path(&self, pid: Pid, path: &str, access: PathAccess) -> Result<(), Errno> {
        let rules = self.paths.lock().get(&pid).cloned();
        match rules {
            Some(rules) if !rules.allows(path, access) => Err(Errno::EACCES),
            _ => Ok(()),
        }
    }

    fn tracked_processes(&self) -> usize {
        self.allowed.lock().len()
    }

    fn check_linux_syscall(
        &self,
        pid: Pid,
        number: u64,
        _: &[u64; 6],
        _: &dyn Processes,
    ) -> Result<(), Errno> {
        let calls = match self.allowed(pid) {
            Some(Allowed::Linux(calls)) => calls,
            _ => LINUX_ALWAYS_ALLOWED,
        };
        if calls.contains(number) { Ok(()) } else { Err(Errno::EPERM) }
    }

    #[inline]
    fn check_syscall(
        &self,
        pid: Pid,
        number: u64,
        args: &[u64; 6],
        _: &dyn Processes,
    ) -> Result<(), Errno> {
        self.allows(pid, number)?;
        if number == abi::SYS_IRQ_CLAIM {
            return self.allows_line(pid, args[0]);
        }
        Ok(())
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
        if let Some(Allowed::Linux(calls)) = self.allowed(pid) {
            // The call that made the request passed its own check already; this one only
            // keeps out a program with no memory call at all (and sharing, which no Linux
            // call does).
            let may = !matches!(request, MemoryRequest::Share { .. })
                && LINUX_MEMORY_CALLS.iter().any(|&number| calls.contains(number));
            return if may { Ok(()) } else { Err(Errno::EPERM) };
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
    use crate::security::{LinuxManifest, tests::Table};

    fn spawn(policy: &Sandbox, parent: Pid, child: Pid, declared: Option<u64>) {
        policy.on_spawn(&SpawnInfo {
            parent,
            child,
            program: "p",
            declared: DeclaredCalls::Herald(declared),
            withheld_rights: 0,
        });
    }

    fn spawn_linux(policy: &Sandbox, parent: Pid, child: Pid, calls: Option<&LinuxCallSet>) {
        let manifest = calls.map(|&calls| LinuxManifest { calls, paths: None });
        spawn_declaring(policy, parent, child, manifest.as_ref());
    }

    fn spawn_declaring(
        policy: &Sandbox,
        parent: Pid,
        child: Pid,
        manifest: Option<&LinuxManifest>,
    ) {
        policy.on_spawn(&SpawnInfo {
            parent,
            child,
            program: "p",
            declared: DeclaredCalls::Linux(manifest),
            withheld_rights: 0,
        });
    }

    #[test_case]
    fn paths_confine_a_program_its_children_and_what_it_runs() {
        let policy = Sandbox::new();
        let parse = |text: &[u8]| LinuxManifest::parse(text).expect("a good manifest");
        let confined = parse(b"openat\npath r /etc\npath rw /tmp\n");
        let wide = parse(b"openat\npath rwx /\n");
        let plain = parse(b"openat\n");
        spawn_declaring(&policy, 0, 1, Some(&plain));
        assert!(!policy.confines_paths(1), "a manifest without paths leaves files alone");
        spawn_declaring(&policy, 0, 2, Some(&confined));
        assert!(policy.confines_paths(2));
        assert_eq!(policy.check_path(2, "/etc/motd", PathAccess::Read), Ok(()));
        assert_eq!(policy.check_path(2, "/etc/motd", PathAccess::Write), Err(Errno::EACCES));
        assert_eq!(policy.check_path(2, "/tmp/x", PathAccess::Write), Ok(()));
        assert_eq!(policy.check_path(2, "/bin/sh", PathAccess::Execute), Err(Errno::EACCES));
        spawn_declaring(&policy, 2, 3, Some(&wide));
        assert_eq!(
            policy.check_path(3, "/home/x", PathAccess::Read),
            Err(Errno::EACCES),
            "a child declaring everything still gets only its parent's paths"
        );
        spawn_declaring(&policy, 2, 4, Some(&plain));
        assert_eq!(policy.check_path(4, "/home/x", PathAccess::Read), Err(Errno::EACCES));
        policy.on_exec(2, "p", DeclaredCalls::Linux(Some(&plain)));
        assert_eq!(policy.check_path(2, "/home/x", PathAccess::Read), Err(Errno::EACCES));
        assert_eq!(policy.check_path(2, "/tmp/x", PathAccess::Write), Ok(()), "exec keeps paths");
        for pid in [1, 2, 3, 4] {
            policy.on_exit(pid);
        }
        assert_eq!(policy.tracked_processes(), 0);
        assert!(!policy.confines_paths(2));
    }

    #[test_case]
    fn a_linux_program_may_make_what_its_manifest_lists_and_start_and_end() {
        let policy = Sandbox::new();
        let table = Table::with(&[1, 2, 3]);
        let manifest = LinuxCallSet::of(&[linux::WRITEV, linux::MMAP]);
        spawn_linux(&policy, 0, 1, Some(&manifest));
        spawn_linux(&policy, 0, 2, None);
        spawn(&policy, 0, 3, Some(u64::MAX));
        spawn_linux(&policy, 3, 4, Some(&manifest));
        assert_eq!(policy.check_linux_syscall(1, linux::WRITEV, &[0; 6], &table), Ok(()));
        assert_eq!(policy.check_linux_syscall(1, linux::WRITE, &[0; 6], &table), Err(Errno::EPERM));
        assert_eq!(policy.check_linux_syscall(1, linux::EXIT_GROUP, &[0; 6], &table), Ok(()));
        assert_eq!(policy.check_linux_syscall(2, linux::ARCH_PRCTL, &[0; 6], &table), Ok(()));
        assert_eq!(policy.check_linux_syscall(2, linux::WRITEV, &[0; 6], &table), Err(Errno::EPERM));
        assert_eq!(
            policy.check_linux_syscall(4, linux::WRITEV, &[0; 6], &table),
            Err(Errno::EPERM),
            "a Herald parent has no Linux calls to hand down"
        );
        let unmap = MemoryRequest::Unmap { space: crate::events::SpaceId(9), address: 0, len_bytes: 0 };
        assert_eq!(policy.check_memory(1, &unmap, &table), Ok(()), "mmap may unmap (MAP_FIXED)");
        assert_eq!(policy.check_memory(2, &unmap, &table), Err(Errno::EPERM));
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

    #[test_case]
    fn a_driver_claims_only_the_lines_it_declares() {
        let policy = Sandbox::new();
        let table = Table::with(&[1, 2]);
        let claim = 1 << abi::SYS_IRQ_CLAIM | 1 << abi::SYS_SPAWN;
        spawn(&policy, 0, 1, Some(claim | abi::declared_line(3) | abi::declared_line(5)));
        spawn(&policy, 1, 2, Some(claim | abi::declared_line(3) | abi::declared_line(7)));
        let on_line = |line| [line, 0x2f8, 8, 0, 0, 0];
        let check = |pid, line| policy.check_syscall(pid, abi::SYS_IRQ_CLAIM, &on_line(line), &table);
        assert_eq!(check(1, 3), Ok(()));
        assert_eq!(check(1, 5), Ok(()));
        assert_eq!(check(1, 7), Err(Errno::EPERM), "not declared");
        assert_eq!(check(1, 17), Ok(()), "no such line: the kernel says EINVAL");
        assert_eq!(check(2, 3), Ok(()));
        assert_eq!(check(2, 7), Err(Errno::EPERM), "its parent could not claim line 7");
        assert_eq!(check(2, 5), Err(Errno::EPERM), "nor did it declare line 5");
        // A line bit is no call: call 35 is not line 3's declaration.
        assert_eq!(policy.check_syscall(1, 35, &[0; 6], &table), Err(Errno::EPERM));
    }
}
