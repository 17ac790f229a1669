//! Address spaces: a page table whose kernel half is shared by all, plus the regions reserved in
//! its user half. Pages of anonymous regions are backed on first touch (demand-zero); frames are
//! freed when the last space mapping them lets go. The page tables themselves are changed only
//! through `tables.rs`; copies to and from user memory are `user_copy.rs`'s.

#![forbid(unsafe_code)]

use alloc::{collections::BTreeMap, vec::Vec};
use core::sync::atomic::{AtomicU32, Ordering};

use super::{
    physical,
    regions::{Backing, PAGE_SIZE_BYTES, Region, RegionError, RegionMap, checked_range},
    tables::{self, ResidentPage, SharedFrame, UserTables},
};
use crate::{
    arch::{self, IrqMutex, paging},
    events::{Access, Errno, Protection, SpaceId},
};

/// Where mm places mappings whose caller lets it choose: clear of where programs are linked.
const MAP_ANYWHERE_BASE: u64 = 0x0000_0010_0000_0000;
/// Most regions one address space holds (each map, share, stack and guard is one; a cut in
/// the middle of one makes two). Linux's `vm.max_map_count` is 65 530; each region costs the
/// kernel about 150 bytes of heap, so Herald's limit is sized for a 64 MiB machine.
pub const MAX_REGIONS_PER_SPACE: usize = 4096;

/// Pages one locked step of a long operation (unmap, protect, share, teardown) touches.
/// Between steps the registry lock is released — interrupts are served — and the task may be
/// preempted, so no operation keeps the machine waiting for long however large its range:
/// a step is a few hundred microseconds of guest time at most.
const PAGES_PER_STEP: u64 = 64;

/// One address space.
#[derive(Debug)]
struct AddressSpace {
    tables: UserTables,
    regions: RegionMap,
    /// An operation of several steps owns the space (see [`Claim`]).
    claimed: bool,
}

/// Exclusive use of address spaces across the steps of a long operation: the registry lock
/// guards each step, the claim guards the operation. Others wanting a claimed space wait for
/// it, letting its holder run; one-step operations need no claim, because a claimant changes
/// the regions in its first step and only pages after that.
struct Claim {
    ids: [SpaceId; 2],
}

