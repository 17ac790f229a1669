//! A Linux program's file descriptors and working directory, and the calls on them: opening,
//! reading and writing (files, directories, the devices), seeking, `stat`, directory listing,
//! duplicating, `fcntl`, and the calls that change the tree (`mkdir`, `unlink`, `rename`,
//! `symlink`, ...). Paths resolve in the file system (`crate::fs`), relative to the working
//! directory or to a directory descriptor (`*at` calls).
//!
//! Limits: [`MAX_DESCRIPTORS`] per process (`EMFILE` past it; `RLIMIT_NOFILE` says so); a path
//! is at most `fs::MAX_PATH_BYTES`; one read or write moves at most
//! `syscalls::MAX_IO_BYTES_PER_CALL` (a short count, as POSIX allows).

#![forbid(unsafe_code)]

use alloc::{sync::Arc, vec, vec::Vec};
use core::sync::atomic::{AtomicU32, Ordering};

use super::{console, u64_at, with_state};
use crate::{
    abi::linux,
    events::{Errno, SpaceId},
    fs::{self, Device, Node},
    mm::user_copy,
    security::{self, PathAccess},
    sync::IrqSpinLock,
    task::{
        scheduler,
        syscalls::{self, MAX_IO_BYTES_PER_CALL, Served},
    },
};

/// Most descriptors a process holds at once (its `RLIMIT_NOFILE`).
pub(super) const MAX_DESCRIPTORS: usize = 256;
/// `open` flags (`asm-generic/fcntl.h`).
const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_EXCL: u32 = 0o200;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
pub(super) const O_NONBLOCK: u32 = 0o4000;
const O_DIRECTORY: u32 = 0o200_000;
const O_NOFOLLOW: u32 = 0o400_000;
const O_CLOEXEC: u32 = 0o2_000_000;
/// The `dirfd` meaning "the working directory".
const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_EMPTY_PATH: u64 = 0x1000;
/// `fcntl` commands.
const F_DUPFD: u64 = 0;
const F_GETFD: u64 = 1;
const F_SETFD: u64 = 2;
const F_GETFL: u64 = 3;
const F_SETFL: u64 = 4;
const F_DUPFD_CLOEXEC: u64 = 1030;
const FD_CLOEXEC: u64 = 1;
/// `lseek` origins.
const SEEK_SET: u64 = 0;
const SEEK_CUR: u64 = 1;
const SEEK_END: u64 = 2;
/// Bytes of `struct stat` on x86-64 (`asm/stat.h`).
const STAT_BYTES: usize = 144;
/// `st_blksize`: the size to buffer in.
const BLOCK_BYTES: u64 = 4096;
/// A result too small for its buffer (`getcwd`).
const ERANGE: Errno = Errno(34);

/// An open file: what `open` made, shared by every descriptor `dup` (and later `fork`) makes
/// of it — the node, the offset, the status flags.
pub(super) struct OpenFile {
    pub(super) node: Arc<Node>,
    offset: IrqSpinLock<u64>,
    status: AtomicU32,
}

impl OpenFile {
    fn new(node: Arc<Node>, status: u32) -> Arc<Self> {
        Arc::new(Self { node, offset: IrqSpinLock::new(0), status: AtomicU32::new(status) })
    }

    /// One end of a new pipe (`read`: the read end), counted open on the pipe until dropped.
    pub(super) fn pipe_end(node: Arc<Node>, pipe: &fs::Pipe, read: bool, status: u32) -> Arc<Self> {
        pipe.open_end(read);
        Self::new(node, status | if read { 0 } else { O_WRONLY })
    }

    fn nonblocking(&self) -> bool {
        self.status.load(Ordering::Relaxed) & O_NONBLOCK != 0
    }

    fn readable(&self) -> bool {
        self.status.load(Ordering::Relaxed) & O_ACCMODE != O_WRONLY
    }

    fn writable(&self) -> bool {
        matches!(self.status.load(Ordering::Relaxed) & O_ACCMODE, O_WRONLY | O_RDWR)
    }
}

