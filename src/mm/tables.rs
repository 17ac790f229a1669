//! The page tables of the user address spaces, behind a safe API: the only code in mm that
//! changes a page table or loads one.
//!
//! Soundness rests on three facts this file keeps, so the rest of mm needs no `unsafe`:
//! - a [`UserTables`] is the only handle to its root (not `Clone`; changing it takes `&mut`),
//!   so whoever holds it — the address-space registry, under its lock — is its only writer;
//! - every address it touches is in the user half (checked here), so the kernel half every
//!   root shares is never changed through one;
//! - every frame it maps is user memory: allocated zeroed here, or a further reference to a
//!   frame another user space maps ([`SharedFrame`]) — never kernel memory.
//!
//! A root is freed when its `UserTables` is dropped, and never while it is active.
//!
//! Every removed or narrowed entry leaves the TLB of every CPU using the table before its
//! frame is released (arch's shootdown, inside `paging`).

use conquer_once::spin::OnceCell;

use super::{
    FRAME_SIZE_BYTES, Frame,
    physical::{allocate_user_frame, frame_mapping_count, release_or_report, share_frame},
};
use crate::{
    arch::paging::{self, MapError, PageMapping},
    events::{Errno, Protection},
};

/// The kernel's own root (the loader's, kept): active whenever no process runs.
static KERNEL_ROOT: OnceCell<Frame> = OnceCell::uninit();

/// Records the active root as the kernel's; called once at boot, before any user space exists.
pub(super) fn init() {
    KERNEL_ROOT.init_once(paging::active_root);
}

/// Makes the kernel's own table active.
pub(super) fn activate_kernel() {
    let root = *KERNEL_ROOT.get().expect("mm::init has run");
    // SAFETY: the kernel's root lives for the kernel's whole life and maps the kernel half.
    unsafe { paging::activate(root) };
}

fn check_user_page(page: u64) -> Result<(), Errno> {
    if paging::USER_SPACE.contains(&page) { Ok(()) } else { Err(Errno::EFAULT) }
}

fn user_part(range: core::ops::Range<u64>) -> core::ops::Range<u64> {
    range.start.max(paging::USER_SPACE.start)..range.end.min(paging::USER_SPACE.end)
}

/// One more reference to a frame a user space maps, on its way into another space's table.
/// Dropped unmapped, it gives the reference back.
#[derive(Debug)]
pub(super) struct SharedFrame(Frame);

impl Drop for SharedFrame {
    fn drop(&mut self) {
        release_or_report(self.0);
    }
}

/// The page table of one user address space.
#[derive(Debug)]
pub(super) struct UserTables {
    root: Frame,
}

impl UserTables {
    /// An empty user half over the shared kernel half; `None` if no frame is free.
    pub(super) fn new() -> Option<Self> {
        // SAFETY: the root is freed only by `drop`, which refuses to free an active table.
        unsafe { paging::new_user_root(&mut allocate_user_frame) }.map(|root| Self { root })
    }

    /// Makes this table active on this CPU.
    pub(super) fn activate(&self) {
        // SAFETY: the root is live and shares the kernel half; `drop` never frees it while
        // it is active.
        unsafe { paging::activate(self.root) };
    }

    /// What the page at `address` maps to, if anything.
    pub(super) fn translate(&self, address: u64) -> Option<PageMapping> {
        check_user_page(address).ok()?;
        // SAFETY: `&self` excludes every writer of this table (they need `&mut`).
        unsafe { paging::translate(self.root, address) }
    }

    /// The frame behind user `page`, backing it with a zeroed frame first if it has none.
    pub(super) fn populate(&mut self, page: u64, protection: Protection) -> Result<Frame, Errno> {
        if let Some(mapping) = self.translate(page) {
            return Ok(mapping.frame);
        }
        check_user_page(page)?;
        let frame = allocate_user_frame().ok_or(Errno::ENOMEM)?;
        // SAFETY: `&mut self` makes this the table's only writer; `page` is in the user half
        // and `frame` a fresh user frame.
        let mapped = unsafe {
            paging::map(self.root, page, frame, protection, true, &mut allocate_user_frame)
        };
        match mapped {
            Ok(()) => Ok(frame),
            Err(_) => {
                release_or_report(frame);
                Err(Errno::ENOMEM)
            }
        }
    }

