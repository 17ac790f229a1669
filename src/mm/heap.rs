//! The kernel heap: a free-list allocator that starts in an arena inside the kernel image and
//! grows into a reserved kernel region, a page-backed chunk at a time, when the arena is full.
//!
//! The arena exists before frames are managed, so `alloc` works from the first line of `init`.
//! The lock masks interrupts: an interrupt handler must not allocate (design rule), but if one
//! ever does it must not deadlock against the code it interrupted. Growing takes the frame lock
//! inside the heap lock (see the lock order in `mm`), and never allocates from the heap.

use core::{
    alloc::{GlobalAlloc, Layout},
    ops::Range,
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use linked_list_allocator::Heap;

use super::{FRAME_SIZE_BYTES, physical};
use crate::{
    arch::{IrqMutex, paging},
    events::Protection,
};

/// Size of the arena inside the kernel image.
const EARLY_ARENA_SIZE_BYTES: usize = 2 * 1024 * 1024;
/// Smallest growth step: fewer, larger steps keep the free list short.
const GROWTH_STEP_BYTES: u64 = 256 * 1024;

#[repr(C, align(4096))]
struct Arena([u8; EARLY_ARENA_SIZE_BYTES]);

/// Handed to the allocator once, by `init`; not otherwise touched.
static mut EARLY_ARENA: Arena = Arena([0; EARLY_ARENA_SIZE_BYTES]);

/// The two parts of the heap. Blocks are returned to the part they came from.
struct Parts {
    early: Heap,
    early_range: Range<usize>,
    grown: Heap,
    /// End of the mapped part of the growth region.
    grown_end: u64,
    /// Whether growth is possible yet (frames are managed).
    can_grow: bool,
    /// Frames taken for page tables while growing (the heap keeps them, as it keeps its pages).
    table_frames: usize,
}

struct KernelHeap {
    parts: IrqMutex<Parts>,
}

#[global_allocator]
static KERNEL_HEAP: KernelHeap = KernelHeap {
    parts: IrqMutex::new(Parts {
        early: Heap::empty(),
        early_range: 0..0,
        grown: Heap::empty(),
        grown_end: paging::KERNEL_HEAP_REGION.start,
        can_grow: false,
        table_frames: 0,
    }),
};

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Gives the heap its early arena. Idempotent.
pub(crate) fn init() {
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return;
    }
    let start = (&raw mut EARLY_ARENA).cast::<u8>();
    let mut parts = KERNEL_HEAP.parts.lock();
    // SAFETY: the arena is a static used by nothing else, and the swap above guarantees it is
    // handed to the allocator exactly once, so the allocator owns it from here on.
    unsafe { parts.early.init(start, EARLY_ARENA_SIZE_BYTES) };
    parts.early_range = start as usize..start as usize + EARLY_ARENA_SIZE_BYTES;
}

/// Allows the heap to grow; called by `mm::init` once frames are managed. Creates the region's
/// top-level entry now, so every address space shares it.
pub(super) fn init_growth() {
    // SAFETY: boot time, no user address space exists yet.
    unsafe {
        paging::prepare_kernel_region(
            paging::KERNEL_HEAP_REGION.start,
            &mut physical::allocate_frame,
        )
    }
    .expect("a frame for the heap region's table");
    KERNEL_HEAP.parts.lock().can_grow = true;
}

impl Parts {
    /// Maps at least `min_bytes` more at the end of the growth region. Returns false when frames
    /// or the region run out (the pages mapped so far stay, and are used).
    fn grow(&mut self, min_bytes: u64) -> bool {
        if !self.can_grow {
            return false;
        }
        let step = min_bytes.max(GROWTH_STEP_BYTES).next_multiple_of(FRAME_SIZE_BYTES);
        let start = self.grown_end;
        let Some(end) =
            start.checked_add(step).filter(|&end| end <= paging::KERNEL_HEAP_REGION.end)
        else {
            return false;
        };
        let mut mapped_end = start;
        let mut table_frames = 0;
        while mapped_end < end {
            let Some(frame) = physical::allocate_frame() else { break };
            // SAFETY: the growth region belongs to the heap alone and the heap lock is held;
            // the page is fresh kernel data (read-write, not executable).
            let mapped = unsafe {
                paging::map(
                    paging::active_root(),
                    mapped_end,
                    frame,
                    Protection::READ_WRITE,
                    false,
                    &mut || {
                        let table = physical::allocate_frame();
                        table_frames += usize::from(table.is_some());
                        table
                    },
                )
            };
            if mapped.is_err() {
                let _ = physical::release_frame(frame);
                break;
            }
            mapped_end += FRAME_SIZE_BYTES;
        }
        self.table_frames += table_frames;
        if mapped_end == start {
            return false;
        }
        let added = (mapped_end - start) as usize;
        if start == paging::KERNEL_HEAP_REGION.start {
            // SAFETY: `start..mapped_end` was just mapped read-write and is used by nothing else.
            unsafe { self.grown.init(start as *mut u8, added) };
        } else {
            // SAFETY: the pages right after the grown heap's end were just mapped for it alone.
            unsafe { self.grown.extend(added) };
        }
        self.grown_end = mapped_end;
        mapped_end == end
    }

    fn allocate(&mut self, layout: Layout) -> *mut u8 {
        if let Ok(block) = self.early.allocate_first_fit(layout) {
            return block.as_ptr();
        }
        loop {
            if let Ok(block) = self.grown.allocate_first_fit(layout) {
                return block.as_ptr();
            }
            // Room for the block, its alignment and the allocator's bookkeeping.
            let needed = (layout.size() + layout.align() + 64) as u64;
            if !self.grow(needed) {
                return self
                    .grown
                    .allocate_first_fit(layout)
                    .map_or(core::ptr::null_mut(), NonNull::as_ptr);
            }
        }
    }
}

/// Heap usage, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    /// Bytes handed out and not yet freed (including alignment padding).
    pub used_bytes: usize,
    /// Bytes the heap manages in total (arena plus grown part).
    pub size_bytes: usize,
    /// Bytes of the grown part, all backed by frames.
    pub grown_bytes: usize,
    /// Frames the grown part's page tables took.
    pub table_frames: usize,
}

impl HeapStats {
    /// Frames the heap holds beyond its boot arena: grown pages and their page tables. Kept
    /// for reuse, so a leak check adds them to the free count.
    pub const fn frames_held(&self) -> usize {
        self.grown_bytes / FRAME_SIZE_BYTES as usize + self.table_frames
    }
}

/// Returns current heap usage.
pub fn stats() -> HeapStats {
    let parts = KERNEL_HEAP.parts.lock();
    HeapStats {
        used_bytes: parts.early.used() + parts.grown.used(),
        size_bytes: parts.early.size() + parts.grown.size(),
        grown_bytes: parts.grown.size(),
        table_frames: parts.table_frames,
    }
}

// SAFETY: each `Heap` returns blocks that satisfy `layout` and are disjoint while allocated;
// blocks are returned to the heap whose range holds them; the mutex serialises all access.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.parts.lock().allocate(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(block) = NonNull::new(ptr) else { return };
        let mut parts = self.parts.lock();
        if parts.early_range.contains(&(ptr as usize)) {
            // SAFETY: the `GlobalAlloc` contract: `ptr` came from `alloc` with this `layout`,
            // and its address says it came from the early arena.
            unsafe { parts.early.deallocate(block, layout) };
        } else {
            // SAFETY: as above; every other block came from the grown part.
            unsafe { parts.grown.deallocate(block, layout) };
        }
    }
}