impl Drop for OpenFile {
    /// The last descriptor of a pipe end closed: the other end's waiters learn of it (a reader
    /// sees the end of the data, a writer `EPIPE`). Dropped with no lock held: descriptors are
    /// taken out of the table first, a process's table after its task has ended.
    fn drop(&mut self) {
        if let Some(pipe) = fs::pipe_of(&self.node) {
            pipe.close_end(self.readable());
            super::pipes::wake(self.node.stat().inode);
        }
    }
}

#[derive(Clone)]
struct Descriptor {
    file: Arc<OpenFile>,
    close_on_exec: bool,
}

/// A process's descriptors, working directory and file-mode mask.
#[derive(Clone)]
pub(super) struct Files {
    table: Vec<Option<Descriptor>>,
    cwd: Arc<Node>,
    umask: u32,
}

impl Default for Files {
    /// Descriptors 0, 1 and 2 on the console (one open file, read-write), the root as working
    /// directory, umask 022.
    fn default() -> Self {
        let console = fs::resolve(&fs::root(), "/dev/console", true)
            .map(|node| OpenFile::new(node, O_RDWR))
            .ok();
        let standard = console.map(|file| Descriptor { file, close_on_exec: false });
        Self {
            table: vec![standard.clone(), standard.clone(), standard],
            cwd: fs::root(),
            umask: 0o022,
        }
    }
}

impl Files {
    fn get(&self, fd: u64) -> Result<&Descriptor, Errno> {
        usize::try_from(fd).ok().and_then(|fd| self.table.get(fd)?.as_ref()).ok_or(Errno::EBADF)
    }

    /// Puts `descriptor` at the lowest free number at or above `lowest`.
    fn install(&mut self, descriptor: Descriptor, lowest: usize) -> Result<u64, Errno> {
        let free =
            (lowest..MAX_DESCRIPTORS).find(|&fd| self.table.get(fd).is_none_or(Option::is_none));
        let fd = free.ok_or(Errno::EMFILE)?;
        if fd >= self.table.len() {
            self.table.resize(fd + 1, None);
        }
        self.table[fd] = Some(descriptor);
        Ok(fd as u64)
    }

    /// Takes the descriptors marked close-on-exec out of the table, for the caller to drop
    /// with no lock held.
    pub(super) fn take_close_on_exec(&mut self) -> Vec<Arc<OpenFile>> {
        let marked =
            self.table.iter_mut().filter(|slot| slot.as_ref().is_some_and(|d| d.close_on_exec));
        marked.filter_map(|slot| slot.take()).map(|descriptor| descriptor.file).collect()
    }

    /// Installs two open files at the two lowest free numbers, or neither (`EMFILE`). Takes
    /// references: nothing is dropped here, under the caller's lock.
    pub(super) fn install_pair(
        &mut self,
        first: &Arc<OpenFile>,
        second: &Arc<OpenFile>,
        close_on_exec: bool,
    ) -> Result<(u64, u64), Errno> {
        let free = (0..MAX_DESCRIPTORS)
            .filter(|&fd| self.table.get(fd).is_none_or(Option::is_none))
            .take(2)
            .count();
        if free < 2 {
            return Err(Errno::EMFILE);
        }
        let first = self.install(Descriptor { file: first.clone(), close_on_exec }, 0)?;
        let second = self.install(Descriptor { file: second.clone(), close_on_exec }, 0)?;
        Ok((first, second))
    }
}

/// The open file behind `fd`.
pub(super) fn file(fd: u64) -> Result<Arc<OpenFile>, Errno> {
    with_state(|state| state.files.get(fd).map(|descriptor| descriptor.file.clone()))
}

pub(super) fn path_argument(address: u64, space: SpaceId) -> Result<alloc::string::String, Errno> {
    user_copy::copy_string_from_user(space, address, fs::MAX_PATH_BYTES - 1)
}

