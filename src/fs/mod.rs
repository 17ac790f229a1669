//! The file system: one in-memory tree for the whole root, built at boot from the boot image
//! (whose files are read in place until written) and writable everywhere, with `/dev`'s
//! devices. Below processes: it knows nodes and paths, not descriptors or callers — a
//! process's open files and working directory are the Linux personality's (`task/linux`).
//!
//! Limits, each named: [`MAX_PATH_BYTES`], [`MAX_NAME_BYTES`], [`MAX_SYMLINK_DEPTH`], and the
//! bytes files may hold beyond the image's (`set_capacity`; a write past it is `ENOSPC`).
//!
//! Locking: each directory and each file has its own lock, held for one step (a lookup, an
//! insert, a copy) and never while another is taken — but by `rename`, which takes the rename
//! lock first and then the two directories in address order. Nothing here runs in interrupt
//! context.

#![forbid(unsafe_code)]

mod node;
mod path;
mod pipe;
mod synthetic;

use alloc::{string::String, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use self::node::{Data, Directory, Kind, Meta};
pub use self::{
    node::{Device, Node, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, Stat},
    path::{
        Location, MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_SYMLINK_DEPTH, locate, resolve,
        resolve_parent,
    },
    pipe::{PIPE_ATOMIC_BYTES, PIPE_CAPACITY_BYTES, Pipe, PipeIo},
    synthetic::{Provider, Render, generated_file, mount, synthetic_directory, synthetic_link},
};
pub use crate::abi::Errno;
use crate::sync::IrqSpinLock;

/// The root directory, made at first use.
static ROOT: spin::Once<Arc<Node>> = spin::Once::new();
/// The next inode number (the root is 1).
static NEXT_INODE: AtomicU64 = AtomicU64::new(2);
/// Bytes files hold of their own (written, not the image's), and how many they may.
static USED_BYTES: AtomicU64 = AtomicU64::new(0);
static CAPACITY_BYTES: AtomicU64 = AtomicU64::new(16 * 1024 * 1024);
/// Held by a rename across its two directories, so two renames never lock them in opposite
/// orders and a directory never moves under itself.
static RENAME: IrqSpinLock<()> = IrqSpinLock::new(());

/// The root directory.
pub fn root() -> Arc<Node> {
    ROOT.call_once(|| {
        Arc::new(Node {
            inode: 1,
            kind: Kind::Directory(IrqSpinLock::new(Directory::default())),
            meta: IrqSpinLock::new(meta(0o755)),
        })
    })
    .clone()
}

/// Sets how many bytes files may hold beyond the boot image's (the kernel gives it a share of
/// memory at boot).
pub fn set_capacity(bytes: u64) {
    CAPACITY_BYTES.store(bytes, Ordering::Relaxed);
}

/// A new pipe, as a node outside the tree (what its descriptors hold), and the pipe itself.
pub fn new_pipe() -> (Arc<Node>, Arc<Pipe>) {
    let pipe = Arc::new(Pipe::default());
    (new_node(Kind::Pipe(pipe.clone()), 0o600), pipe)
}

/// Bytes files hold of their own, and the capacity (`mem`, `/proc/meminfo` later).
pub fn usage() -> (u64, u64) {
    (USED_BYTES.load(Ordering::Relaxed), CAPACITY_BYTES.load(Ordering::Relaxed))
}

fn charge(bytes: usize) -> Result<(), Errno> {
    let bytes = bytes as u64;
    let capacity = CAPACITY_BYTES.load(Ordering::Relaxed);
    USED_BYTES
        .try_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(bytes).filter(|&total| total <= capacity)
        })
        .map(|_| ())
        .map_err(|_| Errno::ENOSPC)
}

fn release(bytes: usize) {
    USED_BYTES.fetch_sub(bytes as u64, Ordering::Relaxed);
}

/// Where modification times come from (milliseconds since 1970): the kernel installs the
/// wall clock at boot; until then, and in host tests, times are 0.
static CLOCK: spin::Once<fn() -> u64> = spin::Once::new();

/// Installs the wall clock the tree stamps modifications with.
pub fn set_clock(clock: fn() -> u64) {
    CLOCK.call_once(|| clock);
}

