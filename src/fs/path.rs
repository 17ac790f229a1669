//! Path resolution: a path, absolute or relative to a directory, to the node it names —
//! `.` and `..` (the root is its own parent), symbolic links followed (at most
//! [`MAX_SYMLINK_DEPTH`] on the way), every limit checked before any work.

#![forbid(unsafe_code)]

use alloc::{collections::VecDeque, string::String, sync::Arc};

use super::{
    Errno,
    node::{Kind, Node},
    root,
};

/// Longest path a call takes, in bytes (Linux's `PATH_MAX`, terminator included).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest name in a directory (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;
/// Most symbolic links one resolution follows (Linux's limit): a loop ends in `ELOOP`.
pub const MAX_SYMLINK_DEPTH: usize = 40;

/// The parent of directory `node` (the root's is itself).
pub(super) fn parent_of(node: &Arc<Node>) -> Arc<Node> {
    match &node.kind {
        Kind::Directory(directory) => directory.lock().parent.upgrade().unwrap_or_else(root),
        Kind::Synthetic(synthetic) => synthetic.parent.upgrade().unwrap_or_else(root),
        _ => root(),
    }
}

/// The entry `name` of directory `directory`.
pub(super) fn child(directory: &Arc<Node>, name: &str) -> Result<Arc<Node>, Errno> {
    match &directory.kind {
        Kind::Directory(entries) => entries.lock().entries.get(name).cloned().ok_or(Errno::ENOENT),
        Kind::Synthetic(synthetic) => {
            synthetic.provider.lookup(directory, name).ok_or(Errno::ENOENT)
        }
        _ => Err(Errno::ENOTDIR),
    }
}

/// The node `path` names, from `start` if it is relative. `follow_last`: a symbolic link as the
/// last component is followed (else it is the result itself).
///
/// Iterative, not recursive: a link's target takes the place of the link in the components
/// still to walk, so a chain of [`MAX_SYMLINK_DEPTH`] links costs no kernel stack (a hostile
/// program's loop of links ends in `ELOOP` on a stack as deep as a plain lookup's).
pub fn resolve(start: &Arc<Node>, path: &str, follow_last: bool) -> Result<Arc<Node>, Errno> {
    if path.len() >= MAX_PATH_BYTES {
        return Err(Errno::ENAMETOOLONG);
    }
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let mut node = if path.starts_with('/') { root() } else { start.clone() };
    let mut pending: VecDeque<String> =
        path.split('/').filter(|part| !part.is_empty()).map(String::from).collect();
    let mut links_followed = 0;
    while let Some(component) = pending.pop_front() {
        if !node.is_directory() {
            return Err(Errno::ENOTDIR);
        }
        let last = pending.is_empty();
        node = match component.as_str() {
            "." => node,
            ".." => parent_of(&node),
            name if name.len() > MAX_NAME_BYTES => return Err(Errno::ENAMETOOLONG),
            name => {
                let found = child(&node, name)?;
                match &found.kind {
                    Kind::Symlink(target) if !last || follow_last => {
                        links_followed += 1;
                        if links_followed > MAX_SYMLINK_DEPTH {
                            return Err(Errno::ELOOP);
                        }
                        if pending.len() + target.len() >= MAX_PATH_BYTES {
                            return Err(Errno::ENAMETOOLONG);
                        }
                        for part in target.split('/').filter(|part| !part.is_empty()).rev() {
                            pending.push_front(String::from(part));
                        }
                        // Relative to the directory holding the link, or to the root.
                        if target.starts_with('/') { root() } else { node }
                    }
                    _ => found,
                }
            }
        };
    }
    // "dir/" names a directory: a trailing slash after anything else is ENOTDIR.
    if path.ends_with('/') && !node.is_directory() {
        return Err(Errno::ENOTDIR);
    }
    Ok(node)
}

