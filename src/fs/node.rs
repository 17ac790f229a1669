//! A file-system node: a directory, a regular file, a symbolic link, a device, a pipe, or a
//! synthetic directory or generated file (`synthetic`), with its
//! inode number, permissions, link count and modification time. A regular file's bytes are the
//! boot image's, read in place, until the first write copies them.

#![forbid(unsafe_code)]

use alloc::{
    collections::BTreeMap,
    string::String,
    sync::{Arc, Weak},
    vec::Vec,
};

use crate::sync::IrqSpinLock;

/// The devices `/dev` holds.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Device {
    /// `/dev/null`: reads end at once, writes vanish.
    Null,
    /// `/dev/zero`: reads give zeros, writes vanish.
    Zero,
    /// `/dev/console` and `/dev/tty`: the console.
    Console,
    /// `/dev/urandom` and `/dev/random`: varied bytes (not secret: no entropy source yet).
    Random,
}

impl Device {
    /// Linux's device number for it (`st_rdev`, major << 8 | minor for these small ones).
    pub const fn number(self) -> u64 {
        match self {
            Self::Null => (1 << 8) | 3,
            Self::Zero => (1 << 8) | 5,
            Self::Random => (1 << 8) | 9,
            Self::Console => (5 << 8) | 1,
        }
    }
}

/// A regular file's bytes: the boot image's until written, then its own.
#[derive(Debug)]
pub(super) enum Data {
    Image(&'static [u8]),
    Owned(Vec<u8>),
}

impl Data {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Self::Image(bytes) => bytes,
            Self::Owned(bytes) => bytes,
        }
    }

    /// Makes the bytes `len` long (zeros added, or the tail cut), the file's own from now on;
    /// `ENOSPC` if the file system's capacity cannot hold the growth.
    pub(super) fn resize(&mut self, len: usize) -> Result<&mut Vec<u8>, super::Errno> {
        if let Self::Image(bytes) = *self {
            super::charge(bytes.len())?;
            *self = Self::Owned(bytes.to_vec());
        }
        let Self::Owned(bytes) = self else { unreachable!("made owned above") };
        if len > bytes.len() {
            super::charge(len - bytes.len())?;
        } else {
            super::release(bytes.len() - len);
        }
        bytes.resize(len, 0);
        Ok(bytes)
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        if let Self::Owned(bytes) = self {
            super::release(bytes.len());
        }
    }
}

/// What a node is.
pub(super) enum Kind {
    Directory(IrqSpinLock<Directory>),
    File(IrqSpinLock<Data>),
    Symlink(String),
    Device(Device),
    Pipe(Arc<super::Pipe>),
    Synthetic(super::synthetic::Synthetic),
    Generated(super::synthetic::Render),
}

/// A directory's entries, and where it hangs (its parent, and its name there).
#[derive(Default)]
pub(super) struct Directory {
    pub(super) entries: BTreeMap<String, Arc<Node>>,
    pub(super) parent: Weak<Node>,
    pub(super) name: String,
}

/// What `stat` reports of a node.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Stat {
    /// Inode number.
    pub inode: u64,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    /// Hard links to it.
    pub links: u32,
    /// Size in bytes (a link's target length; 0 for devices).
    pub size_bytes: u64,
    /// The device it is, for device nodes.
    pub device: u64,
    /// Last modification, in milliseconds since 1970.
    pub modified_ms: u64,
}

/// Type bits of `st_mode` (`S_IFDIR`, `S_IFREG`, `S_IFLNK`, `S_IFCHR`).
pub const S_IFDIR: u32 = 0o040_000;
/// See [`S_IFDIR`].
pub const S_IFREG: u32 = 0o100_000;
/// See [`S_IFDIR`].
pub const S_IFLNK: u32 = 0o120_000;
/// See [`S_IFDIR`].
pub const S_IFCHR: u32 = 0o020_000;
/// See [`S_IFDIR`]: a pipe.
pub const S_IFIFO: u32 = 0o010_000;

/// Mutable facts about a node.
#[derive(Debug)]
pub(super) struct Meta {
    pub(super) permissions: u32,
    pub(super) links: u32,
    pub(super) modified_ms: u64,
}

/// A node of the tree.
pub struct Node {
    pub(super) inode: u64,
    pub(super) kind: Kind,
    pub(super) meta: IrqSpinLock<Meta>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "inode {} ({:o})", self.inode, self.stat().mode)
    }
}

impl Node {
    /// Whether it is a directory.
    pub fn is_directory(&self) -> bool {
        matches!(self.kind, Kind::Directory(_) | Kind::Synthetic(_))
    }

    /// The device it is, if it is a device node.
    pub fn device(&self) -> Option<Device> {
        match self.kind {
            Kind::Device(device) => Some(device),
            _ => None,
        }
    }

    /// Its `stat`.
    pub fn stat(&self) -> Stat {
        let meta = self.meta.lock();
        let (kind_bits, size_bytes, device) = match &self.kind {
            Kind::Directory(_) | Kind::Synthetic(_) => (S_IFDIR, 0, 0),
            // As Linux's `/proc`: the size is not known until it is read.
            Kind::Generated(_) => (S_IFREG, 0, 0),
            Kind::File(data) => (S_IFREG, data.lock().bytes().len() as u64, 0),
            Kind::Symlink(target) => (S_IFLNK, target.len() as u64, 0),
            Kind::Device(device) => (S_IFCHR, 0, device.number()),
            Kind::Pipe(pipe) => (S_IFIFO, pipe.len_bytes() as u64, 0),
        };
        Stat {
            inode: self.inode,
            mode: kind_bits | meta.permissions,
            links: meta.links,
            size_bytes,
            device,
            modified_ms: meta.modified_ms,
        }
    }
}
