//! The reserved ranges of an address space ("regions", Linux's VMAs): what each range allows and
//! how it is backed. Pure bookkeeping; page tables follow it, they never lead.

#![forbid(unsafe_code)]

use alloc::collections::{BTreeMap, BTreeSet};
use core::ops::Range;

use crate::events::Protection;

/// Size of a page.
pub const PAGE_SIZE_BYTES: u64 = 4096;

/// How a region's pages get their frames.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Backing {
    /// Zero-filled on first touch; frames may also be shared in from another space.
    Anonymous,
    /// Never backed: touching it is a stack overflow (or another guard) hit.
    Guard,
}

/// One reserved range.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Region {
    /// Start address (page aligned).
    pub start: u64,
    /// End address, exclusive (page aligned).
    pub end: u64,
    /// What the pages allow.
    pub protection: Protection,
    /// How the pages are backed.
    pub backing: Backing,
}

/// Why a range operation was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum RegionError {
    /// Misaligned, empty, overflowing or outside the allowed window.
    BadRange,
    /// The range overlaps an existing region.
    Overlaps,
    /// Part of the range is not reserved.
    NotReserved,
    /// No free hole is large enough.
    NoSpace,
    /// The map already holds its most regions (Linux's `vm.max_map_count`).
    TooManyRegions,
}

/// The regions of one address space, keyed by start address; never overlapping.
///
/// The free holes of the placement window are indexed by length beside the regions, so every
/// operation is O(log n) in the number of regions: a process cannot make the kernel slower by
/// holding many of them. Where a hole lies needs no second index: the gaps between regions are
/// the holes, so a change takes the gaps around it out of the index before it and puts the new
/// ones in after.
#[derive(Debug)]
pub struct RegionMap {
    regions: BTreeMap<u64, Region>,
    window: Range<u64>,
    /// Where [`find_free`](Self::find_free) places regions; inside `window`.
    placement: Range<u64>,
    /// The gaps between regions inside `placement`, as (length, start): the smallest that
    /// fits is one range query away.
    holes_by_len: BTreeSet<(u64, u64)>,
    max_regions: usize,
    anonymous_bytes: u64,
}

/// Checks that `address..address + len_bytes` is a non-empty page-aligned range inside `window`.
pub fn checked_range(address: u64, len_bytes: u64, window: &Range<u64>) -> Option<Range<u64>> {
    if !address.is_multiple_of(PAGE_SIZE_BYTES)
        || len_bytes == 0
        || !len_bytes.is_multiple_of(PAGE_SIZE_BYTES)
    {
        return None;
    }
    let end = address.checked_add(len_bytes)?;
    (address >= window.start && end <= window.end).then_some(address..end)
}

impl RegionMap {
    /// An empty map whose regions must lie inside `window`, placing those whose caller lets it
    /// choose inside `placement` (clipped to `window`), holding at most `max_regions`.
    pub fn new(window: Range<u64>, placement: Range<u64>, max_regions: usize) -> Self {
        let placement = placement.start.max(window.start)..placement.end.min(window.end);
        let mut map = Self {
            regions: BTreeMap::new(),
            window,
            placement: placement.clone(),
            holes_by_len: BTreeSet::new(),
            max_regions,
            anonymous_bytes: 0,
        };
        map.index_gaps(placement);
        map
    }

    /// The region containing `address`, if any.
    pub fn find(&self, address: u64) -> Option<&Region> {
        let (_, region) = self.regions.range(..=address).next_back()?;
        (address < region.end).then_some(region)
    }

    /// Every region, in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether there are no regions.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Bytes reserved by anonymous regions (guards cost nothing).
    pub const fn anonymous_bytes(&self) -> u64 {
        self.anonymous_bytes
    }

    fn overlaps(&self, range: &Range<u64>) -> bool {
        self.regions.range(..range.end).next_back().is_some_and(|(_, r)| r.end > range.start)
    }

    /// Finds a free hole of `len_bytes` in the placement window: the start of the smallest hole
    /// that fits (the lowest such, among equals). O(log n).
    pub fn find_free(&self, len_bytes: u64) -> Result<u64, RegionError> {
        if len_bytes == 0 {
            return Err(RegionError::BadRange);
        }
        self.holes_by_len
            .range((len_bytes, 0)..)
            .next()
            .map(|&(_, start)| start)
            .ok_or(RegionError::NoSpace)
    }

