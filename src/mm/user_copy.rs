//! Copies between the kernel and a process's memory. The kernel never dereferences a user
//! pointer: `space.rs` finds (and backs) each page of the range, checking the process's rights,
//! and `tables.rs` moves the bytes through the physical-memory window while the page is held
//! resident — so a bad pointer is `EFAULT`, never a kernel fault.

#![forbid(unsafe_code)]

use super::space::{UserAccess, for_each_user_piece};
use crate::events::{Errno, SpaceId};

/// Copies `buffer.len()` bytes from the process's `address` into `buffer`.
pub fn copy_from_user(id: SpaceId, address: u64, buffer: &mut [u8]) -> Result<(), Errno> {
    for_each_user_piece(id, address, buffer.len(), UserAccess::Read, |piece| {
        let target = &mut buffer[piece.offset_in_range..][..piece.len_bytes];
        piece.page.read(piece.offset_in_page, target);
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
    for_each_user_piece(id, address, bytes.len(), access, |mut piece| {
        let source = &bytes[piece.offset_in_range..][..piece.len_bytes];
        piece.page.write(piece.offset_in_page, source);
    })
}
