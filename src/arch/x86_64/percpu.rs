//! Each processor's own block, reached through GS while the kernel runs (`swapgs` on every
//! entry from ring 3 swaps the user's base out): what the `syscall` stub needs (the stack to
//! land on, a scratch slot) and what Rust asks of "this CPU" (its index, its TSS).

use alloc::boxed::Box;
use core::arch::asm;

use ::x86_64::VirtAddr;

use super::gdt::TssWithPorts;
use crate::vocab::PortGrant;

/// One processor's block. The stub in `syscall.rs` uses the first two fields by offset.
#[repr(C)]
pub(super) struct PerCpu {
    /// Top of the running task's kernel stack: where a system call lands (offset 0).
    kernel_stack_top: u64,
    /// The user stack pointer, parked while the stub switches stacks (offset 8).
    user_stack_scratch: u64,
    /// The block's own address (offset 16), so Rust finds it with one GS-relative load.
    this: u64,
    /// The processor's number: 0 for the boot CPU, then in the order they started.
    index: u64,
    /// Its task-state segment (`rsp0` changes with every switch to a task).
    tss: *mut TssWithPorts,
    /// The ports its TSS's I/O bitmap opens to ring 3 now (`io_ports.rs`).
    user_ports: PortGrant,
}

/// Offset of [`PerCpu::this`].
const THIS_OFFSET: usize = 16;

/// The boot CPU's block; only the stub (through GS) and [`set_kernel_stack`] touch it.
static mut BOOT_CPU: PerCpu = PerCpu {
    kernel_stack_top: 0,
    user_stack_scratch: 0,
    this: 0,
    index: 0,
    tss: core::ptr::null_mut(),
    user_ports: PortGrant::EMPTY,
};

/// The boot CPU's block, its TSS recorded. Runs once, before GS is pointed at it.
pub(super) fn boot_cpu(tss: *mut TssWithPorts) -> *mut PerCpu {
    let block = &raw mut BOOT_CPU;
    // SAFETY: runs once at boot, before GS points at the block, so nothing else reads it.
    unsafe {
        (*block).this = block as u64;
        (*block).tss = tss;
    }
    block
}

/// A block for processor `index`, never freed.
pub(super) fn new_cpu(index: usize, tss: *mut TssWithPorts) -> *mut PerCpu {
    let block = Box::into_raw(Box::new(PerCpu {
        kernel_stack_top: 0,
        user_stack_scratch: 0,
        this: 0,
        index: index as u64,
        tss,
        user_ports: PortGrant::EMPTY,
    }));
    // SAFETY: the block was just allocated and nothing else knows it yet.
    unsafe { (*block).this = block as u64 };
    block
}

/// This processor's block.
fn current() -> *mut PerCpu {
    let block: u64;
    // SAFETY: in the kernel GS always points at this CPU's block (set before any code could
    // ask, and swapped in on every entry from ring 3); reading one field has no side effect.
    unsafe {
        asm!("mov {}, gs:[{offset}]", out(reg) block, offset = const THIS_OFFSET,
             options(nostack, readonly, preserves_flags));
    }
    block as *mut PerCpu
}

/// This processor's number.
pub fn cpu_index() -> usize {
    // SAFETY: the block lives for the kernel's life; `index` never changes after creation.
    unsafe { (*current()).index as usize }
}

/// Makes `top` the kernel stack for traps and system calls from ring 3 on this CPU.
///
/// # Safety
/// `top` must be the top of a mapped kernel stack that stays mapped while it is set, and
/// interrupts must be disabled, so no ring-3 entry lands on a stack being replaced.
pub unsafe fn set_kernel_stack(top: u64) {
    let block = current();
    // SAFETY: this CPU's block and TSS are its own; with interrupts off nothing else on this CPU
    // runs, and no other CPU writes them. The CPU reads `rsp0` only on an entry from ring 3.
    unsafe {
        (*block).kernel_stack_top = top;
        (*(*block).tss).tss.privilege_stack_table[0] = VirtAddr::new(top);
    }
}

/// Opens exactly `ports` to ring 3 on this CPU (and closes what was open), unless they are
/// open already — the common case, both empty, costs one compare.
///
/// # Safety
/// Interrupts must be disabled: a switch landing half-way would run another task with a mix
/// of two tasks' ports.
pub(super) unsafe fn set_user_ports(ports: &PortGrant) {
    let block = current();
    // SAFETY: this CPU's block and TSS are its own; with interrupts off nothing else on this
    // CPU runs, and no other CPU writes them. The CPU reads the bitmap only on a ring-3 port
    // access, which cannot happen on this CPU while it runs this.
    unsafe {
        if (*block).user_ports == *ports {
            return;
        }
        let tss = &mut *(*block).tss;
        for range in (*block).user_ports.ranges() {
            tss.set_ports(*range, true);
        }
        for range in ports.ranges() {
            tss.set_ports(*range, false);
        }
        (*block).user_ports = *ports;
    }
}