    /// A further reference to the frame behind `page` (backed first if need be), to map into
    /// another space with [`map_shared`](Self::map_shared).
    pub(super) fn share(
        &mut self,
        page: u64,
        protection: Protection,
    ) -> Result<SharedFrame, Errno> {
        let frame = self.populate(page, protection)?;
        share_frame(frame).map_err(|_| Errno::ENOMEM)?;
        Ok(SharedFrame(frame))
    }

    /// Maps `frame` at user `page`. A page the space had backed on its own in the meantime is
    /// replaced (its frame released), as if the share had come first.
    pub(super) fn map_shared(
        &mut self,
        page: u64,
        frame: SharedFrame,
        protection: Protection,
    ) -> Result<(), Errno> {
        check_user_page(page)?;
        let map = |root| {
            // SAFETY: `&mut self` makes this the table's only writer; `page` is in the user
            // half and `frame` a user frame whose extra reference this mapping takes over.
            unsafe { paging::map(root, page, frame.0, protection, true, &mut allocate_user_frame) }
        };
        let mut mapped = map(self.root);
        if mapped == Err(MapError::AlreadyMapped) {
            // SAFETY: as above; the page's old contents are the space's own and are dropped.
            if let Some(own) = unsafe { paging::unmap(self.root, page) } {
                release_or_report(own);
            }
            mapped = map(self.root);
        }
        match mapped {
            Ok(()) => {
                core::mem::forget(frame);
                Ok(())
            }
            Err(_) => Err(Errno::ENOMEM),
        }
    }

    /// Maps `frame` at user `page` copy-on-write (read-only until a write copies it), taking
    /// over its extra reference: a `fork`'s child's view of its parent's page.
    pub(super) fn map_copy_on_write(
        &mut self,
        page: u64,
        frame: SharedFrame,
        protection: Protection,
    ) -> Result<(), Errno> {
        check_user_page(page)?;
        // SAFETY: `&mut self` makes this the table's only writer; `page` is in the user half
        // (a fresh child's table, where nothing is mapped yet) and `frame` a user frame whose
        // extra reference the mapping takes over; the parent's entry is copy-on-write too.
        let mapped = unsafe {
            paging::map_copy_on_write(
                self.root,
                page,
                frame.0,
                protection,
                &mut allocate_user_frame,
            )
        };
        match mapped {
            Ok(()) => {
                core::mem::forget(frame);
                Ok(())
            }
            Err(_) => Err(Errno::ENOMEM),
        }
    }

    /// Marks up to `max_pages` resident pages of `range` copy-on-write; returns where to go on
    /// from (`None`: done).
    pub(super) fn mark_copy_on_write(
        &mut self,
        range: core::ops::Range<u64>,
        max_pages: u64,
    ) -> Option<u64> {
        // SAFETY: `&mut self` makes this the table's only writer; the range is clipped to the
        // user half; each changed entry is flushed wherever the table is in use.
        unsafe { paging::mark_copy_on_write(self.root, user_part(range), max_pages) }
    }

    /// A write to copy-on-write `page`: the last mapping of its frame takes it back writable;
    /// a frame still shared is copied into a fresh one that replaces it here (the other
    /// sharers keep theirs). `Ok(false)` if the page is not copy-on-write (a write there is a
    /// real protection fault).
    pub(super) fn break_copy_on_write(
        &mut self,
        page: u64,
        protection: Protection,
    ) -> Result<bool, Errno> {
        let Some(mapping) = self.translate(page) else { return Ok(false) };
        if !mapping.copy_on_write {
            return Ok(false);
        }
        let replacement = if frame_mapping_count(mapping.frame) <= 1 {
            mapping.frame
        } else {
            let fresh = allocate_user_frame().ok_or(Errno::ENOMEM)?;
            // SAFETY: both frames are mapped in the physical-memory window; `fresh` is ours
            // alone and the old frame is held by this table's entry while it is read.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    paging::phys_to_virt(mapping.frame.start()),
                    paging::phys_to_virt(fresh.start()),
                    FRAME_SIZE_BYTES as usize,
                );
            }
            fresh
        };
        // SAFETY: `&mut self` makes this the table's only writer; the entry is replaced by one
        // for `replacement` (flushed from this CPU's TLB by `unmap`; a process's table is
        // active only on the CPU running it, which is this one, taking the fault or copying
        // on its behalf).
        unsafe {
            let old = paging::unmap(self.root, page);
            let mapped = paging::map(
                self.root,
                page,
                replacement,
                protection,
                true,
                &mut allocate_user_frame,
            );
            if mapped.is_err() {
                if replacement != mapping.frame {
                    release_or_report(replacement);
                }
                return Err(Errno::ENOMEM);
            }
            // The old frame loses this mapping (the last one took it back: nothing to drop).
            if let Some(old) = old.filter(|&old| old != replacement) {
                release_or_report(old);
            }
        }
        Ok(true)
    }

    /// Unmaps up to `max_pages` pages of `range` (page aligned), releasing their frames;
    /// returns where to go on from (`None`: done) and how many frames were released.
    pub(super) fn unmap_range(
        &mut self,
        range: core::ops::Range<u64>,
        max_pages: u64,
    ) -> (Option<u64>, u64) {
        let mut released = 0;
        // SAFETY: `&mut self` makes this the table's only writer; the range is clipped to the
        // user half; each frame is released after its entry is gone and flushed.
        let next = unsafe {
            paging::unmap_range(self.root, user_part(range), max_pages, &mut |_, frame| {
                released += 1;
                release_or_report(frame);
            })
        };
        (next, released)
    }

    /// Sets the protection of up to `max_pages` resident pages of `range`; returns where to go
    /// on from (`None`: done).
    pub(super) fn protect_range(
        &mut self,
        range: core::ops::Range<u64>,
        protection: Protection,
        max_pages: u64,
    ) -> Option<u64> {
        // SAFETY: `&mut self` makes this the table's only writer; the range is clipped to the
        // user half.
        unsafe { paging::protect_range(self.root, user_part(range), protection, true, max_pages) }
    }
}

