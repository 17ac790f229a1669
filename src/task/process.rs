//! Processes' lives: starting a program (its address space, stack and arguments), ending one
//! (a kill, a fault, its own exit, out of memory), waiting for it, and what `ps` shows. The
//! table and the switching they use are `scheduler.rs`'s.

use alloc::{boxed::Box, string::String, sync::Arc, vec::Vec};

use super::{
    Pid, elf, image,
    ramdisk::{EntryKind, Ramdisk},
    scheduler::{
        self, BlockReason, Command, JobChange, KERNEL_ONLY_PROCESS_SLOTS, MAX_PROCESSES, SCHEDULER,
        Scheduler, State, TIME_SLICE_TICKS, Task, schedule,
    },
    subscriptions, words,
};
use crate::{
    abi,
    arch::{self, TrapFrame, context, cpu, paging},
    events::{Access, BUS, Errno, Event, EventKind, Priority, Reply, SpaceId, SyscallAbi, Verdict},
    mm::{self, KernelStack, space, user_copy},
    security::{self, LinuxManifest},
};

/// Each process's kernel stack: traps and system calls run on it.
const KERNEL_STACK_SIZE_BYTES: u64 = 32 * 1024;
/// Largest argument string a program gets.
pub const MAX_ARGS_LEN_BYTES: usize = 4096;

/// The file tree the loader brought (read once at boot, never changed).
static RAMDISK: spin::Once<Ramdisk<'static>> = spin::Once::new();
/// Where a program named without a `/` is looked for.
pub const PROGRAM_DIRECTORY: &str = "/bin";
/// First bytes of an executable (ELF).
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// The image path of program `name`: `/bin/NAME`, or `name` itself if it is a path (has a `/`).
pub fn program_path(name: &str) -> String {
    if name.contains('/') {
        String::from(name)
    } else {
        alloc::format!("{PROGRAM_DIRECTORY}/{name}")
    }
}

/// The contents of program `name` (see [`program_path`]).
pub fn ramdisk_file(name: &str) -> Option<&'static [u8]> {
    image_file(&program_path(name))
}

/// The contents of the image's file at `path`.
pub fn image_file(path: &str) -> Option<&'static [u8]> {
    RAMDISK.get().and_then(|ramdisk| ramdisk.find(path))
}

/// The programs in `/bin` (its executables), as (name, size in bytes).
pub fn programs() -> Vec<(&'static str, usize)> {
    let Some(ramdisk) = RAMDISK.get() else { return Vec::new() };
    ramdisk
        .directory(PROGRAM_DIRECTORY)
        .filter(|(_, data)| data.starts_with(ELF_MAGIC))
        .map(|(name, data)| (name, data.len()))
        .collect()
}

/// Share of user memory files may hold beyond the boot image's own bytes.
const FILE_SYSTEM_SHARE_DIVISOR: u64 = 4;

/// The file system's tree: the boot image's entries, then `/dev`, `/tmp` and `/proc`.
fn build_file_system() {
    use crate::fs::{self, Device, ImageNode};
    fs::set_clock(arch::unix_time_milliseconds);
    fs::set_capacity(mm::user_memory_bytes() / FILE_SYSTEM_SHARE_DIVISOR);
    for entry in RAMDISK.get().into_iter().flat_map(|ramdisk| ramdisk.entries()) {
        let node = match entry.kind {
            EntryKind::File => ImageNode::File(entry.data),
            EntryKind::Directory => ImageNode::Directory,
            EntryKind::Symlink => match core::str::from_utf8(entry.data) {
                Ok(target) => ImageNode::Symlink(target),
                Err(_) => {
                    log::warn!("boot image: link {} has a non-UTF-8 target: left out", entry.path);
                    continue;
                }
            },
        };
        if let Err(errno) = fs::add_image_node(entry.path, node, entry.permissions) {
            log::warn!("boot image: {} left out: {errno}", entry.path);
        }
    }
    let devices = [
        ("dev/null", Device::Null),
        ("dev/zero", Device::Zero),
        ("dev/console", Device::Console),
        ("dev/tty", Device::Console),
        ("dev/urandom", Device::Random),
        ("dev/random", Device::Random),
    ];
    for (path, device) in devices {
        fs::add_image_node(path, ImageNode::Device(device), 0o666).expect("/dev is made at boot");
    }
    fs::add_image_node("tmp", ImageNode::Directory, 0o1777).expect("/tmp is made at boot");
    super::procfs::mount();
}

/// Wires processes to the trap path (the return to ring 3, preempt points) and the bus (their
/// faults), and reads the ramdisk's table.
pub(super) fn init(ramdisk_image: Option<&'static [u8]>) {
    match ramdisk_image.map(Ramdisk::parse) {
        Some(Ok(ramdisk)) => {
            log::info!("boot image: {} files", ramdisk.files().count());
            RAMDISK.call_once(|| ramdisk);
        }
        Some(Err(error)) => log::error!("ramdisk refused: {error}"),
        None => log::warn!("no ramdisk: no user programs to run"),
    }
    build_file_system();
    arch::set_task_hooks(arch::TaskHooks {
        current_caller: scheduler::current_caller,
        before_user_return,
        preempt_point: || {
            // Every reason to stop here (a resched, a kill) raises the attention flag first:
            // without it, a step costs one load.
            if !scheduler::attention(false) {
                return false;
            }
            scheduler::park_in_call(false);
            SCHEDULER.lock().current_task().is_some_and(|task| task.pending_kill.is_some())
        },
        yield_now: || scheduler::park_in_call(true),
        after_switch: scheduler::after_switch,
        processor_idle_step: scheduler::processor_idle_step,
        local_tick: scheduler::on_local_tick,
    });
    // Below mm in the owner band: mm resolves what it can (demand paging) first.
    for kind in [EventKind::Exception, EventKind::PageFault] {
        BUS.subscribe(kind, "process-faults", Priority::owner(100), on_user_fault)
            .expect("the scheduler subscribes at boot")
            .keep_forever();
    }
}

