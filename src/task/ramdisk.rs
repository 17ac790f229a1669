//! Reads the boot image's file tree: a cpio archive in the `newc` format (cpio(5), the format
//! of Linux's initramfs), which the runner packs (`tools/runner/src/ramdisk.rs`). Every header
//! is checked when the archive is first parsed — a corrupt archive yields an error naming the
//! offset, never a panic — and its regular files are indexed by path then (a lookup is a binary
//! search; spawning looks up a program and its manifest), read in place.

#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

/// `newc` header magic, and the variant with checksums (accepted; the sums are not checked).
const NEWC_MAGIC: &[u8; 6] = b"070701";
const NEWC_CRC_MAGIC: &[u8; 6] = b"070702";
/// Bytes of a header: the magic and 13 eight-digit hexadecimal fields.
const HEADER_BYTES: usize = 110;
/// The entry that ends an archive.
const TRAILER: &str = "TRAILER!!!";
/// The type bits of `mode`, and the types an image may hold (`S_IFMT`, `S_IFREG`, `S_IFDIR`,
/// `S_IFLNK`: a symbolic link's data is its target).
const TYPE_MASK: u32 = 0o170_000;
const REGULAR: u32 = 0o100_000;
const DIRECTORY: u32 = 0o040_000;
const SYMLINK: u32 = 0o120_000;
/// Field indices in a header (after the magic).
const FIELD_MODE: usize = 1;
const FIELD_FILE_SIZE: usize = 6;
const FIELD_NAME_SIZE: usize = 11;

/// Why an archive was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum RamdiskError {
    /// It ends inside the header, name or data of the entry at this offset.
    Truncated(usize),
    /// The entry at this offset does not start with a `newc` magic.
    BadMagic(usize),
    /// A header field at this offset is not hexadecimal.
    BadField(usize),
    /// The name of the entry at this offset is not UTF-8 or lacks its NUL.
    BadName(usize),
    /// No trailer entry ends the archive.
    NoTrailer,
}

impl fmt::Display for RamdiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(at) => write!(f, "image truncated in the entry at byte {at}"),
            Self::BadMagic(at) => write!(f, "not a cpio newc entry at byte {at}"),
            Self::BadField(at) => write!(f, "a header field at byte {at} is not hexadecimal"),
            Self::BadName(at) => write!(f, "the entry at byte {at} has a malformed name"),
            Self::NoTrailer => f.write_str("the image has no TRAILER!!! entry"),
        }
    }
}

/// One archive entry: its path (without a leading `/` or `./`), mode, contents.
#[derive(Clone, Copy, Debug)]
struct Entry<'a> {
    path: &'a str,
    mode: u32,
    data: &'a [u8],
    next: usize,
}

/// What an image entry is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (its data is the target).
    Symlink,
}

/// One entry of the image, as the file system is built from it.
#[derive(Clone, Copy, Debug)]
pub struct ImageEntry<'a> {
    /// Its path, without a leading `/` or `./`.
    pub path: &'a str,
    /// What it is.
    pub kind: EntryKind,
    /// Its permission bits (`0o7777` of the mode).
    pub permissions: u32,
    /// Its contents (a link's target).
    pub data: &'a [u8],
}

/// A validated archive: its regular files by path (sorted; a later entry of the same path
/// replaces an earlier one, as unpacking the archive would), and every entry in order.
#[derive(Debug)]
pub struct Ramdisk<'a> {
    files: Vec<(&'a str, &'a [u8])>,
    entries: Vec<ImageEntry<'a>>,
}

