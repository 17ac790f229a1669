//! `policy-capability` (the default): each process holds a set of rights and capabilities over
//! other processes. A child inherits its parent's rights, minus any the parent withholds at
//! spawn, and its parent gains a capability over it. Ending another process or mapping memory
//! into it needs the matching right *and* a capability over that process — so a parent may
//! manage its children, and nobody may touch a stranger.

use alloc::collections::{BTreeMap, BTreeSet};

use spin::Mutex;

use super::{Policy, Processes, SpawnInfo};
use crate::{
    abi,
    events::{Errno, MemoryRequest},
    vocab::Pid,
};

/// What one process may do.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
struct Holdings {
    /// `abi::RIGHT_*` bits.
    rights: u64,
    /// Processes it holds a capability over.
    over: BTreeSet<Pid>,
}

/// The capability policy's state: holdings per live process. The kernel (pid 0) holds
/// everything and is never checked.
#[derive(Debug)]
pub struct Capability {
    holdings: Mutex<BTreeMap<Pid, Holdings>>,
}

impl Capability {
    /// A policy with no processes yet.
    pub const fn new() -> Self {
        Self { holdings: Mutex::new(BTreeMap::new()) }
    }

    /// Whether `pid` holds `right` and a capability over `target`.
    fn may(&self, pid: Pid, right: u64, target: Pid) -> bool {
        self.holdings
            .lock()
            .get(&pid)
            .is_some_and(|held| held.rights & right != 0 && held.over.contains(&target))
    }

    fn has_right(&self, pid: Pid, right: u64) -> bool {
        self.holdings.lock().get(&pid).is_some_and(|held| held.rights & right != 0)
    }

    /// Checks an action by `pid` on process `target`: on itself always allowed; on a process
    /// that does not exist, left to the owner (which answers `ESRCH`).
    fn on_process(
        &self,
        pid: Pid,
        right: u64,
        target: u64,
        processes: &dyn Processes,
    ) -> Result<(), Errno> {
        let Ok(target) = Pid::try_from(target) else { return Ok(()) };
        if target == pid || (target != 0 && !processes.exists(target)) {
            return Ok(());
        }
        if self.may(pid, right, target) { Ok(()) } else { Err(Errno::EPERM) }
    }
}

/// What a call needs under this policy.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Rule {
    /// Acts only on the caller itself: always allowed.
    Open,
    /// Needs this right.
    Needs(u64),
    /// Needs this right and a capability over the process named by argument `argument`.
    OnProcess { right: u64, argument: usize },
}

/// The rule for every call the policy knows; `None` for the rest, which are denied.
const fn rule(number: u64) -> Option<Rule> {
    Some(match number {
        abi::SYS_READ
        | abi::SYS_WRITE
        | abi::SYS_EXIT
        | abi::SYS_GETPID
        | abi::SYS_YIELD
        | abi::SYS_SLEEP
        | abi::SYS_WAIT
        | abi::SYS_MAP
        | abi::SYS_UNMAP
        | abi::SYS_PROTECT
        | abi::SYS_POLL
        | abi::SYS_UPTIME => Rule::Open,
        abi::SYS_SPAWN => Rule::Needs(abi::RIGHT_SPAWN),
        abi::SYS_SUBSCRIBE | abi::SYS_RAISE => Rule::Needs(abi::RIGHT_EVENTS),
        abi::SYS_KILL => Rule::OnProcess { right: abi::RIGHT_KILL, argument: 0 },
        abi::SYS_SHARE => Rule::OnProcess { right: abi::RIGHT_SHARE, argument: 2 },
        _ => return None,
    })
}

impl Default for Capability {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy for Capability {
    fn name(&self) -> &'static str {
        "capability"
    }