fn now_ms() -> u64 {
    CLOCK.get().map_or(0, |clock| clock())
}

fn meta(permissions: u32) -> Meta {
    Meta { permissions: permissions & 0o7777, links: 1, modified_ms: now_ms() }
}

fn new_node(kind: Kind, permissions: u32) -> Arc<Node> {
    let inode = NEXT_INODE.fetch_add(1, Ordering::Relaxed);
    Arc::new(Node { inode, kind, meta: IrqSpinLock::new(meta(permissions)) })
}

fn directory_of(node: &Node) -> Result<&IrqSpinLock<Directory>, Errno> {
    match &node.kind {
        Kind::Directory(directory) => Ok(directory),
        // Nothing is made in, or removed from, what a provider shows.
        Kind::Synthetic(_) => Err(Errno::EACCES),
        _ => Err(Errno::ENOTDIR),
    }
}

fn touch(node: &Node) {
    node.meta.lock().modified_ms = now_ms();
}

/// Puts `node` in `parent` as `name`; `EEXIST` if the name is taken (then `node` is dropped).
fn insert(parent: &Arc<Node>, name: &str, node: Arc<Node>) -> Result<Arc<Node>, Errno> {
    if name == "." || name == ".." {
        return Err(Errno::EEXIST);
    }
    if let Kind::Directory(directory) = &node.kind {
        let mut directory = directory.lock();
        directory.parent = Arc::downgrade(parent);
        directory.name = String::from(name);
    }
    let mut entries = directory_of(parent)?.lock();
    if entries.entries.contains_key(name) {
        return Err(Errno::EEXIST);
    }
    entries.entries.insert(String::from(name), node.clone());
    drop(entries);
    touch(parent);
    Ok(node)
}

/// Opens `path` as a file, making it (with `permissions`) if it does not exist and `create`;
/// with `exclusive` an existing one is `EEXIST`. Returns the node and whether it was made.
pub fn open_file(
    start: &Arc<Node>,
    path: &str,
    create: Option<u32>,
    exclusive: bool,
    follow_last: bool,
) -> Result<(Arc<Node>, bool), Errno> {
    let found = resolve(start, path, follow_last && !exclusive);
    match (found, create) {
        (Ok(_), Some(_)) if exclusive => Err(Errno::EEXIST),
        (Ok(node), _) => Ok((node, false)),
        (Err(Errno::ENOENT), Some(permissions)) => {
            let (parent, name) = resolve_parent(start, path)?;
            if path.ends_with('/') {
                return Err(Errno::EISDIR);
            }
            let file = new_node(Kind::File(IrqSpinLock::new(Data::Owned(Vec::new()))), permissions);
            match insert(&parent, &name, file) {
                Ok(file) => Ok((file, true)),
                // Made by someone else meanwhile: theirs, unless this call had to make it.
                Err(Errno::EEXIST) if !exclusive => Ok((path::child(&parent, &name)?, false)),
                Err(errno) => Err(errno),
            }
        }
        (Err(errno), _) => Err(errno),
    }
}

/// `mkdir`.
pub fn make_directory(start: &Arc<Node>, path: &str, permissions: u32) -> Result<(), Errno> {
    let (parent, name) = resolve_parent(start, path)?;
    let directory = new_node(Kind::Directory(IrqSpinLock::new(Directory::default())), permissions);
    directory.meta.lock().links = 2;
    insert(&parent, &name, directory).map(|_| ())
}

/// `symlink(target, path)`.
pub fn make_symlink(start: &Arc<Node>, target: &str, path: &str) -> Result<(), Errno> {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    if target.len() >= MAX_PATH_BYTES {
        return Err(Errno::ENAMETOOLONG);
    }
    let (parent, name) = resolve_parent(start, path)?;
    insert(&parent, &name, new_node(Kind::Symlink(String::from(target)), 0o777)).map(|_| ())
}

/// A symbolic link's target.
pub fn read_link(start: &Arc<Node>, path: &str) -> Result<String, Errno> {
    match &resolve(start, path, false)?.kind {
        Kind::Symlink(target) => Ok(target.clone()),
        _ => Err(Errno::EINVAL),
    }
}

