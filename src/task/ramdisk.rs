//! Reads the boot ramdisk the runner packs (`tools/runner/src/ramdisk.rs` writes it): a header,
//! a table of named entries, and the files. Everything is bounds-checked — a corrupt ramdisk
//! yields an error, never a panic.

#![forbid(unsafe_code)]

use core::fmt;

const MAGIC: &[u8; 8] = b"HRDK0001";
const NAME_LEN_BYTES: usize = 32;
const HEADER_LEN_BYTES: usize = 16;
const ENTRY_LEN_BYTES: usize = NAME_LEN_BYTES + 16;

/// Why a ramdisk was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum RamdiskError {
    /// Too short for its header or entry table.
    Truncated,
    /// Not a Herald ramdisk.
    BadMagic,
    /// An entry's data lies outside the image.
    EntryOutOfBounds(usize),
    /// An entry's name is not UTF-8.
    BadName(usize),
}

impl fmt::Display for RamdiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("ramdisk truncated"),
            Self::BadMagic => f.write_str("not a Herald ramdisk (bad magic)"),
            Self::EntryOutOfBounds(index) => write!(f, "ramdisk entry {index} lies outside it"),
            Self::BadName(index) => write!(f, "ramdisk entry {index} has a non-UTF-8 name"),
        }
    }
}

/// A validated ramdisk.
#[derive(Clone, Copy, Debug)]
pub struct Ramdisk<'a> {
    image: &'a [u8],
    count: usize,
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl<'a> Ramdisk<'a> {
    /// Checks the header and every entry of `image`.
    pub fn parse(image: &'a [u8]) -> Result<Self, RamdiskError> {
        if image.len() < HEADER_LEN_BYTES {
            return Err(RamdiskError::Truncated);
        }
        if &image[..8] != MAGIC {
            return Err(RamdiskError::BadMagic);
        }
        let mut count_bytes = [0; 4];
        count_bytes.copy_from_slice(&image[8..12]);
        let count = u32::from_le_bytes(count_bytes) as usize;
        let table_end = count
            .checked_mul(ENTRY_LEN_BYTES)
            .and_then(|len| len.checked_add(HEADER_LEN_BYTES))
            .ok_or(RamdiskError::Truncated)?;
        if image.len() < table_end {
            return Err(RamdiskError::Truncated);
        }
        let ramdisk = Self { image, count };
        for index in 0..count {
            ramdisk.entry(index)?;
        }
        Ok(ramdisk)
    }

    fn entry(&self, index: usize) -> Result<(&'a str, &'a [u8]), RamdiskError> {
        let at = HEADER_LEN_BYTES + index * ENTRY_LEN_BYTES;
        let raw_name = &self.image[at..at + NAME_LEN_BYTES];
        let name_len = raw_name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN_BYTES);
        let name = core::str::from_utf8(&raw_name[..name_len])
            .map_err(|_| RamdiskError::BadName(index))?;
        let offset = read_u64(self.image, at + NAME_LEN_BYTES);
        let len = read_u64(self.image, at + NAME_LEN_BYTES + 8);
        let data = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(offset, len)| self.image.get(offset..offset.checked_add(len)?))
            .ok_or(RamdiskError::EntryOutOfBounds(index))?;
        Ok((name, data))
    }

    /// Every file, in the runner's (sorted) order.
    pub fn files(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        (0..self.count).filter_map(|index| self.entry(index).ok())
    }

    /// The file called `name`.
    pub fn find(&self, name: &str) -> Option<&'a [u8]> {
        self.files().find(|(file, _)| *file == name).map(|(_, data)| data)
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn image(entries: &[(&str, u64, u64)], data: &[u8]) -> Vec<u8> {
        let mut image = Vec::new();
        image.extend_from_slice(MAGIC);
        image.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        image.extend_from_slice(&[0; 4]);
        for (name, offset, len) in entries {
            let mut padded = [0u8; NAME_LEN_BYTES];
            padded[..name.len()].copy_from_slice(name.as_bytes());
            image.extend_from_slice(&padded);
            image.extend_from_slice(&offset.to_le_bytes());
            image.extend_from_slice(&len.to_le_bytes());
        }
        image.extend_from_slice(data);
        image
    }

    #[test_case]
    fn finds_files_by_name() {
        let data_at = (HEADER_LEN_BYTES + 2 * ENTRY_LEN_BYTES) as u64;
        let bytes = image(&[("a", data_at, 2), ("hello", data_at + 2, 3)], b"xyabc");
        let ramdisk = Ramdisk::parse(&bytes).expect("valid");
        assert_eq!(ramdisk.find("hello"), Some(&b"abc"[..]));
        assert_eq!(ramdisk.find("a"), Some(&b"xy"[..]));
        assert_eq!(ramdisk.find("nope"), None);
        assert_eq!(ramdisk.files().count(), 2);
    }

    #[test_case]
    fn refuses_corrupt_images() {
        assert_eq!(Ramdisk::parse(b"HRDK").err(), Some(RamdiskError::Truncated));
        let mut bad = image(&[], b"");
        bad[0] = b'X';
        assert_eq!(Ramdisk::parse(&bad).err(), Some(RamdiskError::BadMagic));
        let mut many = image(&[], b"");
        many[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Ramdisk::parse(&many).err(), Some(RamdiskError::Truncated));
        let past_end = image(&[("a", 10, u64::MAX)], b"");
        assert_eq!(Ramdisk::parse(&past_end).err(), Some(RamdiskError::EntryOutOfBounds(0)));
        let huge_offset = image(&[("a", u64::MAX, 1)], b"");
        assert_eq!(Ramdisk::parse(&huge_offset).err(), Some(RamdiskError::EntryOutOfBounds(0)));
    }
}
