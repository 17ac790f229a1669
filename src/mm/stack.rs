//! Kernel stacks, each with an unmapped guard page below it, and the registry of every kernel
//! guard page so a hit is reported by name rather than as a bare page fault.
//!
//! Stacks live in fixed-size slots of the kernel stack region, each at the top of its slot, so
//! the unmapped pages below a stack (its guard page first) belong to no other stack.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{FRAME_SIZE_BYTES, physical};
use crate::{
    arch::{self, IrqMutex, paging},
    events::Protection,
};

/// Virtual size of one slot: the guard page plus the largest stack.
const SLOT_SIZE_BYTES: u64 = 128 * 1024;
/// Largest stack a slot holds.
pub const MAX_STACK_SIZE_BYTES: u64 = SLOT_SIZE_BYTES - FRAME_SIZE_BYTES;

/// Guard pages outside the stack region: the IST stacks' and the boot stack's.
static FIXED_GUARDS: IrqMutex<Vec<(u64, &'static str)>> = IrqMutex::new(Vec::new());

struct Slots {
    /// Slots of dropped stacks, with their stack size, pages still mapped: a stack's pages are
    /// never unmapped, because another CPU may still hold them in its TLB (it ran the stack's
    /// task), and a new stack mapped there would be written through the old frames on that CPU.
    kept: Vec<(u64, u64)>,
    /// Slots with nothing mapped (a stack that could not be built whole).
    empty: Vec<u64>,
    /// Slots never used yet start here.
    next_unused: u64,
}

static SLOTS: IrqMutex<Slots> =
    IrqMutex::new(Slots { kept: Vec::new(), empty: Vec::new(), next_unused: 0 });
/// Frames the kept slots hold (see [`Slots::kept`]).
static KEPT_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Frames dropped stacks keep mapped for the next stack of their size (a leak check counts
/// them as free).
pub fn kept_frames() -> usize {
    KEPT_FRAMES.load(Ordering::Relaxed)
}
/// Page-table frames the stack region has taken: kept when stacks go, for the next ones.
static TABLE_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Frames the stack region's page tables hold (they stay as stacks come and go, so a leak
/// check counts them as the heap's kept pages are counted).
pub fn table_frames() -> usize {
    TABLE_FRAMES.load(Ordering::Relaxed)
}

/// Unmaps the guard pages below the IST stacks, finds the loader's guard below the boot stack,
/// and prepares the stack region's top-level entry so every address space shares it.
pub(super) fn init_guards() {
    let root = paging::active_root();
    let mut guards = Vec::new();
    for (slot, name) in arch::IST_SLOTS {
        let guard = arch::ist_guard_page(slot);
        // SAFETY: the guard page is padding inside the kernel image that nothing uses; its
        // frame belongs to the image, so it is dropped, not freed.
        let _ = unsafe { paging::unmap(root, guard) };
        guards.push((guard, name));
    }
    // The loader leaves the page below the boot stack unmapped; find it from the stack pointer.
    let mut page = arch::cpu::stack_pointer() / FRAME_SIZE_BYTES * FRAME_SIZE_BYTES;
    while paging::is_mapped(page) {
        page -= FRAME_SIZE_BYTES;
    }
    guards.push((page, "boot"));
    *FIXED_GUARDS.lock() = guards;
    // SAFETY: boot time, no user address space exists yet.
    unsafe {
        paging::prepare_kernel_region(
            paging::KERNEL_STACK_REGION.start,
            &mut physical::allocate_frame,
        )
    }
    .expect("a frame for the stack region's table");
}

/// Names the kernel stack whose guard page holds `address`, if any.
pub(super) fn guard_owner(address: u64) -> Option<&'static str> {
    // Only stacks live in the stack region, and each sits at the top of its slot, so every
    // unmapped page there is below some stack: an overflow past its guard page.
    if paging::KERNEL_STACK_REGION.contains(&address) {
        return Some("kernel thread");
    }
    let page = address / FRAME_SIZE_BYTES * FRAME_SIZE_BYTES;
    FIXED_GUARDS.lock().iter().find(|(guard, _)| *guard == page).map(|(_, name)| *name)
}

/// A kernel stack with a guard page below it. Dropped, its slot stays mapped and is kept for
/// the next stack of its size (a CPU that ran on it may still cache its translations).
#[derive(Debug)]
pub struct KernelStack {
    slot: u64,
    size_bytes: u64,
}

/// Why a stack could not be made.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum StackError {
    /// Zero, unaligned or above [`MAX_STACK_SIZE_BYTES`].
    BadSize,
    /// No frame or slot is left.
    OutOfMemory,
}