/// A resident page of a user space, held for a copy: it borrows the space's table mutably, so
/// nothing can unmap the page (or free the table) while it lives, and its frame stays the
/// page's. Reached through the physical-memory window, never through the user address.
pub(super) struct ResidentPage<'a> {
    _table: &'a mut UserTables,
    frame: Frame,
}

impl UserTables {
    /// The page at user `page`, backed first if it has no frame.
    pub(super) fn resident(
        &mut self,
        page: u64,
        protection: Protection,
    ) -> Result<ResidentPage<'_>, Errno> {
        let frame = self.populate(page, protection)?;
        Ok(ResidentPage { _table: self, frame })
    }
}

impl ResidentPage<'_> {
    fn window(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(offset + len <= FRAME_SIZE_BYTES as usize, "a copy stays inside its page");
        // SAFETY: the window maps all RAM and `offset` is inside the frame (checked above).
        unsafe { paging::phys_to_virt(self.frame.start()).add(offset) }
    }

    /// Copies the page's bytes from `offset` into `out`.
    pub(super) fn read(&self, offset: usize, out: &mut [u8]) {
        let source = self.window(offset, out.len());
        // SAFETY: the frame stays mapped by this space while `self` borrows its table, and
        // kernel buffers never overlap user frames.
        unsafe { volatile_copy(source, out.as_mut_ptr(), out.len()) };
    }

    /// Copies `bytes` into the page at `offset`.
    pub(super) fn write(&mut self, offset: usize, bytes: &[u8]) {
        let target = self.window(offset, bytes.len());
        // SAFETY: as in `read`; the caller checked the space may have the page written.
        unsafe { volatile_copy(bytes.as_ptr(), target, bytes.len()) };
    }
}

/// Copies `len` bytes of memory a process on another CPU may be writing meanwhile (its own
/// page, or one it shares): the CPU's string copy, whose racing with such a write is at worst
/// a torn view — all user memory can promise — not undefined behaviour. (A word-at-a-time
/// volatile loop cost five instructions per eight bytes: most of a pipe's throughput.)
///
/// # Safety
/// `source` and `target` are valid for `len` bytes and do not overlap.
unsafe fn volatile_copy(source: *const u8, target: *mut u8, len: usize) {
    // SAFETY: forwarded from this function's contract.
    unsafe { crate::arch::copy::copy_racy(source, target, len) };
}

impl Drop for UserTables {
    fn drop(&mut self) {
        if paging::is_active_anywhere(self.root) {
            // A kernel bug (the registry switches away before dropping a space); leaking the
            // table is the only safe answer.
            log::error!("an active page table was dropped; its frames are leaked");
            return;
        }
        // SAFETY: the root came from `new_user_root`, is not active, and this is its last use.
        // Leaf frames still mapped are not freed by it: the owner unmaps them first.
        unsafe { paging::release_user_tables(self.root, &mut |frame| release_or_report(frame)) };
    }
}
