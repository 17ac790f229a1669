//! The process table and the scheduler.
//!
//! Every task that is not running is parked inside `arch::context::switch` on its own kernel
//! stack: a user task always in `before_user_return` (so it checks for a pending kill or block
//! when it resumes), a new task at the trap exit. Switches happen only with interrupts off and
//! no lock held. The kernel itself is not preempted: the timer only sets `need_resched`, which
//! is acted on when returning to ring 3 or in the idle loop.

use alloc::{
    boxed::Box,
    collections::{BTreeMap, VecDeque},
    string::String,
    vec::Vec,
};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::{Pid, elf, ramdisk::Ramdisk, subscriptions, syscalls};
use crate::{
    abi,
    arch::{self, IrqMutex, context, cpu, paging},
    events::{
        Access, BUS, Errno, Event, EventKind, MemoryRequest, Priority, Reply, SpaceId, Verdict,
    },
    mm::{self, KernelStack, space, user_copy},
    security,
};

/// Timer ticks (milliseconds) a process runs before others that are ready get the CPU.
pub const TIME_SLICE_TICKS: u32 = 10;
/// Each process's kernel stack: traps and system calls run on it.
const KERNEL_STACK_SIZE_BYTES: u64 = 32 * 1024;
/// Top of every process's user stack (a page below the end of user space, for the guard
/// logic's simplicity) and its size; a guard page lies below it.
const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
const USER_STACK_SIZE_BYTES: u64 = 256 * 1024;
/// Deferred deliveries the idle task makes before checking again whether to sleep.
const DEFERRED_BUDGET_PER_ROUND: usize = 64;
/// Longest a process keeps the CPU while deferred work (input, bottom halves) waits.
const DEFERRED_LATENCY_MS: u64 = 10;
/// Largest argument string a program gets.
pub const MAX_ARGS_LEN_BYTES: usize = 4096;
/// Most processes at once, ended ones not yet waited for included (Linux's `RLIMIT_NPROC` and
/// `pid_max` in one). A spawn bomb meets `EAGAIN` here.
pub const MAX_PROCESSES: usize = 64;
/// Slots only the kernel (the shell, tests) may fill: a program that spawns without end still
/// leaves room to start the program that stops it.
pub const KERNEL_ONLY_PROCESS_SLOTS: usize = 8;

/// Why a task is not runnable.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum BlockReason {
    /// Until this time (milliseconds since boot).
    Sleep { until_ms: u64 },
    /// Until a child (or this one, if non-zero) ends.
    WaitChild { pid: Pid },
    /// Until console input arrives.
    Input,
    /// Until a full `backpressure` queue has room (its subscriber polled).
    Room,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum State {
    Ready,
    Running,
    Blocked(BlockReason),
    Zombie(i32),
}

pub(super) struct Task {
    pub(super) pid: Pid,
    pub(super) name: String,
    pub(super) parent: Pid,
    /// The parent ended first: nobody will wait, so the task is dropped when it ends.
    orphaned: bool,
    pub(super) space: SpaceId,
    kernel_stack: Option<KernelStack>,
    saved_stack_pointer: u64,
    pub(super) state: State,
    pending_kill: Option<i32>,
    /// Switched away from in the middle of a call (at a preempt point): it holds kernel state
    /// and must end on its own way out, not be torn down from outside.
    parked_in_call: bool,
    slice_left_ticks: u32,
    cpu_ticks: u64,
    pub(super) syscalls: u64,
    /// User events raised so far (the `seq` of the last one every queue took).
    pub(super) raised: u64,
    /// The next raise is a second offer: a backpressure queue refused the first.
    pub(super) raise_refused: bool,
    pub(super) subscriptions: Vec<subscriptions::ProcessSubscription>,
}

pub(super) struct Scheduler {
    pub(super) tasks: BTreeMap<Pid, Box<Task>>,
    ready: VecDeque<Pid>,
    pub(super) current: Pid,
    next_pid: Pid,
    need_resched: bool,
    /// Kernel stacks of tasks that exited while running on them; freed after the next switch.
    dead_stacks: Vec<KernelStack>,
    idle_stack_pointer: u64,
    /// Since when deferred work has been waiting for a busy process to yield.
    deferred_waiting_since_ms: Option<u64>,
    ramdisk: Option<Ramdisk<'static>>,
}

