//! The active policy on the bus: its handlers in the security band of the `syscall` and
//! `memory` chains, the audit trail of denials, and the process facts it may consult.

use alloc::{collections::VecDeque, format, string::String, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{ACTIVE, DeclaredCalls, PathAccess, Policy, Processes, SpawnInfo};
use crate::{
    abi,
    arch::IrqMutex,
    events::{BUS, Errno, Event, EventKind, Priority, Reply, SpaceId, SyscallAbi, Verdict},
    vocab::Pid,
};

/// Denials kept for the shell's `policy` command.
const RECENT_DENIALS: usize = 16;

/// One refused request, as the audit trail records it.
#[derive(Clone, Debug)]
pub struct Denial {
    /// Who asked.
    pub pid: Pid,
    /// The chain it was refused in.
    pub kind: EventKind,
    /// What was asked, in words.
    pub what: String,
    /// The answer.
    pub errno: Errno,
}

static DENIALS: AtomicU64 = AtomicU64::new(0);
static RECENT: IrqMutex<VecDeque<Denial>> = IrqMutex::new(VecDeque::new());

/// Denials since boot.
pub fn denial_count() -> u64 {
    DENIALS.load(Ordering::Relaxed)
}

/// The most recent denials, oldest first.
pub fn recent_denials() -> Vec<Denial> {
    RECENT.lock().iter().cloned().collect()
}

/// The process facts policies consult, installed by the boot code (the task layer answers
/// them; security sits below it and does not import it).
static PROCESSES: spin::Once<&'static (dyn Processes + Sync)> = spin::Once::new();

/// The installed process facts; before installation, no process exists.
fn processes() -> &'static dyn Processes {
    struct NoProcesses;
    impl Processes for NoProcesses {
        fn exists(&self, _pid: Pid) -> bool {
            false
        }
        fn owner_of(&self, _space: SpaceId) -> Option<Pid> {
            None
        }
    }
    PROCESSES.get().map_or(&NoProcesses, |facts| *facts)
}

/// Records a denial: counted, logged, kept for the shell, and announced as a `policy-denied`
/// event so observers (an audit module, a user-level monitor) see it too.
fn audit(pid: Pid, kind: EventKind, what: String, errno: Errno) {
    DENIALS.fetch_add(1, Ordering::Relaxed);
    log::warn!("policy {}: denied {what} from pid {pid}: {errno}", ACTIVE.name());
    {
        let mut recent = RECENT.lock();
        if recent.len() == RECENT_DENIALS {
            recent.pop_front();
        }
        recent.push_back(Denial { pid, kind, what, errno });
    }
    BUS.dispatch(&Event::PolicyDenied { pid, kind, errno }, &mut Reply::new());
}

fn on_syscall(event: &Event, _reply: &mut Reply) -> Verdict {
    let Event::Syscall { number, ref args, pid, abi } = *event else { return Verdict::Continue };
    // The kernel is not checked.
    if pid == 0 {
        return Verdict::Continue;
    }
    if abi == SyscallAbi::Linux {
        return match ACTIVE.check_linux_syscall(pid, number, args, processes()) {
            Ok(()) => Verdict::Continue,
            Err(errno) => deny_linux_syscall(pid, number, errno),
        };
    }
    check_herald_syscall(pid, number, args)
}

/// A Herald program's call, in its own frame: a Linux call's check needs none of its state.
#[inline(never)]
fn check_herald_syscall(pid: Pid, number: u64, args: &[u64; 6]) -> Verdict {
    // Unknown numbers go on to get ENOSYS.
    if number >= abi::SYSCALL_COUNT {
        return Verdict::Continue;
    }
    match ACTIVE.check_syscall(pid, number, args, processes()) {
        Ok(()) => Verdict::Continue,
        Err(errno) => deny_syscall(pid, number, errno),
    }
}

/// Out of line: the allowed path (every call a well-behaved program makes) stays small.
#[cold]
#[inline(never)]
fn deny_syscall(pid: Pid, number: u64, errno: Errno) -> Verdict {
    let name = abi::syscall_name(number);
    audit(pid, EventKind::Syscall, format!("system call {number} ({name})"), errno);
    Verdict::Deny(errno)
}

#[cold]
#[inline(never)]
fn deny_linux_syscall(pid: Pid, number: u64, errno: Errno) -> Verdict {
    let name = abi::linux::name(number).unwrap_or("unknown");
    audit(pid, EventKind::Syscall, format!("Linux system call {number} ({name})"), errno);
    Verdict::Deny(errno)
}

fn on_memory(event: &Event, _reply: &mut Reply) -> Verdict {
    let Event::Memory { pid, request } = *event else { return Verdict::Continue };
    match ACTIVE.check_memory(pid, &request, processes()) {
        Ok(()) => Verdict::Continue,
        Err(errno) => {
            let what = format!("{} of {}", request.operation(), request.target());
            audit(pid, EventKind::Memory, what, errno);
            Verdict::Deny(errno)
        }
    }
}

/// May `pid` do `access` to the path `path` works out (absolute, normalized, links followed)?
/// A file call asks before it touches anything. Not an event of its own: a path does not fit in
/// the bus's small `Copy` events, so the file calls consult the policy directly, as Linux's LSM
/// hooks do; a denial is audited and announced as a `policy-denied` event like any other.
/// `path` runs only if the policy confines `pid`'s paths at all.
pub fn check_path(
    pid: Pid,
    access: PathAccess,
    path: impl FnOnce() -> Result<String, Errno>,
) -> Result<(), Errno> {
    if pid == 0 || !ACTIVE.confines_paths(pid) {
        return Ok(());
    }
    let path = path()?;
    ACTIVE.check_path(pid, &path, access).inspect_err(|&errno| {
        audit(pid, EventKind::Syscall, format!("{} of {path}", access.verb()), errno);
    })
}

/// Puts the active policy in the security band and reports where it sits, like Linux's
/// `lsm.debug`; `facts` answers the policy's questions about processes. Runs after mm and the
/// scheduler have joined their chains.
pub fn init(facts: &'static (dyn Processes + Sync)) {
    PROCESSES.call_once(|| facts);
    BUS.subscribe(EventKind::Syscall, ACTIVE.name(), Priority::SECURITY, on_syscall)
        .expect("the policy subscribes at boot")
        .keep_forever();
    BUS.subscribe(EventKind::Memory, ACTIVE.name(), Priority::SECURITY, on_memory)
        .expect("the policy subscribes at boot")
        .keep_forever();
    log::info!("policy {} ({})", ACTIVE.name(), ACTIVE.summary());
    for kind in [EventKind::Syscall, EventKind::Memory] {
        for line in BUS.describe_chain(kind).lines() {
            log::info!("{line}");
        }
    }
}

/// Tells the policy about a new process.
pub fn on_spawn(spawn: &SpawnInfo<'_>) {
    ACTIVE.on_spawn(spawn);
}

/// Tells the policy process `pid` replaced its program (`execve`) with `program`, which
/// declares `declared`.
pub fn on_exec(pid: Pid, program: &str, declared: DeclaredCalls<'_>) {
    ACTIVE.on_exec(pid, program, declared);
}

/// Tells the policy a process ended.
pub fn on_exit(pid: Pid) {
    ACTIVE.on_exit(pid);
}

/// Processes the active policy keeps something for.
pub fn tracked_processes() -> usize {
    ACTIVE.tracked_processes()
}
