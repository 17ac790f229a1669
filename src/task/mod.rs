//! Processes and the scheduler: ring-3 programs from the ramdisk, each with its own address
//! space and kernel stack, run in preemptive time slices; the kernel's boot context is the idle
//! task (pid 0). The scheduler learns time from the bus (`timer` events), faults of user code
//! from the bus (`exception`, `page-fault`), and serves the process system calls it owns.

pub mod elf;
pub mod ramdisk;

#[cfg(target_os = "none")]
mod input;
#[cfg(target_os = "none")]
mod process;
#[cfg(target_os = "none")]
mod subscriptions;
#[cfg(target_os = "none")]
mod syscalls;

#[cfg(target_os = "none")]
pub use self::process::{
    KERNEL_ONLY_PROCESS_SLOTS, MAX_ARGS_LEN_BYTES, MAX_PROCESSES, PROCESS_FACTS, ProcessFacts,
    ProcessInfo, SpawnError, TIME_SLICE_TICKS, idle_step, init, is_alive, kill, owner_of_space,
    processes, programs, ramdisk_file, spawn, spawn_image, spawn_withholding, wait,
};
#[cfg(target_os = "none")]
pub use self::{
    input::{push_input, take_input},
    subscriptions::{MAX_POLL_RECORDS, MAX_SUBSCRIPTIONS},
    syscalls::MAX_IO_BYTES_PER_CALL,
};
pub use crate::vocab::Pid;