/// Set when the running task must check in before returning to ring 3 (time slice over, kill
/// or exit pending, blocked). Lets the common return path skip the scheduler lock entirely.
static ATTENTION: AtomicBool = AtomicBool::new(false);
/// The running task's pid and space, readable without the lock (syscall entry needs them).
static CURRENT_PID: AtomicU32 = AtomicU32::new(0);
static CURRENT_SPACE: AtomicU32 = AtomicU32::new(SpaceId::KERNEL.0);
/// System calls the running task made since it was switched in; added to its count on switch.
pub(super) static SYSCALLS_SINCE_SWITCH: AtomicU64 = AtomicU64::new(0);

/// The running process's pid (0: the kernel).
pub(super) fn current_pid() -> Pid {
    CURRENT_PID.load(Ordering::Relaxed)
}

/// The running process's address space.
pub(super) fn current_space() -> SpaceId {
    SpaceId(CURRENT_SPACE.load(Ordering::Relaxed))
}

fn set_pending_kill(task: &mut Task, code: i32) {
    task.pending_kill = Some(code);
    ATTENTION.store(true, Ordering::Relaxed);
}

pub(super) static SCHEDULER: IrqMutex<Scheduler> = IrqMutex::new(Scheduler {
    tasks: BTreeMap::new(),
    ready: VecDeque::new(),
    current: 0,
    next_pid: 1,
    need_resched: false,
    dead_stacks: Vec::new(),
    idle_stack_pointer: 0,
    deferred_waiting_since_ms: None,
    ramdisk: None,
});

impl Scheduler {
    pub(super) fn current_task(&mut self) -> Option<&mut Task> {
        let current = self.current;
        self.tasks.get_mut(&current).map(|task| &mut **task)
    }

    pub(super) fn make_ready(&mut self, pid: Pid) {
        if let Some(task) = self.tasks.get_mut(&pid)
            && matches!(task.state, State::Blocked(_))
        {
            task.state = State::Ready;
            self.ready.push_back(pid);
            // A woken task runs soon, not after the running one's whole slice: the running
            // task gives up the CPU at its next preempt point or return to ring 3.
            self.request_resched();
        }
    }

    /// Marks the running task blocked; it switches away on its way back to ring 3.
    pub(super) fn block_current(&mut self, reason: BlockReason) {
        if let Some(task) = self.current_task() {
            task.state = State::Blocked(reason);
            ATTENTION.store(true, Ordering::Relaxed);
        }
    }

    /// Wakes every task blocked for `reason`, a batch at a time (a woken task no longer
    /// matches, so each batch finds the next ones), without allocating.
    pub(super) fn wake_all(&mut self, reason: BlockReason) {
        loop {
            let batch = heapless_wake::matching(&self.tasks, |blocked| blocked == reason);
            for pid in batch.iter() {
                self.make_ready(pid);
            }
            if !batch.is_full() {
                return;
            }
        }
    }

    pub(super) fn request_resched(&mut self) {
        self.need_resched = true;
        ATTENTION.store(true, Ordering::Relaxed);
    }
}

/// The contents of ramdisk program `name`.
pub fn ramdisk_file(name: &str) -> Option<&'static [u8]> {
    let ramdisk = SCHEDULER.lock().ramdisk;
    ramdisk.and_then(|ramdisk| ramdisk.find(name))
}

/// Names of the programs in the ramdisk.
pub fn programs() -> Vec<&'static str> {
    let ramdisk = SCHEDULER.lock().ramdisk;
    ramdisk.map(|ramdisk| ramdisk.files().map(|(name, _)| name).collect()).unwrap_or_default()
}

/// Wires the scheduler to the trap path and the bus, and reads the ramdisk's table.
pub fn init(ramdisk_image: Option<&'static [u8]>) {
    match ramdisk_image.map(Ramdisk::parse) {
        Some(Ok(ramdisk)) => {
            log::info!("ramdisk: {} programs", ramdisk.files().count());
            SCHEDULER.lock().ramdisk = Some(ramdisk);
        }
        Some(Err(error)) => log::error!("ramdisk refused: {error}"),
        None => log::warn!("no ramdisk: no user programs to run"),
    }
    arch::set_task_hooks(arch::TaskHooks {
        current_pid,
        before_user_return,
        preempt_point: || {
            // Every reason to stop here (a resched, a kill) raises the attention flag first:
            // without it, a step costs one load.
            if !ATTENTION.load(Ordering::Relaxed) {
                return false;
            }
            park_in_call(false);
            SCHEDULER.lock().current_task().is_some_and(|task| task.pending_kill.is_some())
        },
        yield_now: || park_in_call(true),
    });
    BUS.subscribe(EventKind::Timer, "scheduler", Priority::OWNER, on_tick)
        .expect("the scheduler subscribes at boot")
        .keep_forever();
    // Below mm in the owner band: mm resolves what it can (demand paging) first.
    for kind in [EventKind::Exception, EventKind::PageFault] {
        BUS.subscribe(kind, "process-faults", Priority::owner(100), on_user_fault)
            .expect("the scheduler subscribes at boot")
            .keep_forever();
    }
    syscalls::subscribe();
}

