//! The scheduler: the task table, the ready queue, blocking and waking, time slices, and the
//! switch between tasks.
//!
//! Every task that is not running is parked inside `arch::context::switch` on its own kernel
//! stack: a user task always in `before_user_return` (so it checks for a pending kill or block
//! when it resumes), a new task at the trap exit. Switches happen only with interrupts off and
//! no lock held. The kernel itself is not preempted: the timer only sets `need_resched`, which
//! is acted on when returning to ring 3, at a long call's preempt point, or in the idle loop.
//!
//! Every started CPU schedules from the one ready queue under the one lock; each has its own
//! current task, idle context and attention flag. A task is taken by another CPU only once the
//! CPU that ran it has left its stack (`switching_out`). Deferred work, the shell and sleepers'
//! wake-ups stay on cpu 0 (the PIT's CPU); other CPUs find new work at their next local tick.

use alloc::{
    boxed::Box,
    collections::{BTreeMap, VecDeque},
    string::String,
    sync::Arc,
    vec::Vec,
};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::Pid;
use crate::{
    arch::{self, IrqMutex, MAX_CPUS, context, cpu},
    events::{BUS, Event, EventKind, Priority, Reply, SpaceId, SyscallAbi, Verdict},
    mm::{KernelStack, space},
    vocab::PortGrant,
};

/// Timer ticks (milliseconds) a process runs before others that are ready get the CPU.
pub const TIME_SLICE_TICKS: u32 = 10;
/// Deferred deliveries the idle task makes before checking again whether to sleep.
const DEFERRED_BUDGET_PER_ROUND: usize = 64;
/// Longest a process keeps the CPU while deferred work (input, bottom halves) waits.
const DEFERRED_LATENCY_MS: u64 = 10;
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
    /// Until console input arrives, or (a `poll` with a timeout) this time passes
    /// (`u64::MAX`: no limit).
    Input { until_ms: u64 },
    /// Until a full `backpressure` queue has room (its subscriber polled).
    Room,
    /// Until the pipe with this inode changes (bytes written or read, an end closed).
    Pipe { inode: u64 },
    /// Until a signal comes (`pause`, `rt_sigsuspend`).
    Signal,
    /// A `poll` or `select`: until console input, any pipe's change, or this time
    /// (`u64::MAX`: no limit).
    Poll { until_ms: u64 },
    /// Until this `vfork` child execs or ends.
    Vfork { child: Pid },
    /// Stopped by a stop signal (`SIGSTOP`, `SIGTSTP`, ...): only `SIGCONT` or an end (a
    /// fatal signal, `SIGKILL`) makes it run again; nothing else wakes it.
    Stopped,
    /// A user-space driver's `irq_wait`: until an interrupt on a line it owns.
    Irq,
}

/// A stop or a continue of a child its parent's wait has not reported yet (`WUNTRACED`,
/// `WCONTINUED`): the latest one only, as on Linux (a continue replaces an unreported stop).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum JobChange {
    /// Stopped by this signal.
    Stopped(u8),
    /// Continued by `SIGCONT`.
    Continued,
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
    pub(super) orphaned: bool,
    pub(super) space: SpaceId,
    pub(super) kernel_stack: Option<KernelStack>,
    pub(super) saved_stack_pointer: u64,
    pub(super) state: State,
    pub(super) pending_kill: Option<i32>,
    /// Switched away from in the middle of a call (at a preempt point): it holds kernel state
    /// and must end on its own way out, not be torn down from outside.
    pub(super) parked_in_call: bool,
    pub(super) slice_left_ticks: u32,
    pub(super) cpu_ticks: u64,
    pub(super) syscalls: u64,
    /// User events raised so far (the `seq` of the last one every queue took).
    pub(super) raised: u64,
    /// The next raise is a second offer: a backpressure queue refused the first.
    pub(super) raise_refused: bool,
    /// The CPU it runs on, or last ran on.
    pub(super) cpu: usize,
    /// Its CPU has switched away from it but may still be on its stack: no other CPU may resume
    /// it, and its stack and save slot must stay, until that CPU says it has left.
    pub(super) switching_out: bool,
    /// Its x87/SSE registers while it is not running (saved and restored at each switch).
    pub(super) fpu: Box<arch::FpuState>,
    /// Which system-call numbering its executable uses.
    pub(super) abi: SyscallAbi,
    /// Its FS segment base (a Linux program's thread pointer, `arch_prctl`), loaded at each
    /// switch to it.
    pub(super) fs_base: u64,
    /// What a Linux program's calls have set up (signal actions, closed descriptors); made at
    /// its first call that needs it.
    pub(super) linux: Option<Box<super::linux::LinuxState>>,
    /// Where a program that replaced its own (`execve`) starts: set into its registers on its
    /// way back to ring 3.
    pub(super) pending_entry: Option<arch::context::UserEntry>,
    /// Its process group and session (a child starts in its parent's; a program the kernel
    /// starts leads its own).
    pub(super) group: Pid,
    pub(super) session: Pid,
    /// The parent blocked until this child execs or ends (`vfork`; 0: none).
    pub(super) vfork_parent: Pid,
    /// What it runs, as `/proc` shows it (shared with a `fork`'s child until one execs).
    pub(super) command: Arc<Command>,
    /// Its last stop or continue, until its parent's wait reports it.
    pub(super) job_change: Option<JobChange>,
    /// The I/O ports it may use (its claimed devices'), opened to it whenever it runs.
    pub(super) ports: PortGrant,
}