impl KernelStack {
    /// Maps a stack of `size_bytes` (page multiple, at most [`MAX_STACK_SIZE_BYTES`]).
    pub fn new(size_bytes: u64) -> Result<Self, StackError> {
        if size_bytes == 0
            || !size_bytes.is_multiple_of(FRAME_SIZE_BYTES)
            || size_bytes > MAX_STACK_SIZE_BYTES
        {
            return Err(StackError::BadSize);
        }
        let pages = (size_bytes / FRAME_SIZE_BYTES) as usize;
        let slot = {
            let mut slots = SLOTS.lock();
            if let Some(at) = slots.kept.iter().position(|&(_, size)| size == size_bytes) {
                let (slot, _) = slots.kept.swap_remove(at);
                KEPT_FRAMES.fetch_sub(pages, Ordering::Relaxed);
                return Ok(Self { slot, size_bytes });
            }
            match slots.empty.pop() {
                Some(slot) => slot,
                None => {
                    let slot = slots.next_unused;
                    let region_slots = (paging::KERNEL_STACK_REGION.end
                        - paging::KERNEL_STACK_REGION.start)
                        / SLOT_SIZE_BYTES;
                    if slot >= region_slots {
                        return Err(StackError::OutOfMemory);
                    }
                    slots.next_unused += 1;
                    slot
                }
            }
        };
        let stack = Self { slot, size_bytes };
        let mut page = stack.bottom();
        while page < stack.top() {
            let Some(frame) = physical::allocate_frame() else {
                stack.unbuild(page);
                return Err(StackError::OutOfMemory);
            };
            // SAFETY: the slot is this stack's alone (taken from the slot list above); the page
            // is kernel data, never executable.
            let mapped = unsafe {
                paging::map(
                    paging::active_root(),
                    page,
                    frame,
                    Protection::READ_WRITE,
                    false,
                    &mut || {
                        let table = physical::allocate_frame();
                        if table.is_some() {
                            TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
                        }
                        table
                    },
                )
            };
            if mapped.is_err() {
                let _ = physical::release_frame(frame);
                stack.unbuild(page);
                return Err(StackError::OutOfMemory);
            }
            page += FRAME_SIZE_BYTES;
        }
        Ok(stack)
    }

    /// Undoes a half-built stack: its pages below `built_up_to`, mapped by this CPU just now
    /// and touched by no other, are unmapped and freed, and the slot is listed empty.
    fn unbuild(self, built_up_to: u64) {
        let mut page = self.bottom();
        while page < built_up_to {
            // SAFETY: the pages were mapped for this stack moments ago, and nothing runs on it.
            if let Some(frame) = unsafe { paging::unmap(paging::active_root(), page) } {
                physical::release_or_report(frame);
            }
            page += FRAME_SIZE_BYTES;
        }
        SLOTS.lock().empty.push(self.slot);
        core::mem::forget(self);
    }

    fn slot_start(&self) -> u64 {
        paging::KERNEL_STACK_REGION.start + self.slot * SLOT_SIZE_BYTES
    }

    /// Address of the guard page.
    pub fn guard_page(&self) -> u64 {
        self.top() - self.size_bytes - FRAME_SIZE_BYTES
    }

    /// Lowest usable address.
    pub fn bottom(&self) -> u64 {
        self.top() - self.size_bytes
    }

    /// One past the highest usable address: the initial stack pointer.
    pub fn top(&self) -> u64 {
        self.slot_start() + SLOT_SIZE_BYTES
    }
}

impl Drop for KernelStack {
    /// Keeps the slot, pages mapped, for the next stack of the same size (see [`Slots::kept`]).
    fn drop(&mut self) {
        KEPT_FRAMES.fetch_add((self.size_bytes / FRAME_SIZE_BYTES) as usize, Ordering::Relaxed);
        SLOTS.lock().kept.push((self.slot, self.size_bytes));
    }
}