fn on_tick(event: &Event, _reply: &mut Reply) -> Verdict {
    let Event::Timer { .. } = *event else { return Verdict::Continue };
    let mut scheduler = SCHEDULER.lock();
    let wake: heapless_wake::Wake = heapless_wake::collect(&scheduler.tasks, arch::milliseconds());
    for pid in wake.iter() {
        scheduler.make_ready(pid);
    }
    if let Some(task) = scheduler.current_task() {
        task.cpu_ticks += 1;
        task.slice_left_ticks = task.slice_left_ticks.saturating_sub(1);
        if task.slice_left_ticks == 0 && !scheduler.ready.is_empty() {
            scheduler.request_resched();
        }
    } else if !scheduler.ready.is_empty() {
        scheduler.request_resched();
    }
    // Deferred work (input, driver bottom halves) waits at most DEFERRED_LATENCY_MS for a busy
    // process to give up the CPU; switching on every tick would let a fast timer starve the
    // process with switches.
    let now_ms = arch::milliseconds();
    if scheduler.current != 0 && BUS.has_deferred_work() {
        let since = *scheduler.deferred_waiting_since_ms.get_or_insert(now_ms);
        if now_ms - since >= DEFERRED_LATENCY_MS {
            scheduler.request_resched();
        }
    } else {
        scheduler.deferred_waiting_since_ms = None;
    }
    Verdict::Handled
}

/// Collecting sleepers to wake without allocating in interrupt context.
mod heapless_wake {
    use alloc::{boxed::Box, collections::BTreeMap};

    use super::{BlockReason, Pid, State, Task};

    /// Most sleepers woken per tick; the rest wake on the next one.
    const MAX_WAKE_PER_TICK: usize = 32;

    pub(super) struct Wake {
        pids: [Pid; MAX_WAKE_PER_TICK],
        len: usize,
    }

    impl Wake {
        pub(super) fn iter(&self) -> impl Iterator<Item = Pid> + '_ {
            self.pids[..self.len].iter().copied()
        }
    }

    impl Wake {
        /// Whether the batch is full (more tasks may match).
        pub(super) fn is_full(&self) -> bool {
            self.len == MAX_WAKE_PER_TICK
        }
    }

    /// Up to [`MAX_WAKE_PER_TICK`] blocked tasks whose reason passes `wakes`.
    pub(super) fn matching(
        tasks: &BTreeMap<Pid, Box<Task>>,
        wakes: impl Fn(BlockReason) -> bool,
    ) -> Wake {
        let mut wake = Wake { pids: [0; MAX_WAKE_PER_TICK], len: 0 };
        let blocked = tasks.values().filter_map(|task| match task.state {
            State::Blocked(reason) if wakes(reason) => Some(task.pid),
            _ => None,
        });
        for pid in blocked.take(MAX_WAKE_PER_TICK) {
            wake.pids[wake.len] = pid;
            wake.len += 1;
        }
        wake
    }

    /// Sleepers due by `now_ms`.
    pub(super) fn collect(tasks: &BTreeMap<Pid, Box<Task>>, now_ms: u64) -> Wake {
        matching(
            tasks,
            |reason| matches!(reason, BlockReason::Sleep { until_ms } if until_ms <= now_ms),
        )
    }
}