fn on_user_fault(event: &Event, reply: &mut Reply) -> Verdict {
    let (vector, fault_address, error_code, detail) = match *event {
        Event::Exception { vector, rip, from_user: true, error_code } => {
            // #DB and #BP from ring 3 are traps a debugger would use; the default resumes.
            if vector == 1 || vector == 3 {
                return Verdict::Continue;
            }
            // si_addr of a #GP is 0 (Linux's), of the others the faulting instruction.
            let address = if vector == 13 { 0 } else { rip };
            (
                vector,
                address,
                error_code,
                alloc::format!("at rip {rip:#x}, error code {error_code:#x}"),
            )
        }
        Event::PageFault { address, access, rip, from_user: true, present } => {
            let error_code = u64::from(present)
                | if access == Access::Write { 2 } else { 0 }
                | if access == Access::Execute { 16 } else { 0 }
                | 4;
            let access = match access {
                Access::Read => "read",
                Access::Write => "write",
                Access::Execute => "instruction fetch",
            };
            (14, address, error_code, alloc::format!("{access} of {address:#x} at rip {rip:#x}"))
        }
        _ => return Verdict::Continue,
    };
    // A Linux program that catches the fault's signal gets it: its handler runs when the
    // fault returns to ring 3.
    if !reply.out_of_memory && super::linux::fault_to_handler(vector, fault_address, error_code) {
        return Verdict::Handled;
    }
    let mut scheduler = SCHEDULER.lock();
    let Some(task) = scheduler.current_task() else { return Verdict::Continue };
    let linux = task.abi == SyscallAbi::Linux;
    if reply.out_of_memory {
        log::warn!("pid {} ({}) killed: out of memory ({detail})", task.pid, task.name);
        // Linux's out-of-memory killer sends SIGKILL.
        let code = if linux { abi::signalled_exit_code(9) } else { abi::OUT_OF_MEMORY_EXIT_CODE };
        scheduler::set_pending_kill(task, code);
        return Verdict::Handled;
    }
    let (mnemonic, name) = arch::exception_name(vector);
    log::warn!("pid {} ({}) killed: {mnemonic} {name} {detail}", task.pid, task.name);
    let code = if linux {
        abi::signalled_exit_code(super::linux::fault_signal(vector) as i32)
    } else {
        abi::FAULT_EXIT_CODE_BASE + i32::from(vector)
    };
    scheduler::set_pending_kill(task, code);
    Verdict::Handled
}

/// Runs with interrupts off just before a trap or system call returns to ring 3 with `frame`.
/// Nearly always there is nothing to do: that check stays in this small frame, the work in
/// its own. Returns whether every register of `frame` must be restored (`iretq`).
fn before_user_return(frame: &mut TrapFrame) -> bool {
    scheduler::attention(true) && attend_before_user_return(frame)
}

/// A kill, a block, a reschedule, a new program's entry or a signal is pending for the task
/// about to return to ring 3 with `frame`.
#[inline(never)]
fn attend_before_user_return(frame: &mut TrapFrame) -> bool {
    enum Action {
        Exit(i32),
        Switch,
        /// Back to ring 3, with a new program's entry to set, and whether its Linux signal
        /// state has work (a handler to enter or leave, a call's restart to settle).
        Return(Option<context::UserEntry>, bool, SpaceId),
    }
    // A stop on the way out leaves the registers set up as they are; a restore of all of
    // them asked for then is still owed when the task goes on.
    let mut full_restore_owed = false;
    loop {
        let action = {
            let mut scheduler = SCHEDULER.lock();
            let need_resched = scheduler.need_resched();
            match scheduler.current_task() {
                None => Action::Return(None, false, SpaceId::KERNEL),
                Some(task) => match (task.pending_kill, task.state) {
                    (Some(code), _) => Action::Exit(code),
                    (None, State::Blocked(_)) => Action::Switch,
                    (None, _) if need_resched => Action::Switch,
                    _ => {
                        let signals = task
                            .linux
                            .as_deref()
                            .is_some_and(super::linux::LinuxState::has_return_work);
                        Action::Return(task.pending_entry.take(), signals, task.space)
                    }
                },
            }
        };
        match action {
            Action::Exit(code) => exit_current(code),
            Action::Switch => schedule(),
            Action::Return(entry, signals, space) => {
                match prepare_user_registers(frame, entry, signals, space) {
                    Ok(Prepared::Ring3 { full_restore }) => {
                        return full_restore || full_restore_owed;
                    }
                    // Stopped: the next turn finds it blocked and switches away until it is
                    // continued or ended.
                    Ok(Prepared::Stopped { full_restore }) => full_restore_owed |= full_restore,
                    Err(code) => exit_current(code),
                }
            }
        }
    }
}

