//! The system-call ABI shared by the kernel and `user/` (which includes this file by path): call
//! numbers, flag bits and the records calls exchange. Plain data only, no dependencies.
//!
//! Calling convention: `syscall` with the number in `rax` and arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9`; the result comes back in `rax`, a negative value being `-errno`. `rcx` and
//! `r11` are clobbered (the CPU uses them), every other register is preserved.

/// Reads console input into a buffer: `read(fd = 0, buf, len)` → bytes read (blocks until ≥ 1).
pub const SYS_READ: u64 = 0;
/// Writes a buffer to the console: `write(fd = 1 or 2, buf, len)` → bytes written.
pub const SYS_WRITE: u64 = 1;
/// Ends the calling process: `exit(code)`; does not return.
pub const SYS_EXIT: u64 = 2;
/// `getpid()` → the caller's process id.
pub const SYS_GETPID: u64 = 3;
/// `yield()` → 0, after other ready processes have had a turn.
pub const SYS_YIELD: u64 = 4;
/// `sleep(milliseconds)` → 0.
pub const SYS_SLEEP: u64 = 5;
/// `spawn(name, name_len, args, args_len, withheld_rights)` → the child's pid; the program comes
/// from the ramdisk; `withheld_rights` (`RIGHT_*` bits, usually 0) narrow what the child may do
/// under `policy-capability`.
pub const SYS_SPAWN: u64 = 6;
/// `wait(pid or 0 for any child, status_out or 0)` → the pid that ended; its exit code is stored
/// at `status_out` as an `i32`.
pub const SYS_WAIT: u64 = 7;
/// `kill(pid)` → 0; the process ends with [`KILLED_EXIT_CODE`].
pub const SYS_KILL: u64 = 8;
/// `map(address or 0, len, protection)` → the address of new zero-filled memory.
pub const SYS_MAP: u64 = 9;
/// `unmap(address, len)` → 0.
pub const SYS_UNMAP: u64 = 10;
/// `protect(address, len, protection)` → 0.
pub const SYS_PROTECT: u64 = 11;
/// `share(address, len, pid, target_address or 0, protection)` → where the caller's memory now
/// also appears in process `pid`.
pub const SYS_SHARE: u64 = 12;
/// `subscribe(event_kind, capacity)` → a handle for [`SYS_POLL`].
pub const SYS_SUBSCRIBE: u64 = 13;
/// `poll(handle, records, max_records)` → records written (0 if none waiting; never blocks).
pub const SYS_POLL: u64 = 14;
/// `uptime()` → milliseconds since boot.
pub const SYS_UPTIME: u64 = 15;
/// Number of defined calls; numbers at or above it get `ENOSYS`.
pub const SYSCALL_COUNT: u64 = 16;

/// `protection` bit: the memory may be written.
pub const PROT_WRITE: u64 = 1 << 0;
/// `protection` bit: the memory may be executed (never together with [`PROT_WRITE`]).
pub const PROT_EXECUTE: u64 = 1 << 1;

/// Event kinds a process may subscribe to.
pub const EVENT_TIMER: u64 = 0;
/// See [`EVENT_TIMER`].
pub const EVENT_IRQ: u64 = 1;
/// See [`EVENT_TIMER`].
pub const EVENT_PROCESS_EXITED: u64 = 2;

/// Largest queue a subscription may ask for.
pub const MAX_SUBSCRIPTION_CAPACITY: u64 = 256;

/// One delivered event. `seq` counts every event the subscription was offered, delivered or
/// not, starting at 1, so a gap between consecutive records is the number missed.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[repr(C)]
pub struct EventRecord {
    /// Offer number of this event.
    pub seq: u64,
    /// One of the `EVENT_*` kinds.
    pub kind: u64,
    /// Timer: tick. Irq: line. Process exited: pid.
    pub a: u64,
    /// Timer: 0. Irq: the line's own sequence number. Process exited: exit code.
    pub b: u64,
}

/// Exit code of a process ended by `kill` (as a shell reports 128 + SIGKILL).
pub const KILLED_EXIT_CODE: i32 = 137;
/// A process killed by CPU exception `vector` exits with `FAULT_EXIT_CODE_BASE + vector`
/// (#DE 200, #UD 206, #GP 213, #PF 214).
pub const FAULT_EXIT_CODE_BASE: i32 = 200;
/// Exit code the user library's panic handler uses.
pub const PANIC_EXIT_CODE: i32 = 101;

/// Capability rights (`policy-capability`), withheld from a child by `spawn`'s fifth argument:
/// may create processes.
pub const RIGHT_SPAWN: u64 = 1 << 0;
/// May end processes it holds a capability over (its children).
pub const RIGHT_KILL: u64 = 1 << 1;
/// May map memory into processes it holds a capability over.
pub const RIGHT_SHARE: u64 = 1 << 2;
/// May subscribe to events.
pub const RIGHT_EVENTS: u64 = 1 << 3;
/// Every right.
pub const ALL_RIGHTS: u64 = RIGHT_SPAWN | RIGHT_KILL | RIGHT_SHARE | RIGHT_EVENTS;

/// Name of the ELF section in which a program declares the system calls it needs (a `u64`
/// bitmask, bit `n` for call `n`); `policy-sandbox` allows only those. See
/// `herald_user::syscalls!`.
pub const SYSCALLS_SECTION: &str = ".herald_syscalls";

/// The name of call `number`, for tracing.
pub const fn syscall_name(number: u64) -> &'static str {
    match number {
        SYS_READ => "read",
        SYS_WRITE => "write",
        SYS_EXIT => "exit",
        SYS_GETPID => "getpid",
        SYS_YIELD => "yield",
        SYS_SLEEP => "sleep",
        SYS_SPAWN => "spawn",
        SYS_WAIT => "wait",
        SYS_KILL => "kill",
        SYS_MAP => "map",
        SYS_UNMAP => "unmap",
        SYS_PROTECT => "protect",
        SYS_SHARE => "share",
        SYS_SUBSCRIBE => "subscribe",
        SYS_POLL => "poll",
        SYS_UPTIME => "uptime",
        _ => "unknown",
    }
}