fn on_user_fault(event: &Event, reply: &mut Reply) -> Verdict {
    let (vector, detail) = match *event {
        Event::Exception { vector, rip, from_user: true, error_code } => {
            // #DB and #BP from ring 3 are traps a debugger would use; the default resumes.
            if vector == 1 || vector == 3 {
                return Verdict::Continue;
            }
            (vector, alloc::format!("at rip {rip:#x}, error code {error_code:#x}"))
        }
        Event::PageFault { address, access, rip, from_user: true, .. } => {
            let access = match access {
                Access::Read => "read",
                Access::Write => "write",
                Access::Execute => "instruction fetch",
            };
            (14, alloc::format!("{access} of {address:#x} at rip {rip:#x}"))
        }
        _ => return Verdict::Continue,
    };
    let mut scheduler = SCHEDULER.lock();
    let Some(task) = scheduler.current_task() else { return Verdict::Continue };
    if reply.out_of_memory {
        log::warn!("pid {} ({}) killed: out of memory ({detail})", task.pid, task.name);
        set_pending_kill(task, abi::OUT_OF_MEMORY_EXIT_CODE);
        return Verdict::Handled;
    }
    let (mnemonic, name) = arch::exception_name(vector);
    log::warn!("pid {} ({}) killed: {mnemonic} {name} {detail}", task.pid, task.name);
    set_pending_kill(task, abi::FAULT_EXIT_CODE_BASE + i32::from(vector));
    Verdict::Handled
}

/// Runs with interrupts off just before a trap or system call returns to ring 3.
fn before_user_return() {
    if !ATTENTION.swap(false, Ordering::Relaxed) {
        return;
    }
    enum Action {
        Exit(i32),
        Switch,
        Return,
    }
    loop {
        let action = {
            let mut scheduler = SCHEDULER.lock();
            let need_resched = scheduler.need_resched;
            match scheduler.current_task() {
                None => Action::Return,
                Some(task) => match (task.pending_kill, task.state) {
                    (Some(code), _) => Action::Exit(code),
                    (None, State::Blocked(_)) => Action::Switch,
                    (None, _) if need_resched => Action::Switch,
                    _ => Action::Return,
                },
            }
        };
        match action {
            Action::Exit(code) => exit_current(code),
            Action::Switch => schedule(),
            Action::Return => return,
        }
    }
}

/// A long call's preempt point (`always`: a yield while waiting for another task): switches
/// away if the scheduler wants to, marking the task as parked inside a call so a kill waits for
/// the call to finish. The idle task is the kernel's own work (the shell, deferred handlers the
/// watchdog times): it is never preempted, and yields only when it must wait.
fn park_in_call(always: bool) {
    let were_enabled = cpu::mask_interrupts();
    let switch = {
        let mut scheduler = SCHEDULER.lock();
        if always {
            scheduler.request_resched();
        }
        let need_resched = scheduler.need_resched;
        match scheduler.current_task() {
            Some(task) if need_resched && task.state == State::Running => {
                task.parked_in_call = true;
                true
            }
            Some(_) => false,
            None => always,
        }
    };
    if switch {
        schedule();
        if let Some(task) = SCHEDULER.lock().current_task() {
            task.parked_in_call = false;
        }
    }
    cpu::restore_interrupts(were_enabled);
}

