//! Copying bytes that another CPU may be writing at the same time (a process's memory, which
//! its owner or a process sharing the page can change while the kernel reads or writes it for
//! a call): with the string instructions, `rep movsq` for the words and `rep movsb` for the
//! rest, as Linux's user copies do on CPUs without fast short `rep movsb`.

use core::arch::asm;

/// Copies `len` bytes from `source` to `target`. The accesses are the CPU's, outside what the
/// compiler sees (as volatile ones are): a concurrent write gives at worst a torn view, all
/// that shared memory can promise, never undefined behaviour. Alignment does not matter (x86
/// moves unaligned words).
///
/// Interrupted at any iteration, `rep movs` resumes where it was: its progress is in rcx, rsi
/// and rdi, which the handler gives back (SDM Vol. 2B, REP: "interruptible"). It keeps no
/// state of its own, so a handler or another CPU may run it at the same time. The direction
/// flag is clear here because every entry from ring 3 clears it (`cld` in the `syscall` and
/// trap stubs; a program may leave it set).
///
/// # Safety
/// `source` is valid for reading and `target` for writing `len` bytes, and the two do not
/// overlap.
pub unsafe fn copy_racy(source: *const u8, target: *mut u8, len: usize) {
    let words = len / 8;
    let rest = len % 8;
    // SAFETY: per the contract both ranges hold `len` bytes and do not overlap; `rep movs`
    // moves `rcx` units forward (the direction flag is clear, as the System V ABI requires
    // at every call), advancing rsi and rdi, which the second copy continues from.
    unsafe {
        asm!(
            "rep movsq",
            "mov rcx, {rest}",
            "rep movsb",
            rest = in(reg) rest,
            inout("rcx") words => _,
            inout("rsi") source => _,
            inout("rdi") target => _,
            options(nostack, preserves_flags),
        );
    }
}