impl Claim {
    /// Claims `first` and `second` (which may be the same) together, waiting while either is
    /// claimed by someone else. Both or neither, under one lock: two claimants can never each
    /// hold one and wait for the other.
    fn take(first: SpaceId, second: SpaceId) -> Result<Self, Errno> {
        loop {
            {
                let mut spaces = SPACES.lock();
                let (Some(a), Some(b)) = (spaces.get(&first), spaces.get(&second)) else {
                    return Err(Errno::ESRCH);
                };
                if !a.claimed && !b.claimed {
                    for id in [first, second] {
                        spaces.get_mut(&id).expect("present above").claimed = true;
                    }
                    return Ok(Self { ids: [first, second] });
                }
            }
            crate::arch::yield_now();
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut spaces = SPACES.lock();
        for id in self.ids {
            // Gone if the operation was the space's destruction.
            if let Some(space) = spaces.get_mut(&id) {
                space.claimed = false;
            }
        }
    }
}

static SPACES: IrqMutex<BTreeMap<SpaceId, AddressSpace>> = IrqMutex::new(BTreeMap::new());
static NEXT_SPACE_ID: AtomicU32 = AtomicU32::new(1);
/// Each CPU's active space.
static CURRENT: [AtomicU32; arch::MAX_CPUS] =
    [const { AtomicU32::new(SpaceId::KERNEL.0) }; arch::MAX_CPUS];

fn this_cpu() -> usize {
    arch::cpu_index() % arch::MAX_CPUS
}

fn errno_of(error: RegionError) -> Errno {
    match error {
        RegionError::BadRange => Errno::EINVAL,
        RegionError::Overlaps => Errno::EEXIST,
        RegionError::NotReserved | RegionError::NoSpace | RegionError::TooManyRegions => {
            Errno::ENOMEM
        }
    }
}

fn user_range(address: u64, len_bytes: u64) -> Result<core::ops::Range<u64>, Errno> {
    checked_range(address, len_bytes, &paging::USER_SPACE).ok_or(Errno::EINVAL)
}

/// Creates an empty address space.
pub fn create() -> Result<SpaceId, Errno> {
    let tables = UserTables::new().ok_or(Errno::ENOMEM)?;
    let id = SpaceId(NEXT_SPACE_ID.fetch_add(1, Ordering::Relaxed));
    let regions = RegionMap::new(
        paging::USER_SPACE,
        MAP_ANYWHERE_BASE..paging::USER_SPACE.end,
        MAX_REGIONS_PER_SPACE,
    );
    let space = AddressSpace { tables, regions, claimed: false };
    SPACES.lock().insert(id, space);
    Ok(id)
}

/// A copy of space `parent` (`fork`): the same regions, and every page the parent has backed
/// shared copy-on-write — read-only in both, marked, until the first write in either copies it
/// (`UserTables::break_copy_on_write`). [`PAGES_PER_STEP`] pages a step with a preempt point
/// between; a killed caller or a lack of memory destroys the copy (`EINTR`, `ENOMEM`).
pub fn duplicate(parent: SpaceId) -> Result<SpaceId, Errno> {
    let child = create()?;
    match copy_into(parent, child) {
        Ok(()) => Ok(child),
        Err(errno) => {
            let _ = destroy(child);
            Err(errno)
        }
    }
}

fn copy_into(parent: SpaceId, child: SpaceId) -> Result<(), Errno> {
    let _claim = Claim::take(parent, child)?;
    let regions: Vec<_> = with_space(parent, |space| Ok(space.regions.iter().copied().collect()))?;
    with_space(child, |space| {
        for region in &regions {
            space
                .regions
                .insert(region.start..region.end, region.protection, region.backing)
                .map_err(errno_of)?;
        }
        Ok(())
    })?;
    for region in regions.iter().filter(|region| region.backing == Backing::Anonymous) {
        let mut page = region.start;
        while page < region.end {
            let step_end = page.saturating_add(PAGES_PER_STEP * PAGE_SIZE_BYTES).min(region.end);
            let step_start = page;
            {
                let mut spaces = SPACES.lock();
                while page < step_end {
                    let source = spaces.get_mut(&parent).ok_or(Errno::ESRCH)?;
                    if source.tables.translate(page).is_some() {
                        let shared = source.tables.share(page, region.protection)?;
                        let target = spaces.get_mut(&child).ok_or(Errno::ESRCH)?;
                        target.tables.map_copy_on_write(page, shared, region.protection)?;
                    }
                    page += PAGE_SIZE_BYTES;
                }
                // The parent's side of the step: read-only and marked too (flushed wherever
                // its table is in use).
                let source = spaces.get_mut(&parent).ok_or(Errno::ESRCH)?;
                let mut from = Some(step_start);
                while let Some(start) = from {
                    from = source
                        .tables
                        .mark_copy_on_write(start..step_end, PAGES_PER_STEP)
                        .filter(|&next| next < step_end);
                }
            }
            if crate::arch::preempt_point() && page < region.end {
                return Err(Errno::EINTR);
            }
        }
    }
    Ok(())
}

/// Destroys an address space and frees every frame only it mapped, in steps the caller may be
/// preempted between. If it is active, the kernel space becomes active first.
pub fn destroy(id: SpaceId) -> Result<(), Errno> {
    let claim = Claim::take(id, id)?;
    let mut space = SPACES.lock().remove(&id).ok_or(Errno::ESRCH)?;
    drop(claim);
    if current() == id {
        switch_to(SpaceId::KERNEL).expect("the kernel space always exists");
    }
    for region in space.regions.drain() {
        let mut from = Some(region.start);
        while let Some(start) = from {
            from = unmap_step(&mut space.tables, start..region.end);
            crate::arch::preempt_point();
        }
    }
    // Every leaf is unmapped: dropping the space frees its tables.
    drop(space);
    Ok(())
}

/// Unmaps up to [`PAGES_PER_STEP`] pages of `range` (part of a region already removed),
/// releasing their frames; returns where to go on from, if anywhere.
fn unmap_step(tables: &mut UserTables, range: core::ops::Range<u64>) -> Option<u64> {
    let end = range.end;
    tables.unmap_range(range, PAGES_PER_STEP).0.filter(|&next| next < end)
}

/// Unmaps `range` of space `id` (removed from its regions already, and claimed by the caller),
/// a step at a time.
fn unmap_claimed(id: SpaceId, range: core::ops::Range<u64>) {
    let mut from = Some(range.start);
    while let Some(start) = from {
        // The registry lock is held for the step; the claim keeps the range ours.
        from = SPACES
            .lock()
            .get_mut(&id)
            .and_then(|space| unmap_step(&mut space.tables, start..range.end));
        crate::arch::preempt_point();
    }
}

/// Makes `id` the active address space on this CPU.
pub fn switch_to(id: SpaceId) -> Result<(), Errno> {
    if id == SpaceId::KERNEL {
        tables::activate_kernel();
    } else {
        SPACES.lock().get(&id).ok_or(Errno::ESRCH)?.tables.activate();
    }
    CURRENT[this_cpu()].store(id.0, Ordering::Relaxed);
    Ok(())
}

/// This CPU's active address space.
pub fn current() -> SpaceId {
    SpaceId(CURRENT[this_cpu()].load(Ordering::Relaxed))
}

/// Number of live user address spaces.
pub fn count() -> usize {
    SPACES.lock().len()
}

/// What one address space holds, for `ps`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct SpaceUsage {
    /// Its regions (limit [`MAX_REGIONS_PER_SPACE`]).
    pub regions: usize,
    /// Bytes its anonymous regions reserve (limit [`super::user_memory_bytes`]).
    pub reserved_bytes: u64,
}