/// The directory that would hold `path`'s last component, and that component (`.` and `..`
/// included: the caller decides what they mean for it).
pub fn resolve_parent(start: &Arc<Node>, path: &str) -> Result<(Arc<Node>, String), Errno> {
    if path.len() >= MAX_PATH_BYTES {
        return Err(Errno::ENAMETOOLONG);
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        // "" is no path; "/" (or "///") is the root, which has no parent entry to make.
        return Err(if path.is_empty() { Errno::ENOENT } else { Errno::EEXIST });
    }
    let (directory, name) = match trimmed.rfind('/') {
        Some(0) => ("/", &trimmed[1..]),
        Some(at) => (&trimmed[..at], &trimmed[at + 1..]),
        None => (".", trimmed),
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(Errno::ENAMETOOLONG);
    }
    let directory = resolve(start, directory, true)?;
    if !directory.is_directory() {
        return Err(Errno::ENOTDIR);
    }
    Ok((directory, String::from(name)))
}

/// Where a path leads: the directory holding the entry it names, and the entry's name there.
/// A call that checks a path and then acts works on the location, not on the path again, so
/// a link swapped in between cannot send the act somewhere the check did not look.
#[derive(Clone, Debug)]
pub struct Location {
    directory: Arc<Node>,
    /// One component (`.` and `..` included), with the path's trailing `/` if it had one.
    entry: String,
    /// Whether a link as the last component was to be followed (and was, to here).
    followed: bool,
}

impl Location {
    /// The directory holding the entry.
    pub fn directory(&self) -> &Arc<Node> {
        &self.directory
    }

    /// The entry, as a path from [`directory`](Self::directory): what the call acts on.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// Whether the path's last link was followed to find this location: a link here now was
    /// swapped in since, and acting on it would reach what nobody checked (`ELOOP` instead).
    pub fn followed(&self) -> bool {
        self.followed
    }

    /// The node at the location (`ELOOP` for a link swapped in since a followed lookup).
    pub fn node(&self) -> Result<Arc<Node>, Errno> {
        let node = resolve(&self.directory, &self.entry, false)?;
        if self.followed && matches!(node.kind, Kind::Symlink(_)) {
            return Err(Errno::ELOOP);
        }
        Ok(node)
    }

    /// The entry's absolute path, without `.`, `..`, links or a trailing `/` (what a policy
    /// checks).
    pub fn path(&self) -> String {
        let name = self.entry.trim_end_matches('/');
        let directory = match name {
            ".." => parent_of(&self.directory),
            _ => self.directory.clone(),
        };
        let mut path = super::path_of(&directory);
        if !matches!(name, "." | "..") {
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(name);
        }
        path
    }
}

/// Where `path` (from `start` if it is relative) leads: links on the way followed, and a link
/// as the last component too if `follow_last` — then the location is where the link chain
/// ends, which need not exist yet (`open` with `O_CREAT` through a link makes its target).
pub fn locate(start: &Arc<Node>, path: &str, follow_last: bool) -> Result<Location, Errno> {
    if path.len() >= MAX_PATH_BYTES {
        return Err(Errno::ENAMETOOLONG);
    }
    if !path.is_empty() && path.trim_end_matches('/').is_empty() {
        return Ok(Location { directory: root(), entry: String::from("."), followed: follow_last });
    }
    let mut start = start.clone();
    let mut path = String::from(path);
    for _ in 0..=MAX_SYMLINK_DEPTH {
        let (directory, name) = resolve_parent(&start, &path)?;
        let trailing = path.ends_with('/');
        if follow_last
            && !matches!(name.as_str(), "." | "..")
            && let Ok(found) = child(&directory, &name)
            && let Kind::Symlink(target) = &found.kind
        {
            path = target.clone();
            if trailing {
                path.push('/');
            }
            if path.len() >= MAX_PATH_BYTES {
                return Err(Errno::ENAMETOOLONG);
            }
            start = directory;
            continue;
        }
        let entry = if trailing { name + "/" } else { name };
        return Ok(Location { directory, entry, followed: follow_last });
    }
    Err(Errno::ELOOP)
}
