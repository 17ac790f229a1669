//! `policy-capability` (the default): each process holds a set of rights and capabilities over
//! other processes. A child inherits its parent's rights, minus any the parent withholds at
//! spawn, and its parent gains a capability over it. Ending another process or mapping memory
//! into it needs the matching right *and* a capability over that process — so a parent may
//! manage its children, and nobody may touch a stranger.

use alloc::collections::{BTreeMap, BTreeSet};

use spin::Mutex;

use super::{Policy, Processes, SpawnInfo};
use crate::{
    abi::{self, linux},
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

    /// A Linux signal sender's check (`kill`, `tkill`, `tgkill`; see `check_linux_syscall`).
    #[inline(never)]
    fn check_linux_signal(
        &self,
        pid: Pid,
        number: u64,
        args: &[u64; 6],
        processes: &dyn Processes,
    ) -> Result<(), Errno> {
        let (target, signal) = match number {
            linux::TGKILL => (args[1] as i64 as i32, args[2]),
            _ => (args[0] as i64 as i32, args[1]),
        };
        if signal == 0 {
            return Ok(());
        }
        let leader = match target {
            target if target > 0 || number != linux::KILL => u64::from(target.unsigned_abs()),
            0 => u64::from(processes.group_of(pid).unwrap_or(pid)),
            -1 => return Err(Errno::EPERM),
            group => u64::from(group.unsigned_abs()),
        };
        if Pid::try_from(leader).is_ok_and(|leader| is_ancestor(leader, pid, processes)) {
            return Ok(());
        }
        self.on_process(pid, abi::RIGHT_KILL, leader, processes)
    }
}

/// Generations looked up at most: more processes never live at once (the scheduler's
/// `MAX_PROCESSES`), so a longer walk could only be a table that changed under it.
const MAX_GENERATIONS: usize = 64;

/// Whether `ancestor` is `pid`'s parent, or its parent's, and so on.
fn is_ancestor(ancestor: Pid, pid: Pid, processes: &dyn Processes) -> bool {
    let mut at = pid;
    for _ in 0..MAX_GENERATIONS {
        match processes.parent_of(at) {
            Some(parent) if parent == ancestor && parent != 0 => return true,
            Some(parent) if parent != 0 => at = parent,
            _ => return false,
        }
    }
    false
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
    /// Needs the right over the interrupt line named by argument `argument`.
    OnLine { argument: usize },
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
        | abi::SYS_UPTIME
        // A handle is its claimer's alone: these act only on lines the caller owns.
        | abi::SYS_IRQ_WAIT
        | abi::SYS_IRQ_ACK
        | abi::SYS_IRQ_RELEASE
        | abi::SYS_IRQ_PROGRAM
        | abi::SYS_IRQ_READ => Rule::Open,
        abi::SYS_IRQ_CLAIM => Rule::OnLine { argument: 0 },
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

    /// Every Linux call Herald serves acts on the caller alone, but the signal senders: a
    /// signal (not 0, the existence check) needs the kill right and a capability over its
    /// target, as Herald's `kill` does — for a group, over the group's leader; to every
    /// process (`kill(-1, ...)`) it is refused. A program may also signal its own ancestors
    /// (a child telling its parent, which Linux programs expect of one user's processes).
    /// Inline, its signal part out of line: every other Linux call passes in a compare.
    #[inline]
    fn check_linux_syscall(
        &self,
        pid: Pid,
        number: u64,
        args: &[u64; 6],
        processes: &dyn Processes,
    ) -> Result<(), Errno> {
        match number {
            linux::KILL | linux::TKILL | linux::TGKILL => {
                self.check_linux_signal(pid, number, args, processes)
            }
            _ => Ok(()),
        }
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
            Some(Rule::OnLine { argument }) => match abi::right_over_line(args[argument]) {
                // No such line: the owner answers EINVAL.
                0 => Ok(()),
                right => needs(right),
            },
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

    /// Processes 1 (the kernel's child), 2 (1's child), 3 (2's child) and 4 (a stranger, the
    /// kernel's), each leading its own group.
    struct Family;

    impl Processes for Family {
        fn exists(&self, pid: Pid) -> bool {
            (1..=4).contains(&pid)
        }

        fn owner_of(&self, _: SpaceId) -> Option<Pid> {
            None
        }

        fn parent_of(&self, pid: Pid) -> Option<Pid> {
            [0, 1, 2, 0].get(pid.checked_sub(1)? as usize).copied()
        }

        fn group_of(&self, pid: Pid) -> Option<Pid> {
            self.exists(pid).then_some(pid)
        }
    }

    #[test_case]
    fn a_linux_signal_reaches_descendants_and_ancestors_never_a_stranger_or_everyone() {
        let policy = Capability::new();
        spawn(&policy, 0, 1, 0);
        spawn(&policy, 1, 2, 0);
        spawn(&policy, 2, 3, 0);
        spawn(&policy, 0, 4, 0);
        let kill = |pid, target: i64, signal| {
            policy.check_linux_syscall(pid, linux::KILL, &[target as u64, signal, 0, 0, 0, 0], &Family)
        };
        assert_eq!(kill(1, 2, 15), Ok(()), "to a child");
        assert_eq!(kill(2, -3, 15), Ok(()), "to a child's group");
        assert_eq!(kill(3, 1, 15), Ok(()), "to a grandparent");
        assert_eq!(kill(3, 3, 9), Ok(()), "to itself");
        assert_eq!(kill(1, 4, 15), Err(Errno::EPERM), "to a stranger");
        assert_eq!(kill(1, -4, 15), Err(Errno::EPERM), "to a stranger's group");
        assert_eq!(kill(1, -1, 15), Err(Errno::EPERM), "to every process");
        assert_eq!(kill(1, 4, 0), Ok(()), "signal 0 only asks whether it exists");
        let tgkill = policy.check_linux_syscall(1, linux::TGKILL, &[4, 4, 15, 0, 0, 0], &Family);
        assert_eq!(tgkill, Err(Errno::EPERM), "tgkill to a stranger");
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
    fn claiming_a_line_needs_the_right_over_that_line_only() {
        let policy = Capability::new();
        let table = Table::with(&[1, 2]);
        spawn(&policy, 0, 1, abi::right_over_line(4));
        spawn(&policy, 1, 2, abi::right_over_line(3));
        let claim = |pid, line| policy.check_syscall(pid, abi::SYS_IRQ_CLAIM, &[line, 0, 0, 0, 0, 0], &table);
        assert_eq!(claim(1, 3), Ok(()));
        assert_eq!(claim(1, 4), Err(Errno::EPERM));
        // Withheld from the parent, never regained by the child; the rest is inherited.
        assert_eq!(claim(2, 4), Err(Errno::EPERM));
        assert_eq!(claim(2, 3), Err(Errno::EPERM));
        assert_eq!(claim(2, 7), Ok(()));
        // No such line: not the policy's to refuse (the owner answers EINVAL).
        assert_eq!(claim(2, 99), Ok(()));
        for call in [abi::SYS_IRQ_WAIT, abi::SYS_IRQ_ACK, abi::SYS_IRQ_RELEASE] {
            assert_eq!(policy.check_syscall(2, call, &[0; 6], &table), Ok(()));
        }
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