/// Where a `*at` call's relative path starts: the working directory, or directory `dirfd`.
pub(super) fn start_directory(dirfd: u64) -> Result<Arc<Node>, Errno> {
    if dirfd as i32 == AT_FDCWD {
        return Ok(with_state(|state| state.files.cwd.clone()));
    }
    let node = file(dirfd)?.node.clone();
    if node.is_directory() { Ok(node) } else { Err(Errno::ENOTDIR) }
}

/// Where `path` (from `dirfd`) leads, links followed on the way (and at the end if
/// `follow_last`), if the security policy lets this process do `access` there. The call then
/// acts on the location, never on the path again: what was checked is what is touched.
pub(super) fn located(
    dirfd: u64,
    path: &str,
    follow_last: bool,
    access: PathAccess,
) -> Result<fs::Location, Errno> {
    let location = fs::locate(&start_directory(dirfd)?, path, follow_last)?;
    let (pid, _) = scheduler::current_caller();
    security::check_path(pid, access, || Ok(location.path()))?;
    Ok(location)
}

/// `openat(dirfd, path, flags, mode)` (and `open`, from the working directory).
pub(super) fn openat(
    dirfd: u64,
    path: u64,
    flags: u64,
    mode: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    let path = path_argument(path, space)?;
    let flags = flags as u32;
    let umask = with_state(|state| state.files.umask);
    let create = (flags & O_CREAT != 0).then_some(mode as u32 & 0o7777 & !umask);
    let exclusive = flags & O_EXCL != 0;
    // As Linux: `O_EXCL` refuses a link rather than making its target.
    let follow = flags & O_NOFOLLOW == 0 && !exclusive;
    let writes = matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR);
    let access = if writes || create.is_some() { PathAccess::Write } else { PathAccess::Read };
    let location = located(dirfd, &path, follow, access)?;
    let (node, created) =
        fs::open_file(location.directory(), location.entry(), create, exclusive, false)?;
    if location.followed() && node.stat().mode & 0o170_000 == fs::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    if node.is_directory() && (writes || create.is_some() && created) {
        return Err(Errno::EISDIR);
    }
    if flags & O_DIRECTORY != 0 && !node.is_directory() {
        return Err(Errno::ENOTDIR);
    }
    if flags & O_NOFOLLOW != 0 && node.stat().mode & 0o170_000 == fs::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    if flags & O_TRUNC != 0 && writes && node.device().is_none() && !node.is_directory() {
        fs::truncate(&node, 0)?;
    }
    let status = flags & (O_ACCMODE | O_APPEND | O_NONBLOCK);
    let descriptor =
        Descriptor { file: OpenFile::new(node, status), close_on_exec: flags & O_CLOEXEC != 0 };
    with_state(|state| state.files.install(descriptor, 0))
}

pub(super) fn close(fd: u64) -> Result<u64, Errno> {
    // Taken out under the lock, dropped after it (a pipe end's drop wakes the other end).
    let closed = with_state(|state| {
        state.files.get(fd)?;
        Ok(state.files.table[fd as usize].take())
    })?;
    drop(closed);
    Ok(0)
}

/// `read(fd, buf, count)`.
pub(super) fn read(fd: u64, buffer: u64, len: u64, space: SpaceId) -> Result<Served, Errno> {
    let file = file(fd)?;
    if !file.readable() {
        return Err(Errno::EBADF);
    }
    if let Some(device) = file.node.device() {
        return read_device(device, file.nonblocking(), buffer, len, space);
    }
    if let Some(pipe) = fs::pipe_of(&file.node) {
        let inode = file.node.stat().inode;
        return super::pipes::read(pipe, inode, file.nonblocking(), buffer, len, space);
    }
    // The offset is read, then moved by what was read: the lock is not held across the copy
    // (a process has one thread, and descriptors are not yet shared across processes).
    let start = *file.offset.lock();
    let done = read_node_at(&file.node, start, buffer, len, space)?;
    *file.offset.lock() = start + done;
    Ok(Served::Value(done))
}