/// Most bytes of a process's argument vector `/proc/PID/cmdline` shows (Linux before 4.2
/// showed one page too); the rest is cut, so no process keeps more than this for it.
pub(super) const MAX_COMMAND_LINE_BYTES: usize = 4096;

/// What a process runs: its executable's path and its argument vector.
#[derive(Debug, Default)]
pub(super) struct Command {
    /// The executable's path (`/proc/PID/exe`).
    pub(super) exe: String,
    /// The arguments, each ended by a zero byte, at most [`MAX_COMMAND_LINE_BYTES`].
    pub(super) line: Vec<u8>,
}

impl Command {
    pub(super) fn new<'a>(exe: &str, argv: impl IntoIterator<Item = &'a str>) -> Arc<Self> {
        let mut line = Vec::new();
        for argument in argv {
            line.extend_from_slice(argument.as_bytes());
            line.push(0);
            if line.len() >= MAX_COMMAND_LINE_BYTES {
                line.truncate(MAX_COMMAND_LINE_BYTES);
                break;
            }
        }
        Arc::new(Self { exe: String::from(exe), line })
    }
}

/// What the scheduler keeps for each CPU.
pub(super) struct CpuState {
    /// The task it runs (0: its idle context).
    pub(super) current: Pid,
    pub(super) need_resched: bool,
    /// Kernel stacks of tasks that exited while running on them; freed after the next switch.
    pub(super) dead_stacks: Vec<KernelStack>,
    idle_stack_pointer: u64,
    /// The task it switched away from last, whose `switching_out` it clears once resumed.
    switched_from: Pid,
}

impl CpuState {
    const fn new() -> Self {
        Self {
            current: 0,
            need_resched: false,
            dead_stacks: Vec::new(),
            idle_stack_pointer: 0,
            switched_from: 0,
        }
    }
}

pub(super) struct Scheduler {
    pub(super) tasks: BTreeMap<Pid, Box<Task>>,
    pub(super) ready: VecDeque<Pid>,
    pub(super) cpus: [CpuState; MAX_CPUS],
    pub(super) next_pid: Pid,
    /// Since when deferred work has been waiting for a busy process on cpu 0 to yield.
    deferred_waiting_since_ms: Option<u64>,
}

/// Per CPU: set when its running task must check in before returning to ring 3 (time slice
/// over, kill or exit pending, blocked). Lets the common return path skip the lock entirely.
static ATTENTION: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Per CPU: the running task's pid and space, readable without the lock (syscall entry).
static CURRENT_PID: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Set in `CURRENT_PID` for a Linux program (pids stay far below it): one load tells a system
/// call both who calls and which numbering it uses.
const LINUX_CALLER: u32 = 1 << 31;
static CURRENT_SPACE: [AtomicU32; MAX_CPUS] =
    [const { AtomicU32::new(SpaceId::KERNEL.0) }; MAX_CPUS];
