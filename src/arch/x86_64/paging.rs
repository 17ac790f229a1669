//! The x86_64 page-table format: mapping, unmapping and protecting 4 KiB pages in a four-level
//! table, through the loader's mapping of all physical memory. mm decides *what* is mapped; this
//! module only knows *how* (SDM Vol. 3A §4.5, 4-level paging).
//!
//! Callers own the synchronisation: every function that changes a table takes a root that the
//! caller has locked, which is why they are `unsafe`.

use core::{
    ops::{ControlFlow, Range},
    sync::atomic::{AtomicU64, Ordering},
};

use ::x86_64::{
    PhysAddr, VirtAddr,
    instructions::tlb,
    registers::control::{Cr2, Cr3},
    structures::paging::{
        FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags,
        PhysFrame, Size4KiB, Translate,
        mapper::{MapToError, TranslateResult, UnmapError},
        page_table::PageTableEntry,
    },
};

use crate::{events::Protection, vocab::Frame};

/// Where user programs live: the canonical lower half without its first page, so a null
/// pointer never maps, and without its last page, so the instruction after a `syscall` is
/// always canonical and `sysretq` cannot fault in ring 0 (SDM Vol. 1 §3.3.7.1; Vol. 2B SYSRET).
pub const USER_SPACE: Range<u64> = 0x1000..0x0000_7fff_ffff_f000;

/// Start of the kernel half; every address space shares its top-level entries.
const KERNEL_HALF_START: u64 = 0xffff_8000_0000_0000;
/// Bytes covered by one top-level (P4) entry.
const P4_ENTRY_SPAN_BYTES: u64 = 512 * 1024 * 1024 * 1024;
/// First P4 index of the kernel half.
const FIRST_KERNEL_P4_INDEX: usize = 256;

/// Herald's own kernel regions sit in P4 slots the loader is told not to use (see
/// [`LOADER_DYNAMIC_RANGE`]); their next-level tables are created at boot, so the kernel-half
/// entries every address space copies never change afterwards.
pub const KERNEL_HEAP_REGION: Range<u64> =
    0xffff_c000_0000_0000..0xffff_c000_0000_0000 + P4_ENTRY_SPAN_BYTES;
/// Region for kernel stacks, each with an unmapped guard page below it.
pub const KERNEL_STACK_REGION: Range<u64> =
    KERNEL_HEAP_REGION.end..KERNEL_HEAP_REGION.end + P4_ENTRY_SPAN_BYTES;

/// Where the loader may place the kernel, its stack, boot info, the framebuffer and the
/// physical-memory window: the kernel half below Herald's own regions.
pub(super) const LOADER_DYNAMIC_RANGE: Range<u64> = KERNEL_HALF_START..0xffff_bfff_ffff_f000;

static PHYSICAL_MEMORY_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Records where the loader mapped physical memory. Called once by `start`.
pub(super) fn init(physical_memory_offset: u64) {
    PHYSICAL_MEMORY_OFFSET.store(physical_memory_offset, Ordering::Relaxed);
}

/// Returns the kernel-virtual address of physical address `physical`.
pub fn phys_to_virt(physical: u64) -> *mut u8 {
    (PHYSICAL_MEMORY_OFFSET.load(Ordering::Relaxed) + physical) as *mut u8
}

/// Returns the root of the page table the CPU is using.
pub fn active_root() -> Frame {
    frame_of(Cr3::read().0)
}

/// Returns the address the last page fault reported (CR2).
pub fn last_fault_address() -> u64 {
    Cr2::read_raw()
}

/// Whether `address` lies in the kernel half shared by all address spaces.
pub const fn is_kernel_address(address: u64) -> bool {
    address >= KERNEL_HALF_START
}

/// Makes `root` the active page table.
///
/// # Safety
/// `root` must be a complete table made by [`new_user_root`] (or the kernel's), whose kernel
/// half maps the running code and stack, and must stay alive while active. For a user table the
/// caller holds the lock its changes hold (mm's registry lock): no change is under way, so the
/// CPUs a changer finds using the table at the start of a change are all it must flush.
pub unsafe fn activate(root: Frame) {
    // Published before the load: see `shootdown.rs` for why that order.
    super::shootdown::record_active(root.start());
    let (_, flags) = Cr3::read();
    // SAFETY: per the contract, the kernel half of `root` equals the current one, so the next
    // instruction and the stack stay mapped.
    unsafe { Cr3::write(phys_frame(root), flags) };
}