/// What space `id` holds, if it exists.
pub fn usage(id: SpaceId) -> Option<SpaceUsage> {
    let spaces = SPACES.lock();
    let space = spaces.get(&id)?;
    Some(SpaceUsage {
        regions: space.regions.len(),
        reserved_bytes: space.regions.anonymous_bytes(),
    })
}

/// What the page at `address` of space `id` maps to, if anything.
pub fn translate(id: SpaceId, address: u64) -> Option<paging::PageMapping> {
    let spaces = SPACES.lock();
    spaces.get(&id)?.tables.translate(address)
}

fn with_space<R>(
    id: SpaceId,
    f: impl FnOnce(&mut AddressSpace) -> Result<R, Errno>,
) -> Result<R, Errno> {
    f(SPACES.lock().get_mut(&id).ok_or(Errno::ESRCH)?)
}

fn refuse_write_execute(protection: Protection) -> Result<(), Errno> {
    if protection.is_write_and_execute() { Err(Errno::EINVAL) } else { Ok(()) }
}

/// The overcommit rule at `map` time: one space may reserve at most the machine's user memory
/// (see [`physical::user_memory_bytes`]), so a single absurd reservation is refused at once;
/// the reservations of different spaces together may exceed it, and are backed on first touch.
fn check_reservation(space: &AddressSpace, len_bytes: u64) -> Result<(), Errno> {
    if !physical::has_room_for_processes() {
        // The region itself costs kernel heap; only the reserve is left.
        return Err(Errno::ENOMEM);
    }
    let total = space.regions.anonymous_bytes().checked_add(len_bytes).ok_or(Errno::ENOMEM)?;
    if total > physical::user_memory_bytes() { Err(Errno::ENOMEM) } else { Ok(()) }
}

/// Reserves demand-zero memory; returns its address.
pub(super) fn map(
    id: SpaceId,
    address: u64,
    len_bytes: u64,
    protection: Protection,
) -> Result<u64, Errno> {
    refuse_write_execute(protection)?;
    if address != 0 {
        // A malformed fixed range is EINVAL whatever its size.
        user_range(address, len_bytes)?;
    }
    with_space(id, |space| {
        check_reservation(space, len_bytes)?;
        let start = if address == 0 {
            space.regions.find_free(len_bytes).map_err(errno_of)?
        } else {
            address
        };
        let range = user_range(start, len_bytes)?;
        space.regions.insert(range, protection, Backing::Anonymous).map_err(errno_of)?;
        Ok(start)
    })
}

/// Reserves a stack of `len_bytes` ending at `top`, with a guard page below it. Returns the
/// stack's lowest address.
pub fn reserve_stack(id: SpaceId, top: u64, len_bytes: u64) -> Result<u64, Errno> {
    let bottom = top.checked_sub(len_bytes).ok_or(Errno::EINVAL)?;
    let guard = bottom.checked_sub(PAGE_SIZE_BYTES).ok_or(Errno::EINVAL)?;
    let stack = user_range(bottom, len_bytes)?;
    let guard_range = user_range(guard, PAGE_SIZE_BYTES)?;
    with_space(id, |space| {
        check_reservation(space, len_bytes)?;
        space.regions.insert(guard_range, Protection::READ, Backing::Guard).map_err(errno_of)?;
        space.regions.insert(stack, Protection::READ_WRITE, Backing::Anonymous).map_err(errno_of)
    })?;
    Ok(bottom)
}