/// Per CPU: system calls its running task made since it was switched in; added to the task's
/// count on switch.
static SYSCALLS_SINCE_SWITCH: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// This CPU's number (callers run with interrupts off, or read a per-CPU value that is only
/// meaningful while they cannot migrate: the kernel is not preempted).
fn this_cpu() -> usize {
    arch::cpu_index() % MAX_CPUS
}

/// Timer ticks every CPU spent with nothing to run, added up (`/proc/uptime`).
static IDLE_TICKS: AtomicU64 = AtomicU64::new(0);

/// Timer ticks every CPU spent idle since boot, added up.
pub(super) fn idle_ticks() -> u64 {
    IDLE_TICKS.load(Ordering::Relaxed)
}

/// The running process's pid and the numbering its system calls use.
pub(super) fn current_caller() -> (Pid, SyscallAbi) {
    let word = CURRENT_PID[this_cpu()].load(Ordering::Relaxed);
    let abi = if word & LINUX_CALLER != 0 { SyscallAbi::Linux } else { SyscallAbi::Herald };
    (word & !LINUX_CALLER, abi)
}

/// The running process's address space.
pub(super) fn current_space() -> SpaceId {
    SpaceId(CURRENT_SPACE[this_cpu()].load(Ordering::Relaxed))
}

/// Milliseconds of CPU time the running task has had (its timer ticks).
pub(super) fn current_cpu_ms() -> u64 {
    let ticks = SCHEDULER.lock().current_task().map_or(0, |task| task.cpu_ticks);
    ticks * 1000 / u64::from(arch::TICK_HZ)
}

/// How many processes exist (ended ones not yet reaped included).
pub(super) fn process_count() -> usize {
    SCHEDULER.lock().tasks.len()
}

/// Names the running task (what `ps` shows).
pub(super) fn set_current_name(name: &str) {
    let name = String::from(name);
    if let Some(task) = SCHEDULER.lock().current_task() {
        // The old name is dropped after the lock.
        let _old = core::mem::replace(&mut task.name, name);
    }
}

/// The running task's name.
pub(super) fn current_name() -> String {
    SCHEDULER.lock().current_task().map(|task| task.name.clone()).unwrap_or_default()
}

/// Sets the running task's FS base (kept for its next switches).
pub(super) fn set_current_fs_base(base: u64) {
    if let Some(task) = SCHEDULER.lock().current_task() {
        task.fs_base = base;
    }
}

/// Runs `f` on the running Linux program's state, made first if it has none (allocated before
/// the scheduler's lock is taken). `None` if no process is running.
pub(super) fn with_linux_state<R>(f: impl FnOnce(&mut super::linux::LinuxState) -> R) -> Option<R> {
    let mut fresh = None;
    loop {
        let mut scheduler = SCHEDULER.lock();
        let task = scheduler.current_task()?;
        if task.linux.is_none() {
            if fresh.is_none() {
                drop(scheduler);
                fresh = Some(Box::default());
                continue;
            }
            task.linux = fresh.take();
        }
        return task.linux.as_deref_mut().map(f);
    }
}

/// Takes what process `pid`'s Linux calls set up out of its task, for the caller to drop with
/// no lock held (closing its descriptors may wake other tasks).
pub(super) fn take_linux_state(pid: Pid) -> Option<Box<super::linux::LinuxState>> {
    SCHEDULER.lock().tasks.get_mut(&pid).and_then(|task| task.linux.take())
}

/// The running task's FS base.
pub(super) fn current_fs_base() -> u64 {
    SCHEDULER.lock().current_task().map_or(0, |task| task.fs_base)
}

/// Process `pid`'s parent (0: the kernel, or no such process).
pub(super) fn parent_of(pid: Pid) -> Pid {
    SCHEDULER.lock().tasks.get(&pid).map_or(0, |task| task.parent)
}

/// Counts a system call of the running task.
pub(super) fn count_syscall() {
    SYSCALLS_SINCE_SWITCH[this_cpu()].fetch_add(1, Ordering::Relaxed);
}

