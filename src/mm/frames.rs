//! Physical frame accounting: which 4 KiB frames are free, and how many mappings use each one.
//!
//! A bitmap (one bit per frame, set = free) finds free frames quickly; a byte per frame counts
//! the mappings of an allocated frame, so shared frames are freed by their last user and a
//! release of a free frame is caught as a double free instead of corrupting the free set. Pure
//! logic over storage it is given: the kernel carves that storage out of physical memory, the
//! host tests use a `Vec`.

#![forbid(unsafe_code)]

use core::{fmt, ops::Range};

pub use crate::vocab::{FRAME_SIZE_BYTES, Frame};

/// Why a frame operation was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum FrameError {
    /// The frame is not part of usable memory (firmware, kernel image, MMIO).
    NotManaged(Frame),
    /// The frame is already free: a double free.
    AlreadyFree(Frame),
    /// The frame already has the maximum number of mappings.
    TooManyMappings(Frame),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotManaged(frame) => write!(f, "{frame} is not managed memory"),
            Self::AlreadyFree(frame) => write!(f, "double free of {frame}"),
            Self::TooManyMappings(frame) => write!(f, "{frame} has too many mappings"),
        }
    }
}

/// Frame counts, for `mem` and for leak tests.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FrameStats {
    /// Usable frames in total.
    pub total: usize,
    /// Frames currently free.
    pub free: usize,
}

impl FrameStats {
    /// Frames currently allocated.
    pub const fn used(&self) -> usize {
        self.total - self.free
    }
}

/// Mapping count of a frame that is not usable memory: never allocated, never freed.
const UNMANAGED: u8 = u8::MAX;
/// Most mappings one frame may have (one below the unmanaged marker).
const MAX_MAPPINGS: u8 = UNMANAGED - 1;
const BITS_PER_WORD: u64 = 64;

/// How much storage [`FrameAllocator::new`] needs for frames in `span`.
pub const fn storage_words(span: &Range<u64>) -> (usize, usize) {
    let frames = span_frames(span);
    (frames.div_ceil(BITS_PER_WORD) as usize, frames as usize)
}

const fn span_frames(span: &Range<u64>) -> u64 {
    (span.end - span.start) / FRAME_SIZE_BYTES
}

/// The frame allocator. Not synchronised: the kernel wraps it in a lock.
pub struct FrameAllocator {
    /// Bit `n` set: frame `first + n` is free.
    free_bits: &'static mut [u64],
    /// Mapping count per frame; [`UNMANAGED`] for frames outside usable memory.
    mapping_counts: &'static mut [u8],
    /// Frame number of bit 0.
    first_frame_number: u64,
    stats: FrameStats,
    /// Word to start the next search at: everything before it was full when last looked at.
    search_hint: usize,
}

impl FrameAllocator {
    /// Builds an allocator for the frames of `span` (frame-aligned physical addresses), with
    /// the frames fully inside `usable` ranges free and every other frame unmanaged.
    /// `free_bits` and `mapping_counts` must have the sizes [`storage_words`] gives.
    pub fn new(
        span: Range<u64>,
        usable: impl Iterator<Item = Range<u64>>,
        free_bits: &'static mut [u64],
        mapping_counts: &'static mut [u8],
    ) -> Self {
        let (words, frames) = storage_words(&span);
        assert!(free_bits.len() >= words && mapping_counts.len() >= frames, "storage too small");
        free_bits.fill(0);
        mapping_counts.fill(UNMANAGED);
        let mut allocator = Self {
            free_bits,
            mapping_counts,
            first_frame_number: span.start / FRAME_SIZE_BYTES,
            stats: FrameStats { total: 0, free: 0 },
            search_hint: 0,
        };
        for range in usable {
            let start = range.start.max(span.start).next_multiple_of(FRAME_SIZE_BYTES);
            let end = range.end.min(span.end) / FRAME_SIZE_BYTES * FRAME_SIZE_BYTES;
            let mut address = start;
            while address < end {
                let index = allocator
                    .index(Frame::from_start(address).expect("frame aligned"))
                    .expect("inside span");
                if allocator.mapping_counts[index] == UNMANAGED {
                    allocator.mapping_counts[index] = 0;
                    allocator.set_free_bit(index, true);
                    allocator.stats.total += 1;
                    allocator.stats.free += 1;
                }
                address += FRAME_SIZE_BYTES;
            }
        }
        allocator
    }

    fn index(&self, frame: Frame) -> Option<usize> {
        let offset = frame.number().checked_sub(self.first_frame_number)?;
        let index = usize::try_from(offset).ok()?;
        (index < self.mapping_counts.len()).then_some(index)
    }

    fn set_free_bit(&mut self, index: usize, free: bool) {
        let word = &mut self.free_bits[index / BITS_PER_WORD as usize];
        let bit = 1 << (index % BITS_PER_WORD as usize);
        if free { *word |= bit } else { *word &= !bit }
    }

    /// Takes a free frame; its mapping count becomes 1. `None` when memory is exhausted.
    pub fn allocate(&mut self) -> Option<Frame> {
        if self.stats.free == 0 {
            return None;
        }
        let words = self.free_bits.len();
        for step in 0..words {
            let word_index = (self.search_hint + step) % words;
            let word = self.free_bits[word_index];
            if word != 0 {
                let index = word_index * BITS_PER_WORD as usize + word.trailing_zeros() as usize;
                self.search_hint = word_index;
                self.set_free_bit(index, false);
                self.mapping_counts[index] = 1;
                self.stats.free -= 1;
                return Frame::from_start(
                    (self.first_frame_number + index as u64) * FRAME_SIZE_BYTES,
                );
            }
        }
        unreachable!("free count {} but no free bit", self.stats.free)
    }