/// Removes mappings in a range; frames go back when no other space maps them.
///
/// The regions go and a first step of pages is unmapped under one lock hold; only if pages
/// are left (a large or much-touched range) is the space claimed for the further steps.
pub(super) fn unmap(id: SpaceId, address: u64, len_bytes: u64) -> Result<u64, Errno> {
    let range = user_range(address, len_bytes)?;
    let left = loop {
        let mut spaces = SPACES.lock();
        let space = spaces.get_mut(&id).ok_or(Errno::ESRCH)?;
        if space.claimed {
            drop(spaces);
            crate::arch::yield_now();
            continue;
        }
        let mut left = Vec::new();
        let mut budget = PAGES_PER_STEP;
        let tables = &mut space.tables;
        let removed = space.regions.remove(range.clone(), |region| {
            if budget == 0 {
                left.push(region.start..region.end);
                return;
            }
            let (next, released) = tables.unmap_range(region.start..region.end, budget);
            budget -= released.min(budget);
            if let Some(next) = next.filter(|&next| next < region.end) {
                left.push(next..region.end);
            }
        });
        removed.map_err(errno_of)?;
        if !left.is_empty() {
            space.claimed = true;
        }
        break left;
    };
    if !left.is_empty() {
        let _claim = Claim { ids: [id, id] };
        for range in left {
            unmap_claimed(id, range);
        }
    }
    Ok(0)
}

/// Changes the protection of a fully reserved range, including its resident pages.
pub(super) fn protect(
    id: SpaceId,
    address: u64,
    len_bytes: u64,
    protection: Protection,
) -> Result<u64, Errno> {
    refuse_write_execute(protection)?;
    let range = user_range(address, len_bytes)?;
    let _claim = Claim::take(id, id)?;
    with_space(id, |space| space.regions.protect(range.clone(), protection).map_err(errno_of))?;
    let mut from = Some(range.start);
    while let Some(start) = from {
        from = with_space(id, |space| {
            // The registry lock is held for the step and the claimed range is ours.
            let next = space.tables.protect_range(start..range.end, protection, PAGES_PER_STEP);
            Ok(next.filter(|&next| next < range.end))
        })?;
        if crate::arch::preempt_point() && from.is_some() {
            // Killed: the space dies with its caller, so the rest of its pages need no change.
            return Err(Errno::EINTR);
        }
    }
    Ok(0)
}

/// Maps the frames behind `from`'s range into `into` (shared memory); returns the address used
/// in `into`. Unbacked source pages are backed first, so both sides see the same bytes.
pub(super) fn share(
    from: SpaceId,
    from_address: u64,
    len_bytes: u64,
    into: SpaceId,
    into_address: u64,
    protection: Protection,
) -> Result<u64, Errno> {
    refuse_write_execute(protection)?;
    let source_range = user_range(from_address, len_bytes)?;
    let _claim = Claim::take(from, into)?;
    // Step one: every check, and the target's region reserved, before any page changes.
    let target_range = {
        let mut spaces = SPACES.lock();
        check_reservation(spaces.get(&into).ok_or(Errno::ESRCH)?, len_bytes)?;
        let source = spaces.get(&from).ok_or(Errno::ESRCH)?;
        if !source.regions.covers(&source_range, Backing::Anonymous) {
            return Err(Errno::EFAULT);
        }
        let refused = source.regions.overlapping(&source_range).any(|region| {
            let allowed = region.protection;
            (protection.read && !allowed.read)
                || (protection.write && !allowed.write)
                || (protection.execute && !allowed.execute)
        });
        if refused {
            return Err(Errno::EACCES);
        }
        let target = spaces.get_mut(&into).ok_or(Errno::ESRCH)?;
        let start = if into_address == 0 {
            target.regions.find_free(len_bytes).map_err(errno_of)?
        } else {
            into_address
        };
        let target_range = user_range(start, len_bytes)?;
        target
            .regions
            .insert(target_range.clone(), protection, Backing::Anonymous)
            .map_err(errno_of)?;
        target_range
    };
    // Then the pages, a step at a time: each source page backed if it was not, and its frame
    // mapped into the target too.
    let offset = target_range.start.wrapping_sub(source_range.start);
    let mut page = source_range.start;
    while page < source_range.end {
        let step_end = source_range.end.min(page + PAGES_PER_STEP * PAGE_SIZE_BYTES);
        let stepped = share_step(from, into, page..step_end, offset, protection);
        page = step_end;
        // A killed caller stops here rather than finishing a share nobody will use.
        let outcome = stepped.and_then(|()| {
            let killed = crate::arch::preempt_point() && page < source_range.end;
            if killed { Err(Errno::EINTR) } else { Ok(()) }
        });
        if let Err(errno) = outcome {
            // Undo: the pages mapped so far drop their share, the region goes away. Removing
            // a whole region never needs a split, so this cannot be refused.
            // The region is whole, so no split is needed and this cannot be refused; its pages
            // go after, in steps.
            let target = target_range.clone();
            let _whole = with_space(into, |space| Ok(space.regions.remove(target, drop)))?;
            unmap_claimed(into, target_range);
            return Err(errno);
        }
    }
    Ok(target_range.start)
}