/// Whether this CPU's running task must check in, clearing the flag (`take`) or not.
#[inline]
pub(super) fn attention(take: bool) -> bool {
    let flag = &ATTENTION[this_cpu()];
    if take { flag.swap(false, Ordering::Relaxed) } else { flag.load(Ordering::Relaxed) }
}

/// Marks `task` to end with `code` on its way back to ring 3 (on whichever CPU runs it).
pub(super) fn set_pending_kill(task: &mut Task, code: i32) {
    task.pending_kill = Some(code);
    let cpu = task.cpu % MAX_CPUS;
    ATTENTION[cpu].store(true, Ordering::Relaxed);
    // Running elsewhere, it hears of it at once rather than at its CPU's next tick.
    if cpu != this_cpu() {
        arch::wake_processor(cpu);
    }
}

/// The running task's program was replaced (`execve`): its space and numbering are these now,
/// and it must check in on its way back to ring 3 (for its new registers).
pub(super) fn switched_program(space: SpaceId, abi: SyscallAbi) {
    let cpu = this_cpu();
    let pid = CURRENT_PID[cpu].load(Ordering::Relaxed) & !LINUX_CALLER;
    let linux = if abi == SyscallAbi::Linux { LINUX_CALLER } else { 0 };
    CURRENT_PID[cpu].store(pid | linux, Ordering::Relaxed);
    CURRENT_SPACE[cpu].store(space.0, Ordering::Relaxed);
    ATTENTION[cpu].store(true, Ordering::Relaxed);
}

/// Makes `task` check in on its way back to ring 3 (a signal for it), at once if it runs on
/// another CPU.
pub(super) fn notify(task: &Task) {
    let cpu = task.cpu % MAX_CPUS;
    ATTENTION[cpu].store(true, Ordering::Relaxed);
    if cpu != this_cpu() {
        arch::wake_processor(cpu);
    }
}

/// Makes the running task check in on its way back to ring 3.
pub(super) fn notify_current() {
    ATTENTION[this_cpu()].store(true, Ordering::Relaxed);
}

/// Process `pid`'s group (0 if there is no such process).
pub(super) fn group_of(pid: Pid) -> Pid {
    SCHEDULER.lock().tasks.get(&pid).map_or(0, |task| task.group)
}

/// The live processes in group `group` (`None`: every process but the first and `caller`).
pub(super) fn members(group: Option<Pid>, caller: Pid) -> alloc::vec::Vec<Pid> {
    let scheduler = SCHEDULER.lock();
    let live = scheduler.tasks.values().filter(|task| !matches!(task.state, State::Zombie(_)));
    live.filter(|task| match group {
        Some(group) => task.group == group,
        None => task.pid != 1 && task.pid != caller,
    })
    .map(|task| task.pid)
    .collect()
}

/// Leaves this CPU's address space for the kernel's: an exiting task, before its space goes.
pub(super) fn leave_space() {
    CURRENT_SPACE[this_cpu()].store(SpaceId::KERNEL.0, Ordering::Relaxed);
}

pub(super) static SCHEDULER: IrqMutex<Scheduler> = IrqMutex::new(Scheduler {
    tasks: BTreeMap::new(),
    ready: VecDeque::new(),
    cpus: [const { CpuState::new() }; MAX_CPUS],
    next_pid: 1,
    deferred_waiting_since_ms: None,
});

impl Scheduler {
    /// The task this CPU runs (0: its idle context).
    pub(super) fn current(&self) -> Pid {
        self.cpus[this_cpu()].current
    }

    /// Whether `pid` is some CPU's current task (running, or ending on its own stack), or a
    /// CPU has not left its stack yet.
    pub(super) fn is_on_a_cpu(&self, pid: Pid) -> bool {
        self.cpus.iter().any(|cpu| cpu.current == pid)
            || self.tasks.get(&pid).is_some_and(|task| task.switching_out)
    }

    pub(super) fn current_task(&mut self) -> Option<&mut Task> {
        let current = self.current();
        self.tasks.get_mut(&current).map(|task| &mut **task)
    }

    /// Whether this CPU was asked to switch.
    pub(super) fn need_resched(&self) -> bool {
        self.cpus[this_cpu()].need_resched
    }