/// Why a page could not be mapped.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum MapError {
    /// The page is already mapped.
    AlreadyMapped,
    /// No frame was left for an intermediate table.
    OutOfFrames,
    /// A huge page covers the address.
    InsideHugePage,
}

/// What a mapped 4 KiB page points to and allows.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct PageMapping {
    /// The frame behind the page.
    pub frame: Frame,
    /// Its protection.
    pub protection: Protection,
    /// Whether ring 3 may access it.
    pub user: bool,
    /// Shared copy-on-write: read-only here whatever the region allows, until a write copies
    /// it (or, mapped nowhere else any more, takes it back).
    pub copy_on_write: bool,
}

/// The page-table entry bit Herald uses to mark a copy-on-write page: bit 9, one of the bits
/// the MMU ignores and leaves to software (SDM Vol. 3A §4.5, Table 4-20).
const COPY_ON_WRITE: Flags = Flags::BIT_9;

fn frame_of(frame: PhysFrame) -> Frame {
    Frame::from_start(frame.start_address().as_u64()).expect("PhysFrame is aligned")
}

fn phys_frame(frame: Frame) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(frame.start()))
}

fn page(address: u64) -> Page {
    Page::containing_address(VirtAddr::new(address))
}

fn leaf_flags(protection: Protection, user: bool) -> Flags {
    let mut flags = Flags::PRESENT;
    if protection.write {
        flags |= Flags::WRITABLE;
    }
    if !protection.execute {
        flags |= Flags::NO_EXECUTE;
    }
    // A no-access page keeps its frame (its bytes return with a later protection) but not
    // its user bit: every access from ring 3 faults as a protection violation.
    if user && protection.read {
        flags |= Flags::USER_ACCESSIBLE;
    }
    flags
}

/// Intermediate tables allow everything; the leaf entry decides (SDM Vol. 3A §4.6: rights are
/// the intersection over all levels).
fn table_flags(user: bool) -> Flags {
    if user {
        Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE
    } else {
        Flags::PRESENT | Flags::WRITABLE
    }
}

/// Adapts mm's frame source to the `x86_64` crate's allocator traits.
struct FrameSource<'a>(&'a mut dyn FnMut() -> Option<Frame>);

// SAFETY: frames come from mm's allocator, which hands out each free frame once.
unsafe impl FrameAllocator<Size4KiB> for FrameSource<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        (self.0)().map(phys_frame)
    }
}

/// # Safety
/// `root` must be a valid top-level table that nothing else changes while the returned mapper
/// lives.
unsafe fn mapper(root: Frame) -> OffsetPageTable<'static> {
    let offset = PHYSICAL_MEMORY_OFFSET.load(Ordering::Relaxed);
    // SAFETY: per the contract `root` is a live page table, reachable through the loader's
    // physical-memory window at `offset`, and not aliased for the mapper's lifetime.
    unsafe {
        let table = &mut *phys_to_virt(root.start()).cast::<PageTable>();
        OffsetPageTable::new(table, VirtAddr::new(offset))
    }
}

/// A removed or narrowed entry of `root` must leave the TLB of every CPU using `root` (this
/// one by `invlpg`, others by a shootdown) before its frame is reused; a CPU loading `root`
/// later starts with no user entries cached (`activate` reloads CR3).
fn flush_if_active(root: Frame, address: u64) {
    let kernel_half = is_kernel_address(address);
    if root == active_root() || kernel_half {
        tlb::flush(VirtAddr::new(address));
    }
    if kernel_half || super::shootdown::is_active_elsewhere(root.start()) {
        super::shootdown::after_change(root.start(), kernel_half);
    }
}

/// Whether `root` is loaded on any CPU (this one included).
pub fn is_active_anywhere(root: Frame) -> bool {
    root == active_root() || super::shootdown::is_active_elsewhere(root.start())
}