    /// Calls `f` with each gap (start, end) of the placement window between the last region
    /// ending at or before `span` and the first starting at or after it: every hole a change
    /// inside `span` can create or destroy. O(log n + regions in `span`).
    fn for_each_gap_around(
        regions: &BTreeMap<u64, Region>,
        placement: &Range<u64>,
        span: &Range<u64>,
        mut f: impl FnMut(u64, u64),
    ) {
        let before = regions.range(..span.start).next_back().map(|(_, r)| r.end);
        let low = before.map_or(placement.start, |end| end.min(span.start)).max(placement.start);
        let high = regions
            .range(span.end..)
            .next()
            .map_or(placement.end, |(&start, _)| start)
            .min(placement.end);
        if low >= high {
            return;
        }
        // A region that starts before `low` may still cover it: the one before `span`, unless
        // `low` was raised to the placement window's start past others.
        let mut cursor = if low <= span.start {
            before.map_or(low, |end| end.max(low))
        } else {
            regions.range(..low).next_back().map_or(low, |(_, r)| r.end.max(low))
        };
        let inside = regions.range(low..high).map(|(_, r)| (r.start, r.end));
        for (start, end) in inside.chain(core::iter::once((high, high))) {
            let gap_end = start.min(high);
            if gap_end > cursor {
                f(cursor, gap_end);
            }
            cursor = cursor.max(end);
        }
    }

    /// Takes the gaps around `span` out of the hole index (before the regions there change).
    fn unindex_gaps(&mut self, span: Range<u64>) {
        let holes = &mut self.holes_by_len;
        Self::for_each_gap_around(&self.regions, &self.placement, &span, |start, end| {
            holes.remove(&(end - start, start));
        });
    }

    /// Puts the gaps around `span` into the hole index (after the regions there changed).
    fn index_gaps(&mut self, span: Range<u64>) {
        let holes = &mut self.holes_by_len;
        Self::for_each_gap_around(&self.regions, &self.placement, &span, |start, end| {
            holes.insert((end - start, start));
        });
    }

    /// Adds a region over a free range.
    pub fn insert(
        &mut self,
        range: Range<u64>,
        protection: Protection,
        backing: Backing,
    ) -> Result<(), RegionError> {
        let range = checked_range(range.start, range.end.wrapping_sub(range.start), &self.window)
            .ok_or(RegionError::BadRange)?;
        if self.overlaps(&range) {
            return Err(RegionError::Overlaps);
        }
        if self.regions.len() >= self.max_regions {
            return Err(RegionError::TooManyRegions);
        }
        if backing == Backing::Anonymous {
            self.anonymous_bytes += range.end - range.start;
        }
        self.unindex_gaps(range.clone());
        self.regions.insert(
            range.start,
            Region { start: range.start, end: range.end, protection, backing },
        );
        self.index_gaps(range);
        Ok(())
    }

    /// Splits regions so that `at` is a region boundary (no-op if nothing spans it). Refused
    /// when the map is full; a split alone changes nothing a caller can see.
    fn split_at(&mut self, at: u64) -> Result<(), RegionError> {
        let full = self.regions.len() >= self.max_regions;
        let Some((_, region)) = self.regions.range_mut(..at).next_back() else { return Ok(()) };
        if region.end > at {
            if full {
                return Err(RegionError::TooManyRegions);
            }
            let tail = Region { start: at, ..*region };
            region.end = at;
            self.regions.insert(at, tail);
        }
        Ok(())
    }

    /// Removes every region part inside `range`, handing each removed piece to `each`. Refused
    /// only when a region would have to be cut in two and the map is full.
    pub fn remove(
        &mut self,
        range: Range<u64>,
        mut each: impl FnMut(Region),
    ) -> Result<(), RegionError> {
        self.split_at(range.start)?;
        self.split_at(range.end)?;
        // Splits moved no boundary a gap ends at, so the index is still right here.
        if self.regions.range(range.start..range.end).next().is_none() {
            return Ok(());
        }
        self.unindex_gaps(range.clone());
        while let Some((&start, _)) = self.regions.range(range.start..range.end).next() {
            let region = self.regions.remove(&start).expect("found just now");
            if region.backing == Backing::Anonymous {
                self.anonymous_bytes -= region.end - region.start;
            }
            each(region);
        }
        self.index_gaps(range);
        Ok(())
    }