/// Where [`prepare_user_registers`] leaves the task, and whether every register of its frame
/// must be restored (`iretq`).
enum Prepared {
    /// Ready for ring 3.
    Ring3 { full_restore: bool },
    /// Stopped by a signal on the way: ring 3 once it is continued.
    Stopped { full_restore: bool },
}

/// The last step before ring 3: a program that replaced its own starts at its `entry`; a
/// Linux program's signals are delivered. Returns where that leaves the task, or the code to
/// end it with.
fn prepare_user_registers(
    frame: &mut TrapFrame,
    entry: Option<context::UserEntry>,
    signals: bool,
    space: SpaceId,
) -> Result<Prepared, i32> {
    if let Some(entry) = entry {
        context::enter(frame, entry);
    }
    if !signals {
        return Ok(Prepared::Ring3 { full_restore: false });
    }
    match super::linux::before_user_return(frame, space) {
        super::linux::Return::Registers(full_restore) => Ok(Prepared::Ring3 { full_restore }),
        super::linux::Return::Stop(full_restore) => Ok(Prepared::Stopped { full_restore }),
        super::linux::Return::End(code) => Err(code),
    }
}

/// Ends the running task; never returns. Interrupts must be off.
///
/// Its memory goes first, while it is still a runnable task: freeing a large address space
/// takes many steps, and between them the task may be preempted like any long call. Only then
/// does it become a zombie and switch away for good.
fn exit_current(code: i32) -> ! {
    let (pid, space) = {
        let mut scheduler = SCHEDULER.lock();
        let pid = scheduler.current();
        let task = scheduler.current_task().expect("only a process exits");
        let space = core::mem::replace(&mut task.space, SpaceId::KERNEL);
        scheduler::leave_space();
        (pid, space)
    };
    space::switch_to(SpaceId::KERNEL).expect("the kernel space exists");
    // The long parts run with interrupts on: freeing the memory, and dropping the
    // subscriptions, whose grace period waits for every other CPU's read sections.
    cpu::enable_interrupts();
    drop(subscriptions::take(pid));
    super::drivers::release_all(pid);
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
    let ended = begin_finish(&mut SCHEDULER.lock(), pid, code);
    if let Some(ended) = ended {
        complete_finish(pid, code, ended);
    }
}

/// The part of [`finish`] under the scheduler's lock: the task becomes a zombie (so no CPU
/// picks it again), its children orphans, a waiting parent ready. Returns what is freed after
/// the lock, or `None` if it had ended already.
fn begin_finish(scheduler: &mut Scheduler, pid: Pid, code: i32) -> Option<Ended> {
    // A Linux parent that ignores SIGCHLD (or asked SA_NOCLDWAIT) leaves its ended children
    // unwaited: they go as an orphan's do (its SIGCHLD still comes).
    let parent = scheduler.tasks.get(&pid)?.parent;
    let unwaited = scheduler
        .tasks
        .get(&parent)
        .and_then(|parent| parent.linux.as_deref())
        .is_some_and(super::linux::LinuxState::discards_children);
    let task = scheduler.tasks.get_mut(&pid)?;
    if matches!(task.state, State::Zombie(_)) {
        return None;
    }
    task.orphaned |= unwaited;
    task.state = State::Zombie(code);
    task.pending_kill = None;
    let vfork_parent = core::mem::take(&mut task.vfork_parent);
    let stack = task.kernel_stack.take();
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
        if ended && !scheduler.is_on_a_cpu(child) {
            scheduler.tasks.remove(&child);
        }
    }
    scheduler.wake_waiting_parent(parent, pid);
    if vfork_parent != 0 {
        scheduler.wake_all(BlockReason::Vfork { child: pid });
    }
    let stack = if scheduler.current() == pid {
        // Still running on it: freed after the switch away.
        scheduler.dead_stacks().extend(stack);
        None
    } else {
        stack
    };
    // An orphan's zombie has no reader; one still on a CPU stays until that CPU has left it.
    if orphaned && !scheduler.is_on_a_cpu(pid) {
        scheduler.tasks.remove(&pid);
    }
    Some(Ended { space, stack, parent })
}

/// What is left to do for an ended task once the scheduler's lock is let go.
struct Ended {
    space: SpaceId,
    stack: Option<KernelStack>,
    /// Its parent when it ended (0: the kernel, or an orphan's).
    parent: Pid,
}

/// The part of [`finish`] after the lock: subscriptions, stack, memory, the announcement.
fn complete_finish(pid: Pid, code: i32, ended: Ended) {
    let Ended { space, stack, parent } = ended;
    drop(subscriptions::take(pid));
    super::drivers::release_all(pid);
    // Its descriptors close here, outside every lock: the last end of a pipe wakes the other.
    drop(scheduler::take_linux_state(pid));
    drop(stack);
    security::on_exit(pid);
    if space::current() == space {
        space::switch_to(SpaceId::KERNEL).expect("the kernel space exists");
    }
    release_space(pid, space);
    if parent != 0 {
        super::linux::child_ended(parent, pid, code);
    }
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
    /// The program's sandbox manifest is wrong on this line (a word that is not a Linux call,
    /// a bad `path` line).
    BadManifest(u32),
    /// The argument string opens a quote it never closes (a Linux program's argv is split as a
    /// shell splits words).
    UnclosedQuote,
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
            Self::UnclosedQuote => f.write_str("the arguments open a quote they never close"),
            Self::BadManifest(line) => {
                write!(f, "its {MANIFEST_SUFFIX} manifest is wrong on line {line}")
            }
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::TooManyProcesses => write!(f, "too many processes (limit {MAX_PROCESSES})"),
        }
    }
}