/// Switches to the next ready task, or to idle if none; returns when the caller runs again.
/// Interrupts must be off.
fn schedule() {
    let (save, load) = {
        let mut scheduler = SCHEDULER.lock();
        let scheduler = &mut *scheduler;
        scheduler.need_resched = false;
        let previous = scheduler.current;
        if let Some(task) = scheduler.tasks.get_mut(&previous)
            && task.state == State::Running
        {
            task.state = State::Ready;
            scheduler.ready.push_back(previous);
        }
        let mut next = 0;
        // Deferred work (driver bottom halves, the shell) runs in the idle task and comes
        // first, like softirqs: otherwise a busy process would starve input, even Ctrl-C.
        let deferred_waiting = BUS.has_deferred_work() && previous != 0;
        while let Some(pid) = (!deferred_waiting).then(|| scheduler.ready.pop_front()).flatten() {
            if scheduler.tasks.get(&pid).is_some_and(|task| task.state == State::Ready) {
                next = pid;
                break;
            }
        }
        if next == previous {
            if let Some(task) = scheduler.tasks.get_mut(&previous) {
                task.state = State::Running;
                task.slice_left_ticks = TIME_SLICE_TICKS;
            }
            return;
        }
        scheduler.current = next;
        let syscalls = SYSCALLS_SINCE_SWITCH.swap(0, Ordering::Relaxed);
        if let Some(task) = scheduler.tasks.get_mut(&previous) {
            task.syscalls += syscalls;
        }
        CURRENT_PID.store(next, Ordering::Relaxed);
        let load = match scheduler.tasks.get_mut(&next) {
            Some(task) => {
                task.state = State::Running;
                task.slice_left_ticks = TIME_SLICE_TICKS;
                if task.pending_kill.is_some() {
                    // Killed while parked inside a call: the flag that tells its return path
                    // was one for everyone, and whoever returned first may have taken it.
                    ATTENTION.store(true, Ordering::Relaxed);
                }
                let top = task.kernel_stack.as_ref().expect("a live task has a stack").top();
                // SAFETY: interrupts are off; the stack belongs to the task about to run and
                // stays mapped while it lives.
                unsafe { arch::syscall::set_kernel_stack(top) };
                space::switch_to(task.space).expect("a live task's space exists");
                CURRENT_SPACE.store(task.space.0, Ordering::Relaxed);
                task.saved_stack_pointer
            }
            None => {
                space::switch_to(SpaceId::KERNEL).expect("the kernel space exists");
                CURRENT_SPACE.store(SpaceId::KERNEL.0, Ordering::Relaxed);
                scheduler.idle_stack_pointer
            }
        };
        let save: *mut u64 = match scheduler.tasks.get_mut(&previous) {
            Some(task) => &raw mut task.saved_stack_pointer,
            None => &raw mut scheduler.idle_stack_pointer,
        };
        (save, load)
    };
    // SAFETY: interrupts are off and no lock is held; `load` was saved by a switch or made by
    // `prepare_user_entry` on a stack that is still mapped; `save` lives in a boxed task or the
    // scheduler static, neither of which is freed before the task is resumed or reaped.
    unsafe { context::switch(save, load) };
    // Resumed: now nothing runs on the stacks of tasks that exited, and orphans' zombies have
    // been switched away from for good.
    let (dead_stacks, dead_orphans) = {
        let mut scheduler = SCHEDULER.lock();
        let current = scheduler.current;
        let orphans: Vec<Pid> = scheduler
            .tasks
            .values()
            .filter(|t| t.orphaned && matches!(t.state, State::Zombie(_)) && t.pid != current)
            .map(|t| t.pid)
            .collect();
        let removed: Vec<_> =
            orphans.iter().filter_map(|pid| scheduler.tasks.remove(pid)).collect();
        (core::mem::take(&mut scheduler.dead_stacks), removed)
    };
    drop(dead_stacks);
    drop(dead_orphans);
}

/// Ends the running task; never returns. Interrupts must be off.
///
/// Its memory goes first, while it is still a runnable task: freeing a large address space
/// takes many steps, and between them the task may be preempted like any long call. Only then
/// does it become a zombie and switch away for good.
fn exit_current(code: i32) -> ! {
    let (pid, space) = {
        let mut scheduler = SCHEDULER.lock();
        let pid = scheduler.current;
        let task = scheduler.current_task().expect("only a process exits");
        let space = core::mem::replace(&mut task.space, SpaceId::KERNEL);
        CURRENT_SPACE.store(SpaceId::KERNEL.0, Ordering::Relaxed);
        (pid, space)
    };
    space::switch_to(SpaceId::KERNEL).expect("the kernel space exists");
    cpu::enable_interrupts();
    release_space(pid, space);
    cpu::disable_interrupts();
    finish(pid, code);
    schedule();
    unreachable!("an exited task was resumed");
}

fn release_space(pid: Pid, space: SpaceId) {
    if space == SpaceId::KERNEL {
        return;
    }
    if let Err(errno) = space::destroy(space) {
        log::error!("pid {pid}: destroying its address space failed: {errno}");
    }
}

