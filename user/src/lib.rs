//! Herald's user library: system-call wrappers, `print!`/`println!` to the console, a panic
//! handler that reports and exits, and [`main!`] to declare a program's entry point.
#![no_std]

use core::{arch::asm, fmt};

/// The ABI shared with the kernel: one source of truth for numbers and records.
#[path = "../../src/abi.rs"]
pub mod abi;

pub use abi::{Errno, EventRecord};

/// Makes a raw system call. Exposed for tests and fuzzers; programs use the wrappers.
///
/// # Safety
/// The arguments must be valid for call `number` (pointers the kernel will write through must
/// point at memory the program may overwrite).
#[inline(always)]
pub unsafe fn syscall(number: u64, args: [u64; 6]) -> u64 {
    let result: u64;
    // SAFETY: `syscall` enters the kernel, which preserves every register but rcx and r11
    // (declared clobbered) and returns the result in rax; memory effects are the caller's
    // contract.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// Calls with arguments that cannot make the kernel write anywhere.
fn call(number: u64, args: [u64; 6]) -> Result<u64, Errno> {
    // SAFETY: the wrappers below only pass pointers to memory they own for the call.
    Errno::from_return_value(unsafe { syscall(number, args) })
}

/// Writes `bytes` to the console.
pub fn write(fd: u64, bytes: &[u8]) -> Result<u64, Errno> {
    call(abi::SYS_WRITE, [fd, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0])
}

/// Reads console input into `buffer`, blocking until at least one byte is there.
pub fn read(fd: u64, buffer: &mut [u8]) -> Result<u64, Errno> {
    call(abi::SYS_READ, [fd, buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0, 0])
}

/// Ends the program with `code`.
pub fn exit(code: i32) -> ! {
    let _ = call(abi::SYS_EXIT, [code as u64, 0, 0, 0, 0, 0]);
    unreachable!("exit returned")
}

/// The caller's process id.
pub fn getpid() -> u64 {
    call(abi::SYS_GETPID, [0; 6]).unwrap_or(0)
}

/// Lets other ready processes run first.
pub fn yield_now() {
    let _ = call(abi::SYS_YIELD, [0; 6]);
}

/// Sleeps for `milliseconds`.
pub fn sleep_ms(milliseconds: u64) {
    let _ = call(abi::SYS_SLEEP, [milliseconds, 0, 0, 0, 0, 0]);
}

/// Milliseconds since boot.
pub fn uptime_ms() -> u64 {
    call(abi::SYS_UPTIME, [0; 6]).unwrap_or(0)
}

/// Starts program `name` from the ramdisk with `args`; returns its pid.
pub fn spawn(name: &str, args: &str) -> Result<u64, Errno> {
    spawn_withholding(name, args, 0)
}

/// [`spawn`], withholding `rights` (`abi::RIGHT_*`) from the child.
pub fn spawn_withholding(name: &str, args: &str, rights: u64) -> Result<u64, Errno> {
    let (name_ptr, name_len) = (name.as_ptr() as u64, name.len() as u64);
    call(abi::SYS_SPAWN, [name_ptr, name_len, args.as_ptr() as u64, args.len() as u64, rights, 0])
}

/// Waits for child `pid` (0: any child) to end; returns its pid and exit code.
pub fn wait(pid: u64) -> Result<(u64, i32), Errno> {
    let mut status: i32 = 0;
    let ended = call(abi::SYS_WAIT, [pid, &raw mut status as u64, 0, 0, 0, 0])?;
    Ok((ended, status))
}

/// Ends process `pid`.
pub fn kill(pid: u64) -> Result<(), Errno> {
    call(abi::SYS_KILL, [pid, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Maps `len` bytes of zero-filled memory (at `address`, or anywhere if 0).
pub fn map(address: u64, len: u64, protection: u64) -> Result<u64, Errno> {
    call(abi::SYS_MAP, [address, len, protection, 0, 0, 0])
}

/// Unmaps a range.
pub fn unmap(address: u64, len: u64) -> Result<(), Errno> {
    call(abi::SYS_UNMAP, [address, len, 0, 0, 0, 0]).map(|_| ())
}

/// Changes the protection of a range.
pub fn protect(address: u64, len: u64, protection: u64) -> Result<(), Errno> {
    call(abi::SYS_PROTECT, [address, len, protection, 0, 0, 0]).map(|_| ())
}

/// Maps the caller's `address..address + len` into process `pid` too; returns where.
pub fn share(address: u64, len: u64, pid: u64, target: u64, protection: u64) -> Result<u64, Errno> {
    call(abi::SYS_SHARE, [address, len, pid, target, protection, 0])
}

/// Subscribes to an event kind (`abi::EVENT_*`) with a queue of `capacity` records that drops
/// its oldest when full.
pub fn subscribe(kind: u64, capacity: u64) -> Result<u64, Errno> {
    subscribe_with(kind, capacity, abi::OVERFLOW_DROP_OLDEST)
}

/// Subscribes with an overflow policy (`abi::OVERFLOW_*`; only `EVENT_USER` takes one other
/// than drop-oldest).
pub fn subscribe_with(kind: u64, capacity: u64, overflow: u64) -> Result<u64, Errno> {
    call(abi::SYS_SUBSCRIBE, [kind, capacity, overflow, 0, 0, 0])
}

/// Publishes `value` as an `EVENT_USER` event to every subscription.
pub fn raise(value: u64) -> Result<(), Errno> {
    call(abi::SYS_RAISE, [value, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Takes waiting events; returns how many records were filled.
pub fn poll(handle: u64, records: &mut [EventRecord]) -> Result<usize, Errno> {
    call(abi::SYS_POLL, [handle, records.as_mut_ptr() as u64, records.len() as u64, 0, 0, 0])
        .map(|count| count as usize)
}

/// Claims interrupt `line` and the device ports `port_base..port_base + port_count` (0: none);
/// returns the handle [`irq_wait`] and [`irq_ack`] take.
pub fn irq_claim(line: u64, port_base: u16, port_count: u16) -> Result<u64, Errno> {
    call(abi::SYS_IRQ_CLAIM, [line, u64::from(port_base), u64::from(port_count), 0, 0, 0])
}

/// Joins the drivers sharing interrupt `line`, for the device at `port_base..port_base +
/// port_count`: its interrupts are served by the top half [`irq_program`] loads, which answers
/// whether each one was this device's.
pub fn irq_claim_shared(line: u64, port_base: u16, port_count: u16) -> Result<u64, Errno> {
    let args = [line, u64::from(port_base), u64::from(port_count), abi::IRQ_CLAIM_SHARED, 0, 0];
    call(abi::SYS_IRQ_CLAIM, args)
}

/// Blocks until the claimed line has interrupted past `last_seq`; returns its count (the
/// difference is how many interrupts came since).
pub fn irq_wait(handle: u64, last_seq: u64) -> Result<u64, Errno> {
    call(abi::SYS_IRQ_WAIT, [handle, last_seq, 0, 0, 0, 0])
}

/// Tells the kernel the device is served: the line may interrupt again.
pub fn irq_ack(handle: u64) -> Result<(), Errno> {
    call(abi::SYS_IRQ_ACK, [handle, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Gives a claimed line and its ports back.
pub fn irq_release(handle: u64) -> Result<(), Errno> {
    call(abi::SYS_IRQ_RELEASE, [handle, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Loads a verified top half for a claimed line (see [`bpf`]); a refused program's
/// instruction and rule come back in the error.
pub fn irq_program(handle: u64, code: &[abi::bpf::Instruction]) -> Result<(), IrqProgramError> {
    let mut refusal = abi::bpf::RefusalRecord::default();
    let args = [handle, code.as_ptr() as u64, code.len() as u64, &raw mut refusal as u64, 0, 0];
    // SAFETY: `refusal` is this frame's, written at most once by the call.
    match Errno::from_return_value(unsafe { syscall(abi::SYS_IRQ_PROGRAM, args) }) {
        Ok(_) => Ok(()),
        Err(Errno::EINVAL) if refusal != abi::bpf::RefusalRecord::default() || !code.is_empty() => {
            Err(IrqProgramError::Refused(refusal))
        }
        Err(errno) => Err(IrqProgramError::Errno(errno)),
    }
}

/// Why [`irq_program`] failed.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum IrqProgramError {
    /// The verifier refused it: this instruction broke this rule (`abi::bpf::REFUSAL_RULES`).
    Refused(abi::bpf::RefusalRecord),
    /// The call itself failed (no such claim, a bad pointer).
    Errno(Errno),
}

impl fmt::Display for IrqProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Refused(refusal) => {
                let rule = abi::bpf::REFUSAL_RULES.get(refusal.rule as usize).unwrap_or(&"?");
                write!(f, "refused: instruction {}: {rule}", refusal.index)
            }
            Self::Errno(errno) => write!(f, "{errno}"),
        }
    }
}

/// Moves the records a claimed line's top half queued into `records`; returns how many.
pub fn irq_read(handle: u64, records: &mut [u64]) -> Result<usize, Errno> {
    let args = [handle, records.as_mut_ptr() as u64, records.len() as u64, 0, 0, 0];
    // SAFETY: the kernel writes at most `records.len()` records into `records`.
    Errno::from_return_value(unsafe { syscall(abi::SYS_IRQ_READ, args) }).map(|n| n as usize)
}

/// Top halves: eBPF's encoding, its opcodes and helpers, and an assembler (one function per
/// instruction form).
pub mod bpf {
    pub use crate::abi::bpf::{assemble::*, *};
}

/// Reads I/O port `port`. Only the ports of a claimed device are open to a process: any other
/// ends it with `abi::PORT_FAULT_EXIT_CODE` (a #GP).
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: `in` touches no memory; a port the process was not granted faults, and the
    // kernel ends the process — never undefined behaviour in it.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes `value` to I/O port `port` (see [`inb`] for which ports a process may use).
pub fn outb(port: u16, value: u8) {
    // SAFETY: as `inb`: `out` touches no memory of the program's.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Console output for [`print!`]: formats into a small buffer, one `write` per flush.
pub struct Console {
    buffer: [u8; 256],
    len: usize,
}

impl Console {
    /// An empty console writer.
    pub const fn new() -> Self {
        Self { buffer: [0; 256], len: 0 }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            let _ = write(1, &self.buffer[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.len == self.buffer.len() {
                self.flush();
            }
            self.buffer[self.len] = byte;
            self.len += 1;
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut console = Console::new();
    let _ = fmt::write(&mut console, args);
    console.flush();
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Declares `$main: fn(&str) -> i32` as the program's entry: it gets the arguments `spawn`
/// passed, and its return value is the exit code. With `syscalls: [SYS_WRITE, ...]` (names from
/// `abi`) it also declares the system calls the program needs, in its executable, for
/// `policy-sandbox`, which allows a program only what it declares (and `exit`).
#[macro_export]
macro_rules! main {
    ($main:path, syscalls: [$($call:ident),* $(,)?] $(, irq_lines: [$($line:expr),* $(,)?])?) => {
        /// The system calls this program declares it needs (bit `n`: call `n`) and the
        /// interrupt lines it may claim (`abi::declared_line`).
        #[unsafe(link_section = ".herald_syscalls")]
        #[used]
        static DECLARED_SYSCALLS: u64 = 0 $(| (1 << $crate::abi::$call))*
            $($(| $crate::abi::declared_line($line))*)?;

        $crate::main!(@entry $main, core::ptr::addr_of!(DECLARED_SYSCALLS));
    };
    ($main:path) => {
        $crate::main!(@entry $main, core::ptr::null::<u64>());
    };
    (@entry $main:path, $declared:expr) => {
        /// The kernel enters here with the argument string in `rdi`/`rsi`.
        ///
        /// # Safety
        /// Only the kernel calls it, with `args_len` bytes of UTF-8 at `args`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn _start(args: *const u8, args_len: usize) -> ! {
            // SAFETY: the kernel places `args_len` bytes of UTF-8 at `args` on the new stack.
            let args = unsafe {
                core::str::from_utf8_unchecked(core::slice::from_raw_parts(args, args_len))
            };
            /// Marks the executable as Herald's: its calls use Herald's numbers, not Linux's.
            #[unsafe(link_section = ".herald_abi")]
            #[used]
            static HERALD_ABI: u8 = 1;
            // Referenced, so the linker keeps the declaration sections.
            core::hint::black_box($declared);
            core::hint::black_box(&raw const HERALD_ABI);
            $crate::exit($main(args))
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panicked: {info}");
    exit(abi::PANIC_EXIT_CODE)
}