    fn summary(&self) -> &'static str {
        "rights inherited or narrowed at spawn; acting on another process needs a capability over it"
    }

    fn on_spawn(&self, spawn: &SpawnInfo<'_>) {
        let mut holdings = self.holdings.lock();
        let inherited = if spawn.parent == 0 {
            abi::ALL_RIGHTS
        } else {
            holdings.get(&spawn.parent).map_or(0, |parent| parent.rights)
        };
        let rights = inherited & !spawn.withheld_rights;
        holdings.insert(spawn.child, Holdings { rights, over: BTreeSet::new() });
        if let Some(parent) = holdings.get_mut(&spawn.parent) {
            parent.over.insert(spawn.child);
        }
    }

    fn on_exit(&self, pid: Pid) {
        let mut holdings = self.holdings.lock();
        holdings.remove(&pid);
        for held in holdings.values_mut() {
            held.over.remove(&pid);
        }
    }

    fn tracked_processes(&self) -> usize {
        self.holdings.lock().len()
    }

    fn check_linux_syscall(&self, _pid: Pid, _number: u64) -> Result<(), Errno> {
        // Every Linux call Herald serves acts on the caller alone (its output, its own state):
        // no right is involved yet. Calls on other processes will need theirs, as Herald's do.
        Ok(())
    }

    #[inline]
    fn check_syscall(
        &self,
        pid: Pid,
        number: u64,
        args: &[u64; 6],
        processes: &dyn Processes,
    ) -> Result<(), Errno> {
        let needs = |right| if self.has_right(pid, right) { Ok(()) } else { Err(Errno::EPERM) };
        match rule(number) {
            Some(Rule::Open) => Ok(()),
            Some(Rule::Needs(right)) => needs(right),
            Some(Rule::OnProcess { right, argument }) => {
                self.on_process(pid, right, args[argument], processes)
            }
            // Not a call at all: the owner answers ENOSYS, and a fuzzer's noise is no denial.
            None if number >= abi::SYSCALL_COUNT => Ok(()),
            // A call this policy has not been told about stays closed until it is.
            None => Err(Errno::EPERM),
        }
    }

    fn check_memory(
        &self,
        pid: Pid,
        request: &MemoryRequest,
        processes: &dyn Processes,
    ) -> Result<(), Errno> {
        if pid == 0 {
            return Ok(());
        }
        if let MemoryRequest::Share { from, .. } = request
            && processes.owner_of(*from).is_some_and(|owner| owner != pid)
        {
            // Taking memory *from* someone else is never a parent's right here.
            return Err(Errno::EPERM);
        }
        match processes.owner_of(request.target()) {
            Some(owner) if owner != pid => {
                self.on_process(pid, abi::RIGHT_SHARE, u64::from(owner), processes)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::*;
    use crate::{events::SpaceId, security::tests::Table};

    fn spawn(policy: &Capability, parent: Pid, child: Pid, withheld: u64) {
        policy.on_spawn(&SpawnInfo {
            parent,
            child,
            program: "p",
            declared: crate::security::DeclaredCalls::Herald(None),
            withheld_rights: withheld,
        });
    }

    #[test_case]
    fn a_parent_may_kill_and_share_into_its_child_but_not_a_stranger() {
        let policy = Capability::new();
        let table = Table::with(&[1, 2, 3]);
        spawn(&policy, 0, 1, 0);
        spawn(&policy, 1, 2, 0);
        spawn(&policy, 0, 3, 0);
        assert_eq!(policy.check_syscall(1, abi::SYS_KILL, &[2, 0, 0, 0, 0, 0], &table), Ok(()));
        assert_eq!(
            policy.check_syscall(1, abi::SYS_KILL, &[3, 0, 0, 0, 0, 0], &table),
            Err(Errno::EPERM)
        );
        assert_eq!(
            policy.check_syscall(2, abi::SYS_KILL, &[1, 0, 0, 0, 0, 0], &table),
            Err(Errno::EPERM),
            "a child holds nothing over its parent"
        );
        assert_eq!(policy.check_syscall(1, abi::SYS_SHARE, &[0, 0, 2, 0, 0, 0], &table), Ok(()));
        assert_eq!(
            policy.check_syscall(1, abi::SYS_SHARE, &[0, 0, 3, 0, 0, 0], &table),
            Err(Errno::EPERM)
        );
        assert_eq!(
            policy.check_syscall(1, abi::SYS_KILL, &[99, 0, 0, 0, 0, 0], &table),
            Ok(()),
            "no such process: the owner answers ESRCH"
        );
        let into_stranger = MemoryRequest::Share {
            from: SpaceId(1),
            from_address: 0,
            len_bytes: 4096,
            into: SpaceId(3),
            into_address: 0,
            protection: crate::events::Protection::READ,
        };
        assert_eq!(policy.check_memory(1, &into_stranger, &table), Err(Errno::EPERM));
        assert_eq!(policy.check_memory(0, &into_stranger, &table), Ok(()), "the kernel may");
    }

    #[test_case]
    fn withheld_rights_are_gone_for_good() {
        let policy = Capability::new();
        let table = Table::with(&[1, 2, 3]);
        spawn(&policy, 0, 1, abi::RIGHT_SPAWN | abi::RIGHT_EVENTS);
        spawn(&policy, 1, 2, 0);
        for pid in [1, 2] {
            assert_eq!(
                policy.check_syscall(pid, abi::SYS_SPAWN, &[0; 6], &table),
                Err(Errno::EPERM)
            );
            assert_eq!(
                policy.check_syscall(pid, abi::SYS_SUBSCRIBE, &[0; 6], &table),
                Err(Errno::EPERM)
            );
            assert_eq!(policy.check_syscall(pid, abi::SYS_WRITE, &[0; 6], &table), Ok(()));
        }
        policy.on_exit(2);
        assert!(policy.holdings.lock().get(&1).is_some_and(|held| held.over.is_empty()));
    }

    #[test_case]
    fn every_defined_call_has_a_rule_and_numbers_beyond_them_are_left_to_enosys() {
        // A new call fails here until the policy is told what it needs: closed by default.
        for number in 0..abi::SYSCALL_COUNT {
            assert!(rule(number).is_some(), "call {number} has no capability rule");
        }
        let policy = Capability::new();
        let table = Table::with(&[1]);
        spawn(&policy, 0, 1, 0);
        assert_eq!(policy.check_syscall(1, abi::SYSCALL_COUNT, &[0; 6], &table), Ok(()));
        assert_eq!(policy.check_syscall(1, u64::MAX, &[0; 6], &table), Ok(()));
    }
}