    /// This CPU's kernel stacks to free after its next switch.
    pub(super) fn dead_stacks(&mut self) -> &mut Vec<KernelStack> {
        &mut self.cpus[this_cpu()].dead_stacks
    }

    pub(super) fn make_ready(&mut self, pid: Pid) {
        let still_current = self.cpus.iter().any(|cpu| cpu.current == pid);
        if let Some(task) = self.tasks.get_mut(&pid)
            && matches!(task.state, State::Blocked(_))
        {
            if still_current {
                // Woken before its CPU switched away from it (on the way out of its call): it
                // simply goes on running there, and its call starts again.
                task.state = State::Running;
                return;
            }
            task.state = State::Ready;
            self.ready.push_back(pid);
            // A woken task runs soon, not after the running one's whole slice: on an idle CPU
            // if there is one, else here, where the running task gives up the CPU at its next
            // preempt point or return to ring 3.
            if !self.wake_an_idle_cpu() {
                self.request_resched();
            }
        }
    }

    /// Sends a reschedule IPI to one other online CPU in its idle context — a halted one if
    /// any, looking from the next CPU on so wake-ups spread — and says whether there was one.
    /// (Cpu 0's idle context may be busy with deferred work or the shell: a halted CPU is
    /// the better choice.)
    fn wake_an_idle_cpu(&self) -> bool {
        if arch::cpus_online() == 1 {
            return false;
        }
        let me = this_cpu();
        let idle =
            |cpu: &usize| *cpu != me && self.cpus[*cpu].current == 0 && arch::cpu_is_online(*cpu);
        let mut others = (1..MAX_CPUS).map(|step| (me + step) % MAX_CPUS);
        let chosen = others.clone().filter(idle).find(|&cpu| arch::cpu_is_halted(cpu));
        let chosen = chosen.or_else(|| others.find(idle));
        if let Some(cpu) = chosen {
            arch::wake_processor(cpu);
        }
        chosen.is_some()
    }

    /// Marks the running task blocked; it switches away on its way back to ring 3.
    pub(super) fn block_current(&mut self, reason: BlockReason) {
        if let Some(task) = self.current_task() {
            task.state = State::Blocked(reason);
            ATTENTION[this_cpu()].store(true, Ordering::Relaxed);
        }
    }

    /// Wakes every task blocked for `reason`, a batch at a time (a woken task no longer
    /// matches, so each batch finds the next ones), without allocating.
    pub(super) fn wake_all(&mut self, reason: BlockReason) {
        self.wake_matching(|blocked| blocked == reason);
    }

    /// Wakes every task blocked for a reason `wakes` accepts, as [`wake_all`](Self::wake_all).
    pub(super) fn wake_matching(&mut self, wakes: impl Fn(BlockReason) -> bool) {
        loop {
            let batch = heapless_wake::matching(&self.tasks, &wakes);
            for pid in batch.iter() {
                self.make_ready(pid);
            }
            if !batch.is_full() {
                return;
            }
        }
    }

    /// Adds a new task, runnable at the back of the queue: it waits its turn like a task
    /// woken, without taking the CPU from its creator.
    pub(super) fn add_task(&mut self, mut task: Box<Task>) {
        let pid = task.pid;
        task.state = State::Ready;
        self.tasks.insert(pid, task);
        self.ready.push_back(pid);
        self.wake_an_idle_cpu();
    }

    /// Wakes `parent` if it waits for `child` (or for any child).
    pub(super) fn wake_waiting_parent(&mut self, parent: Pid, child: Pid) {
        if let Some(State::Blocked(BlockReason::WaitChild { pid: waited })) =
            self.tasks.get(&parent).map(|task| task.state)
            && (waited == 0 || waited == child)
        {
            self.make_ready(parent);
        }
    }

    /// Whether process group `group` is orphaned (POSIX): no live member has a live parent
    /// in another group of the same session — nobody is left whose job control could continue
    /// it, so the terminal's stop signals do not stop it.
    pub(super) fn group_is_orphaned(&self, group: Pid) -> bool {
        let live = |task: &Task| !matches!(task.state, State::Zombie(_));
        let mut members = self.tasks.values().filter(|task| task.group == group && live(task));
        !members.any(|member| {
            self.tasks.get(&member.parent).is_some_and(|parent| {
                live(parent) && parent.group != group && parent.session == member.session
            })
        })
    }

