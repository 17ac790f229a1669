//! The single Rust entry for every vector: the saved register frame and first-level routing.

use core::fmt;

use ::x86_64::registers::control::Cr2;

use super::{
    controller, cpu_events,
    frame::TrapFrame,
    idt, lines, nmi_watchdog, percpu, shootdown,
    vectors::{
        APIC_SPURIOUS_VECTOR, IOAPIC_VECTOR_BASE, LOCAL_TIMER_VECTOR, NMI_VECTOR, PIC_LINE_COUNT,
        PIC_VECTOR_BASE, PING_VECTOR, RESCHEDULE_VECTOR, SOFTWARE_IRQ_VECTOR, SYSCALL_VECTOR,
        TLB_FLUSH_VECTOR,
    },
    watchdog,
};
use crate::events::{Access, BUS, Errno, Event, Outcome, Reply, SyscallAbi, irq, running};

/// The architectural exceptions, by vector (SDM Vol. 3A Table 6-1).
const EXCEPTIONS: [(&str, &str); 32] = [
    ("#DE", "divide error"),
    ("#DB", "debug"),
    ("NMI", "non-maskable interrupt"),
    ("#BP", "breakpoint"),
    ("#OF", "overflow"),
    ("#BR", "bound range exceeded"),
    ("#UD", "invalid opcode"),
    ("#NM", "device not available"),
    ("#DF", "double fault"),
    ("CSO", "coprocessor segment overrun"),
    ("#TS", "invalid TSS"),
    ("#NP", "segment not present"),
    ("#SS", "stack-segment fault"),
    ("#GP", "general protection"),
    ("#PF", "page fault"),
    ("-15", "reserved vector 15"),
    ("#MF", "x87 floating-point error"),
    ("#AC", "alignment check"),
    ("#MC", "machine check"),
    ("#XM", "SIMD floating-point exception"),
    ("#VE", "virtualization exception"),
    ("#CP", "control protection"),
    ("-22", "reserved vector 22"),
    ("-23", "reserved vector 23"),
    ("-24", "reserved vector 24"),
    ("-25", "reserved vector 25"),
    ("-26", "reserved vector 26"),
    ("-27", "reserved vector 27"),
    ("#HV", "hypervisor injection"),
    ("#VC", "VMM communication"),
    ("#SX", "security exception"),
    ("-31", "reserved vector 31"),
];

/// Returns the mnemonic and name of exception `vector` (0–31).
pub fn exception_name(vector: u8) -> (&'static str, &'static str) {
    EXCEPTIONS.get(usize::from(vector)).copied().unwrap_or(("??", "not an exception"))
}

/// Page-fault error code bits (SDM Vol. 3A §4.7, Figure 4-12).
mod page_fault_bits {
    pub(super) const PRESENT: u64 = 1 << 0;
    pub(super) const WRITE: u64 = 1 << 1;
    pub(super) const USER: u64 = 1 << 2;
    pub(super) const RESERVED_BIT: u64 = 1 << 3;
    pub(super) const INSTRUCTION_FETCH: u64 = 1 << 4;
}

/// A human-readable account of an exception, for logs and panics.
pub struct ExceptionReport<'a>(pub &'a TrapFrame);

impl fmt::Display for ExceptionReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frame = self.0;
        let (mnemonic, name) = exception_name(frame.vector as u8);
        let mode = if frame.from_user() { "user" } else { "kernel" };
        write!(
            f,
            "{mnemonic} {name} (vector {}) in {mode} mode at rip {:#x}",
            frame.vector, frame.rip
        )?;
        if frame.vector == 14 {
            let code = frame.error_code;
            let access = if code & page_fault_bits::INSTRUCTION_FETCH != 0 {
                "instruction fetch"
            } else if code & page_fault_bits::WRITE != 0 {
                "write"
            } else {
                "read"
            };
            let cause = if code & page_fault_bits::RESERVED_BIT != 0 {
                "reserved bit set"
            } else if code & page_fault_bits::PRESENT != 0 {
                "protection violation"
            } else {
                "page not present"
            };
            let privilege = if code & page_fault_bits::USER != 0 { "user" } else { "supervisor" };
            write!(f, ": {access} of {:#x} ({cause}, {privilege} access)", Cr2::read_raw())?;
        } else {
            write!(f, ", error code {:#x}", frame.error_code)?;
        }
        write!(f, ", rsp {:#x}, rflags {:#x}", frame.rsp, frame.rflags)
    }
}