fn read_device(
    device: Device,
    nonblock: bool,
    buffer: u64,
    len: u64,
    space: SpaceId,
) -> Result<Served, Errno> {
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    match device {
        Device::Console => console::read(buffer, len, nonblock, space),
        Device::Null => Ok(Served::Value(0)),
        Device::Zero => {
            user_copy::copy_to_user(space, buffer, &vec![0u8; len])?;
            Ok(Served::Value(len as u64))
        }
        Device::Random => Ok(Served::Value(super::system::getrandom(buffer, len as u64, space)?)),
    }
}

fn read_node_at(
    node: &Node,
    offset: u64,
    buffer: u64,
    len: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    crate::mm::space::check_user(space, buffer, len as u64, true)?;
    let mut bytes = vec![0u8; len];
    let done = fs::read_at(node, offset, &mut bytes)?;
    user_copy::copy_to_user(space, buffer, &bytes[..done])?;
    Ok(done as u64)
}

/// `write(fd, buf, count)`.
pub(super) fn write(fd: u64, buffer: u64, len: u64, space: SpaceId) -> Result<Served, Errno> {
    let file = file(fd)?;
    if !file.writable() {
        return Err(Errno::EBADF);
    }
    if let Some(pipe) = fs::pipe_of(&file.node) {
        let inode = file.node.stat().inode;
        return super::pipes::write(pipe, inode, file.nonblocking(), buffer, len, space);
    }
    write_file(&file, buffer, len, space).map(Served::Value)
}

fn write_file(file: &OpenFile, buffer: u64, len: u64, space: SpaceId) -> Result<u64, Errno> {
    match file.node.device() {
        Some(Device::Console) => return syscalls::write(1, buffer, len, space),
        Some(_) => {
            crate::mm::space::check_user(space, buffer, len, false)?;
            return Ok(len);
        }
        None => {}
    }
    let start = if file.status.load(Ordering::Relaxed) & O_APPEND != 0 {
        file.node.stat().size_bytes
    } else {
        *file.offset.lock()
    };
    let done = write_node_at(&file.node, start, buffer, len, space)?;
    *file.offset.lock() = start + done;
    Ok(done)
}

fn write_node_at(
    node: &Node,
    offset: u64,
    buffer: u64,
    len: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    let mut bytes = vec![0u8; len];
    user_copy::copy_from_user(space, buffer, &mut bytes)?;
    Ok(fs::write_at(node, offset, &bytes)? as u64)
}

/// `pread64` (`write` false) / `pwrite64`: at `offset`, leaving the file's own offset alone.
pub(super) fn positional(
    fd: u64,
    buffer: u64,
    len: u64,
    offset: u64,
    write: bool,
    space: SpaceId,
) -> Result<u64, Errno> {
    let file = file(fd)?;
    if !(if write { file.writable() } else { file.readable() }) {
        return Err(Errno::EBADF);
    }
    check_positional(&file, offset)?;
    if write {
        write_node_at(&file.node, offset, buffer, len, space)
    } else {
        read_node_at(&file.node, offset, buffer, len, space)
    }
}