/// Ends task `pid` with `code`: frees its memory and subscriptions, makes it a zombie for its
/// parent (or drops it if nobody can wait for it), wakes a waiting parent, and announces it.
fn finish(pid: Pid, code: i32) {
    let (space, subscriptions, stack) = {
        let mut scheduler = SCHEDULER.lock();
        let scheduler = &mut *scheduler;
        let Some(task) = scheduler.tasks.get_mut(&pid) else { return };
        if matches!(task.state, State::Zombie(_)) {
            return;
        }
        task.state = State::Zombie(code);
        task.pending_kill = None;
        let stack = task.kernel_stack.take();
        let subscriptions = core::mem::take(&mut task.subscriptions);
        let (space, parent, orphaned) = (task.space, task.parent, task.orphaned);
        // Children outlive their parent as orphans of the kernel: dropped when they end, since
        // nobody can wait for them any more; those already ended go now.
        let children: Vec<Pid> =
            scheduler.tasks.values().filter(|t| t.parent == pid).map(|t| t.pid).collect();
        for child in children {
            let ended = scheduler.tasks.get_mut(&child).is_some_and(|task| {
                task.parent = 0;
                task.orphaned = true;
                matches!(task.state, State::Zombie(_))
            });
            if ended && child != scheduler.current {
                scheduler.tasks.remove(&child);
            }
        }
        if let Some(State::Blocked(BlockReason::WaitChild { pid: waited })) =
            scheduler.tasks.get(&parent).map(|task| task.state)
            && (waited == 0 || waited == pid)
        {
            scheduler.make_ready(parent);
        }
        let stack = if scheduler.current == pid {
            // Still running on it: freed after the switch away.
            scheduler.dead_stacks.extend(stack);
            None
        } else {
            stack
        };
        // An orphan's zombie has no reader; the running one stays until the switch saves into it.
        if orphaned && scheduler.current != pid {
            scheduler.tasks.remove(&pid);
        }
        (space, subscriptions, stack)
    };
    drop(subscriptions);
    drop(stack);
    security::on_exit(pid);
    if space::current() == space {
        space::switch_to(SpaceId::KERNEL).expect("the kernel space exists");
    }
    release_space(pid, space);
    BUS.dispatch(&Event::ProcessExited { pid, code }, &mut Reply::new());
}

/// Why a program could not be started.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum SpawnError {
    /// No program of that name in the ramdisk.
    NotFound,
    /// The executable was refused.
    BadExecutable(elf::ElfError),
    /// The argument string is too long.
    ArgumentsTooLong,
    /// Memory ran out.
    OutOfMemory,
    /// [`MAX_PROCESSES`] are alive (for a program's spawn, that less the kernel-only slots).
    TooManyProcesses,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotFound => f.write_str("no such program"),
            Self::BadExecutable(error) => write!(f, "{error}"),
            Self::ArgumentsTooLong => {
                write!(f, "arguments longer than {MAX_ARGS_LEN_BYTES} bytes")
            }
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::TooManyProcesses => write!(f, "too many processes (limit {MAX_PROCESSES})"),
        }
    }
}

impl SpawnError {
    /// The errno a system call reports for this error.
    pub const fn errno(self) -> Errno {
        match self {
            Self::NotFound => Errno::ENOENT,
            Self::BadExecutable(_) => Errno::ENOEXEC,
            Self::ArgumentsTooLong => Errno::E2BIG,
            Self::OutOfMemory => Errno::ENOMEM,
            Self::TooManyProcesses => Errno::EAGAIN,
        }
    }
}

/// Starts ramdisk program `name` as a child of `parent` (0: the kernel).
pub fn spawn(name: &str, args: &str, parent: Pid) -> Result<Pid, SpawnError> {
    spawn_withholding(name, args, parent, 0)
}

/// [`spawn`], withholding `rights` (`abi::RIGHT_*`) from the child under policies that have
/// rights.
pub fn spawn_withholding(
    name: &str,
    args: &str,
    parent: Pid,
    rights: u64,
) -> Result<Pid, SpawnError> {
    let ramdisk = SCHEDULER.lock().ramdisk.ok_or(SpawnError::NotFound)?;
    let image = ramdisk.find(name).ok_or(SpawnError::NotFound)?;
    start(name, image, args, parent, rights)
}

/// Starts the executable `image` as a child of `parent`.
pub fn spawn_image(name: &str, image: &[u8], args: &str, parent: Pid) -> Result<Pid, SpawnError> {
    start(name, image, args, parent, 0)
}

