//! Checks a user executable and plans its memory image. Every field of the file is untrusted:
//! the result is either a plan whose every segment lies in user space with sane bounds, or an
//! error that says what is wrong. Pure logic; mm carries the plan out.

#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::{fmt, ops::Range};

use elf::{ElfBytes, abi, endian::LittleEndian, file::Class};

use crate::events::Protection;

/// Page size the plan rounds segments to.
const PAGE_SIZE_BYTES: u64 = 4096;
/// Loadable segments a program may have (real ones have 3 or 4).
const MAX_SEGMENTS: usize = 16;

/// Why an executable was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ElfError {
    /// Not parseable as ELF (bad magic, truncated header or table).
    Malformed(&'static str),
    /// ELF, but not a 64-bit little-endian x86_64 executable.
    Unsupported(&'static str),
    /// No loadable segment, or more than Herald accepts.
    SegmentCount(usize),
    /// A segment's bytes lie beyond the end of the file, or it claims more file than memory.
    SegmentOutsideFile(usize),
    /// A segment would be mapped outside user space (into the kernel, or past the end).
    SegmentOutsideUserSpace(usize),
    /// Two segments share a page.
    SegmentsOverlap(usize, usize),
    /// A segment is both writable and executable.
    WritableAndExecutable(usize),
    /// The entry point is not inside an executable segment.
    EntryNotInCode(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed ELF: {what}"),
            Self::Unsupported(what) => write!(f, "unsupported ELF: {what}"),
            Self::SegmentCount(count) => {
                write!(f, "{count} loadable segments (1 to {MAX_SEGMENTS} allowed)")
            }
            Self::SegmentOutsideFile(index) => {
                write!(f, "segment {index} reaches past the end of the file")
            }
            Self::SegmentOutsideUserSpace(index) => {
                write!(f, "segment {index} lies outside user space")
            }
            Self::SegmentsOverlap(a, b) => write!(f, "segments {a} and {b} overlap"),
            Self::WritableAndExecutable(index) => {
                write!(f, "segment {index} is writable and executable")
            }
            Self::EntryNotInCode(entry) => {
                write!(f, "entry point {entry:#x} is not in an executable segment")
            }
        }
    }
}

/// One segment to map.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SegmentPlan {
    /// Page-aligned range to reserve.
    pub pages: Range<u64>,
    /// Where the file bytes go.
    pub load_address: u64,
    /// Which file bytes (the rest of the range is zero).
    pub file_bytes: Range<usize>,
    /// What the pages allow.
    pub protection: Protection,
}

/// A checked executable.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ImagePlan {
    /// First instruction.
    pub entry: u64,
    /// Segments, sorted by address, not overlapping.
    pub segments: Vec<SegmentPlan>,
    /// The system calls the program declares it needs (the `.herald_syscalls` section, bit
    /// `n` for call `n`), if it declares them.
    pub declared_syscalls: Option<u64>,
}