/// A positional read or write needs a file that can seek, and an offset that is not negative.
fn check_positional(file: &OpenFile, offset: u64) -> Result<(), Errno> {
    if file.node.device().is_some() || fs::pipe_of(&file.node).is_some() {
        Err(Errno::ESPIPE)
    } else if (offset as i64) < 0 {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}

/// `lseek(fd, offset, whence)`.
pub(super) fn lseek(fd: u64, offset: u64, whence: u64) -> Result<u64, Errno> {
    let file = file(fd)?;
    match file.node.device() {
        Some(Device::Console) => return Err(Errno::ESPIPE),
        Some(_) => return Ok(0),
        None if fs::pipe_of(&file.node).is_some() => return Err(Errno::ESPIPE),
        None => {}
    }
    let mut current = file.offset.lock();
    let base = match whence {
        SEEK_SET => 0,
        SEEK_CUR => *current as i64,
        SEEK_END => file.node.stat().size_bytes as i64,
        _ => return Err(Errno::EINVAL),
    };
    let target =
        base.checked_add(offset as i64).filter(|&target| target >= 0).ok_or(Errno::EINVAL)?;
    *current = target as u64;
    Ok(target as u64)
}

/// Fills a `struct stat` for `node`.
fn stat_bytes(node: &Node) -> [u8; STAT_BYTES] {
    let stat = node.stat();
    let mut out = [0u8; STAT_BYTES];
    out[8..16].copy_from_slice(&stat.inode.to_le_bytes());
    out[16..24].copy_from_slice(&u64::from(stat.links).to_le_bytes());
    out[24..28].copy_from_slice(&stat.mode.to_le_bytes());
    // st_uid, st_gid: 0 (root).
    out[40..48].copy_from_slice(&stat.device.to_le_bytes());
    out[48..56].copy_from_slice(&stat.size_bytes.to_le_bytes());
    out[56..64].copy_from_slice(&BLOCK_BYTES.to_le_bytes());
    out[64..72].copy_from_slice(&stat.size_bytes.div_ceil(512).to_le_bytes());
    let (seconds, nanoseconds) = (stat.modified_ms / 1000, (stat.modified_ms % 1000) * 1_000_000);
    // st_atime, st_mtime, st_ctime: all the modification time.
    for at in [72, 88, 104] {
        out[at..at + 8].copy_from_slice(&seconds.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&nanoseconds.to_le_bytes());
    }
    out
}

pub(super) fn fstat(fd: u64, out: u64, space: SpaceId) -> Result<u64, Errno> {
    let node = file(fd)?.node.clone();
    user_copy::copy_to_user(space, out, &stat_bytes(&node))?;
    Ok(0)
}

/// `newfstatat(dirfd, path, buf, flags)` (and `stat`, `lstat`).
pub(super) fn fstatat(
    dirfd: u64,
    path: u64,
    out: u64,
    flags: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    let node = stat_target(dirfd, path, flags, space)?;
    user_copy::copy_to_user(space, out, &stat_bytes(&node))?;
    Ok(0)
}

/// The node a `stat`-family call describes: `path` from `dirfd`, or with `AT_EMPTY_PATH` and
/// an empty path `dirfd` itself.
fn stat_target(dirfd: u64, path: u64, flags: u64, space: SpaceId) -> Result<Arc<Node>, Errno> {
    let path = path_argument(path, space)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return Ok(if dirfd as i32 == AT_FDCWD {
            with_state(|state| state.files.cwd.clone())
        } else {
            file(dirfd)?.node.clone()
        });
    }
    located(dirfd, &path, flags & AT_SYMLINK_NOFOLLOW == 0, PathAccess::Read)?.node()
}

/// `statx(dirfd, path, flags, mask, buf)`: the basic fields (`STATX_BASIC_STATS`) whatever
/// `mask` asks, as Linux may; no birth time. Flags beyond `AT_EMPTY_PATH`,
/// `AT_SYMLINK_NOFOLLOW`, `AT_NO_AUTOMOUNT` and the sync hints are `EINVAL`.
pub(super) fn statx(
    dirfd: u64,
    path: u64,
    flags: u64,
    _mask: u64,
    out: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    /// `struct statx` (`uapi/linux/stat.h`): its size, and `STATX_BASIC_STATS`.
    const STATX_BYTES: usize = 256;
    const STATX_BASIC_STATS: u32 = 0x7ff;
    const AT_NO_AUTOMOUNT: u64 = 0x800;
    const AT_STATX_SYNC_TYPE: u64 = 0x6000;
    let known = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE;
    if flags & !known != 0 || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
        return Err(Errno::EINVAL);
    }
    let stat = stat_target(dirfd, path, flags, space)?.stat();
    let mut buffer = [0u8; STATX_BYTES];
    let mut put = |at: usize, bytes: &[u8]| buffer[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &STATX_BASIC_STATS.to_le_bytes());
    put(4, &(BLOCK_BYTES as u32).to_le_bytes());
    put(16, &stat.links.to_le_bytes());
    // stx_uid, stx_gid: 0 (root).
    put(28, &(stat.mode as u16).to_le_bytes());
    put(32, &stat.inode.to_le_bytes());
    put(40, &stat.size_bytes.to_le_bytes());
    put(48, &stat.size_bytes.div_ceil(512).to_le_bytes());
    let (seconds, nanoseconds) = (stat.modified_ms / 1000, (stat.modified_ms % 1000) * 1_000_000);
    // stx_atime, stx_ctime, stx_mtime: all the modification time (stx_btime at 80 unset).
    for at in [64, 96, 112] {
        put(at, &seconds.to_le_bytes());
        put(at + 8, &(nanoseconds as u32).to_le_bytes());
    }
    // stx_rdev_major, stx_rdev_minor (the small numbers `Device::number` packs).
    put(128, &((stat.device >> 8) as u32).to_le_bytes());
    put(132, &((stat.device & 0xff) as u32).to_le_bytes());
    user_copy::copy_to_user(space, out, &buffer)?;
    Ok(0)
}