/// Whether `node` may leave its directory (be removed, or replaced by a rename) by a call for a
/// directory (`directory`: it must be one, and empty) or for anything else (it must not be a
/// directory) — the errors `rmdir`, `unlink` and `rename` share.
fn may_go(node: &Node, directory: bool) -> Result<(), Errno> {
    match (&node.kind, directory) {
        // A mounted provider stays where it is.
        (Kind::Synthetic(_), _) => Err(Errno::EBUSY),
        (Kind::Directory(_), false) => Err(Errno::EISDIR),
        (Kind::Directory(inner), true) if !inner.lock().entries.is_empty() => Err(Errno::ENOTEMPTY),
        (Kind::Directory(_), true) | (_, false) => Ok(()),
        (_, true) => Err(Errno::ENOTDIR),
    }
}

/// `unlink` (`directory` false: not a directory, `EISDIR`) or `rmdir` (`directory` true: an
/// empty directory, not the root).
pub fn remove(start: &Arc<Node>, path: &str, directory: bool) -> Result<(), Errno> {
    let (parent, name) = resolve_parent(start, path)?;
    match name.as_str() {
        "." => return Err(Errno::EINVAL),
        ".." => return Err(Errno::ENOTEMPTY),
        _ => {}
    }
    let mut entries = directory_of(&parent)?.lock();
    let node = entries.entries.get(&name).ok_or(Errno::ENOENT)?;
    may_go(node, directory)?;
    let removed = entries.entries.remove(&name);
    drop(entries);
    touch(&parent);
    // An open file lives on (its descriptors hold it) but is no longer linked anywhere.
    if let Some(removed) = removed {
        removed.meta.lock().links = 0;
    }
    Ok(())
}

/// `rename(old, new)`: moves or renames, replacing a file at `new` (or an empty directory, by a
/// directory).
pub fn rename(
    old_start: &Arc<Node>,
    old_path: &str,
    new_start: &Arc<Node>,
    new_path: &str,
) -> Result<(), Errno> {
    let (old_parent, old_name) = resolve_parent(old_start, old_path)?;
    let (new_parent, new_name) = resolve_parent(new_start, new_path)?;
    for name in [&old_name, &new_name] {
        if name == "." || name == ".." {
            return Err(Errno::EBUSY);
        }
    }
    let _rename = RENAME.lock();
    let moving = path::child(&old_parent, &old_name)?;
    // A directory cannot move into itself or below it.
    if moving.is_directory() {
        let mut above = new_parent.clone();
        loop {
            if Arc::ptr_eq(&above, &moving) {
                return Err(Errno::EINVAL);
            }
            let next = path::parent_of(&above);
            if Arc::ptr_eq(&next, &above) {
                break;
            }
            above = next;
        }
    }
    if let Ok(existing) = path::child(&new_parent, &new_name) {
        if Arc::ptr_eq(&existing, &moving) {
            return Ok(());
        }
        may_go(&existing, moving.is_directory())?;
    }
    let old_directory = directory_of(&old_parent)?;
    let new_directory = directory_of(&new_parent)?;
    if Arc::ptr_eq(&old_parent, &new_parent) {
        let mut entries = old_directory.lock();
        let node = entries.entries.remove(&old_name).ok_or(Errno::ENOENT)?;
        entries.entries.insert(new_name.clone(), node);
    } else {
        // Both directories at once, in address order (the rename lock keeps out other renames,
        // the order keeps out a deadlock with nothing).
        let old_first = Arc::as_ptr(&old_parent) < Arc::as_ptr(&new_parent);
        let (mut first, mut second) = if old_first {
            (old_directory.lock(), new_directory.lock())
        } else {
            (new_directory.lock(), old_directory.lock())
        };
        let (old_entries, new_entries) =
            if old_first { (&mut first, &mut second) } else { (&mut second, &mut first) };
        let node = old_entries.entries.remove(&old_name).ok_or(Errno::ENOENT)?;
        new_entries.entries.insert(new_name.clone(), node);
    }
    if let Kind::Directory(directory) = &moving.kind {
        let mut directory = directory.lock();
        directory.parent = Arc::downgrade(&new_parent);
        directory.name = new_name;
    }
    touch(&old_parent);
    touch(&new_parent);
    Ok(())
}