impl From<image::LoadError> for SpawnError {
    fn from(error: image::LoadError) -> Self {
        match error {
            image::LoadError::OutOfMemory => Self::OutOfMemory,
            image::LoadError::ArgumentsTooLong => Self::ArgumentsTooLong,
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
            Self::UnclosedQuote | Self::BadManifest(_) => Errno::EINVAL,
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
    let path = program_path(name);
    let image = image_file(&path).ok_or(SpawnError::NotFound)?;
    let manifest = match image_file(&alloc::format!("{path}{MANIFEST_SUFFIX}")) {
        Some(text) => Some(parse_manifest(text)?),
        None => None,
    };
    let words = words_of(args);
    let command = Command::new(&path, [name].into_iter().chain(words.iter().map(String::as_str)));
    start(name, image, args, parent, rights, manifest.as_ref(), command)
}

/// Starts the executable `image` as a child of `parent`.
pub fn spawn_image(name: &str, image: &[u8], args: &str, parent: Pid) -> Result<Pid, SpawnError> {
    let words = words_of(args);
    let command = Command::new(name, [name].into_iter().chain(words.iter().map(String::as_str)));
    start(name, image, args, parent, 0, None, command)
}

/// `args` as the words a shell would make of them (blanks between, if it opens a quote it
/// never closes): what `/proc/PID/cmdline` shows.
fn words_of(args: &str) -> Vec<String> {
    words::split(args).unwrap_or_else(|_| args.split_whitespace().map(String::from).collect())
}

/// What a Linux program's sandbox manifest is called: its path with this added.
const MANIFEST_SUFFIX: &str = ".syscalls";

/// Parses a sandbox manifest (`security::manifest` has its format); what is wrong with a
/// refused one is logged, with its line.
pub fn parse_manifest(text: &[u8]) -> Result<LinuxManifest, SpawnError> {
    LinuxManifest::parse(text).map_err(|error| {
        log::warn!("manifest line {}: {}", error.line, error.reason);
        SpawnError::BadManifest(error.line)
    })
}

fn start(
    name: &str,
    image: &[u8],
    args: &str,
    parent: Pid,
    withheld_rights: u64,
    manifest: Option<&LinuxManifest>,
    command: Arc<Command>,
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
    match build_process(space, &plan, image, name, args) {
        Ok((stack, saved_stack_pointer)) => {
            let new = NewTask {
                name: name.into(),
                parent,
                space,
                stack,
                saved_stack_pointer,
                fpu: arch::FpuState::initial(),
                abi: if plan.herald_abi { SyscallAbi::Herald } else { SyscallAbi::Linux },
                fs_base: 0,
                // A Linux program's signal state must exist before anyone can signal it.
                linux: (!plan.herald_abi).then(Box::default),
                group: None,
                session: None,
                vfork_parent: 0,
                command,
            };
            let declared = if plan.herald_abi {
                security::DeclaredCalls::Herald(plan.declared_syscalls)
            } else {
                security::DeclaredCalls::Linux(manifest)
            };
            admit(new, allocate_pid(), declared, withheld_rights, process_limit)
                .ok_or(SpawnError::TooManyProcesses)
        }
        Err(error) => {
            let _ = space::destroy(space);
            Err(error)
        }
    }
}

/// How a `fork` (or `clone`) child differs from a plain copy of its parent.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ForkOptions {
    /// The child's user stack pointer (`clone`'s `stack`), instead of the parent's.
    pub(super) stack: Option<u64>,
    /// The child's FS base (`CLONE_SETTLS`), instead of the parent's.
    pub(super) tls: Option<u64>,
    /// Where the child's memory gets its pid (`CLONE_CHILD_SETTID`), and where both the
    /// parent's and the child's do (`CLONE_PARENT_SETTID`).
    pub(super) child_tid_at: Option<u64>,
    pub(super) parent_tid_at: Option<u64>,
    /// The parent waits until the child has replaced its program or ended (`CLONE_VFORK`).
    pub(super) vfork: bool,
}

/// `fork`: a copy of the running process — its memory (copied), registers (with 0 as the
/// call's result), FPU state, FS base and what its Linux calls set up (descriptors shared with
/// the parent's open files, the working directory, signal state) — as a new child of it,
/// changed as `options` say. Returns the child's pid.
pub(super) fn fork_current(options: &ForkOptions) -> Result<Pid, Errno> {
    let command;
    let (parent, name, space, stack_top, fs_base, abi, linux, group, session) = {
        let mut scheduler = SCHEDULER.lock();
        let task = scheduler.current_task().ok_or(Errno::ESRCH)?;
        let stack_top = task.kernel_stack.as_ref().map(KernelStack::top).ok_or(Errno::ESRCH)?;
        let linux = task.linux.as_deref().map(super::linux::LinuxState::fork_copy);
        let name = task.name.clone();
        command = task.command.clone();
        (
            task.pid,
            name,
            task.space,
            stack_top,
            task.fs_base,
            task.abi,
            linux,
            task.group,
            task.session,
        )
    };
    let process_limit = MAX_PROCESSES - KERNEL_ONLY_PROCESS_SLOTS;
    if SCHEDULER.lock().tasks.len() >= process_limit {
        return Err(Errno::EAGAIN);
    }
    if !mm::has_room_for_processes() {
        return Err(Errno::ENOMEM);
    }
    // The parent's x87/SSE registers are this CPU's until it switches away, and the kernel
    // never touches them: saved now, they are the parent's as the call was made.
    let mut fpu = arch::FpuState::initial();
    fpu.save();
    // SAFETY: the running task is in a system call it made with `syscall` (this is one), and
    // `stack_top` is the top of its own kernel stack.
    let mut registers = unsafe { context::user_registers(stack_top) };
    registers.rax = 0;
    if let Some(stack) = options.stack {
        if stack >= paging::USER_SPACE.end {
            return Err(Errno::EFAULT);
        }
        registers.rsp = stack;
    }
    let child_space = space::duplicate(space)?;
    let pid = allocate_pid();
    let written = fill_tid_slots(options, pid, space, child_space);
    let stack = match (written, KernelStack::new(KERNEL_STACK_SIZE_BYTES)) {
        (Ok(()), Ok(stack)) => stack,
        (written, _) => {
            let _ = space::destroy(child_space);
            return Err(written.err().unwrap_or(Errno::ENOMEM));
        }
    };
    // SAFETY: the stack is fresh, mapped and page aligned at its top; the registers' rip is
    // the parent's user one, saved by `syscall`, and rsp the parent's or checked above.
    let saved_stack_pointer = unsafe { context::prepare_user_return(stack.top(), registers) };
    let new = NewTask {
        name,
        parent,
        space: child_space,
        stack,
        saved_stack_pointer,
        fpu,
        abi,
        fs_base: options.tls.unwrap_or(fs_base),
        linux: linux.map(Box::new),
        group: Some(group),
        session: Some(session),
        vfork_parent: if options.vfork { parent } else { 0 },
        command,
    };
    let child = admit(new, pid, security::DeclaredCalls::Inherited, 0, process_limit)
        .ok_or(Errno::EAGAIN)?;
    if options.vfork {
        // Until the child lets go of the parent (`exec`, its end): checked and blocked in one
        // hold of the lock that the child's letting go takes too.
        let mut scheduler = SCHEDULER.lock();
        if scheduler.tasks.get(&child).is_some_and(|task| task.vfork_parent == parent) {
            scheduler.block_current(BlockReason::Vfork { child });
        }
    }
    Ok(child)
}

/// Writes a new child's pid where `options` ask (`clone`'s `CLONE_*_SETTID`), before it runs.
fn fill_tid_slots(
    options: &ForkOptions,
    pid: Pid,
    parent_space: SpaceId,
    child_space: SpaceId,
) -> Result<(), Errno> {
    let bytes = pid.to_le_bytes();
    if let Some(at) = options.parent_tid_at {
        user_copy::copy_to_user(parent_space, at, &bytes)?;
        user_copy::copy_to_user(child_space, at, &bytes)?;
    }
    if let Some(at) = options.child_tid_at {
        user_copy::copy_to_user(child_space, at, &bytes)?;
    }
    Ok(())
}

/// A `vfork` child let go of its parent (it replaced its program, or ended): the parent runs
/// again.
fn release_vfork_parent(scheduler: &mut Scheduler, child: Pid) {
    let Some(task) = scheduler.tasks.get_mut(&child) else { return };
    if core::mem::take(&mut task.vfork_parent) != 0 {
        scheduler.wake_all(BlockReason::Vfork { child });
    }
}

/// The next process id.
fn allocate_pid() -> Pid {
    let mut scheduler = SCHEDULER.lock();
    let pid = scheduler.next_pid;
    scheduler.next_pid += 1;
    pid
}

/// The running task's user stack pointer as its current system call entered the kernel.
pub(super) fn current_user_rsp() -> Result<u64, Errno> {
    let stack_top = SCHEDULER
        .lock()
        .current_task()
        .and_then(|task| task.kernel_stack.as_ref().map(KernelStack::top))
        .ok_or(Errno::ESRCH)?;
    // SAFETY: the running task is in a system call it made from ring 3 (Linux calls come
    // only from there), and `stack_top` is the top of its own kernel stack.
    Ok(unsafe { context::user_registers(stack_top) }.rsp)
}

/// The program `execve` replaces the running one's with, as its caller found and read it.
pub(super) struct Exec<'a> {
    /// What `ps` calls it (the file's name).
    pub(super) name: &'a str,
    /// The path it was run by (`/proc/PID/exe`).
    pub(super) path: &'a str,
    /// The executable's bytes.
    pub(super) image: &'a [u8],
    /// A Linux program's argument vector (its first entry its name as invoked) and
    /// environment; a Herald program gets `argv[1..]` joined by blanks.
    pub(super) argv: &'a [&'a str],
    pub(super) envp: &'a [&'a str],
    /// What its sandbox manifest declares, if it has one.
    pub(super) manifest: Option<&'a LinuxManifest>,
}

