//! Copies between the kernel and a process's memory. The kernel never dereferences a user
//! pointer: `space.rs` finds (and backs) the frame behind each page of the range, checking the
//! process's rights, and the bytes move through the physical-memory window — so a bad pointer
//! is `EFAULT`, never a kernel fault.

use super::space::{UserAccess, UserPiece, for_each_user_piece};
use crate::{
    arch::paging,
    events::{Errno, SpaceId},
};

/// The kernel address of `piece`'s bytes.
fn window(piece: UserPiece) -> *mut u8 {
    // SAFETY: the window maps all RAM and the piece lies inside its frame.
    unsafe { paging::phys_to_virt(piece.frame.start()).add(piece.offset_in_frame) }
}

/// Copies `buffer.len()` bytes from the process's `address` into `buffer`.
pub fn copy_from_user(id: SpaceId, address: u64, buffer: &mut [u8]) -> Result<(), Errno> {
    for_each_user_piece(id, address, buffer.len(), UserAccess::Read, |piece| {
        let target = &mut buffer[piece.offset_in_range..][..piece.len_bytes];
        // SAFETY: the piece's frame is mapped by the process and stays so while the registry
        // lock is held (for the whole callback); kernel buffers and user frames never overlap.
        unsafe { core::ptr::copy_nonoverlapping(window(piece), target.as_mut_ptr(), target.len()) };
    })
}

/// Copies `bytes` to the process's `address`, which it must be allowed to write.
pub fn copy_to_user(id: SpaceId, address: u64, bytes: &[u8]) -> Result<(), Errno> {
    write(id, address, bytes, UserAccess::Write)
}

/// Writes a program image piece to `address`, whatever the region's protection.
pub fn load(id: SpaceId, address: u64, bytes: &[u8]) -> Result<(), Errno> {
    write(id, address, bytes, UserAccess::Load)
}

fn write(id: SpaceId, address: u64, bytes: &[u8], access: UserAccess) -> Result<(), Errno> {
    for_each_user_piece(id, address, bytes.len(), access, |piece| {
        let source = &bytes[piece.offset_in_range..][..piece.len_bytes];
        // SAFETY: as in `copy_from_user`; the process (or, for `Load`, the loader) may write
        // the piece's frame.
        unsafe { core::ptr::copy_nonoverlapping(source.as_ptr(), window(piece), source.len()) };
    })
}