fn start(
    name: &str,
    image: &[u8],
    args: &str,
    parent: Pid,
    withheld_rights: u64,
) -> Result<Pid, SpawnError> {
    if args.len() > MAX_ARGS_LEN_BYTES {
        return Err(SpawnError::ArgumentsTooLong);
    }
    let process_limit =
        if parent == 0 { MAX_PROCESSES } else { MAX_PROCESSES - KERNEL_ONLY_PROCESS_SLOTS };
    if SCHEDULER.lock().tasks.len() >= process_limit {
        return Err(SpawnError::TooManyProcesses);
    }
    if !mm::has_room_for_processes() {
        return Err(SpawnError::OutOfMemory);
    }
    let plan = elf::plan(image, &paging::USER_SPACE).map_err(SpawnError::BadExecutable)?;
    let space = space::create().map_err(|_| SpawnError::OutOfMemory)?;
    match build_process(space, &plan, image, args) {
        Ok((stack, saved_stack_pointer)) => {
            let mut scheduler = SCHEDULER.lock();
            if scheduler.tasks.len() >= process_limit {
                // Another spawn took the last slot while this one was building.
                drop(scheduler);
                drop(stack);
                let _ = space::destroy(space);
                return Err(SpawnError::TooManyProcesses);
            }
            let pid = scheduler.next_pid;
            scheduler.next_pid += 1;
            scheduler.tasks.insert(
                pid,
                Box::new(Task {
                    pid,
                    name: name.into(),
                    parent,
                    orphaned: false,
                    space,
                    kernel_stack: Some(stack),
                    saved_stack_pointer,
                    state: State::Ready,
                    pending_kill: None,
                    parked_in_call: false,
                    slice_left_ticks: TIME_SLICE_TICKS,
                    cpu_ticks: 0,
                    syscalls: 0,
                    raised: 0,
                    raise_refused: false,
                    subscriptions: Vec::new(),
                }),
            );
            scheduler.ready.push_back(pid);
            drop(scheduler);
            security::on_spawn(&security::SpawnInfo {
                parent,
                child: pid,
                program: name,
                declared_syscalls: plan.declared_syscalls,
                withheld_rights,
            });
            Ok(pid)
        }
        Err(error) => {
            let _ = space::destroy(space);
            Err(error)
        }
    }
}

fn build_process(
    space: SpaceId,
    plan: &elf::ImagePlan,
    image: &[u8],
    args: &str,
) -> Result<(KernelStack, u64), SpawnError> {
    let out_of_memory = |_| SpawnError::OutOfMemory;
    for segment in &plan.segments {
        // Through the bus like any other memory request, on the kernel's behalf.
        mm::request(
            0,
            MemoryRequest::Map {
                space,
                address: segment.pages.start,
                len_bytes: segment.pages.end - segment.pages.start,
                protection: segment.protection,
            },
        )
        .map_err(out_of_memory)?;
        user_copy::load(space, segment.load_address, &image[segment.file_bytes.clone()])
            .map_err(out_of_memory)?;
    }
    space::reserve_stack(space, USER_STACK_TOP, USER_STACK_SIZE_BYTES).map_err(out_of_memory)?;
    let args_address = (USER_STACK_TOP - args.len() as u64) / 16 * 16;
    user_copy::load(space, args_address, args.as_bytes()).map_err(out_of_memory)?;
    let stack = KernelStack::new(KERNEL_STACK_SIZE_BYTES).map_err(|_| SpawnError::OutOfMemory)?;
    let entry = context::UserEntry {
        rip: plan.entry,
        // `_start` is entered like a called function: rsp + 8 is 16-byte aligned.
        rsp: args_address - 8,
        args: [args_address, args.len() as u64],
    };
    // SAFETY: the stack is fresh, mapped, page-sized or larger, and its top is page aligned.
    let saved_stack_pointer = unsafe { context::prepare_user_entry(stack.top(), entry) };
    Ok((stack, saved_stack_pointer))
}

/// Makes the running task `pid` end with `code` on its way back to ring 3, unless an end is
/// already pending (a kill that came first keeps its code).
pub(super) fn request_exit(pid: Pid, code: i32) {
    if let Some(task) = SCHEDULER.lock().tasks.get_mut(&pid)
        && task.pending_kill.is_none()
    {
        set_pending_kill(task, code);
    }
}

/// Ends process `pid` with [`abi::KILLED_EXIT_CODE`]. Called by the `kill` system call after
/// the security policy has agreed, and by the kernel itself (the shell, tests), which the
/// policy does not check.
pub fn kill(pid: Pid) -> Result<(), Errno> {
    end(pid, abi::KILLED_EXIT_CODE)
}

/// Ends process `pid` with `code`: at once if it is parked between calls, else (running, or
/// preempted inside a call) on its way back to ring 3, once the call has finished.
fn end(pid: Pid, code: i32) -> Result<(), Errno> {
    let finish_here = {
        let mut scheduler = SCHEDULER.lock();
        let current = scheduler.current;
        let task = scheduler.tasks.get_mut(&pid).ok_or(Errno::ESRCH)?;
        if matches!(task.state, State::Zombie(_)) {
            return Err(Errno::ESRCH);
        }
        let finish_here = pid != current && !task.parked_in_call;
        if !finish_here && task.pending_kill.is_none() {
            set_pending_kill(task, code);
        }
        finish_here
    };
    if finish_here {
        // Parked between calls with nothing held: it can be finished from here.
        finish(pid, code);
    }
    Ok(())
}

