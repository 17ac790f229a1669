//! Memory management: physical frames, the kernel heap, kernel stacks and per-process address
//! spaces. mm learns about page faults and memory requests only through the bus, as the owner
//! of those events, so security modules can sit in front of it and mm never checks permissions.
//!
//! Lock order (each lock masks interrupts): address-space registry → heap → frames. Kernel
//! stacks take their own lock, then frames. Nothing takes a lock to its left while holding one
//! to its right, and no code touches user memory while holding the registry lock (a demand
//! fault would need it).

pub mod frames;
pub mod regions;

#[cfg(target_os = "none")]
mod handlers;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
mod physical;
#[cfg(target_os = "none")]
pub mod space;
#[cfg(target_os = "none")]
pub mod stack;
#[cfg(target_os = "none")]
mod tables;
#[cfg(target_os = "none")]
pub mod user_copy;

pub use self::frames::{FRAME_SIZE_BYTES, Frame, FrameError, FrameStats};
#[cfg(target_os = "none")]
pub use self::{
    handlers::{FaultCounters, fault_counters, request},
    physical::{
        allocate_frame, frame_stats, has_room_for_processes, release_frame, reserve_frames,
        user_memory_bytes,
    },
    stack::KernelStack,
};

/// Brings up memory management once the CPU tables exist: frames from the loader's memory map,
/// the growable heap region, guard pages below the IST and boot stacks, an empty user half, and
/// the bus subscriptions for faults and requests.
///
/// # Panics
/// If the loader did not map physical memory or no usable memory exists: nothing else can work.
#[cfg(target_os = "none")]
pub(crate) fn init(boot: &crate::arch::BootResources) {
    physical::init(boot);
    heap::init_growth();
    stack::init_guards();
    // SAFETY: boot code runs from the kernel half; the loader's lower-half trampoline has done
    // its job and nothing refers to it.
    unsafe { crate::arch::paging::clear_loader_lower_half() };
    tables::init();
    handlers::subscribe();
    let audit = crate::arch::paging::audit_active();
    if audit.writable_executable_bytes != 0 || audit.user_half_bytes != 0 {
        log::error!("kernel page table breaks its rules: {audit:?}");
    }
    let stats = frame_stats();
    log::info!(
        "{} MiB usable, {} frames free; heap grows on demand",
        stats.total as u64 * FRAME_SIZE_BYTES / (1024 * 1024),
        stats.free
    );
}