    /// Records one more mapping of an allocated frame.
    pub fn share(&mut self, frame: Frame) -> Result<(), FrameError> {
        let index = self.index(frame).ok_or(FrameError::NotManaged(frame))?;
        match self.mapping_counts[index] {
            UNMANAGED => Err(FrameError::NotManaged(frame)),
            0 => Err(FrameError::AlreadyFree(frame)),
            MAX_MAPPINGS => Err(FrameError::TooManyMappings(frame)),
            _ => {
                self.mapping_counts[index] += 1;
                Ok(())
            }
        }
    }

    /// Drops one mapping of `frame`; the last one frees it. Returns whether it was freed.
    pub fn release(&mut self, frame: Frame) -> Result<bool, FrameError> {
        let index = self.index(frame).ok_or(FrameError::NotManaged(frame))?;
        match self.mapping_counts[index] {
            UNMANAGED => Err(FrameError::NotManaged(frame)),
            0 => Err(FrameError::AlreadyFree(frame)),
            1 => {
                self.mapping_counts[index] = 0;
                self.set_free_bit(index, true);
                self.stats.free += 1;
                // Freed low frames are found again without a scan from the old hint.
                self.search_hint = self.search_hint.min(index / BITS_PER_WORD as usize);
                Ok(true)
            }
            _ => {
                self.mapping_counts[index] -= 1;
                Ok(false)
            }
        }
    }

    /// Number of mappings of `frame` (0 if free or unmanaged).
    pub fn mapping_count(&self, frame: Frame) -> u8 {
        match self.index(frame).map(|index| self.mapping_counts[index]) {
            Some(UNMANAGED) | None => 0,
            Some(count) => count,
        }
    }

    /// Current counts.
    pub const fn stats(&self) -> FrameStats {
        self.stats
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::{boxed::Box, vec, vec::Vec};

    use super::*;

    fn allocator(span: Range<u64>, usable: impl IntoIterator<Item = Range<u64>>) -> FrameAllocator {
        let (words, frames) = storage_words(&span);
        FrameAllocator::new(
            span,
            usable.into_iter(),
            Box::leak(vec![0; words].into_boxed_slice()),
            Box::leak(vec![0; frames].into_boxed_slice()),
        )
    }

    const PAGE: u64 = FRAME_SIZE_BYTES;

    #[test_case]
    fn only_whole_usable_frames_are_managed() {
        // Two regions with a hole and ragged edges: 0x1800..0x4000 holds frames 2 and 3 only.
        let alloc = allocator(0..0x10 * PAGE, [0x1800..0x4000, 0x8000..0xa000]);
        assert_eq!(alloc.stats(), FrameStats { total: 4, free: 4 });
        let mut a = alloc;
        let frames: Vec<_> = core::iter::from_fn(|| a.allocate()).collect();
        let starts: Vec<_> = frames.iter().map(|f| f.start()).collect();
        assert_eq!(starts, [0x2000, 0x3000, 0x8000, 0x9000]);
        assert_eq!(a.stats().free, 0);
        assert_eq!(a.allocate(), None);
    }

    #[test_case]
    fn double_free_and_foreign_frames_are_caught() {
        let mut a = allocator(0..0x10 * PAGE, Some(0..0x4000));
        let frame = a.allocate().expect("free frame");
        assert_eq!(a.release(frame), Ok(true));
        assert_eq!(a.release(frame), Err(FrameError::AlreadyFree(frame)));
        let outside = Frame::from_start(0x8000).expect("aligned");
        assert_eq!(a.release(outside), Err(FrameError::NotManaged(outside)));
        let beyond = Frame::from_start(0x100 * PAGE).expect("aligned");
        assert_eq!(a.share(beyond), Err(FrameError::NotManaged(beyond)));
        assert_eq!(a.stats().free, 4, "failed releases change nothing");
    }

    #[test_case]
    fn shared_frames_are_freed_by_their_last_user() {
        let mut a = allocator(0..0x4000, Some(0..0x4000));
        let frame = a.allocate().expect("free frame");
        a.share(frame).expect("share");
        a.share(frame).expect("share");
        assert_eq!(a.mapping_count(frame), 3);
        assert_eq!(a.release(frame), Ok(false));
        assert_eq!(a.release(frame), Ok(false));
        assert_eq!(a.stats().free, 3);
        assert_eq!(a.release(frame), Ok(true));
        assert_eq!(a.stats().free, 4);
    }

    #[test_case]
    fn mapping_count_saturates_with_an_error() {
        let mut a = allocator(0..0x1000, Some(0..0x1000));
        let frame = a.allocate().expect("free frame");
        for _ in 1..MAX_MAPPINGS {
            a.share(frame).expect("share");
        }
        assert_eq!(a.share(frame), Err(FrameError::TooManyMappings(frame)));
    }

    #[test_case]
    fn random_allocate_release_matches_a_model() {
        // Several thousand frames across word boundaries; a set models which are allocated.
        let mut a =
            allocator(0x100000..0x100000 + 3000 * PAGE, Some(0x100000..0x100000 + 3000 * PAGE));
        let mut held: Vec<Frame> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed % 3 != 0 || held.is_empty() {
                if let Some(frame) = a.allocate() {
                    assert!(!held.contains(&frame), "{frame} handed out twice");
                    held.push(frame);
                } else {
                    assert_eq!(held.len(), 3000);
                }
            } else {
                let frame = held.swap_remove((seed / 3) as usize % held.len());
                assert_eq!(a.release(frame), Ok(true));
            }
            assert_eq!(a.stats().used(), held.len());
        }
    }
}