/// Maps the 4 KiB page at `address` to `frame`.
///
/// # Safety
/// The caller holds the lock of `root` and owns `address`'s range in it; mapping `frame` there
/// must not expose memory the kernel relies on to code that may not touch it.
pub unsafe fn map(
    root: Frame,
    address: u64,
    frame: Frame,
    protection: Protection,
    user: bool,
    allocate_table: &mut dyn FnMut() -> Option<Frame>,
) -> Result<(), MapError> {
    // SAFETY: forwarded from this function's contract.
    let mut table = unsafe { mapper(root) };
    let mut source = FrameSource(allocate_table);
    // SAFETY: forwarded from this function's contract: the range is the caller's to map.
    let result = unsafe {
        table.map_to_with_table_flags(
            page(address),
            phys_frame(frame),
            leaf_flags(protection, user),
            table_flags(user),
            &mut source,
        )
    };
    match result {
        Ok(flush) => {
            // A newly present entry cannot be cached as not-present on x86 (SDM Vol. 3A
            // §4.10.2.3), so no invalidation is needed; dropping the token is deliberate.
            flush.ignore();
            Ok(())
        }
        Err(MapToError::PageAlreadyMapped(_)) => Err(MapError::AlreadyMapped),
        Err(MapToError::FrameAllocationFailed) => Err(MapError::OutOfFrames),
        Err(MapToError::ParentEntryHugePage) => Err(MapError::InsideHugePage),
    }
}

/// Unmaps the page at `address`, returning the frame it pointed to (`None` if none).
///
/// # Safety
/// The caller holds the lock of `root` and nothing still uses the page's contents through it.
pub unsafe fn unmap(root: Frame, address: u64) -> Option<Frame> {
    // SAFETY: forwarded from this function's contract.
    let mut table = unsafe { mapper(root) };
    match table.unmap(page(address)) {
        Ok((frame, flush)) => {
            flush.ignore();
            flush_if_active(root, address);
            Some(frame_of(frame))
        }
        Err(UnmapError::PageNotMapped | UnmapError::ParentEntryHugePage) => None,
        Err(UnmapError::InvalidFrameAddress(_)) => None,
    }
}

/// Looks up the 4 KiB page at `address` (`None` if unmapped or part of a huge page).
///
/// The walk reads each level's entry as a word (SDM Vol. 3A §4.5: bits 39–47, 30–38, 21–29
/// and 12–20 of the address index the four levels): every user copy walks once per page, and
/// the `x86_64` crate's general mapper took some 80 instructions a walk, most of a pipe's
/// per-page cost beside the copy itself.
///
/// # Safety
/// The caller holds the lock of `root` (the walk reads tables a writer could be freeing).
pub unsafe fn translate(root: Frame, address: u64) -> Option<PageMapping> {
    let (present, huge) = (Flags::PRESENT.bits(), Flags::HUGE_PAGE.bits());
    let mut table = root.start();
    let mut shift = 39;
    let entry = loop {
        let index = ((address >> shift) & 0x1ff) as usize;
        // Volatile: the MMU may set accessed and dirty bits in the table meanwhile.
        let slot = phys_to_virt(table).cast::<u64>().wrapping_add(index);
        // SAFETY: `table` is a live table of `root` (the root, then what a present non-leaf
        // entry points at) in the physical-memory window; the caller's lock keeps it alive.
        let entry = unsafe { core::ptr::read_volatile(slot) };
        if entry & present == 0 || (shift != 12 && entry & huge != 0) {
            return None;
        }
        if shift == 12 {
            break entry;
        }
        table = entry & ENTRY_ADDRESS_MASK;
        shift -= 9;
    };
    let flags = Flags::from_bits_truncate(entry);
    Some(PageMapping {
        frame: Frame::from_start(entry & ENTRY_ADDRESS_MASK)?,
        protection: Protection {
            // A no-access user page is present for the kernel only (`leaf_flags`).
            read: true,
            write: flags.contains(Flags::WRITABLE),
            execute: !flags.contains(Flags::NO_EXECUTE),
        },
        user: flags.contains(Flags::USER_ACCESSIBLE),
        copy_on_write: flags.contains(COPY_ON_WRITE),
    })
}

/// Whether `address` is mapped at all, by a page of any size, in the active table.
pub fn is_mapped(address: u64) -> bool {
    // SAFETY: the active table is live; this CPU's walk can race only with a change another
    // CPU makes to the kernel half, which only ever adds mappings (stacks are never unmapped)
    // and is not used for the addresses asked about here (device registers).
    let table = unsafe { mapper(active_root()) };
    matches!(table.translate(VirtAddr::new(address)), TranslateResult::Mapped { .. })
}