/// `getdents64(fd, dirp, count)`: the directory's entries from the descriptor's offset (an
/// entry index), as many whole `linux_dirent64` records as fit.
pub(super) fn getdents64(fd: u64, buffer: u64, len: u64, space: SpaceId) -> Result<u64, Errno> {
    let file = file(fd)?;
    let listing = fs::list(&file.node)?;
    let len = syscalls::length(len)?.min(MAX_IO_BYTES_PER_CALL);
    let start = *file.offset.lock();
    let mut out = Vec::new();
    let mut index = usize::try_from(start).unwrap_or(usize::MAX);
    while let Some(entry) = listing.get(index) {
        let record_bytes = (19 + entry.name.len() + 1).next_multiple_of(8);
        if out.len() + record_bytes > len {
            break;
        }
        let kind = match entry.kind {
            fs::S_IFDIR => 4,
            fs::S_IFREG => 8,
            fs::S_IFLNK => 10,
            fs::S_IFCHR => 2,
            _ => 0,
        };
        out.extend_from_slice(&entry.inode.to_le_bytes());
        out.extend_from_slice(&((index + 1) as u64).to_le_bytes());
        out.extend_from_slice(&(record_bytes as u16).to_le_bytes());
        out.push(kind);
        out.extend_from_slice(entry.name.as_bytes());
        out.resize(out.len().next_multiple_of(8).max(out.len() + 1), 0);
        index += 1;
    }
    if out.is_empty() && index < listing.len() {
        return Err(Errno::EINVAL);
    }
    user_copy::copy_to_user(space, buffer, &out)?;
    *file.offset.lock() = index as u64;
    Ok(out.len() as u64)
}

/// `dup(fd)`.
pub(super) fn dup(fd: u64) -> Result<u64, Errno> {
    with_state(|state| {
        let descriptor =
            Descriptor { file: state.files.get(fd)?.file.clone(), close_on_exec: false };
        state.files.install(descriptor, 0)
    })
}

