//! The reserved ranges of an address space ("regions", Linux's VMAs): what each range allows and
//! how it is backed. Pure bookkeeping; page tables follow it, they never lead.

use alloc::collections::BTreeMap;
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
}

/// The regions of one address space, keyed by start address; never overlapping.
#[derive(Debug)]
pub struct RegionMap {
    regions: BTreeMap<u64, Region>,
    window: Range<u64>,
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
    /// An empty map whose regions must lie inside `window`.
    pub const fn new(window: Range<u64>) -> Self {
        Self { regions: BTreeMap::new(), window }
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

    fn overlaps(&self, range: &Range<u64>) -> bool {
        self.regions.range(..range.end).next_back().is_some_and(|(_, r)| r.end > range.start)
    }

    /// Finds the lowest free hole of `len_bytes` at or above `hint`.
    pub fn find_free(&self, len_bytes: u64, hint: u64) -> Result<u64, RegionError> {
        let mut candidate = hint.max(self.window.start);
        for region in self.regions.values() {
            if region.end <= candidate {
                continue;
            }
            if region.start >= candidate.saturating_add(len_bytes) {
                break;
            }
            candidate = region.end;
        }
        match candidate.checked_add(len_bytes) {
            Some(end) if end <= self.window.end => Ok(candidate),
            _ => Err(RegionError::NoSpace),
        }
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
        self.regions.insert(
            range.start,
            Region { start: range.start, end: range.end, protection, backing },
        );
        Ok(())
    }

    /// Splits regions so that `at` is a region boundary (no-op if nothing spans it).
    fn split_at(&mut self, at: u64) {
        let Some((_, region)) = self.regions.range_mut(..at).next_back() else { return };
        if region.end > at {
            let tail = Region { start: at, ..*region };
            region.end = at;
            self.regions.insert(at, tail);
        }
    }

    /// Removes every region part inside `range` and returns the removed pieces.
    pub fn remove(&mut self, range: Range<u64>) -> alloc::vec::Vec<Region> {
        self.split_at(range.start);
        self.split_at(range.end);
        let starts: alloc::vec::Vec<u64> =
            self.regions.range(range.start..range.end).map(|(&start, _)| start).collect();
        starts.into_iter().filter_map(|start| self.regions.remove(&start)).collect()
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
        self.split_at(range.start);
        self.split_at(range.end);
        for (_, region) in self.regions.range_mut(range.start..range.end) {
            region.protection = protection;
        }
        Ok(())
    }

    /// Removes every region and returns them.
    pub fn drain(&mut self) -> impl Iterator<Item = Region> {
        core::mem::take(&mut self.regions).into_values()
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::*;

    const P: u64 = PAGE_SIZE_BYTES;
    const RW: Protection = Protection::READ_WRITE;

    fn map() -> RegionMap {
        RegionMap::new(P..1024 * P)
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
        let removed = m.remove(12 * P..15 * P);
        assert_eq!(removed.len(), 1);
        assert_eq!((removed[0].start, removed[0].end), (12 * P, 15 * P));
        let left: alloc::vec::Vec<_> = m.iter().map(|r| (r.start, r.end)).collect();
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
    fn find_free_skips_regions_and_respects_the_window() {
        let mut m = map();
        m.insert(P..3 * P, RW, Backing::Anonymous).expect("free");
        m.insert(4 * P..6 * P, RW, Backing::Anonymous).expect("free");
        assert_eq!(m.find_free(P, 0), Ok(3 * P));
        assert_eq!(m.find_free(2 * P, 0), Ok(6 * P));
        assert_eq!(m.find_free(2 * P, 100 * P), Ok(100 * P));
        assert_eq!(m.find_free(2000 * P, 0), Err(RegionError::NoSpace));
        assert_eq!(m.find_free(u64::MAX - P, 0), Err(RegionError::NoSpace));
    }
}