/// Makes a new top-level table whose kernel half is the active table's and whose user half is
/// empty. `None` if no frame is free.
///
/// # Safety
/// The caller must later free it with [`release_user_tables`] and never while it is active.
pub unsafe fn new_user_root(allocate: &mut dyn FnMut() -> Option<Frame>) -> Option<Frame> {
    let root = allocate()?;
    let kernel = active_root();
    // SAFETY: `root` is a fresh frame nobody else references; `kernel` is the live table. Both
    // are reached through the physical-memory window.
    unsafe {
        let new_table = &mut *phys_to_virt(root.start()).cast::<PageTable>();
        let kernel_table = &*phys_to_virt(kernel.start()).cast::<PageTable>();
        new_table.zero();
        for index in FIRST_KERNEL_P4_INDEX..512 {
            new_table[index] = kernel_table[index].clone();
        }
    }
    Some(root)
}

/// Builds a top-level table for a processor being started, in the frames at physical `root`,
/// `directory_pointer` and `directory` (below 4 GiB: the real-mode code loads CR3 with 32
/// bits): the active table's kernel half, plus the first 2 MiB mapped to themselves with one
/// large page (where the startup code runs until it jumps to the kernel).
///
/// # Safety
/// The three frames belong to the caller, are mapped by the window, and nothing else uses them.
pub unsafe fn build_start_root(root: u64, directory_pointer: u64, directory: u64) {
    let flags = Flags::PRESENT | Flags::WRITABLE;
    // SAFETY: per the contract the frames are the caller's and reachable through the window;
    // the active table is live and only read.
    unsafe {
        let [top, middle, bottom] = [root, directory_pointer, directory]
            .map(|frame| &mut *phys_to_virt(frame).cast::<PageTable>());
        for table in [&mut *top, &mut *middle, &mut *bottom] {
            table.zero();
        }
        bottom[0].set_addr(PhysAddr::new(0), flags | Flags::HUGE_PAGE);
        middle[0].set_addr(PhysAddr::new(directory), flags);
        top[0].set_addr(PhysAddr::new(directory_pointer), flags);
        let kernel = &*phys_to_virt(active_root().start()).cast::<PageTable>();
        for index in FIRST_KERNEL_P4_INDEX..512 {
            top[index] = kernel[index].clone();
        }
    }
}

/// Frees every user-half intermediate table of `root`, then `root` itself. Leaf frames must
/// already have been unmapped by the caller, so no table below the top maps anything: each is
/// freed without looking inside the last level (a walk that checked every entry of every
/// table for emptiness cost most of a `fork` + `exit`).
///
/// # Safety
/// `root` came from [`new_user_root`], is not active, and is never used again.
pub unsafe fn release_user_tables(root: Frame, free: &mut dyn FnMut(Frame)) {
    // SAFETY: per the contract `root` is this space's top table, reached through the window;
    // user-half tables below it belong to it alone (only kernel-half entries are shared).
    let top = unsafe { &*phys_to_virt(root.start()).cast::<[u64; 512]>() };
    for &entry in &top[..FIRST_KERNEL_P4_INDEX] {
        // SAFETY: a user-half entry of this root, whose tables are its own (see above).
        unsafe { release_table(entry, 3, free) };
    }
    free(root);
}