impl<'a> Ramdisk<'a> {
    /// Checks every entry of `image`, up to its trailer, and indexes its regular files.
    pub fn parse(image: &'a [u8]) -> Result<Self, RamdiskError> {
        let mut files = Vec::new();
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            let entry = entry_at(image, at)?.ok_or(RamdiskError::NoTrailer)?;
            if entry.path == TRAILER {
                break;
            }
            let kind = match entry.mode & TYPE_MASK {
                REGULAR => Some(EntryKind::File),
                DIRECTORY => Some(EntryKind::Directory),
                SYMLINK => Some(EntryKind::Symlink),
                // Device nodes, FIFOs and sockets are the kernel's to make, not an image's.
                _ => None,
            };
            if kind == Some(EntryKind::File) {
                files.push((entry.path, entry.data));
            }
            if let Some(kind) = kind
                && !entry.path.is_empty()
            {
                let permissions = entry.mode & 0o7777;
                entries.push(ImageEntry { path: entry.path, kind, permissions, data: entry.data });
            }
            at = entry.next;
        }
        // Stable: of equal paths the last stays last, and the dedup keeps it.
        files.sort_by_key(|(path, _)| *path);
        files.reverse();
        files.dedup_by_key(|(path, _)| *path);
        files.reverse();
        Ok(Self { files, entries })
    }

    /// Every file, directory and symbolic link, in the archive's order (a directory may come
    /// after what it holds, or not at all: its files imply it).
    pub fn entries(&self) -> impl Iterator<Item = ImageEntry<'a>> + '_ {
        self.entries.iter().copied()
    }

    /// Every regular file, as (path, contents), by path.
    pub fn files(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.files.iter().copied()
    }

    /// The regular file at `path` (`/bin/x`, `bin/x` and `./bin/x` name the same file).
    pub fn find(&self, path: &str) -> Option<&'a [u8]> {
        let path = normalized(path);
        let index = self.files.binary_search_by_key(&path, |(file, _)| file).ok()?;
        Some(self.files[index].1)
    }

    /// The regular files directly in directory `directory`, as (name, contents), by name.
    pub fn directory<'d>(
        &self,
        directory: &'d str,
    ) -> impl Iterator<Item = (&'a str, &'a [u8])> + use<'a, 'd, '_> {
        let directory = normalized(directory).trim_end_matches('/');
        self.files().filter_map(move |(path, data)| {
            let name = path.strip_prefix(directory)?.strip_prefix('/')?;
            (!name.contains('/')).then_some((name, data))
        })
    }
}

fn normalized(path: &str) -> &str {
    path.trim_start_matches("./").trim_start_matches('/')
}

