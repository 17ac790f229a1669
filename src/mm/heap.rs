//! The kernel heap: a free-list allocator over an early arena in `.bss`.
//!
//! The arena exists before paging is under the kernel's control, so `alloc` works from the first
//! line of `init`. The lock masks interrupts: an interrupt handler must not allocate (design
//! rule), but if one ever does it must not deadlock against the code it interrupted.

use core::{
    alloc::{GlobalAlloc, Layout},
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use linked_list_allocator::Heap;

use crate::arch::IrqMutex;

/// Size of the early heap arena.
const EARLY_ARENA_SIZE_BYTES: usize = 2 * 1024 * 1024;

#[repr(C, align(4096))]
struct Arena([u8; EARLY_ARENA_SIZE_BYTES]);

/// Handed to the allocator once, by `init`; not otherwise touched.
static mut EARLY_ARENA: Arena = Arena([0; EARLY_ARENA_SIZE_BYTES]);

struct KernelHeap {
    heap: IrqMutex<Heap>,
}

#[global_allocator]
static KERNEL_HEAP: KernelHeap = KernelHeap { heap: IrqMutex::new(Heap::empty()) };

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Gives the heap its early arena. Idempotent.
pub(crate) fn init() {
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the arena is a static used by nothing else, and the swap above guarantees it is
    // handed to the allocator exactly once, so the allocator owns it from here on.
    unsafe {
        let start = (&raw mut EARLY_ARENA).cast::<u8>();
        KERNEL_HEAP.heap.lock().init(start, EARLY_ARENA_SIZE_BYTES);
    }
}

/// Heap usage, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    /// Bytes handed out and not yet freed (including alignment padding).
    pub used_bytes: usize,
    /// Bytes the heap manages in total.
    pub size_bytes: usize,
}

/// Returns current heap usage.
pub fn stats() -> HeapStats {
    let heap = KERNEL_HEAP.heap.lock();
    HeapStats { used_bytes: heap.used(), size_bytes: heap.size() }
}

// SAFETY: `Heap` returns blocks that satisfy `layout` and are disjoint while allocated; the
// mutex serialises all access to it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: the `GlobalAlloc` contract: `ptr` came from `alloc` with this `layout`.
            unsafe { self.heap.lock().deallocate(ptr, layout) };
        }
    }
}
