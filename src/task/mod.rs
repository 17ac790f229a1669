//! Processes and the scheduler: ring-3 programs from the boot image's /bin, each with its own
//! address space and kernel stack, run in preemptive time slices; the kernel's boot context is
//! the idle task (pid 0). The scheduler learns time from the bus (`timer` events), faults of
//! user code from the bus (`exception`, `page-fault`), and serves the process system calls it
//! owns; `linux/` serves Linux programs' calls.

pub mod elf;
pub mod ramdisk;
pub mod start_stack;
pub mod words;

#[cfg(target_os = "none")]
mod drivers;
#[cfg(target_os = "none")]
mod image;
#[cfg(target_os = "none")]
mod input;
#[cfg(target_os = "none")]
mod linux;
#[cfg(target_os = "none")]
mod process;
#[cfg(target_os = "none")]
mod procfs;
#[cfg(target_os = "none")]
mod scheduler;
#[cfg(target_os = "none")]
mod subscriptions;
#[cfg(target_os = "none")]
mod syscalls;

#[cfg(target_os = "none")]
pub use self::process::{
    MAX_ARGS_LEN_BYTES, PROCESS_FACTS, PROGRAM_DIRECTORY, ProcessFacts, ProcessInfo, SpawnError,
    image_file, kill, owner_of_space, parse_manifest, processes, program_path, programs,
    ramdisk_file, spawn, spawn_image, spawn_withholding, try_reap, wait,
};
#[cfg(target_os = "none")]
pub use self::scheduler::{
    KERNEL_ONLY_PROCESS_SLOTS, MAX_PROCESSES, TIME_SLICE_TICKS, idle_step, is_alive,
};
#[cfg(target_os = "none")]
pub use self::{
    drivers::{BenchTopHalf, DriverLine, bench_top_half, drivers_of},
    input::{push_input, start_foreground, take_input},
    subscriptions::{MAX_POLL_RECORDS, MAX_SUBSCRIPTIONS},
    syscalls::MAX_IO_BYTES_PER_CALL,
};
pub use crate::vocab::Pid;

/// How a process's end code reads to a person: `exited with code 3`, or for a Linux program a
/// signal ended, `ended by SIGSEGV (signal 11)`.
#[cfg(target_os = "none")]
pub fn describe_end(code: i32) -> alloc::string::String {
    match code.checked_sub(crate::abi::SIGNALLED_EXIT_CODE_BASE) {
        Some(signal @ 1..) => {
            alloc::format!("ended by {} (signal {signal})", linux::signal_name(signal as u64))
        }
        _ => alloc::format!("exited with code {code}"),
    }
}

/// The address space of the process running on this CPU (the kernel's, if none).
#[cfg(target_os = "none")]
pub fn current_space() -> crate::events::SpaceId {
    scheduler::current_space()
}

/// Wires processes to the trap path and the bus: the scheduler's tick, the return to ring 3
/// and preempt points, user faults, the system calls; reads the ramdisk's table.
#[cfg(target_os = "none")]
pub fn init(ramdisk_image: Option<&'static [u8]>) {
    scheduler::init();
    process::init(ramdisk_image);
    syscalls::subscribe();
    linux::subscribe();
}