/// What the task layer tells the trap path; arch knows nothing of processes beyond this.
#[derive(Clone, Copy, Debug)]
pub struct TaskHooks {
    /// The running process's id and the numbering its calls use, stamped on syscall events
    /// (pid 0: the kernel).
    pub current_caller: fn() -> (u32, SyscallAbi),
    /// Called with interrupts off just before returning to ring 3, with the registers ring 3
    /// gets back: the scheduler switches away here if the process was killed, blocked, or
    /// used up its time slice, and may change them (a signal handler's entry, a new program).
    /// Returns whether every register must come back exactly as the frame holds it: `sysretq`
    /// gives `rcx` and `r11` the `rip` and `rflags` instead, so a `syscall` that must restore
    /// them (`rt_sigreturn` of an interrupted context) leaves through `iretq`.
    pub before_user_return: fn(&mut TrapFrame) -> bool,
    /// Called by long kernel operations between bounded steps, with no lock held: the
    /// scheduler switches to another task here if one should run now (a woken sleeper, an
    /// ended time slice, waiting deferred work), and comes back to finish the operation.
    /// Returns whether the task has been killed meanwhile, so an operation that can stop
    /// early and undo (a share, a protect, a write) does, and the kill lands promptly.
    pub preempt_point: fn() -> bool,
    /// Called by code waiting for something another task must finish: lets it run.
    pub yield_now: fn(),
    /// Called first thing by a task that runs for the first time (its first switch "returns"
    /// to the trap exit, not into the scheduler, which would do this itself).
    pub after_switch: fn(),
    /// A started processor's idle loop, one step at a time (runs processes, halts when none).
    pub processor_idle_step: fn(),
    /// A started processor's timer tick (its running task's time slice).
    pub local_tick: fn(),
}

/// `spin::Once`: its `get` is one load and a compare, on every system call.
static TASK_HOOKS: spin::Once<TaskHooks> = spin::Once::new();

/// Runs the task layer's `after_switch` (a new task's first instructions).
pub(super) fn after_first_switch() {
    if let Some(hooks) = TASK_HOOKS.get() {
        (hooks.after_switch)();
    }
}

/// One step of a started processor's idle loop: the scheduler's, once it is installed.
pub(super) fn processor_idle_step() {
    match TASK_HOOKS.get() {
        Some(hooks) => (hooks.processor_idle_step)(),
        None => super::cpu::enable_interrupts_and_halt(),
    }
}

/// A started processor's timer tick, for the scheduler.
pub(super) fn local_tick() {
    if let Some(hooks) = TASK_HOOKS.get() {
        (hooks.local_tick)();
    }
}

/// Installs the task layer's hooks. Only the first call takes effect.
pub fn set_task_hooks(hooks: TaskHooks) {
    TASK_HOOKS.call_once(|| hooks);
}

fn current_caller() -> (u32, SyscallAbi) {
    TASK_HOOKS.get().map_or((0, SyscallAbi::Herald), |hooks| (hooks.current_caller)())
}

/// A point where a long kernel operation may be preempted (see [`TaskHooks::preempt_point`]);
/// `true` if the task has been killed and should stop what it can. The caller holds no lock.
/// A no-op until the task layer is installed.
pub fn preempt_point() -> bool {
    TASK_HOOKS.get().is_some_and(|hooks| (hooks.preempt_point)())
}

/// Lets other tasks run while the caller waits for one of them (see
/// [`TaskHooks::yield_now`]). The caller holds no lock, and is not a deferred handler: the
/// watchdog's abort guard is armed there and must not follow the CPU into another task.
pub fn yield_now() {
    if let Some(hooks) = TASK_HOOKS.get() {
        (hooks.yield_now)();
    }
}

pub(super) fn before_user_return(frame: &mut TrapFrame) {
    if frame.from_user() {
        // `iretq` restores every register: nothing more to ask for.
        before_ring3_return(frame);
    }
}

/// [`before_user_return`] for a return known to go to ring 3 (the `syscall` instruction's);
/// whether it must leave through `iretq` (see [`TaskHooks::before_user_return`]).
#[inline(always)]
pub(super) fn before_ring3_return(frame: &mut TrapFrame) -> bool {
    TASK_HOOKS.get().is_some_and(|hooks| (hooks.before_user_return)(frame))
}

/// Called by `herald_trap_common` for every vector with the frame it saved; on return the stub
/// restores that frame and executes `iretq`. Decides nothing itself: it builds the event and
/// applies the bus's outcome, or the documented default when nobody handled it.
#[unsafe(no_mangle)]
extern "C" fn herald_trap_entry(frame: &mut TrapFrame) {
    super::cpu::forbid_user_access();
    let vector = frame.vector as u8;
    if vector >= PIC_VECTOR_BASE && vector != SYSCALL_VECTOR {
        cpu_events::count_interrupt();
    }
    match vector {
        SYSCALL_VECTOR => handle_syscall(frame),
        // Handled here, never on the bus: it may land anywhere, even where GS is the user's, and
        // says nothing about the code it interrupted (a process is not at fault).
        NMI_VECTOR => {
            let index = cpu_events::on_nmi();
            nmi_watchdog::on_nmi(index, frame.rip, frame.from_user());
        }
        _ => {
            // An interrupt or exception may land inside a bus handler: its own dispatch must
            // give the interrupted handler's name back (`events::running`).
            let cpu = percpu::cpu_index();
            let interrupted = running::mark_on(cpu);
            handle_trap(frame, vector);
            running::put_back(cpu, interrupted);
        }
    }
    // Never switch tasks on an IST stack: the next NMI/#MC would reuse the parked frames.
    if idt::ist_slot(usize::from(vector)).is_none() {
        // Deferred handlers (which the watchdog guards) run on cpu 0 only.
        if percpu::cpu_index() == 0 {
            watchdog::apply_abort(frame);
        }
        before_user_return(frame);
    }
}