/// Shares the source pages `pages` of `from` into `into` at `offset` bytes further on.
fn share_step(
    from: SpaceId,
    into: SpaceId,
    pages: core::ops::Range<u64>,
    offset: u64,
    protection: Protection,
) -> Result<(), Errno> {
    let mut spaces = SPACES.lock();
    let source = spaces.get_mut(&from).ok_or(Errno::ESRCH)?;
    let mut frames: [Option<SharedFrame>; PAGES_PER_STEP as usize] = core::array::from_fn(|_| None);
    for (slot, page) in frames.iter_mut().zip(pages.clone().step_by(PAGE_SIZE_BYTES as usize)) {
        let allowed = source.regions.find(page).ok_or(Errno::EFAULT)?.protection;
        *slot = Some(source.tables.share(page, allowed)?);
    }
    let target = spaces.get_mut(&into).ok_or(Errno::ESRCH)?;
    for (frame, page) in frames.into_iter().flatten().zip(pages.step_by(PAGE_SIZE_BYTES as usize)) {
        // The page lies in the region reserved in `target` by the claimed operation; a page
        // the target touched between two steps is overlaid, as if the share came first.
        target.tables.map_shared(page.wrapping_add(offset), frame, protection)?;
    }
    Ok(())
}

/// How a user-half page fault was resolved.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum FaultResolution {
    /// A demand-zero page was mapped; retry the access.
    Resolved,
    /// The address is a guard page (stack overflow).
    Guard,
    /// No region holds the address.
    NoMapping,
    /// The region does not allow the access.
    Forbidden,
    /// No frame was free.
    OutOfMemory,
    /// The registry was locked when the kernel itself faulted on a user address (a kernel bug:
    /// it touched user memory while holding the lock).
    Busy,
}

/// Resolves a fault at user-half `address` of the active space.
/// `from_user`: the fault interrupted ring 3, which holds no kernel lock, so the registry is
/// waited for (another CPU may hold it); a kernel-mode fault only tries it, since the
/// interrupted code may hold it itself.
pub(super) fn resolve_fault(
    address: u64,
    access: Access,
    present: bool,
    from_user: bool,
) -> FaultResolution {
    let id = current();
    if id == SpaceId::KERNEL {
        return FaultResolution::NoMapping;
    }
    let spaces = if from_user { Some(SPACES.lock()) } else { SPACES.try_lock() };
    let Some(mut spaces) = spaces else { return FaultResolution::Busy };
    let Some(space) = spaces.get_mut(&id) else { return FaultResolution::NoMapping };
    let Some(region) = space.regions.find(address).copied() else {
        return FaultResolution::NoMapping;
    };
    if region.backing == Backing::Guard {
        return FaultResolution::Guard;
    }
    let allowed = match access {
        Access::Read => region.protection.read,
        Access::Write => region.protection.write,
        Access::Execute => region.protection.execute,
    };
    if !allowed {
        return FaultResolution::Forbidden;
    }
    if present {
        // A write to a page a `fork` shares is the one a present page may take: it copies.
        let page = address / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
        return match access {
            Access::Write => match space.tables.break_copy_on_write(page, region.protection) {
                Ok(true) => FaultResolution::Resolved,
                Ok(false) => FaultResolution::Forbidden,
                Err(_) => FaultResolution::OutOfMemory,
            },
            _ => FaultResolution::Forbidden,
        };
    }
    let page = address / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
    match space.tables.populate(page, region.protection) {
        Ok(_) => FaultResolution::Resolved,
        Err(_) => FaultResolution::OutOfMemory,
    }
}