/// Whether process `pid` exists and has not ended.
pub fn is_alive(pid: Pid) -> bool {
    SCHEDULER.lock().tasks.get(&pid).is_some_and(|task| !matches!(task.state, State::Zombie(_)))
}

/// The live process whose address space is `space`.
pub fn owner_of_space(space: SpaceId) -> Option<Pid> {
    let scheduler = SCHEDULER.lock();
    let mut live = scheduler.tasks.values().filter(|t| !matches!(t.state, State::Zombie(_)));
    live.find(|task| task.space == space).map(|task| task.pid)
}

/// What security policies may ask about processes, answered from the process table.
pub struct ProcessFacts;

/// The process facts the boot code hands to the security layer.
pub static PROCESS_FACTS: ProcessFacts = ProcessFacts;

impl security::Processes for ProcessFacts {
    fn exists(&self, pid: Pid) -> bool {
        is_alive(pid)
    }

    fn owner_of(&self, space: SpaceId) -> Option<Pid> {
        owner_of_space(space)
    }
}

/// Outcome of looking for an ended child.
pub(super) enum Reaped {
    /// This child ended with this code; its entry is gone.
    Child(Pid, i32),
    /// Matching children exist but none has ended.
    NotYet,
}

/// Reaps an ended child of `parent` (`pid` 0: any).
pub(super) fn reap(parent: Pid, pid: Pid) -> Result<Reaped, Errno> {
    let mut scheduler = SCHEDULER.lock();
    let mut children = scheduler.tasks.values().filter(|task| {
        task.parent == parent && task.pid != parent && (pid == 0 || task.pid == pid)
    });
    let Some(first) = children.next() else { return Err(Errno::ECHILD) };
    let ended = core::iter::once(first).chain(children).find_map(|task| match task.state {
        State::Zombie(code) => Some((task.pid, code)),
        _ => None,
    });
    match ended {
        Some((child, code)) => {
            scheduler.tasks.remove(&child);
            Ok(Reaped::Child(child, code))
        }
        None => Ok(Reaped::NotYet),
    }
}

/// One step of the idle task: deferred work first (a budget of it), else a ready process,
/// else halt until the next interrupt.
pub fn idle_step() {
    cpu::disable_interrupts();
    if BUS.has_deferred_work() {
        cpu::enable_interrupts();
        BUS.run_deferred(DEFERRED_BUDGET_PER_ROUND);
        return;
    }
    let ready = !SCHEDULER.lock().ready.is_empty();
    if ready {
        schedule();
        cpu::enable_interrupts();
    } else {
        cpu::enable_interrupts_and_halt();
    }
}

/// Waits, from the kernel (the idle task), until child `pid` ends; returns its exit code.
/// Runs processes and deferred work meanwhile.
pub fn wait(pid: Pid) -> Result<i32, Errno> {
    loop {
        match reap(0, pid)? {
            Reaped::Child(_, code) => return Ok(code),
            Reaped::NotYet => idle_step(),
        }
    }
}

/// What `ps` shows of a process.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// Its id.
    pub pid: Pid,
    /// The program's name.
    pub name: String,
    /// Its parent (0: the kernel).
    pub parent: Pid,
    /// Its address space.
    pub space: SpaceId,
    /// `ready`, `running`, `blocked`, or `exited(code)`.
    pub state: String,
    /// Timer ticks it was running for.
    pub cpu_ticks: u64,
    /// System calls it made.
    pub syscalls: u64,
}

/// Every process, by pid.
pub fn processes() -> Vec<ProcessInfo> {
    SCHEDULER
        .lock()
        .tasks
        .values()
        .map(|task| ProcessInfo {
            pid: task.pid,
            name: task.name.clone(),
            parent: task.parent,
            space: task.space,
            state: match task.state {
                State::Ready => "ready".into(),
                State::Running => "running".into(),
                State::Blocked(_) => "blocked".into(),
                State::Zombie(code) => alloc::format!("exited({code})"),
            },
            cpu_ticks: task.cpu_ticks,
            syscalls: task.syscalls,
        })
        .collect()
}