/// Reads the entry at `at`: `None` if the image ends exactly there.
fn entry_at(image: &[u8], at: usize) -> Result<Option<Entry<'_>>, RamdiskError> {
    if at >= image.len() {
        return Ok(None);
    }
    let header = image.get(at..at + HEADER_BYTES).ok_or(RamdiskError::Truncated(at))?;
    if &header[..6] != NEWC_MAGIC && &header[..6] != NEWC_CRC_MAGIC {
        return Err(RamdiskError::BadMagic(at));
    }
    let field = |index: usize| -> Result<u32, RamdiskError> {
        let start = 6 + index * 8;
        let digits = core::str::from_utf8(&header[start..start + 8])
            .map_err(|_| RamdiskError::BadField(at + start))?;
        u32::from_str_radix(digits, 16).map_err(|_| RamdiskError::BadField(at + start))
    };
    let mode = field(FIELD_MODE)?;
    let data_len = field(FIELD_FILE_SIZE)? as usize;
    let name_len = field(FIELD_NAME_SIZE)? as usize;
    let name_start = at + HEADER_BYTES;
    let raw_name = name_start
        .checked_add(name_len)
        .and_then(|end| image.get(name_start..end))
        .ok_or(RamdiskError::Truncated(at))?;
    let Some((&0, name)) = raw_name.split_last() else { return Err(RamdiskError::BadName(at)) };
    let name = core::str::from_utf8(name).map_err(|_| RamdiskError::BadName(at))?;
    let data_start = (name_start + name_len).next_multiple_of(4);
    let data = data_start
        .checked_add(data_len)
        .and_then(|end| image.get(data_start..end))
        .ok_or(RamdiskError::Truncated(at))?;
    let next = (data_start + data_len).next_multiple_of(4);
    Ok(Some(Entry { path: normalized(name), mode, data, next }))
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::{format, vec::Vec};

    use super::*;

    fn entry(archive: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        archive.extend_from_slice(NEWC_MAGIC);
        let fields = [1, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        for value in fields {
            archive.extend_from_slice(format!("{value:08x}").as_bytes());
        }
        archive.extend_from_slice(name.as_bytes());
        archive.push(0);
        archive.resize(archive.len().next_multiple_of(4), 0);
        archive.extend_from_slice(data);
        archive.resize(archive.len().next_multiple_of(4), 0);
    }

    fn archive() -> Vec<u8> {
        let mut archive = Vec::new();
        entry(&mut archive, "bin", 0o040_755, b"");
        entry(&mut archive, "bin/hello", 0o100_755, b"abc");
        entry(&mut archive, "./bin/a", 0o100_644, b"xy");
        entry(&mut archive, "t/x.sh", 0o100_644, b"echo");
        entry(&mut archive, TRAILER, 0, b"");
        archive
    }

    #[test_case]
    fn finds_files_by_path_and_lists_a_directory() {
        let bytes = archive();
        let ramdisk = Ramdisk::parse(&bytes).expect("valid");
        assert_eq!(ramdisk.find("/bin/hello"), Some(&b"abc"[..]));
        assert_eq!(ramdisk.find("bin/a"), Some(&b"xy"[..]));
        assert_eq!(ramdisk.find("t/x.sh"), Some(&b"echo"[..]));
        assert_eq!(ramdisk.find("bin"), None, "a directory is not a file");
        assert_eq!(ramdisk.find("nope"), None);
        assert_eq!(ramdisk.files().count(), 3);
        let names: Vec<&str> = ramdisk.directory("/bin").map(|(name, _)| name).collect();
        assert_eq!(names, ["a", "hello"]);
        let kinds: Vec<(&str, EntryKind, u32)> =
            ramdisk.entries().map(|entry| (entry.path, entry.kind, entry.permissions)).collect();
        assert_eq!(kinds[0], ("bin", EntryKind::Directory, 0o755));
        assert_eq!(kinds[2], ("bin/a", EntryKind::File, 0o644));
    }

    #[test_case]
    fn a_later_entry_of_the_same_path_replaces_an_earlier_one() {
        let mut bytes = Vec::new();
        entry(&mut bytes, "bin/x", 0o100_755, b"old");
        entry(&mut bytes, "bin/y", 0o100_755, b"y");
        entry(&mut bytes, "/bin/x", 0o100_755, b"new");
        entry(&mut bytes, TRAILER, 0, b"");
        let ramdisk = Ramdisk::parse(&bytes).expect("valid");
        assert_eq!(ramdisk.find("bin/x"), Some(&b"new"[..]));
        assert_eq!(ramdisk.files().count(), 2);
    }

    #[test_case]
    fn refuses_corrupt_archives() {
        let bytes = archive();
        assert_eq!(Ramdisk::parse(&bytes[..50]).err(), Some(RamdiskError::Truncated(0)));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(Ramdisk::parse(&bad).err(), Some(RamdiskError::BadMagic(0)));
        let mut bad_field = bytes.clone();
        bad_field[6 + 6 * 8] = b'g';
        assert!(matches!(Ramdisk::parse(&bad_field), Err(RamdiskError::BadField(_))));
        let mut huge = bytes.clone();
        huge[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"ffffffff");
        assert_eq!(Ramdisk::parse(&huge).err(), Some(RamdiskError::Truncated(0)));
        let without_trailer = &bytes[..bytes.len() - 124];
        assert_eq!(Ramdisk::parse(without_trailer).err(), Some(RamdiskError::NoTrailer));
        assert_eq!(Ramdisk::parse(&[]).err(), Some(RamdiskError::NoTrailer));
    }
}