    /// Asks this CPU to switch at its next chance.
    pub(super) fn request_resched(&mut self) {
        let cpu = this_cpu();
        self.cpus[cpu].need_resched = true;
        ATTENTION[cpu].store(true, Ordering::Relaxed);
    }
}

/// Subscribes the scheduler to the timer.
pub(super) fn init() {
    BUS.subscribe(EventKind::Timer, "scheduler", Priority::OWNER, on_tick)
        .expect("the scheduler subscribes at boot")
        .keep_forever();
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
    } else {
        IDLE_TICKS.fetch_add(1, Ordering::Relaxed);
        if !scheduler.ready.is_empty() {
            scheduler.request_resched();
        }
    }
    // Deferred work (input, driver bottom halves) waits at most DEFERRED_LATENCY_MS for a busy
    // process to give up the CPU; switching on every tick would let a fast timer starve the
    // process with switches.
    let now_ms = arch::milliseconds();
    if scheduler.current() != 0 && BUS.has_deferred_work() {
        let since = *scheduler.deferred_waiting_since_ms.get_or_insert(now_ms);
        if now_ms - since >= DEFERRED_LATENCY_MS {
            scheduler.request_resched();
        }
    } else {
        scheduler.deferred_waiting_since_ms = None;
    }
    Verdict::Handled
}

/// Another CPU's timer tick: its running task's slice, and a switch if work is waiting.
pub(super) fn on_local_tick() {
    let mut scheduler = SCHEDULER.lock();
    let waiting = !scheduler.ready.is_empty();
    match scheduler.current_task() {
        Some(task) => {
            task.cpu_ticks += 1;
            task.slice_left_ticks = task.slice_left_ticks.saturating_sub(1);
            if task.slice_left_ticks == 0 && waiting {
                scheduler.request_resched();
            }
        }
        None => {
            IDLE_TICKS.fetch_add(1, Ordering::Relaxed);
            if waiting {
                scheduler.request_resched();
            }
        }
    }
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

    /// Sleepers (and input waiters with a time limit) due by `now_ms`.
    pub(super) fn collect(tasks: &BTreeMap<Pid, Box<Task>>, now_ms: u64) -> Wake {
        matching(tasks, |reason| match reason {
            BlockReason::Sleep { until_ms }
            | BlockReason::Input { until_ms }
            | BlockReason::Poll { until_ms } => until_ms <= now_ms,
            _ => false,
        })
    }
}