/// Everything but system calls and NMIs.
fn handle_trap(frame: &mut TrapFrame, vector: u8) {
    match vector {
        0..PIC_VECTOR_BASE => handle_exception(frame),
        v if v < PIC_VECTOR_BASE + PIC_LINE_COUNT => {
            controller::serve_legacy(v - PIC_VECTOR_BASE, lines::on_line);
        }
        v if (IOAPIC_VECTOR_BASE..IOAPIC_VECTOR_BASE + PIC_LINE_COUNT).contains(&v) => {
            controller::serve_routed(v - IOAPIC_VECTOR_BASE, lines::on_line);
        }
        SOFTWARE_IRQ_VECTOR => lines::dispatch_irq(irq::SOFTWARE_LINE),
        LOCAL_TIMER_VECTOR => {
            cpu_events::on_local_timer();
            nmi_watchdog::on_tick(percpu::cpu_index());
            local_tick();
        }
        RESCHEDULE_VECTOR => cpu_events::on_reschedule(),
        TLB_FLUSH_VECTOR => shootdown::on_flush_request(),
        PING_VECTOR => cpu_events::on_ping(),
        APIC_SPURIOUS_VECTOR => cpu_events::on_spurious(),
        _ => log::warn!("unexpected interrupt on vector {vector}, rip {:#x}; ignored", frame.rip),
    }
}

/// Vector of #PF.
const PAGE_FAULT_VECTOR: u64 = 14;

fn exception_event(frame: &TrapFrame) -> Event {
    if frame.vector == PAGE_FAULT_VECTOR {
        let code = frame.error_code;
        let access = if code & page_fault_bits::INSTRUCTION_FETCH != 0 {
            Access::Execute
        } else if code & page_fault_bits::WRITE != 0 {
            Access::Write
        } else {
            Access::Read
        };
        Event::PageFault {
            address: Cr2::read_raw(),
            access,
            present: code & page_fault_bits::PRESENT != 0,
            from_user: frame.from_user(),
            rip: frame.rip,
        }
    } else {
        Event::Exception {
            vector: frame.vector as u8,
            error_code: frame.error_code,
            rip: frame.rip,
            from_user: frame.from_user(),
        }
    }
}

fn handle_exception(frame: &mut TrapFrame) {
    let mut reply = Reply::new();
    if BUS.dispatch(&exception_event(frame), &mut reply) == Outcome::Handled {
        if let Some(rip) = reply.resume_at {
            frame.rip = rip;
        }
        return;
    }
    // Defaults when no handler took the exception.
    match frame.vector {
        // Traps that report and resume: the saved rip already points past the instruction.
        1 | 3 => log::warn!("{}", ExceptionReport(frame)),
        _ => panic!("unhandled CPU exception: {}", ExceptionReport(frame)),
    }
}

/// Length of both `syscall` and `int 0x80` (SDM Vol. 2B, SYSCALL; Vol. 2A, INT n).
const SYSCALL_INSTRUCTION_LEN_BYTES: u64 = 2;

/// System call ABI (`syscall`, or `int 0x80`, which kernel tests use from ring 0): number in
/// `rax`, arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`; result in `rax`, or `-errno`.
///
/// A call from ring 3 runs with interrupts enabled however it entered (both entries mask
/// them): the timer and devices are served however long it takes, because everything it shares
/// with interrupt handlers sits behind interrupt-masking locks. An interrupt landing anywhere in
/// it nests on this kernel stack (no `swapgs`: the trap stub checks the saved CPL) and returns
/// here; task switches happen only at its preempt points, with nothing held. They are masked
/// again before returning, so the return path's scheduler check cannot be interrupted.
pub(super) fn handle_syscall(frame: &mut TrapFrame) {
    if frame.from_user() {
        handle_user_syscall(frame);
    } else {
        serve_syscall(frame, false);
    }
}

/// [`handle_syscall`] for a call known to come from ring 3 (the `syscall` instruction's).
#[inline(always)]
pub(super) fn handle_user_syscall(frame: &mut TrapFrame) {
    super::cpu::enable_interrupts();
    serve_syscall(frame, true);
    super::cpu::disable_interrupts();
}

#[inline(always)]
fn serve_syscall(frame: &mut TrapFrame, from_user: bool) {
    let (pid, abi) = if from_user { current_caller() } else { (0, SyscallAbi::Herald) };
    let event = Event::Syscall {
        number: frame.rax,
        args: [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9],
        pid,
        abi,
    };
    let mut reply = Reply::new();
    let outcome = BUS.dispatch(&event, &mut reply);
    if reply.restart {
        // Back up over the 2-byte `syscall` (0f 05) or `int 0x80` (cd 80) with rax still the
        // call number, so the call runs again when the blocked caller resumes.
        frame.rip -= SYSCALL_INSTRUCTION_LEN_BYTES;
        return;
    }
    frame.rax = match outcome {
        Outcome::Handled => reply.value,
        Outcome::Denied(errno) => errno.as_return_value(),
        Outcome::Unhandled => Errno::ENOSYS.as_return_value(),
    };
}
