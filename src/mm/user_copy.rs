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

/// Copies the NUL-terminated string at the process's `address` (a path, an argument), without
/// its NUL: at most `max_bytes` before the NUL (`ENAMETOOLONG` past that), never a byte past
/// the NUL (the page after it may be unmapped), `EINVAL` if it is not UTF-8.
pub fn copy_string_from_user(
    id: SpaceId,
    address: u64,
    max_bytes: usize,
) -> Result<alloc::string::String, Errno> {
    const PAGE_BYTES: u64 = crate::vocab::FRAME_SIZE_BYTES;
    let mut bytes = alloc::vec::Vec::new();
    let mut at = address;
    loop {
        // Up to the end of this page: the string may end here, and the next page not exist.
        let piece = (PAGE_BYTES - at % PAGE_BYTES) as usize;
        let mut chunk = alloc::vec![0u8; piece];
        copy_from_user(id, at, &mut chunk)?;
        if let Some(end) = chunk.iter().position(|&byte| byte == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            break;
        }
        bytes.extend_from_slice(&chunk);
        if bytes.len() > max_bytes {
            return Err(Errno::ENAMETOOLONG);
        }
        at = at.checked_add(piece as u64).ok_or(Errno::EFAULT)?;
    }
    if bytes.len() > max_bytes {
        return Err(Errno::ENAMETOOLONG);
    }
    alloc::string::String::from_utf8(bytes).map_err(|_| Errno::EINVAL)
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
