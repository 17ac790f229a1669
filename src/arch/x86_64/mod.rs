//! x86_64 support: the only code that touches the CPU, port I/O, `x86_64`, `pic8259` and
//! `bootloader_api`. The rest of the kernel sees the arch-neutral API re-exported here.

pub mod acpi;
mod boot;
pub mod context;
mod controller;
pub mod copy;
pub mod cpu;
mod cpu_events;
mod fpu;
mod frame;
mod gdt;
mod idt;
mod io_ports;
mod ioapic;
mod lapic;
mod lines;
mod nmi_watchdog;
pub mod paging;
mod percpu;
mod pic;
mod pit;
mod port;
pub mod probes;
pub mod ps2;
pub mod qemu;
mod rtc;
pub mod serial;
mod shootdown;
mod smp;
mod sync;
pub mod syscall;
mod traps;
mod vectors;
mod watchdog;

/// Re-exported for [`kernel_entry!`](crate::kernel_entry) only.
#[doc(hidden)]
pub use bootloader_api;

pub use self::{
    boot::{BOOTLOADER_CONFIG, BootResources, start},
    controller::{line_masked, name as interrupt_controller},
    cpu::set_user_fs_base,
    cpu_events::{
        MAX_CPUS, halt_while_idle, is_halted as cpu_is_halted, is_online as cpu_is_online,
        online_count as cpus_online, stop_other_processors, wake_processor,
    },
    fpu::{FpuState, saved_components as fpu_saved_components},
    frame::TrapFrame,
    gdt::{IST_SLOTS, IstSlot, ist_guard_page, ist_stack_range},
    io_ports::{devices, read_granted_port, set_user_ports, write_granted_port},
    nmi_watchdog::{HARD_STALL_BUDGET_MS, StallReport, last_stall},
    percpu::{cpu_index, set_kernel_stack},
    pic::spurious_interrupt_count,
    pit::{TICK_HZ, milliseconds, set_rate as set_timer_rate, ticks},
    rtc::unix_time_milliseconds,
    smp::{CpuInfo, cpus, send_nmi_to, start_processors},
    sync::{IrqMutex, IrqMutexGuard},
    traps::{ExceptionReport, TaskHooks, exception_name, preempt_point, set_task_hooks, yield_now},
    vectors::{BARE_IRET_VECTOR, SOFTWARE_IRQ_VECTOR, SYSCALL_VECTOR},
    watchdog::DEFERRED_BUDGET_MS,
};

/// Prepares the CPU to survive faults: GDT, TSS with IST stacks, IDT. Interrupts stay off.
pub(crate) fn init_cpu() {
    crate::sync::local::install(crate::sync::local::LocalCpu {
        mask_interrupts: cpu::mask_interrupts,
        restore_interrupts: cpu::restore_interrupts,
        while_waiting: shootdown::serve_pending,
    });
    serial::init();
    let tss = gdt::init();
    idt::init();
    fpu::enable();
    syscall::init(percpu::boot_cpu(tss));
}

static PROCESSORS_FOUND: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Usable processors the firmware listed at boot (1 without ACPI); how many are online:
/// [`cpus`].
pub fn processors_found() -> usize {
    PROCESSORS_FOUND.load(core::sync::atomic::Ordering::Relaxed)
}

fn set_processors_found(count: usize) {
    PROCESSORS_FOUND.store(count, core::sync::atomic::Ordering::Relaxed);
}

/// Turns on the CPU's supervisor protections (SMEP, SMAP) where available; logs which.
pub(crate) fn init_protection() {
    let protection = cpu::enable_supervisor_protection();
    let state = |on: bool| if on { "on" } else { "not available on this CPU" };
    log::info!("cpu: SMEP {}, SMAP {}", state(protection.smep), state(protection.smap));
    log::info!("cpu: each task's registers: {}", fpu::saved_components());
}

/// Timer interrupts per 10 ms window beyond which the timer counts as a storm and is throttled
/// (5 kHz; the kernel ticks at 1 kHz).
const TIMER_STORM_LIMIT_PER_WINDOW: u64 = 50;

/// Remaps the PICs, starts the timer and enables interrupts.
pub(crate) fn init_interrupts() {
    crate::events::BUS.set_clock(cpu::read_timestamp);
    crate::events::irq::LINES.set_control(&controller::LineController);
    // The software line is raised in tight loops by benchmarks and tests; only tests that
    // exercise storm handling give it a limit.
    crate::events::irq::LINES.set_rate_limit(crate::events::irq::SOFTWARE_LINE, 0);
    crate::events::irq::LINES.set_rate_limit(pic::TIMER_LINE, TIMER_STORM_LIMIT_PER_WINDOW);
    // Never a process's: the timer keeps time and drives every line's retries; the cascade
    // carries the second PIC.
    for line in [pic::TIMER_LINE, pic::CASCADE_LINE] {
        let _ = crate::events::irq::LINES.claim(line, crate::events::irq::LineOwner::Kernel);
    }
    watchdog::init();
    pic::init();
    pit::init();
    rtc::init();
    cpu::enable_interrupts();
}
