//! A Linux program's memory calls, as Herald's `memory` events (so the security band sees them
//! and mm serves them): anonymous private mappings, unmapping, protection, advice.

#![forbid(unsafe_code)]

use crate::{
    abi::linux,
    events::{Errno, MemoryRequest, Protection, SpaceId},
    mm,
    task::Pid,
};

/// `mmap`: anonymous private memory, anywhere or (`MAP_FIXED`) exactly at `addr`, replacing
/// what was there (`MAP_FIXED_NOREPLACE`: failing with `EEXIST` instead). Files cannot be
/// mapped (there are none yet), nor memory shared (`MAP_SHARED`: `EINVAL`).
pub(super) fn mmap(args: &[u64; 6], pid: Pid, space: SpaceId) -> Result<u64, Errno> {
    let [address, len_bytes, prot, flags, _fd, offset] = *args;
    if flags & linux::MAP_ANONYMOUS == 0 {
        return Err(Errno::EBADF);
    }
    if flags & linux::MAP_PRIVATE == 0 || flags & linux::MAP_SHARED != 0 || offset != 0 {
        return Err(Errno::EINVAL);
    }
    let protection = protection(prot)?;
    let len_bytes = whole_pages(len_bytes)?;
    let replace = flags & linux::MAP_FIXED != 0;
    let exact = replace || flags & linux::MAP_FIXED_NOREPLACE != 0;
    if exact && !address.is_multiple_of(mm::FRAME_SIZE_BYTES) {
        return Err(Errno::EINVAL);
    }
    if replace {
        mm::request(pid, MemoryRequest::Unmap { space, address, len_bytes })?;
    }
    // Without a fixed flag the address is only a hint, which Herald does not take. A fixed
    // address over a mapping (possible only with `MAP_FIXED_NOREPLACE`) is mm's `EEXIST`.
    let address = if exact { address } else { 0 };
    mm::request(pid, MemoryRequest::Map { space, address, len_bytes, protection })
}

pub(super) fn munmap(address: u64, len_bytes: u64, pid: Pid, space: SpaceId) -> Result<u64, Errno> {
    let len_bytes = whole_pages(len_bytes)?;
    mm::request(pid, MemoryRequest::Unmap { space, address, len_bytes })
}

pub(super) fn mprotect(
    address: u64,
    len_bytes: u64,
    prot: u64,
    pid: Pid,
    space: SpaceId,
) -> Result<u64, Errno> {
    let len_bytes = whole_pages(len_bytes)?;
    let protection = protection(prot)?;
    mm::request(pid, MemoryRequest::Protect { space, address, len_bytes, protection })
}

/// `madvise`: every advice is a hint Herald may ignore, and does; the range must be page
/// aligned, as Linux checks.
pub(super) fn madvise(address: u64, len_bytes: u64) -> Result<u64, Errno> {
    if !address.is_multiple_of(mm::FRAME_SIZE_BYTES) || address.checked_add(len_bytes).is_none() {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `brk`: there is no heap break to move. Answering 0 (below any break) for every request
/// tells libc the heap cannot grow, and musl and glibc then allocate with `mmap`.
pub(super) fn brk() -> u64 {
    0
}

/// Linux protection bits as Herald's: any right implies read (x86-64), `PROT_NONE` reserves
/// without access; writable-and-executable is refused by mm (W^X).
fn protection(bits: u64) -> Result<Protection, Errno> {
    Protection::from_linux_bits(bits).ok_or(Errno::EINVAL)
}

/// A length in whole pages, as Linux's memory calls take it (rounded up; 0 is invalid).
fn whole_pages(len_bytes: u64) -> Result<u64, Errno> {
    match len_bytes.checked_next_multiple_of(mm::FRAME_SIZE_BYTES) {
        Some(0) | None => Err(Errno::EINVAL),
        Some(len) => Ok(len),
    }
}