/// `dup3(fd, new, flags)` (and `dup2`, where `fd == new` is allowed and answers `new`).
pub(super) fn dup3(fd: u64, new: u64, flags: u64, dup2: bool) -> Result<u64, Errno> {
    if flags & !u64::from(O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (result, replaced) = with_state(|state| {
        let file = match state.files.get(fd) {
            Ok(descriptor) => descriptor.file.clone(),
            Err(errno) => return (Err(errno), None),
        };
        if fd == new {
            return (if dup2 { Ok(new) } else { Err(Errno::EINVAL) }, None);
        }
        let Some(new_index) = usize::try_from(new).ok().filter(|&new| new < MAX_DESCRIPTORS) else {
            return (Err(Errno::EBADF), None);
        };
        if new_index >= state.files.table.len() {
            state.files.table.resize(new_index + 1, None);
        }
        let replaced =
            state.files.table[new_index].replace(Descriptor { file, close_on_exec: flags != 0 });
        (Ok(new), replaced)
    });
    // What `new` held closes after the lock (a pipe end's drop wakes the other end).
    drop(replaced);
    result
}

/// `fcntl(fd, cmd, arg)`.
pub(super) fn fcntl(fd: u64, command: u64, argument: u64) -> Result<u64, Errno> {
    with_state(|state| {
        let descriptor = state.files.get(fd)?.clone();
        match command {
            F_DUPFD | F_DUPFD_CLOEXEC => {
                let lowest = usize::try_from(argument)
                    .ok()
                    .filter(|&lowest| lowest < MAX_DESCRIPTORS)
                    .ok_or(Errno::EINVAL)?;
                let copy =
                    Descriptor { file: descriptor.file, close_on_exec: command == F_DUPFD_CLOEXEC };
                state.files.install(copy, lowest)
            }
            F_GETFD => Ok(if descriptor.close_on_exec { FD_CLOEXEC } else { 0 }),
            F_SETFD => {
                if let Some(Some(slot)) = state.files.table.get_mut(fd as usize) {
                    slot.close_on_exec = argument & FD_CLOEXEC != 0;
                }
                Ok(0)
            }
            F_GETFL => Ok(u64::from(descriptor.file.status.load(Ordering::Relaxed))),
            F_SETFL => {
                let changeable = O_APPEND | O_NONBLOCK;
                let _ = descriptor.file.status.try_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |status| Some(status & !changeable | argument as u32 & changeable),
                );
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    })
}

/// `getcwd(buf, size)`: the path and its NUL; `ERANGE` if they do not fit.
pub(super) fn getcwd(buffer: u64, size: u64, space: SpaceId) -> Result<u64, Errno> {
    let mut path = fs::path_of(&with_state(|state| state.files.cwd.clone())).into_bytes();
    path.push(0);
    if path.len() as u64 > size {
        return Err(ERANGE);
    }
    user_copy::copy_to_user(space, buffer, &path)?;
    Ok(path.len() as u64)
}

/// `chdir(path)`.
pub(super) fn chdir(path: u64, space: SpaceId) -> Result<u64, Errno> {
    let path = path_argument(path, space)?;
    set_cwd(located(AT_FDCWD as u64, &path, true, PathAccess::Read)?.node()?)
}

/// `fchdir(fd)`.
pub(super) fn fchdir(fd: u64) -> Result<u64, Errno> {
    set_cwd(file(fd)?.node.clone())
}

fn set_cwd(node: Arc<Node>) -> Result<u64, Errno> {
    if !node.is_directory() {
        return Err(Errno::ENOTDIR);
    }
    with_state(|state| state.files.cwd = node);
    Ok(0)
}

/// `mkdirat(dirfd, path, mode)` (and `mkdir`).
pub(super) fn mkdirat(dirfd: u64, path: u64, mode: u64, space: SpaceId) -> Result<u64, Errno> {
    let path = path_argument(path, space)?;
    let umask = with_state(|state| state.files.umask);
    let location = located(dirfd, &path, false, PathAccess::Write)?;
    fs::make_directory(location.directory(), location.entry(), mode as u32 & 0o7777 & !umask)?;
    Ok(0)
}

/// `unlinkat(dirfd, path, flags)` (and `unlink`, `rmdir`).
pub(super) fn unlinkat(dirfd: u64, path: u64, flags: u64, space: SpaceId) -> Result<u64, Errno> {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_argument(path, space)?;
    let location = located(dirfd, &path, false, PathAccess::Write)?;
    fs::remove(location.directory(), location.entry(), flags & AT_REMOVEDIR != 0)?;
    Ok(0)
}

/// `renameat2(olddirfd, old, newdirfd, new, flags)` with no flags (and `rename`, `renameat`).
pub(super) fn renameat(
    old_dirfd: u64,
    old: u64,
    new_dirfd: u64,
    new: u64,
    flags: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let (old, new) = (path_argument(old, space)?, path_argument(new, space)?);
    let old = located(old_dirfd, &old, false, PathAccess::Write)?;
    let new = located(new_dirfd, &new, false, PathAccess::Write)?;
    fs::rename(old.directory(), old.entry(), new.directory(), new.entry())?;
    Ok(0)
}

/// `symlinkat(target, newdirfd, path)` (and `symlink`).
pub(super) fn symlinkat(target: u64, dirfd: u64, path: u64, space: SpaceId) -> Result<u64, Errno> {
    let (target, path) = (path_argument(target, space)?, path_argument(path, space)?);
    // Only where the link goes is checked: following it later is checked where it leads.
    let location = located(dirfd, &path, false, PathAccess::Write)?;
    fs::make_symlink(location.directory(), &target, location.entry())?;
    Ok(0)
}

/// `readlinkat(dirfd, path, buf, size)` (and `readlink`): the target, cut to `size`, no NUL.
pub(super) fn readlinkat(
    dirfd: u64,
    path: u64,
    buffer: u64,
    size: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    if size as i64 <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_argument(path, space)?;
    let location = located(dirfd, &path, false, PathAccess::Read)?;
    let target = fs::read_link(location.directory(), location.entry())?;
    let count = target.len().min(size as usize);
    user_copy::copy_to_user(space, buffer, &target.as_bytes()[..count])?;
    Ok(count as u64)
}

/// `faccessat(dirfd, path, mode, flags)` (and `access`): root may read and write anything;
/// executing needs an execute bit (or a directory, to search it).
pub(super) fn faccessat(dirfd: u64, path: u64, mode: u64, space: SpaceId) -> Result<u64, Errno> {
    const X_OK: u64 = 1;
    if mode & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_argument(path, space)?;
    let node = located(dirfd, &path, true, PathAccess::Read)?.node()?;
    if mode & X_OK != 0 && !node.is_directory() && node.stat().mode & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

/// `umask(mask)`: the old mask.
pub(super) fn umask(mask: u64) -> u64 {
    with_state(|state| core::mem::replace(&mut state.files.umask, mask as u32 & 0o777)).into()
}

/// 0 if `fd` is open (`fsync`: the file system is memory, nothing to flush).
pub(super) fn fstat_exists(fd: u64) -> Result<u64, Errno> {
    file(fd).map(|_| 0)
}

/// `ftruncate(fd, len)`.
pub(super) fn ftruncate(fd: u64, len: u64) -> Result<u64, Errno> {
    let file = file(fd)?;
    if !file.writable() || (len as i64) < 0 {
        return Err(if file.writable() { Errno::EINVAL } else { Errno::EBADF });
    }
    fs::truncate(&file.node, len)?;
    Ok(0)
}

/// `readv` / `writev`: each buffer in turn; stops at the first short or failed one,
/// answering what was moved (or that error, if nothing was).
pub(super) fn vectored(
    fd: u64,
    vector: u64,
    count: u64,
    write: bool,
    space: SpaceId,
) -> Result<Served, Errno> {
    const IOVEC_BYTES: u64 = 16;
    if count > linux::IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut moved = 0u64;
    for index in 0..count {
        let mut iovec = [0u8; IOVEC_BYTES as usize];
        let at = vector.checked_add(index * IOVEC_BYTES).ok_or(Errno::EFAULT)?;
        user_copy::copy_from_user(space, at, &mut iovec)?;
        let (base, len) = (u64_at(&iovec, 0), u64_at(&iovec, 8));
        if len == 0 {
            continue;
        }
        let result = if write {
            self::write(fd, base, len, space)
        } else {
            self::read(fd, base, len, space)
        };
        match result {
            Ok(Served::Value(done)) => {
                moved += done;
                if done < len {
                    break;
                }
            }
            // A read that would block: restart the call only if nothing was read yet.
            Ok(Served::Restart) if moved == 0 => return Ok(Served::Restart),
            Ok(Served::Restart) => break,
            Err(errno) if moved == 0 => return Err(errno),
            Err(_) => break,
        }
    }
    file(fd)?;
    Ok(Served::Value(moved))
}