/// The bits of a page-table entry that hold the next table's physical address (SDM Vol. 3A
/// §4.5, Table 4-15: bits 12 to 51).
const ENTRY_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Frees the table the raw `entry` points at — of paging level `level` (3: a
/// page-directory-pointer table, 1: a page table, whose entries are leaves) — and every table
/// below it. Entries are read as plain words, a test each: most of a table is empty, and this
/// loop runs for every table of every process that ends. Never from an interrupt: a space is
/// destroyed by a call (its exit, an exec), its tables already unreachable from any CPU's
/// CR3, so no other CPU walks them meanwhile.
///
/// # Safety
/// The tables under `entry` belong to one user root alone, map no leaf any more, and are
/// never used again.
unsafe fn release_table(entry: u64, level: u32, free: &mut dyn FnMut(Frame)) {
    let (present, huge) = (Flags::PRESENT.bits(), Flags::HUGE_PAGE.bits());
    if entry & present == 0 || entry & huge != 0 {
        return;
    }
    let address = PhysAddr::new(entry & ENTRY_ADDRESS_MASK);
    if level > 1 {
        // SAFETY: a present non-leaf entry of a table this root owns points at another.
        let table = unsafe { &*phys_to_virt(address.as_u64()).cast::<[u64; 512]>() };
        for &child in table.iter().filter(|&&child| child & present != 0) {
            // SAFETY: forwarded from this function's contract.
            unsafe { release_table(child, level - 1, free) };
        }
    }
    free(frame_of(PhysFrame::containing_address(address)));
}

/// Creates the next-level table for the kernel-half region at `address`, so that every address
/// space created afterwards shares it.
///
/// # Safety
/// Called at boot, before any user root exists, with the kernel table not otherwise in use.
pub unsafe fn prepare_kernel_region(
    address: u64,
    allocate: &mut dyn FnMut() -> Option<Frame>,
) -> Result<(), MapError> {
    let root = active_root();
    // SAFETY: forwarded from this function's contract.
    unsafe {
        let table = &mut *phys_to_virt(root.start()).cast::<PageTable>();
        let entry = &mut table[page(address).p4_index()];
        if entry.is_unused() {
            let frame = allocate().ok_or(MapError::OutOfFrames)?;
            (*phys_to_virt(frame.start()).cast::<PageTable>()).zero();
            entry.set_frame(phys_frame(frame), table_flags(false));
        }
    }
    Ok(())
}

/// Removes what the loader left in the lower half of the kernel's table (the identity-mapped
/// trampoline it used to jump to the kernel), so user space starts empty. The tables' frames
/// stay marked as loader memory and are not reused.
///
/// # Safety
/// Nothing may run from or refer to lower-half addresses of the kernel table.
pub unsafe fn clear_loader_lower_half() {
    let root = active_root();
    // SAFETY: forwarded from this function's contract; the reload flushes stale translations.
    unsafe {
        let table = &mut *phys_to_virt(root.start()).cast::<PageTable>();
        for index in 0..FIRST_KERNEL_P4_INDEX {
            table[index].set_unused();
        }
    }
    tlb::flush_all();
}

/// What a walk of the active table found that breaks the kernel's memory rules.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct PagingAudit {
    /// Bytes mapped both writable and executable.
    pub writable_executable_bytes: u64,
    /// First such address, if any.
    pub first_writable_executable: Option<u64>,
    /// Bytes mapped in the user half (the kernel's own table should have none).
    pub user_half_bytes: u64,
    /// Bytes mapped executable in the kernel half.
    pub kernel_executable_bytes: u64,
}

/// Walks every present entry of the active table and reports W^X violations and user-half
/// mappings.
pub fn audit_active() -> PagingAudit {
    let mut audit = PagingAudit::default();
    // SAFETY: read-only walk of the live table through the physical-memory window.
    let top = unsafe { &*phys_to_virt(active_root().start()).cast::<PageTable>() };
    walk(top, 4, 0, Flags::WRITABLE, &mut audit);
    audit
}

/// Sign-extends a 48-bit address (SDM Vol. 1 §3.3.7.1).
const fn canonical(address: u64) -> u64 {
    (((address << 16) as i64) >> 16) as u64
}

fn walk(table: &PageTable, level: u32, base: u64, inherited: Flags, audit: &mut PagingAudit) {
    let span_bytes = 4096u64 << (9 * (level - 1));
    for (index, entry) in table.iter().enumerate() {
        if !entry.flags().contains(Flags::PRESENT) {
            continue;
        }
        let address = canonical(base + index as u64 * span_bytes);
        let flags = entry.flags();
        // Write is allowed only if every level allows it; execute unless any level forbids it.
        let writable = inherited.contains(Flags::WRITABLE) && flags.contains(Flags::WRITABLE);
        let no_execute = inherited.contains(Flags::NO_EXECUTE) || flags.contains(Flags::NO_EXECUTE);
        let mut effective = Flags::empty();
        effective.set(Flags::WRITABLE, writable);
        effective.set(Flags::NO_EXECUTE, no_execute);
        if level == 1 || flags.contains(Flags::HUGE_PAGE) {
            if writable && !no_execute {
                audit.writable_executable_bytes += span_bytes;
                audit.first_writable_executable.get_or_insert(address);
            }
            if !is_kernel_address(address) {
                audit.user_half_bytes += span_bytes;
            } else if !no_execute {
                audit.kernel_executable_bytes += span_bytes;
            }
            continue;
        }
        // SAFETY: a present non-leaf entry points at a page table, reachable through the
        // physical-memory window; the walk only reads it.
        let next = unsafe { &*phys_to_virt(entry.addr().as_u64()).cast::<PageTable>() };
        walk(next, level - 1, address, effective, audit);
    }
}