/// Replaces the running process's program with `exec`'s: the new address space is built and
/// loaded first — if that fails the old program carries on, with the error — then swapped in
/// and the old one freed. The process keeps its pid, parent, descriptors (what its Linux
/// state keeps is the caller's business) and time; its registers become the new entry's on
/// the way back to ring 3, its FPU state and FS base a new program's.
pub(super) fn exec_current(exec: &Exec<'_>) -> Result<(), Errno> {
    let plan = elf::plan(exec.image, &paging::USER_SPACE).map_err(|error| {
        log::debug!("execve of {}: {error}", exec.name);
        Errno::ENOEXEC
    })?;
    let new_space = space::create().map_err(|_| Errno::ENOMEM)?;
    let joined;
    let arguments = if plan.herald_abi {
        joined = exec.argv.get(1..).unwrap_or_default().join(" ");
        if joined.len() > MAX_ARGS_LEN_BYTES {
            let _ = space::destroy(new_space);
            return Err(Errno::E2BIG);
        }
        image::Arguments::Herald(&joined)
    } else {
        image::Arguments::Linux { argv: exec.argv, envp: exec.envp }
    };
    let entry = match image::load(new_space, &plan, exec.image, arguments) {
        Ok(entry) => entry,
        Err(error) => {
            let _ = space::destroy(new_space);
            return Err(SpawnError::from(error).errno());
        }
    };
    let abi = if plan.herald_abi { SyscallAbi::Herald } else { SyscallAbi::Linux };
    let (pid, old_space) = {
        let mut scheduler = SCHEDULER.lock();
        let task = scheduler.current_task().ok_or(Errno::ESRCH)?;
        let old_space = core::mem::replace(&mut task.space, new_space);
        task.name = exec.name.into();
        task.command = Command::new(exec.path, exec.argv.iter().copied());
        task.abi = abi;
        task.fs_base = 0;
        task.fpu = arch::FpuState::initial();
        task.pending_entry = Some(entry);
        // The live registers become the new program's too: nothing runs the task's user code
        // before the return to ring 3, and a switch meanwhile saves these.
        task.fpu.restore();
        arch::set_user_fs_base(0);
        space::switch_to(new_space).expect("the new space exists");
        scheduler::switched_program(new_space, abi);
        let pid = task.pid;
        release_vfork_parent(&mut scheduler, pid);
        (pid, old_space)
    };
    let declared = if plan.herald_abi {
        security::DeclaredCalls::Herald(plan.declared_syscalls)
    } else {
        security::DeclaredCalls::Linux(exec.manifest)
    };
    security::on_exec(pid, exec.name, declared);
    release_space(pid, old_space);
    Ok(())
}