/// Copies bytes of file `node` from `offset` into `out`; how many (0 at or past the end).
pub fn read_at(node: &Node, offset: u64, out: &mut [u8]) -> Result<usize, Errno> {
    match &node.kind {
        Kind::File(data) => {
            let data = data.lock();
            let bytes = data.bytes();
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
            let count = out.len().min(bytes.len() - start);
            out[..count].copy_from_slice(&bytes[start..start + count]);
            Ok(count)
        }
        Kind::Generated(render) => synthetic::read_generated(render, offset, out),
        Kind::Directory(_) | Kind::Synthetic(_) => Err(Errno::EISDIR),
        _ => Err(Errno::EINVAL),
    }
}

/// A regular file's whole contents, for running it.
pub enum Contents {
    /// The boot image's bytes, in place.
    Image(&'static [u8]),
    /// A copy of a file's own (written) bytes, taken in one hold of its lock.
    Copy(Vec<u8>),
}

impl Contents {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Image(bytes) => bytes,
            Self::Copy(bytes) => bytes,
        }
    }
}

/// The whole contents of regular file `node` (`EACCES` for anything else: what `execve` says
/// of a directory or device).
pub fn contents(node: &Node) -> Result<Contents, Errno> {
    let data = match &node.kind {
        Kind::File(data) => data,
        Kind::Generated(render) => return render().map(Contents::Copy),
        _ => return Err(Errno::EACCES),
    };
    Ok(match &*data.lock() {
        Data::Image(bytes) => Contents::Image(bytes),
        Data::Owned(bytes) => Contents::Copy(bytes.clone()),
    })
}

/// The pipe node `node` is, if it is one.
pub fn pipe_of(node: &Node) -> Option<&Arc<Pipe>> {
    match &node.kind {
        Kind::Pipe(pipe) => Some(pipe),
        _ => None,
    }
}

/// The bytes of regular file `node`, to change them.
fn file_data(node: &Node) -> Result<&IrqSpinLock<Data>, Errno> {
    match &node.kind {
        Kind::File(data) => Ok(data),
        Kind::Generated(_) => Err(Errno::EACCES),
        _ if node.is_directory() => Err(Errno::EISDIR),
        _ => Err(Errno::EINVAL),
    }
}

/// Writes `bytes` into file `node` at `offset` (growing it, zeros in any gap); how many.
pub fn write_at(node: &Node, offset: u64, bytes: &[u8]) -> Result<usize, Errno> {
    let data = file_data(node)?;
    let start = usize::try_from(offset).map_err(|_| Errno::EINVAL)?;
    let end = start.checked_add(bytes.len()).ok_or(Errno::EINVAL)?;
    let mut data = data.lock();
    let len = data.bytes().len().max(end);
    let contents = data.resize(len)?;
    contents[start..end].copy_from_slice(bytes);
    drop(data);
    touch(node);
    Ok(bytes.len())
}

/// Sets file `node`'s length (`truncate`, `O_TRUNC`).
pub fn truncate(node: &Node, len: u64) -> Result<(), Errno> {
    let data = file_data(node)?;
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    data.lock().resize(len)?;
    touch(node);
    Ok(())
}

/// One entry of a directory listing.
#[derive(Clone, Debug)]
pub struct Listing {
    /// Its name.
    pub name: String,
    /// Its inode number.
    pub inode: u64,
    /// Its type bits (`S_IFDIR`, ...).
    pub kind: u32,
}