/// Unmaps the 4 KiB pages of `root` in `range` (page aligned, user half), handing each frame
/// to `release`, and stops after `max_pages` of them: returns `Some(address)` to continue
/// from, or `None` once the range is done. Walks only present tables, so a sparse range costs
/// what is mapped, not its size. Intermediate tables stay; [`release_user_tables`] frees them.
///
/// # Safety
/// The caller holds the lock of `root` and owns `range` in it.
pub unsafe fn unmap_range(
    root: Frame,
    range: Range<u64>,
    max_pages: u64,
    release: &mut dyn FnMut(u64, Frame),
) -> Option<u64> {
    let mut unmap = |entry: &mut PageTableEntry| {
        let frame = frame_of(PhysFrame::containing_address(entry.addr()));
        entry.set_unused();
        Some(frame)
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { change_leaves(root, range, max_pages, &mut unmap, release) }
}

/// Sets the protection of the mapped 4 KiB pages of `root` in `range` (user half), stopping
/// after `max_pages` of them as [`unmap_range`] does.
///
/// # Safety
/// The caller holds the lock of `root` and owns `range` in it.
pub unsafe fn protect_range(
    root: Frame,
    range: Range<u64>,
    protection: Protection,
    user: bool,
    max_pages: u64,
) -> Option<u64> {
    let mut protect = |entry: &mut PageTableEntry| {
        // A copy-on-write page stays read-only and marked, whatever its new protection: its
        // frame is still shared, and the first write must copy it.
        let mut flags = leaf_flags(protection, user);
        if entry.flags().contains(COPY_ON_WRITE) {
            flags.remove(Flags::WRITABLE);
            flags.insert(COPY_ON_WRITE);
        }
        entry.set_flags(flags);
        None
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { change_leaves(root, range, max_pages, &mut protect, &mut |_, _| {}) }
}

/// Marks up to `max_pages` present pages of `range` copy-on-write (read-only and marked: their
/// frames are about to be shared with a `fork`'s child); returns where to go on from.
///
/// # Safety
/// The caller holds the lock of `root` and owns `range` in it.
pub unsafe fn mark_copy_on_write(root: Frame, range: Range<u64>, max_pages: u64) -> Option<u64> {
    let mut mark = |entry: &mut PageTableEntry| {
        let mut flags = entry.flags();
        flags.remove(Flags::WRITABLE);
        flags.insert(COPY_ON_WRITE);
        entry.set_flags(flags);
        None
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { change_leaves(root, range, max_pages, &mut mark, &mut |_, _| {}) }
}

/// Maps `frame` at `address` copy-on-write: read-only and marked, whatever `protection`
/// allows (reading, executing and the user bit follow it).
///
/// # Safety
/// As for [`map`]; `frame` is shared with another mapping that is copy-on-write too.
pub unsafe fn map_copy_on_write(
    root: Frame,
    address: u64,
    frame: Frame,
    protection: Protection,
    allocate_table: &mut dyn FnMut() -> Option<Frame>,
) -> Result<(), MapError> {
    let read_only = Protection { write: false, ..protection };
    // SAFETY: forwarded from this function's contract.
    unsafe { map(root, address, frame, read_only, true, allocate_table)? };
    let mut mark = |entry: &mut PageTableEntry| {
        let flags = entry.flags() | COPY_ON_WRITE;
        entry.set_flags(flags);
        None
    };
    // SAFETY: as above; the entry was just made, for this page only. (The step budget counts
    // the tables walked down to it, four levels: generous, the range is one page.)
    unsafe { change_leaves(root, address..address + 4096, 8, &mut mark, &mut |_, _| {}) };
    Ok(())
}

/// Most pages [`change_leaves`] changes before the other CPUs flush and the frames it took are
/// released: a step's worth (mm asks for 64 at a time), kept on the stack.
const CHANGE_BATCH_PAGES: usize = 64;

/// The walk behind [`unmap_range`] and [`protect_range`]: applies `change` to at most
/// `max_pages` (and [`CHANGE_BATCH_PAGES`]) present leaves of `range`, flushes each changed
/// page from this CPU's TLB if `root` is active, has every other CPU using `root` flush too,
/// and only then hands the frames `change` gave up to `release`, so no frame is reused while a
/// stale entry on any CPU could still reach it.
///
/// # Safety
/// The caller holds the lock of `root` and owns `range` in it.
unsafe fn change_leaves(
    root: Frame,
    range: Range<u64>,
    max_pages: u64,
    change: &mut dyn FnMut(&mut PageTableEntry) -> Option<Frame>,
    release: &mut dyn FnMut(u64, Frame),
) -> Option<u64> {
    let active = root == active_root();
    // SAFETY: forwarded from this function's contract.
    let top = unsafe { &mut *phys_to_virt(root.start()).cast::<PageTable>() };
    let mut tables = max_pages;
    // Which other CPUs use the table cannot grow while the caller holds its lock (`activate`'s
    // contract): looked at once. Used nowhere else (the common case), a frame is released as
    // soon as its entry is gone and flushed here.
    if !super::shootdown::is_active_elsewhere(root.start()) {
        let mut budget = max_pages;
        return visit_leaves(top, 4, 0, &range, &mut tables, &mut |address, entry| {
            if budget == 0 {
                return ControlFlow::Break(());
            }
            budget -= 1;
            let released = change(entry);
            if active {
                tlb::flush(VirtAddr::new(address));
            }
            if let Some(frame) = released {
                release(address, frame);
            }
            ControlFlow::Continue(())
        });
    }
    let mut budget = max_pages.min(CHANGE_BATCH_PAGES as u64);
    let mut released = [None; CHANGE_BATCH_PAGES];
    let mut changed = 0;
    let next = visit_leaves(top, 4, 0, &range, &mut tables, &mut |address, entry| {
        if budget == 0 {
            return ControlFlow::Break(());
        }
        budget -= 1;
        released[changed] = change(entry).map(|frame| (address, frame));
        changed += 1;
        if active {
            tlb::flush(VirtAddr::new(address));
        }
        ControlFlow::Continue(())
    });
    if changed > 0 {
        super::shootdown::after_change(root.start(), false);
    }
    for (address, frame) in released.into_iter().flatten() {
        release(address, frame);
    }
    next
}

/// Calls `visit` for each present 4 KiB leaf entry of `table` whose page lies in `range`, until
/// it answers `Break` or `tables_left` tables have been entered: then returns the address of
/// the page or table where it stopped, for a later call to resume at. Only the entries
/// overlapping `range` are looked at, so a small range costs a few entries per level, not the
/// whole table; counting tables bounds a step even over many empty ones. Huge pages are
/// skipped: the user half never has any.
fn visit_leaves(
    table: &mut PageTable,
    level: u32,
    base: u64,
    range: &Range<u64>,
    tables_left: &mut u64,
    visit: &mut dyn FnMut(u64, &mut PageTableEntry) -> ControlFlow<()>,
) -> Option<u64> {
    let span_bytes = 4096u64 << (9 * (level - 1));
    let first = (range.start.saturating_sub(base) / span_bytes) as usize;
    let last = (range.end.saturating_sub(base).div_ceil(span_bytes) as usize).min(512);
    for index in first..last {
        let start = base + index as u64 * span_bytes;
        if is_kernel_address(canonical(start)) {
            break;
        }
        let entry = &mut table[index];
        let flags = entry.flags();
        if !flags.contains(Flags::PRESENT) || flags.contains(Flags::HUGE_PAGE) {
            continue;
        }
        if level == 1 {
            if visit(start, entry).is_break() {
                return Some(start);
            }
        } else {
            if *tables_left == 0 {
                return Some(start.max(range.start));
            }
            *tables_left -= 1;
            // SAFETY: a present non-leaf user-half entry points at a table owned by this root,
            // which the caller has locked.
            let next = unsafe { &mut *phys_to_virt(entry.addr().as_u64()).cast::<PageTable>() };
            if let Some(stopped) = visit_leaves(next, level - 1, start, range, tables_left, visit) {
                return Some(stopped);
            }
        }
    }
    None
}