/// What a new task is made of, before it has a pid.
struct NewTask {
    name: String,
    parent: Pid,
    space: SpaceId,
    stack: KernelStack,
    saved_stack_pointer: u64,
    fpu: Box<arch::FpuState>,
    abi: SyscallAbi,
    fs_base: u64,
    linux: Option<Box<super::linux::LinuxState>>,
    /// Its process group and session (`None`: its own, led by it).
    group: Option<Pid>,
    session: Option<Pid>,
    /// The parent waiting until it execs or ends (`vfork`; 0: none).
    vfork_parent: Pid,
    command: Arc<Command>,
}

/// Gives `new` a pid, registers it with the security policy, and makes it runnable — or, if
/// the process table filled meanwhile (another spawn took the last slot while this one was
/// building), undoes all of it, its space included, and answers `None`.
fn admit(
    new: NewTask,
    pid: Pid,
    declared: security::DeclaredCalls<'_>,
    withheld_rights: u64,
    process_limit: usize,
) -> Option<Pid> {
    // The security layer learns of the process before anyone can see it: another CPU could
    // otherwise run its first calls under rights it has not got yet, or kill it before it is
    // registered (and leave what the policy keeps for it behind).
    security::on_spawn(&security::SpawnInfo {
        parent: new.parent,
        child: pid,
        program: &new.name,
        declared,
        withheld_rights,
    });
    let mut scheduler = SCHEDULER.lock();
    if scheduler.tasks.len() >= process_limit {
        drop(scheduler);
        security::on_exit(pid);
        drop(new.stack);
        let _ = space::destroy(new.space);
        return None;
    }
    // Runnable under the same lock that makes it visible: there is no moment where it exists
    // and is not both registered and runnable.
    scheduler.add_task(Box::new(Task {
        pid,
        name: new.name,
        parent: new.parent,
        orphaned: false,
        space: new.space,
        kernel_stack: Some(new.stack),
        saved_stack_pointer: new.saved_stack_pointer,
        state: State::Ready,
        pending_kill: None,
        parked_in_call: false,
        slice_left_ticks: TIME_SLICE_TICKS,
        cpu_ticks: 0,
        syscalls: 0,
        raised: 0,
        raise_refused: false,
        cpu: 0,
        switching_out: false,
        fpu: new.fpu,
        abi: new.abi,
        fs_base: new.fs_base,
        linux: new.linux,
        pending_entry: None,
        group: new.group.unwrap_or(pid),
        session: new.session.unwrap_or(pid),
        vfork_parent: new.vfork_parent,
        command: new.command,
        job_change: None,
        ports: crate::vocab::PortGrant::EMPTY,
    }));
    Some(pid)
}