    /// The regions overlapping `range`, in descending address order. O(log n + found).
    pub fn overlapping(&self, range: &Range<u64>) -> impl Iterator<Item = &Region> {
        let start = range.start;
        self.regions.range(..range.end).rev().map(|(_, r)| r).take_while(move |r| r.end > start)
    }

    /// Whether `range` is fully covered by regions with `backing`.
    pub fn covers(&self, range: &Range<u64>, backing: Backing) -> bool {
        let mut next = range.start;
        for (_, region) in self.regions.range(..range.end) {
            if region.end <= next {
                continue;
            }
            if region.start > next || region.backing != backing {
                return false;
            }
            next = region.end;
            if next >= range.end {
                return true;
            }
        }
        next >= range.end
    }

    /// Sets the protection of `range`, which must be fully covered by anonymous regions.
    pub fn protect(
        &mut self,
        range: Range<u64>,
        protection: Protection,
    ) -> Result<(), RegionError> {
        if !self.covers(&range, Backing::Anonymous) {
            return Err(RegionError::NotReserved);
        }
        self.split_at(range.start)?;
        self.split_at(range.end)?;
        for (_, region) in self.regions.range_mut(range.start..range.end) {
            region.protection = protection;
        }
        Ok(())
    }

    /// Removes every region and returns them.
    pub fn drain(&mut self) -> impl Iterator<Item = Region> {
        self.anonymous_bytes = 0;
        self.holes_by_len.clear();
        let placement = self.placement.clone();
        let regions = core::mem::take(&mut self.regions);
        self.index_gaps(placement);
        regions.into_values()
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    const P: u64 = PAGE_SIZE_BYTES;
    const RW: Protection = Protection::READ_WRITE;

    fn map() -> RegionMap {
        RegionMap::new(P..1024 * P, P..1024 * P, 64)
    }

    /// The holes recomputed the slow way, from the regions alone.
    fn brute_force_holes(m: &RegionMap) -> Vec<(u64, u64)> {
        let mut holes = Vec::new();
        let mut cursor = m.placement.start;
        for region in m.iter() {
            let start = region.start.clamp(m.placement.start, m.placement.end);
            if start > cursor {
                holes.push((cursor, start));
            }
            cursor = cursor.max(region.end.min(m.placement.end));
        }
        if m.placement.end > cursor {
            holes.push((cursor, m.placement.end));
        }
        holes
    }

    fn assert_index_exact(m: &RegionMap) {
        let expected = brute_force_holes(m);
        let mut by_len: Vec<_> = m.holes_by_len.iter().map(|&(len, s)| (s, s + len)).collect();
        by_len.sort_unstable();
        assert_eq!(by_len, expected);
        let anonymous: u64 =
            m.iter().filter(|r| r.backing == Backing::Anonymous).map(|r| r.end - r.start).sum();
        assert_eq!(m.anonymous_bytes(), anonymous);
    }

    #[test_case]
    fn insert_refuses_overlap_misalignment_and_outside_window() {
        let mut m = map();
        m.insert(10 * P..20 * P, RW, Backing::Anonymous).expect("free");
        assert_eq!(m.insert(19 * P..21 * P, RW, Backing::Anonymous), Err(RegionError::Overlaps));
        assert_eq!(m.insert(5 * P..11 * P, RW, Backing::Anonymous), Err(RegionError::Overlaps));
        assert_eq!(
            m.insert(30 * P + 1..31 * P, RW, Backing::Anonymous),
            Err(RegionError::BadRange)
        );
        assert_eq!(m.insert(0..P, RW, Backing::Anonymous), Err(RegionError::BadRange));
        assert_eq!(
            m.insert(1020 * P..1030 * P, RW, Backing::Anonymous),
            Err(RegionError::BadRange)
        );
        m.insert(20 * P..21 * P, RW, Backing::Anonymous).expect("adjacent is fine");
        assert_eq!(m.len(), 2);
    }

    #[test_case]
    fn remove_splits_partial_regions() {
        let mut m = map();
        m.insert(10 * P..20 * P, RW, Backing::Anonymous).expect("free");
        let mut removed = Vec::new();
        m.remove(12 * P..15 * P, |region| removed.push(region)).expect("room to split");
        assert_eq!(removed.len(), 1);
        assert_eq!((removed[0].start, removed[0].end), (12 * P, 15 * P));
        let left: Vec<_> = m.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(left, [(10 * P, 12 * P), (15 * P, 20 * P)]);
        assert!(m.find(13 * P).is_none());
        assert_eq!(m.find(19 * P).map(|r| r.start), Some(15 * P));
    }

    #[test_case]
    fn protect_needs_full_coverage_and_splits() {
        let mut m = map();
        m.insert(10 * P..20 * P, RW, Backing::Anonymous).expect("free");
        m.insert(20 * P..22 * P, RW, Backing::Guard).expect("free");
        assert_eq!(m.protect(5 * P..12 * P, Protection::READ), Err(RegionError::NotReserved));
        assert_eq!(m.protect(18 * P..21 * P, Protection::READ), Err(RegionError::NotReserved));
        m.protect(12 * P..14 * P, Protection::READ).expect("covered");
        assert_eq!(m.find(13 * P).map(|r| r.protection), Some(Protection::READ));
        assert_eq!(m.find(14 * P).map(|r| r.protection), Some(RW));
        assert_eq!(m.len(), 4);
    }

    #[test_case]
    fn find_free_takes_the_smallest_hole_that_fits() {
        let mut m = map();
        m.insert(P..3 * P, RW, Backing::Anonymous).expect("free");
        m.insert(4 * P..6 * P, RW, Backing::Anonymous).expect("free");
        assert_eq!(m.find_free(P), Ok(3 * P));
        assert_eq!(m.find_free(2 * P), Ok(6 * P));
        assert_eq!(m.find_free(2000 * P), Err(RegionError::NoSpace));
        assert_eq!(m.find_free(u64::MAX - P), Err(RegionError::NoSpace));
        assert_eq!(m.find_free(0), Err(RegionError::BadRange));
        assert_index_exact(&m);
    }

    #[test_case]
    fn placement_is_limited_to_its_window_even_around_straddling_regions() {
        let mut m = RegionMap::new(P..1024 * P, 100 * P..200 * P, 64);
        assert_eq!(m.find_free(P), Ok(100 * P));
        m.insert(90 * P..110 * P, RW, Backing::Anonymous).expect("free");
        assert_eq!(m.find_free(P), Ok(110 * P));
        m.insert(190 * P..300 * P, RW, Backing::Anonymous).expect("free");
        assert_eq!(m.find_free(80 * P), Ok(110 * P));
        assert_eq!(m.find_free(81 * P), Err(RegionError::NoSpace));
        assert_index_exact(&m);
        m.remove(95 * P..105 * P, drop).expect("room to split");
        assert_index_exact(&m);
    }

    #[test_case]
    fn the_hole_index_matches_the_regions_through_random_changes() {
        let mut m = RegionMap::new(P..1024 * P, 64 * P..1024 * P, 48);
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..2000 {
            let start = (1 + next(1000)) * P;
            let len = (1 + next(40)) * P;
            match next(4) {
                0 | 1 => {
                    let _ = m.insert(start..start + len, RW, Backing::Anonymous);
                }
                2 => {
                    if let Ok(found) = m.find_free(len) {
                        let inserted = m.insert(found..found + len, RW, Backing::Guard);
                        assert!(matches!(inserted, Ok(()) | Err(RegionError::TooManyRegions)));
                    }
                }
                _ => {
                    let _ = m.remove(start..start + len, drop);
                }
            }
            assert_index_exact(&m);
            assert!(m.len() <= 48);
        }
    }

    #[test_case]
    fn a_full_map_refuses_new_regions_and_splits_but_still_removes_whole_ones() {
        let mut m = RegionMap::new(P..1024 * P, P..1024 * P, 2);
        m.insert(10 * P..20 * P, RW, Backing::Anonymous).expect("free");
        m.insert(30 * P..40 * P, RW, Backing::Anonymous).expect("free");
        assert_eq!(
            m.insert(50 * P..51 * P, RW, Backing::Anonymous),
            Err(RegionError::TooManyRegions)
        );
        assert_eq!(m.remove(12 * P..14 * P, drop), Err(RegionError::TooManyRegions));
        assert_eq!(m.protect(12 * P..14 * P, Protection::READ), Err(RegionError::TooManyRegions));
        let mut removed = 0;
        assert_eq!(m.remove(30 * P..40 * P, |_| removed += 1), Ok(()));
        assert_eq!(removed, 1);
        assert_eq!(m.anonymous_bytes(), 10 * P);
        assert_index_exact(&m);
    }
}