/// Directory `node`'s entries, `.` and `..` first, then by name.
pub fn list(node: &Arc<Node>) -> Result<Vec<Listing>, Errno> {
    let parent = path::parent_of(node);
    if let Kind::Synthetic(synthetic) = &node.kind {
        let mut listing = alloc::vec![
            Listing { name: String::from("."), inode: node.inode, kind: S_IFDIR },
            Listing { name: String::from(".."), inode: parent.inode, kind: S_IFDIR },
        ];
        listing.extend(synthetic.provider.list());
        return Ok(listing);
    }
    let entries: Vec<(String, Arc<Node>)> = directory_of(node)?
        .lock()
        .entries
        .iter()
        .map(|(name, child)| (name.clone(), child.clone()))
        .collect();
    let mut listing = Vec::with_capacity(entries.len() + 2);
    listing.push(Listing { name: String::from("."), inode: node.inode, kind: S_IFDIR });
    listing.push(Listing { name: String::from(".."), inode: parent.inode, kind: S_IFDIR });
    for (name, child) in entries {
        let kind = child.stat().mode & 0o170_000;
        listing.push(Listing { name, inode: child.inode, kind });
    }
    Ok(listing)
}

/// The absolute path of directory `node` (`getcwd`).
pub fn path_of(node: &Arc<Node>) -> String {
    let mut names = Vec::new();
    let mut at = node.clone();
    loop {
        let (parent, name) = match &at.kind {
            Kind::Directory(directory) => {
                let directory = directory.lock();
                (directory.parent.upgrade(), directory.name.clone())
            }
            Kind::Synthetic(synthetic) => (synthetic.parent.upgrade(), synthetic.name.clone()),
            _ => break,
        };
        match parent {
            Some(parent) => {
                names.push(name);
                at = parent;
            }
            None => break,
        }
    }
    let mut path = String::new();
    for name in names.iter().rev() {
        path.push('/');
        path.push_str(name);
    }
    if path.is_empty() { String::from("/") } else { path }
}