fn build_process(
    space: SpaceId,
    plan: &elf::ImagePlan,
    image: &[u8],
    name: &str,
    args: &str,
) -> Result<(KernelStack, u64), SpawnError> {
    let entry = if plan.herald_abi {
        image::load(space, plan, image, image::Arguments::Herald(args))?
    } else {
        // A Linux program: its name then the words of `args` as argv.
        let words = words::split(args).map_err(|_| SpawnError::UnclosedQuote)?;
        let argv: Vec<&str> =
            core::iter::once(name).chain(words.iter().map(String::as_str)).collect();
        image::load(space, plan, image, image::Arguments::Linux { argv: &argv, envp: &[] })?
    };
    let stack = KernelStack::new(KERNEL_STACK_SIZE_BYTES).map_err(|_| SpawnError::OutOfMemory)?;
    // SAFETY: the stack is fresh, mapped, page-sized or larger, and its top is page aligned.
    let saved_stack_pointer = unsafe { context::prepare_user_entry(stack.top(), entry) };
    Ok((stack, saved_stack_pointer))
}

/// Ends process `pid` with [`abi::KILLED_EXIT_CODE`]. Called by the `kill` system call after
/// the security policy has agreed, and by the kernel itself (the shell, tests), which the
/// policy does not check.
pub fn kill(pid: Pid) -> Result<(), Errno> {
    let linux = SCHEDULER.lock().tasks.get(&pid).is_some_and(|task| task.abi == SyscallAbi::Linux);
    // A Linux program's parent sees SIGKILL, as on Linux.
    end(pid, if linux { abi::signalled_exit_code(9) } else { abi::KILLED_EXIT_CODE })
}

/// Ends process `pid` with `code`: at once if it is parked between calls, else (running, or
/// preempted inside a call) on its way back to ring 3, once the call has finished.
pub(super) fn end(pid: Pid, code: i32) -> Result<(), Errno> {
    let ended = {
        let mut scheduler = SCHEDULER.lock();
        let on_a_cpu = scheduler.is_on_a_cpu(pid);
        let task = scheduler.tasks.get_mut(&pid).ok_or(Errno::ESRCH)?;
        if matches!(task.state, State::Zombie(_)) {
            return Err(Errno::ESRCH);
        }
        if !on_a_cpu && !task.parked_in_call {
            // Parked between calls with nothing held, on no CPU: it ends here, becoming a
            // zombie under this same lock so no CPU can pick it up meanwhile.
            begin_finish(&mut scheduler, pid, code)
        } else {
            if task.pending_kill.is_none() {
                scheduler::set_pending_kill(task, code);
            }
            // A CPU is still leaving it: it must run once more to see the kill.
            if matches!(task.state, State::Blocked(_)) {
                scheduler.make_ready(pid);
            }
            None
        }
    };
    if let Some(ended) = ended {
        complete_finish(pid, code, ended);
    }
    Ok(())
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
        scheduler::is_alive(pid)
    }

    fn owner_of(&self, space: SpaceId) -> Option<Pid> {
        owner_of_space(space)
    }

    fn parent_of(&self, pid: Pid) -> Option<Pid> {
        SCHEDULER.lock().tasks.get(&pid).map(|task| task.parent)
    }

    fn group_of(&self, pid: Pid) -> Option<Pid> {
        SCHEDULER.lock().tasks.get(&pid).map(|task| task.group)
    }
}

/// Outcome of looking for a child to report.
pub(super) enum Reaped {
    /// This child ended with this code; its entry is gone (unless the wait only looked).
    Child(Pid, i32),
    /// This child was stopped by this signal (`WUNTRACED`).
    Stopped(Pid, u8),
    /// This child was continued (`WCONTINUED`).
    Continued(Pid),
    /// Matching children exist but none has anything to report.
    NotYet,
    /// One has ended but its CPU is still leaving it: the caller is blocked until it has.
    Leaving,
}

/// Which of its children a wait is for.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Waited {
    /// Any child.
    Any,
    /// This child.
    Pid(Pid),
    /// Any child in this process group.
    Group(Pid),
}

impl Waited {
    /// `pid` 0: any child, else that one.
    pub(super) fn of(pid: Pid) -> Self {
        if pid == 0 { Self::Any } else { Self::Pid(pid) }
    }

    fn includes(self, task: &Task) -> bool {
        match self {
            Self::Any => true,
            Self::Pid(pid) => task.pid == pid,
            Self::Group(group) => task.group == group,
        }
    }

    /// The pid a blocked waiter is woken for (0: any child's change; a group's members
    /// change, so a group wait wakes for any and looks again).
    fn wake_for(self) -> Pid {
        match self {
            Self::Pid(pid) => pid,
            Self::Any | Self::Group(_) => 0,
        }
    }
}

/// What a wait reports (`WEXITED`, `WUNTRACED`/`WSTOPPED`, `WCONTINUED`), and whether it takes
/// what it reports (`WNOWAIT`: it only looks, and the child can be waited for again).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) struct Reports {
    pub(super) exited: bool,
    pub(super) stopped: bool,
    pub(super) continued: bool,
    pub(super) consume: bool,
}