/// Reads the program's declared system calls; a missing or malformed section declares none.
fn declared_syscalls(file: &ElfBytes<'_, LittleEndian>) -> Option<u64> {
    let header = file.section_header_by_name(crate::abi::SYSCALLS_SECTION).ok()??;
    let (data, _) = file.section_data(&header).ok()?;
    let bytes: [u8; 8] = data.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

fn parse_error(error: elf::ParseError) -> ElfError {
    ElfError::Malformed(match error {
        elf::ParseError::BadMagic(_) => "bad magic",
        elf::ParseError::SliceReadError(_) | elf::ParseError::BadOffset(_) => "truncated",
        elf::ParseError::UnsupportedElfClass(_) => "unknown class",
        elf::ParseError::UnsupportedElfEndianness(_) => "unknown byte order",
        elf::ParseError::UnsupportedVersion(_) => "unknown version",
        _ => "inconsistent header or tables",
    })
}

/// Checks `data` and plans its image inside `user_space`.
pub fn plan(data: &[u8], user_space: &Range<u64>) -> Result<ImagePlan, ElfError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(data).map_err(parse_error)?;
    let header = file.ehdr;
    if header.class != Class::ELF64 {
        return Err(ElfError::Unsupported("not 64-bit"));
    }
    if header.e_machine != abi::EM_X86_64 {
        return Err(ElfError::Unsupported("not x86_64"));
    }
    if header.e_type != abi::ET_EXEC {
        return Err(ElfError::Unsupported("not a static executable (ET_EXEC)"));
    }
    let table = file.segments().ok_or(ElfError::Malformed("no program header table"))?;
    let mut segments = Vec::new();
    for (index, segment) in table.iter().filter(|s| s.p_type == abi::PT_LOAD).enumerate() {
        if segments.len() == MAX_SEGMENTS {
            return Err(ElfError::SegmentCount(MAX_SEGMENTS + 1));
        }
        let file_end = segment.p_offset.checked_add(segment.p_filesz);
        let file_bytes = match file_end {
            Some(end) if end <= data.len() as u64 && segment.p_filesz <= segment.p_memsz => {
                segment.p_offset as usize..end as usize
            }
            _ => return Err(ElfError::SegmentOutsideFile(index)),
        };
        let start = segment.p_vaddr / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
        let end = segment
            .p_vaddr
            .checked_add(segment.p_memsz)
            .and_then(|end| end.checked_next_multiple_of(PAGE_SIZE_BYTES))
            .ok_or(ElfError::SegmentOutsideUserSpace(index))?;
        if segment.p_memsz == 0 || start < user_space.start || end > user_space.end {
            return Err(ElfError::SegmentOutsideUserSpace(index));
        }
        let protection = Protection {
            write: segment.p_flags & abi::PF_W != 0,
            execute: segment.p_flags & abi::PF_X != 0,
        };
        if protection.is_write_and_execute() {
            return Err(ElfError::WritableAndExecutable(index));
        }
        segments.push((
            index,
            SegmentPlan {
                pages: start..end,
                load_address: segment.p_vaddr,
                file_bytes,
                protection,
            },
        ));
    }
    if segments.is_empty() {
        return Err(ElfError::SegmentCount(0));
    }
    segments.sort_by_key(|(_, segment)| segment.pages.start);
    for pair in segments.windows(2) {
        if pair[0].1.pages.end > pair[1].1.pages.start {
            return Err(ElfError::SegmentsOverlap(pair[0].0, pair[1].0));
        }
    }
    let entry = header.e_entry;
    let in_code = segments.iter().any(|(_, segment)| {
        segment.protection.execute && (segment.load_address..segment.pages.end).contains(&entry)
    });
    if !in_code {
        return Err(ElfError::EntryNotInCode(entry));
    }
    Ok(ImagePlan {
        entry,
        segments: segments.into_iter().map(|(_, segment)| segment).collect(),
        declared_syscalls: declared_syscalls(&file),
    })
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::vec;

    use super::*;

    const USER: Range<u64> = 0x1000..0x0000_7fff_ffff_f000;

    /// A minimal ELF64 x86_64 executable with the given (vaddr, memsz, flags) segments, each
    /// with 16 file bytes.
    fn executable(entry: u64, segments: &[(u64, u64, u32)]) -> Vec<u8> {
        let phoff = 64u64;
        let data_at = phoff + 56 * segments.len() as u64;
        let mut image = vec![0u8; data_at as usize + 16 * segments.len()];
        image[..4].copy_from_slice(b"\x7fELF");
        image[4] = 2; // ELFCLASS64
        image[5] = 1; // little-endian
        image[6] = 1; // EV_CURRENT
        image[16..18].copy_from_slice(&abi::ET_EXEC.to_le_bytes());
        image[18..20].copy_from_slice(&abi::EM_X86_64.to_le_bytes());
        image[20..24].copy_from_slice(&1u32.to_le_bytes());
        image[24..32].copy_from_slice(&entry.to_le_bytes());
        image[32..40].copy_from_slice(&phoff.to_le_bytes());
        image[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        image[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        image[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (index, &(vaddr, memsz, flags)) in segments.iter().enumerate() {
            let at = (phoff + 56 * index as u64) as usize;
            image[at..at + 4].copy_from_slice(&abi::PT_LOAD.to_le_bytes());
            image[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            let offset = data_at + 16 * index as u64;
            image[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            image[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            image[at + 32..at + 40].copy_from_slice(&16u64.to_le_bytes());
            image[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        image
    }

    const RX: u32 = abi::PF_R | abi::PF_X;
    const RW: u32 = abi::PF_R | abi::PF_W;

    #[test_case]
    fn a_valid_executable_is_planned() {
        let data = executable(0x401000, &[(0x401000, 0x100, RX), (0x402010, 0x2000, RW)]);
        let plan = plan(&data, &USER).expect("valid");
        assert_eq!(plan.entry, 0x401000);
        assert_eq!(plan.segments[1].pages, 0x402000..0x405000);
        assert_eq!(plan.segments[1].protection, Protection::READ_WRITE);
        assert_eq!(plan.segments[0].protection, Protection::READ_EXECUTE);
    }

    #[test_case]
    fn malformed_executables_are_refused_with_the_reason() {
        let good = executable(0x401000, &[(0x401000, 0x100, RX)]);
        assert_eq!(plan(&good[..40], &USER), Err(ElfError::Malformed("truncated")));
        let mut magic = good.clone();
        magic[1] = b'X';
        assert_eq!(plan(&magic, &USER), Err(ElfError::Malformed("bad magic")));
        let kernel = executable(0xffff_8000_0000_0000, &[(0xffff_8000_0000_0000, 0x100, RX)]);
        assert_eq!(plan(&kernel, &USER), Err(ElfError::SegmentOutsideUserSpace(0)));
        let wraps = executable(0x401000, &[(0x401000, u64::MAX, RX)]);
        assert_eq!(plan(&wraps, &USER), Err(ElfError::SegmentOutsideUserSpace(0)));
        let null_page = executable(0x10, &[(0x0, 0x100, RX)]);
        assert_eq!(plan(&null_page, &USER), Err(ElfError::SegmentOutsideUserSpace(0)));
        let overlap = executable(0x401000, &[(0x401000, 0x1000, RX), (0x401800, 0x100, RW)]);
        assert_eq!(plan(&overlap, &USER), Err(ElfError::SegmentsOverlap(0, 1)));
        let wx = executable(0x401000, &[(0x401000, 0x100, RX | abi::PF_W)]);
        assert_eq!(plan(&wx, &USER), Err(ElfError::WritableAndExecutable(0)));
        let entry = executable(0x500000, &[(0x401000, 0x100, RX)]);
        assert_eq!(plan(&entry, &USER), Err(ElfError::EntryNotInCode(0x500000)));
        let none = executable(0x401000, &[]);
        assert_eq!(plan(&none, &USER), Err(ElfError::SegmentCount(0)));
        let mut past_file = good.clone();
        past_file[64 + 32..64 + 40].copy_from_slice(&0x10_0000u64.to_le_bytes()); // p_filesz
        past_file[64 + 40..64 + 48].copy_from_slice(&0x10_0000u64.to_le_bytes()); // p_memsz
        assert_eq!(plan(&past_file, &USER), Err(ElfError::SegmentOutsideFile(0)));
    }
}
