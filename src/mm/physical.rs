//! The kernel's frame allocator instance: built from the loader's memory map, its bookkeeping
//! stored in the first usable frames, reached through the physical-memory window.

use core::{
    ops::Range,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
};

use super::frames::{
    FRAME_SIZE_BYTES, Frame, FrameAllocator, FrameError, FrameStats, storage_words,
};
use crate::arch::{BootResources, IrqMutex, paging};

static FRAMES: IrqMutex<Option<FrameAllocator>> = IrqMutex::new(None);
/// Frames only the kernel's own allocations may take (heap growth, its stacks): user pages,
/// their page tables and the calls a process makes stop at this line, so no process can run
/// the kernel itself out of memory. Set once at boot from the machine's size.
static RESERVE_FRAMES: AtomicUsize = AtomicUsize::new(0);
/// Usable frames, fixed at boot (read without the lock on every `map`).
static TOTAL_FRAMES: AtomicUsize = AtomicUsize::new(0);
/// The reserve is a sixteenth of usable memory, at least 2 MiB and at most 32 MiB (Linux keeps
/// a similar `admin_reserve_kbytes` plus watermarks).
const RESERVE_DIVISOR: usize = 16;
const RESERVE_MIN_FRAMES: usize = 512;
const RESERVE_MAX_FRAMES: usize = 8192;

/// Removes `hole` from `range`, leaving up to two pieces.
fn without(range: Range<u64>, hole: &Range<u64>) -> [Range<u64>; 2] {
    [range.start..range.end.min(hole.start), range.start.max(hole.end)..range.end]
}

pub(super) fn init(boot: &BootResources) {
    assert!(boot.physical_memory_offset.is_some(), "the loader did not map physical memory");
    let usable = boot.usable_memory();
    let span_start = usable.clone().map(|r| r.start).min().expect("no usable memory");
    let span_end = usable.clone().map(|r| r.end).max().expect("no usable memory");
    let span = span_start / FRAME_SIZE_BYTES * FRAME_SIZE_BYTES
        ..span_end.next_multiple_of(FRAME_SIZE_BYTES);
    let (words, frames) = storage_words(&span);
    let bitmap_bytes = (words * 8) as u64;
    let storage_bytes = (bitmap_bytes + frames as u64).next_multiple_of(FRAME_SIZE_BYTES);
    let storage = usable
        .clone()
        .map(|r| r.start.next_multiple_of(FRAME_SIZE_BYTES)..r.end)
        .find(|r| r.end.saturating_sub(r.start) >= storage_bytes)
        .map(|r| r.start..r.start + storage_bytes)
        .expect("no usable region holds the frame bookkeeping");
    // SAFETY: `storage` is usable RAM (the loader gave it to the kernel and nothing has claimed
    // it yet), mapped by the physical-memory window, and excluded from the allocator below, so
    // these two slices are its only users for the rest of the kernel's life.
    let (free_bits, mapping_counts) = unsafe {
        let base = paging::phys_to_virt(storage.start);
        (
            core::slice::from_raw_parts_mut(base.cast::<u64>(), words),
            core::slice::from_raw_parts_mut(base.add(bitmap_bytes as usize), frames),
        )
    };
    let allocator = FrameAllocator::new(
        span,
        usable.flat_map(move |range| without(range, &storage)).filter(|r| r.start < r.end),
        free_bits,
        mapping_counts,
    );
    let total = allocator.stats().total;
    TOTAL_FRAMES.store(total, Ordering::Relaxed);
    RESERVE_FRAMES.store(
        (total / RESERVE_DIVISOR).clamp(RESERVE_MIN_FRAMES, RESERVE_MAX_FRAMES).min(total / 2),
        Ordering::Relaxed,
    );
    *FRAMES.lock() = Some(allocator);
}

fn with_frames<R>(f: impl FnOnce(&mut FrameAllocator) -> R) -> R {
    f(FRAMES.lock().as_mut().expect("mm::init has run"))
}

/// Allocates a zero-filled frame (mapping count 1). `None` when memory is exhausted.
pub fn allocate_frame() -> Option<Frame> {
    let frame = with_frames(FrameAllocator::allocate)?;
    // SAFETY: the frame was free, so nothing else refers to it; the window maps all of RAM.
    unsafe { paging::phys_to_virt(frame.start()).write_bytes(0, FRAME_SIZE_BYTES as usize) };
    Some(frame)
}

/// Allocates a zero-filled frame for a process (its pages and page tables): `None` once only
/// the kernel's reserve is left.
pub(super) fn allocate_user_frame() -> Option<Frame> {
    let reserve = RESERVE_FRAMES.load(Ordering::Relaxed);
    let frame =
        with_frames(|frames| if frames.stats().free > reserve { frames.allocate() } else { None })?;
    // SAFETY: as in `allocate_frame`.
    unsafe { paging::phys_to_virt(frame.start()).write_bytes(0, FRAME_SIZE_BYTES as usize) };
    Some(frame)
}

/// Whether more than the kernel's reserve is free: calls that make the kernel allocate on a
/// process's behalf (spawn, subscribe, map, share) answer `ENOMEM` otherwise.
pub fn has_room_for_processes() -> bool {
    frame_stats().free > RESERVE_FRAMES.load(Ordering::Relaxed)
}

/// The machine's user memory: usable memory less the kernel's reserve. The most one address
/// space may reserve.
pub fn user_memory_bytes() -> u64 {
    let frames = TOTAL_FRAMES.load(Ordering::Relaxed) - RESERVE_FRAMES.load(Ordering::Relaxed);
    frames as u64 * FRAME_SIZE_BYTES
}

/// Frames held back for the kernel.
pub fn reserve_frames() -> usize {
    RESERVE_FRAMES.load(Ordering::Relaxed)
}

/// Drops one mapping of `frame`, freeing it with the last one.
pub fn release_frame(frame: Frame) -> Result<bool, FrameError> {
    with_frames(|frames| frames.release(frame))
}

/// Frames released that were free or unmanaged (double frees, caught).
static BAD_RELEASES: AtomicU64 = AtomicU64::new(0);

/// Releases a frame mm unmapped; a refused release means mm's bookkeeping is wrong somewhere,
/// so it is counted and reported loudly instead of being ignored.
pub(super) fn release_or_report(frame: Frame) {
    if let Err(error) = release_frame(frame) {
        BAD_RELEASES.fetch_add(1, Ordering::Relaxed);
        log::error!("{error}");
    }
}

/// Refused releases since boot (see [`release_or_report`]).
pub(super) fn bad_release_count() -> u64 {
    BAD_RELEASES.load(Ordering::Relaxed)
}

/// How many mappings `frame` has (1: only its first).
pub(super) fn frame_mapping_count(frame: Frame) -> u8 {
    with_frames(|frames| frames.mapping_count(frame))
}

/// Records an extra mapping of `frame` (shared memory).
pub(super) fn share_frame(frame: Frame) -> Result<(), FrameError> {
    with_frames(|frames| frames.share(frame))
}

/// Frame counts.
pub fn frame_stats() -> FrameStats {
    with_frames(|frames| frames.stats())
}