impl Reports {
    /// Ends only, taken: a plain `wait`.
    pub(super) const ENDS: Self =
        Self { exited: true, stopped: false, continued: false, consume: true };
}

/// Reaps an ended child of `parent` (`pid` 0: any).
pub(super) fn reap(parent: Pid, pid: Pid) -> Result<Reaped, Errno> {
    reap_locked(&mut SCHEDULER.lock(), parent, Waited::of(pid), Reports::ENDS)
}

/// [`reap`] that does not answer "not yet" for a child that has ended but is still leaving
/// its CPU: the caller (the running task) blocks until that CPU has left it, and its call
/// starts again then ([`Reaped::Leaving`]). A `WNOHANG` wait after the `SIGCHLD` a child's
/// end sent must find the child, and on several CPUs the signal can come before the child's
/// CPU has left it. (Spinning here instead would hold the caller's bus dispatch open, which
/// the ending child's clean-up may wait for.)
pub(super) fn reap_ended(parent: Pid, waited: Waited, reports: Reports) -> Result<Reaped, Errno> {
    let mut scheduler = SCHEDULER.lock();
    let reaped = reap_locked(&mut scheduler, parent, waited, reports)?;
    let leaving = reports.exited
        && scheduler.tasks.values().any(|task| {
            let waitable = task.parent == parent && waited.includes(task) && !task.orphaned;
            waitable && matches!(task.state, State::Zombie(_))
        });
    match reaped {
        Reaped::NotYet if leaving => {
            scheduler.block_current(BlockReason::WaitChild { pid: waited.wake_for() });
            Ok(Reaped::Leaving)
        }
        reaped => Ok(reaped),
    }
}

/// [`reap`] for the running task `parent`, which blocks until a child ends (or stops or
/// continues, if those are reported) if none has, under the same hold of the lock.
pub(super) fn reap_or_block(
    parent: Pid,
    waited: Waited,
    reports: Reports,
) -> Result<Reaped, Errno> {
    let mut scheduler = SCHEDULER.lock();
    let reaped = reap_locked(&mut scheduler, parent, waited, reports)?;
    if let Reaped::NotYet = reaped {
        scheduler.block_current(BlockReason::WaitChild { pid: waited.wake_for() });
    }
    Ok(reaped)
}

/// The first of `parent`'s children in `waited` with something `reports` asks for: an end,
/// else an unreported stop or continue (Linux's order for each child).
fn reap_locked(
    scheduler: &mut Scheduler,
    parent: Pid,
    waited: Waited,
    reports: Reports,
) -> Result<Reaped, Errno> {
    let mut children = scheduler
        .tasks
        .values()
        .filter(|task| task.parent == parent && task.pid != parent && waited.includes(task))
        // One ended unwaited (its parent ignores SIGCHLD) is gone already, as on Linux.
        .filter(|task| !task.orphaned);
    let Some(first) = children.next() else { return Err(Errno::ECHILD) };
    let leaving = |pid: Pid| scheduler.cpus.iter().any(|cpu| cpu.current == pid);
    // A zombie whose CPU has not left its stack yet is not reaped: that CPU still writes its
    // save slot. The parent is woken again once it has left (`after_switch`).
    let found = core::iter::once(first).chain(children).find_map(|task| match task.state {
        State::Zombie(code) if reports.exited && !task.switching_out && !leaving(task.pid) => {
            Some(Reaped::Child(task.pid, code))
        }
        State::Zombie(_) => None,
        _ => match task.job_change? {
            JobChange::Stopped(signal) if reports.stopped => {
                Some(Reaped::Stopped(task.pid, signal))
            }
            JobChange::Continued if reports.continued => Some(Reaped::Continued(task.pid)),
            _ => None,
        },
    });
    let Some(found) = found else { return Ok(Reaped::NotYet) };
    if reports.consume {
        match found {
            Reaped::Child(child, _) => drop(scheduler.tasks.remove(&child)),
            Reaped::Stopped(child, _) | Reaped::Continued(child) => {
                if let Some(task) = scheduler.tasks.get_mut(&child) {
                    task.job_change = None;
                }
            }
            Reaped::NotYet | Reaped::Leaving => {}
        }
    }
    Ok(found)
}

/// Reaps the kernel's child `pid` if it has ended and its CPU has left it; never waits (for a
/// deferred handler, which must not switch tasks). `None`: not yet (or no such child).
pub fn try_reap(pid: Pid) -> Option<i32> {
    match reap(0, pid) {
        Ok(Reaped::Child(_, code)) => Some(code),
        _ => None,
    }
}

/// Waits, from the kernel (the idle task), until child `pid` ends; returns its exit code.
/// Runs processes and deferred work meanwhile.
pub fn wait(pid: Pid) -> Result<i32, Errno> {
    loop {
        match reap(0, pid)? {
            Reaped::Child(_, code) => return Ok(code),
            _ => scheduler::idle_step(),
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
    /// The CPU it runs on, or last ran on.
    pub cpu: usize,
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
                State::Blocked(BlockReason::Stopped) => "stopped".into(),
                State::Blocked(_) => "blocked".into(),
                State::Zombie(code) => alloc::format!("exited({code})"),
            },
            cpu_ticks: task.cpu_ticks,
            syscalls: task.syscalls,
            cpu: task.cpu,
        })
        .collect()
}