/// How the kernel touches a user range on a process's behalf.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum UserAccess {
    /// Read, as the process could (any mapped region).
    Read,
    /// Write, as the process could (writable regions only).
    Write,
    /// Write a program image: the process may not write there itself, the loader may.
    Load,
}

/// A page-bounded piece of a user range: its page, held resident, where in the page it starts,
/// its length, and its offset in the range.
pub(super) struct UserPiece<'a> {
    pub(super) page: ResidentPage<'a>,
    pub(super) offset_in_page: usize,
    pub(super) len_bytes: usize,
    pub(super) offset_in_range: usize,
}

/// Calls `f` for each page-bounded piece of `address..address + len_bytes` in space `id`,
/// under the registry lock (so the frames stay mapped while `f` runs). Unbacked pages are
/// backed first. Any address not reserved, not allowed, or outside user space is `EFAULT`.
pub(super) fn for_each_user_piece(
    id: SpaceId,
    address: u64,
    len_bytes: usize,
    access: UserAccess,
    mut f: impl FnMut(UserPiece<'_>),
) -> Result<(), Errno> {
    if len_bytes == 0 {
        return Ok(());
    }
    let end = address.checked_add(len_bytes as u64).ok_or(Errno::EFAULT)?;
    if address < paging::USER_SPACE.start || end > paging::USER_SPACE.end {
        return Err(Errno::EFAULT);
    }
    let mut spaces = SPACES.lock();
    let space = spaces.get_mut(&id).ok_or(Errno::ESRCH)?;
    let mut cursor = address;
    // Looked up once per region, not per page: a copy's pages are mostly in one.
    let mut region: Option<Region> = None;
    while cursor < end {
        let region = match region {
            Some(known) if cursor < known.end => known,
            _ => {
                let found = *space.regions.find(cursor).ok_or(Errno::EFAULT)?;
                let allowed = found.backing == Backing::Anonymous
                    && found.protection.read
                    && (access != UserAccess::Write || found.protection.write);
                if !allowed {
                    return Err(Errno::EFAULT);
                }
                *region.insert(found)
            }
        };
        let page = cursor / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
        // The kernel writing for the process writes as it would: a shared copy-on-write page
        // is copied first, or the other sharers would see the write.
        if access != UserAccess::Read {
            space.tables.break_copy_on_write(page, region.protection)?;
        }
        let offset_in_page = (cursor - page) as usize;
        let piece = (PAGE_SIZE_BYTES as usize - offset_in_page).min((end - cursor) as usize);
        f(UserPiece {
            page: space.tables.resident(page, region.protection)?,
            offset_in_page,
            len_bytes: piece,
            offset_in_range: (cursor - address) as usize,
        });
        cursor += piece as u64;
    }
    Ok(())
}

/// Checks, without touching memory, that the process may read (or, with `write`, write)
/// all of `address..address + len_bytes`: `EFAULT` otherwise. Lets a call refuse a bad buffer
/// before it has any side effect.
pub fn check_user(id: SpaceId, address: u64, len_bytes: u64, write: bool) -> Result<(), Errno> {
    if len_bytes == 0 {
        return Ok(());
    }
    let end = address.checked_add(len_bytes).ok_or(Errno::EFAULT)?;
    if address < paging::USER_SPACE.start || end > paging::USER_SPACE.end {
        return Err(Errno::EFAULT);
    }
    let spaces = SPACES.lock();
    let space = spaces.get(&id).ok_or(Errno::ESRCH)?;
    let mut cursor = address;
    while cursor < end {
        let region = space.regions.find(cursor).ok_or(Errno::EFAULT)?;
        let allowed = region.protection.read && (!write || region.protection.write);
        if region.backing != Backing::Anonymous || !allowed {
            return Err(Errno::EFAULT);
        }
        cursor = region.end;
    }
    Ok(())
}