/// What the boot image puts at a path.
#[derive(Clone, Copy, Debug)]
pub enum ImageNode {
    /// A directory.
    Directory,
    /// A file whose bytes are these (read in place until written).
    File(&'static [u8]),
    /// A symbolic link to this target.
    Symlink(&'static str),
    /// A device.
    Device(Device),
}

/// Adds one boot-image entry at `path` (absolute or relative to the root), making the
/// directories on the way; an entry already there is replaced unless both are directories.
pub fn add_image_node(path: &str, node: ImageNode, permissions: u32) -> Result<(), Errno> {
    let root = root();
    let mut directory = root.clone();
    let mut components: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let Some(name) = components.pop() else { return Ok(()) };
    for component in components {
        directory = match path::child(&directory, component) {
            Ok(next) if next.is_directory() => next,
            Ok(_) => return Err(Errno::ENOTDIR),
            Err(_) => {
                let made = new_node(Kind::Directory(IrqSpinLock::new(Directory::default())), 0o755);
                insert(&directory, component, made)?
            }
        };
    }
    if let (ImageNode::Directory, Ok(existing)) = (node, path::child(&directory, name))
        && existing.is_directory()
    {
        existing.meta.lock().permissions = permissions & 0o7777;
        return Ok(());
    }
    let kind = match node {
        ImageNode::Directory => Kind::Directory(IrqSpinLock::new(Directory::default())),
        ImageNode::File(bytes) => Kind::File(IrqSpinLock::new(Data::Image(bytes))),
        ImageNode::Symlink(target) => Kind::Symlink(String::from(target)),
        ImageNode::Device(device) => Kind::Device(device),
    };
    directory_of(&directory)?.lock().entries.remove(name);
    insert(&directory, name, new_node(kind, permissions)).map(|_| ())
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::format;

    use super::*;

    fn scratch(name: &str) -> Arc<Node> {
        let path = format!("/fs-test-{name}");
        make_directory(&root(), &path, 0o755).expect("a fresh scratch directory");
        resolve(&root(), &path, true).expect("just made")
    }

    #[test_case]
    fn a_chain_of_links_resolves_and_a_loop_ends_in_eloop_without_deep_recursion() {
        let directory = scratch("links");
        make_directory(&directory, "target", 0o755).expect("mkdir");
        // link0 -> target, link1 -> link0, ... : the longest chain that still resolves.
        make_symlink(&directory, "target", "link0").expect("symlink");
        for index in 1..MAX_SYMLINK_DEPTH {
            make_symlink(&directory, &format!("link{}", index - 1), &format!("link{index}"))
                .expect("symlink");
        }
        let last = format!("link{}", MAX_SYMLINK_DEPTH - 1);
        assert!(resolve(&directory, &last, true).expect("40 links resolve").is_directory());
        make_symlink(&directory, &last, "one-too-many").expect("symlink");
        assert_eq!(resolve(&directory, "one-too-many", true).err(), Some(Errno::ELOOP));
        make_symlink(&directory, "loop", "loop").expect("symlink");
        assert_eq!(resolve(&directory, "loop/x", true).err(), Some(Errno::ELOOP));
        assert!(resolve(&directory, "loop", false).is_ok(), "not following it is fine");
    }

    #[test_case]
    fn a_location_names_where_links_and_dots_lead_and_refuses_a_link_swapped_in() {
        let directory = scratch("locate");
        make_directory(&directory, "real", 0o755).expect("mkdir");
        make_symlink(&directory, "real", "alias").expect("symlink");
        make_symlink(&directory, "/fs-test-locate/real/file", "to-file").expect("symlink");
        let path = |path: &str, follow| locate(&directory, path, follow).map(|at| at.path());
        assert_eq!(path("alias/x", true).as_deref(), Ok("/fs-test-locate/real/x"));
        assert_eq!(path("to-file", true).as_deref(), Ok("/fs-test-locate/real/file"));
        assert_eq!(path("to-file", false).as_deref(), Ok("/fs-test-locate/to-file"));
        assert_eq!(path("real/..", true).as_deref(), Ok("/fs-test-locate"));
        assert_eq!(path("./real/.", true).as_deref(), Ok("/fs-test-locate/real"));
        assert_eq!(path("alias/", true).as_deref(), Ok("/fs-test-locate/real"));
        assert_eq!(path("/", true).as_deref(), Ok("/"));
        // Located following the last link, then a link is put where the file was: the call
        // acting on the location must not follow it.
        let location = locate(&directory, "real/file", true).expect("locate");
        make_symlink(&directory, "/etc", "real/file").expect("symlink");
        assert_eq!(location.node().err(), Some(Errno::ELOOP));
    }

    #[test_case]
    fn a_directory_cannot_move_below_itself_and_renames_replace() {
        let directory = scratch("rename");
        make_directory(&directory, "a/b", 0o755).err();
        make_directory(&directory, "a", 0o755).expect("mkdir");
        make_directory(&directory, "a/b", 0o755).expect("mkdir");
        assert_eq!(rename(&directory, "a", &directory, "a/b/c").err(), Some(Errno::EINVAL));
        open_file(&directory, "f", Some(0o644), true, true).expect("create");
        open_file(&directory, "g", Some(0o644), true, true).expect("create");
        rename(&directory, "f", &directory, "g").expect("a file replaces a file");
        assert_eq!(resolve(&directory, "f", true).err(), Some(Errno::ENOENT));
        assert_eq!(rename(&directory, "g", &directory, "a").err(), Some(Errno::EISDIR));
        assert_eq!(rename(&directory, "a", &directory, "g").err(), Some(Errno::ENOTDIR));
        rename(&directory, "a/b", &directory, "b").expect("move up");
        assert_eq!(path_of(&resolve(&directory, "b", true).expect("moved")), "/fs-test-rename/b");
    }

    #[test_case]
    fn writes_past_the_capacity_are_enospc_and_freed_bytes_come_back() {
        let directory = scratch("capacity");
        let (used, capacity) = usage();
        set_capacity(used + 10_000);
        let (file, _) = open_file(&directory, "big", Some(0o644), true, true).expect("create");
        assert_eq!(write_at(&file, 0, &[1; 8_000]), Ok(8_000));
        assert_eq!(write_at(&file, 8_000, &[1; 8_000]), Err(Errno::ENOSPC));
        truncate(&file, 0).expect("truncate");
        assert_eq!(write_at(&file, 0, &[1; 9_000]), Ok(9_000), "truncating gave the bytes back");
        remove(&directory, "big", false).expect("unlink");
        drop(file);
        assert_eq!(usage().0, used, "an unlinked, closed file's bytes are free");
        set_capacity(capacity);
    }
}
