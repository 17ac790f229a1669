//! Synthetic directories and generated files: nodes whose entries and bytes a provider makes
//! each time they are looked up or read, kept nowhere in the tree — how the task layer's
//! `/proc` shows processes the file system knows nothing about.
//!
//! A provider's nodes are made afresh on each lookup, with inode numbers the provider picks
//! (stable ones: the same entry gets the same number, as `find` and `ls -i` expect); reading a
//! generated file renders it whole and hands out the part asked for, so each `read` sees the
//! state of that moment. Synthetic nodes cannot be written, made, removed or renamed.

#![forbid(unsafe_code)]

use alloc::{string::String, sync::Arc, vec::Vec};

use super::{
    Errno, Listing,
    node::{Kind, Node},
};
use crate::sync::IrqSpinLock;

/// Makes a synthetic directory's entries.
pub trait Provider: Send + Sync {
    /// The entry `name` of `directory` (the node this provider serves), if there is one.
    fn lookup(&self, directory: &Arc<Node>, name: &str) -> Option<Arc<Node>>;
    /// Its entries (without `.` and `..`), as a listing shows them.
    fn list(&self) -> Vec<Listing>;
}

/// Renders a generated file's whole contents (`ESRCH` and the like once what it shows is gone).
pub type Render = Arc<dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync>;

/// A synthetic directory: its provider, and where it hangs.
pub(super) struct Synthetic {
    pub(super) provider: Arc<dyn Provider>,
    pub(super) parent: alloc::sync::Weak<Node>,
    pub(super) name: String,
}

fn node(inode: u64, kind: Kind, permissions: u32) -> Arc<Node> {
    Arc::new(Node { inode, kind, meta: IrqSpinLock::new(super::meta(permissions)) })
}

/// A synthetic directory `name` in `parent`, whose entries `provider` makes.
pub fn synthetic_directory(
    inode: u64,
    parent: &Arc<Node>,
    name: &str,
    provider: Arc<dyn Provider>,
) -> Arc<Node> {
    let synthetic =
        Synthetic { provider, parent: Arc::downgrade(parent), name: String::from(name) };
    node(inode, Kind::Synthetic(synthetic), 0o555)
}

/// A read-only file whose contents `render` makes at each read.
pub fn generated_file(inode: u64, render: Render) -> Arc<Node> {
    node(inode, Kind::Generated(render), 0o444)
}

/// A symbolic link to `target`, made for one lookup.
pub fn synthetic_link(inode: u64, target: String) -> Arc<Node> {
    node(inode, Kind::Symlink(target), 0o777)
}

/// Puts a synthetic directory served by `provider` at `name` in the root (at boot: `/proc`).
pub fn mount(name: &str, inode: u64, provider: Arc<dyn Provider>) -> Result<(), Errno> {
    let root = super::root();
    let directory = synthetic_directory(inode, &root, name, provider);
    super::insert(&root, name, directory).map(|_| ())
}

/// Copies the part of `render`'s contents from `offset` into `out`; how many bytes.
pub(super) fn read_generated(render: &Render, offset: u64, out: &mut [u8]) -> Result<usize, Errno> {
    let bytes = render()?;
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
    let count = out.len().min(bytes.len() - start);
    out[..count].copy_from_slice(&bytes[start..start + count]);
    Ok(count)
}