/// A long call's preempt point (`always`: a yield while waiting for another task): switches
/// away if the scheduler wants to, marking the task as parked inside a call so a kill waits for
/// the call to finish. The idle task is the kernel's own work (the shell, deferred handlers the
/// watchdog times): it is never preempted, and yields only when it must wait.
pub(super) fn park_in_call(always: bool) {
    let were_enabled = cpu::mask_interrupts();
    let switch = {
        let mut scheduler = SCHEDULER.lock();
        if always {
            scheduler.request_resched();
        }
        let need_resched = scheduler.need_resched();
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
pub(super) fn schedule() {
    let cpu = this_cpu();
    let (save, load) = {
        let mut scheduler = SCHEDULER.lock();
        let scheduler = &mut *scheduler;
        scheduler.cpus[cpu].need_resched = false;
        let previous = scheduler.cpus[cpu].current;
        if let Some(task) = scheduler.tasks.get_mut(&previous)
            && task.state == State::Running
        {
            task.state = State::Ready;
            scheduler.ready.push_back(previous);
        }
        let mut next = 0;
        // Deferred work (driver bottom halves, the shell) runs in cpu 0's idle task and comes
        // first, like softirqs: otherwise a busy process would starve input, even Ctrl-C.
        let deferred_waiting = cpu == 0 && BUS.has_deferred_work() && previous != 0;
        // A task another CPU is still leaving waits in the queue; each is looked at once.
        let mut looked_at = 0;
        let candidates = scheduler.ready.len();
        while !deferred_waiting && looked_at < candidates {
            let Some(pid) = scheduler.ready.pop_front() else { break };
            looked_at += 1;
            let elsewhere = scheduler
                .cpus
                .iter()
                .enumerate()
                .any(|(other, state)| other != cpu && state.current == pid);
            match scheduler.tasks.get(&pid) {
                Some(task) if task.state == State::Ready && (task.switching_out || elsewhere) => {
                    // Another CPU is still on its stack: it waits its turn.
                    scheduler.ready.push_back(pid);
                }
                Some(task) if task.state == State::Ready => {
                    next = pid;
                    break;
                }
                _ => {}
            }
        }
        if next == previous {
            if let Some(task) = scheduler.tasks.get_mut(&previous) {
                task.state = State::Running;
                task.slice_left_ticks = TIME_SLICE_TICKS;
            }
            return;
        }
        scheduler.cpus[cpu].current = next;
        scheduler.cpus[cpu].switched_from = previous;
        let syscalls = SYSCALLS_SINCE_SWITCH[cpu].swap(0, Ordering::Relaxed);
        if let Some(task) = scheduler.tasks.get_mut(&previous) {
            task.syscalls += syscalls;
            task.switching_out = true;
            // The registers are still the leaving task's: the kernel never touches them.
            task.fpu.save();
        }
        let linux = scheduler.tasks.get(&next).is_some_and(|task| task.abi == SyscallAbi::Linux);
        CURRENT_PID[cpu].store(if linux { next | LINUX_CALLER } else { next }, Ordering::Relaxed);
        let load = match scheduler.tasks.get_mut(&next) {
            Some(task) => {
                task.state = State::Running;
                task.cpu = cpu;
                task.slice_left_ticks = TIME_SLICE_TICKS;
                let signalled =
                    task.linux.as_deref().is_some_and(super::linux::LinuxState::has_deliverable);
                if task.pending_kill.is_some() || task.pending_entry.is_some() || signalled {
                    // Killed (or its program replaced) while parked inside a call: the flag
                    // that tells its return path is per CPU, and it may have been another's.
                    ATTENTION[cpu].store(true, Ordering::Relaxed);
                }
                task.fpu.restore();
                arch::set_user_fs_base(task.fs_base);
                let top = task.kernel_stack.as_ref().expect("a live task has a stack").top();
                // SAFETY: interrupts are off; the stack belongs to the task about to run and
                // stays mapped while it lives.
                unsafe { arch::set_kernel_stack(top) };
                arch::set_user_ports(&task.ports);
                space::switch_to(task.space).expect("a live task's space exists");
                CURRENT_SPACE[cpu].store(task.space.0, Ordering::Relaxed);
                task.saved_stack_pointer
            }
            None => {
                space::switch_to(SpaceId::KERNEL).expect("the kernel space exists");
                CURRENT_SPACE[cpu].store(SpaceId::KERNEL.0, Ordering::Relaxed);
                scheduler.cpus[cpu].idle_stack_pointer
            }
        };
        let save: *mut u64 = match scheduler.tasks.get_mut(&previous) {
            Some(task) => &raw mut task.saved_stack_pointer,
            None => &raw mut scheduler.cpus[cpu].idle_stack_pointer,
        };
        (save, load)
    };
    // SAFETY: interrupts are off and no lock is held; `load` was saved by a switch or made by
    // `prepare_user_entry` on a stack that is still mapped; `save` lives in a boxed task or the
    // scheduler static, neither of which is freed before the task is resumed or reaped (the
    // task is `switching_out` until the lines below run).
    unsafe { context::switch(save, load) };
    after_switch();
}

/// Runs on the stack just switched to: the task switched away from is left for good now (its
/// stack and save slot free for another CPU, or for freeing), and so are the stacks of tasks
/// that exited on this CPU and the zombies of orphans.
pub(super) fn after_switch() {
    let (dead_stacks, dead_orphans, still_leaving) = {
        let mut scheduler = SCHEDULER.lock();
        let cpu = this_cpu();
        let left = core::mem::take(&mut scheduler.cpus[cpu].switched_from);
        let dead_stacks = core::mem::take(&mut scheduler.cpus[cpu].dead_stacks);
        // A task that ended here is left only once its stack is freed: the parent it wakes
        // then finds every frame of it back (freeing first, then waking, under a second hold
        // of the lock; the common switch, with nothing to free, takes the lock once).
        let still_leaving = if dead_stacks.is_empty() {
            finish_leaving(&mut scheduler, left);
            0
        } else {
            left
        };
        let orphans: Vec<Pid> = scheduler
            .tasks
            .values()
            .filter(|t| t.orphaned && matches!(t.state, State::Zombie(_)))
            .map(|t| t.pid)
            .filter(|&pid| !scheduler.is_on_a_cpu(pid))
            .collect();
        let removed: Vec<_> =
            orphans.iter().filter_map(|pid| scheduler.tasks.remove(pid)).collect();
        (dead_stacks, removed, still_leaving)
    };
    drop(dead_stacks);
    drop(dead_orphans);
    if still_leaving != 0 {
        finish_leaving(&mut SCHEDULER.lock(), still_leaving);
    }
}

/// The CPU that ran `left` is off its stack for good: another CPU may resume it, and if it has
/// ended, its parent may reap it (woken if it found it still leaving).
fn finish_leaving(scheduler: &mut Scheduler, left: Pid) {
    if let Some(task) = scheduler.tasks.get_mut(&left) {
        task.switching_out = false;
        if let State::Zombie(_) = task.state {
            let parent = task.parent;
            scheduler.wake_waiting_parent(parent, left);
        }
    }
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

/// Wakes `pid` if it waits in `irq_wait`. Called from a line's interrupt (the scheduler's lock
/// masks interrupts, so it never interrupts a holder on its own CPU).
pub(super) fn wake_irq_waiter(pid: Pid) {
    let mut scheduler = SCHEDULER.lock();
    if scheduler.tasks.get(&pid).is_some_and(|task| task.state == State::Blocked(BlockReason::Irq))
    {
        scheduler.make_ready(pid);
    }
}

/// Changes the ports of the process running on this CPU with `change` (`false`: refused, left
/// as it was) and opens the new set to it at once.
pub(super) fn change_current_ports(change: impl FnOnce(&mut PortGrant) -> bool) -> bool {
    let mut scheduler = SCHEDULER.lock();
    let Some(task) = scheduler.current_task() else { return false };
    let mut ports = task.ports;
    if !change(&mut ports) {
        return false;
    }
    task.ports = ports;
    // Under the lock, interrupts masked: no switch between the record and the bitmap.
    arch::set_user_ports(&ports);
    true
}

/// Whether process `pid` exists and has not ended.
pub fn is_alive(pid: Pid) -> bool {
    SCHEDULER.lock().tasks.get(&pid).is_some_and(|task| !matches!(task.state, State::Zombie(_)))
}

/// One step of the idle task: deferred work first (a budget of it), then a ready process;
/// halts until the next interrupt only when there was neither.
pub fn idle_step() {
    cpu::disable_interrupts();
    let had_deferred_work = BUS.has_deferred_work();
    if had_deferred_work {
        cpu::enable_interrupts();
        BUS.run_deferred(DEFERRED_BUDGET_PER_ROUND);
        cpu::disable_interrupts();
    }
    // Then a ready process gets its turn in the same step: deferred work that arrives faster
    // than a step takes (a timer-driven queue, each tick) must not starve processes here.
    let ready = !SCHEDULER.lock().ready.is_empty();
    if ready {
        schedule();
        cpu::enable_interrupts();
    } else if had_deferred_work {
        cpu::enable_interrupts();
    } else {
        arch::halt_while_idle();
    }
}

/// One step of another CPU's idle loop: a ready process, else halt until the next interrupt
/// (its timer ticks every millisecond). Deferred work is cpu 0's.
pub(super) fn processor_idle_step() {
    cpu::disable_interrupts();
    let ready = !SCHEDULER.lock().ready.is_empty();
    if ready {
        schedule();
        cpu::enable_interrupts();
    } else {
        arch::halt_while_idle();
    }
}
