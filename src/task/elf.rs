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
/// Where a position-independent executable (static-PIE: `ET_DYN` without an interpreter) is
/// placed: its lowest page goes here, where a fixed-address one usually starts.
pub const PIE_LOAD_BASE: u64 = 0x40_0000;
/// Bytes of an interpreter's path an error keeps.
const INTERPRETER_NAME_BYTES: usize = 48;

/// The interpreter a dynamically linked executable asks for (its `PT_INTERP`), as much of it as
/// fits; kept inline so errors stay `Copy`.
#[derive(Clone, Copy, Eq, PartialEq)]
pub struct InterpreterName {
    bytes: [u8; INTERPRETER_NAME_BYTES],
    len: u8,
    truncated: bool,
}

impl InterpreterName {
    fn new(path: &[u8]) -> Self {
        let path = path.split(|&byte| byte == 0).next().unwrap_or_default();
        let len = path.len().min(INTERPRETER_NAME_BYTES);
        let mut bytes = [0; INTERPRETER_NAME_BYTES];
        bytes[..len].copy_from_slice(&path[..len]);
        Self { bytes, len: len as u8, truncated: path.len() > len }
    }
}

impl fmt::Display for InterpreterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.bytes[..usize::from(self.len)].utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        if self.truncated { f.write_str("...") } else { Ok(()) }
    }
}

impl fmt::Debug for InterpreterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", alloc::format!("{self}"))
    }
}

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
    /// Dynamically linked: it asks for this interpreter, and Herald runs static programs only.
    Dynamic(InterpreterName),
    /// More than one `PT_TLS`, or one whose sizes or alignment make no sense.
    BadTls,
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
            Self::Dynamic(interpreter) => write!(
                f,
                "dynamically linked (it asks for the interpreter {interpreter}); Herald runs \
                 static executables only: link with -static"
            ),
            Self::BadTls => f.write_str("more than one or an inconsistent TLS segment"),
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

/// The thread-local storage template a program declares (`PT_TLS`), at its loaded address.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct TlsPlan {
    /// Where the initialised part starts, in the loaded image.
    pub template_address: u64,
    /// Bytes of the initialised part.
    pub file_bytes: u64,
    /// Bytes of the whole block (the rest of it zero).
    pub memory_bytes: u64,
    /// Required alignment (a power of two).
    pub align: u64,
}

/// A checked executable.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ImagePlan {
    /// First instruction (loaded address).
    pub entry: u64,
    /// What was added to every address in the file: 0 for a fixed-address executable
    /// (`ET_EXEC`), the placement of a position-independent one (static-PIE).
    pub load_bias: u64,
    /// Where the program headers are in the loaded image (`AT_PHDR`); `None` if no loaded
    /// segment holds them.
    pub program_headers: Option<u64>,
    /// The size of one program header (`AT_PHENT`).
    pub program_header_bytes: u16,
    /// How many there are (`AT_PHNUM`).
    pub program_header_count: u16,
    /// Its thread-local storage template, if it has one.
    pub tls: Option<TlsPlan>,
    /// Segments, sorted by address, not overlapping.
    pub segments: Vec<SegmentPlan>,
    /// The system calls the program declares it needs (the `.herald_syscalls` section, bit
    /// `n` for call `n`), if it declares them.
    pub declared_syscalls: Option<u64>,
    /// It is one of Herald's programs (its executable has `abi::ABI_SECTION`); otherwise a
    /// Linux program, started and served by Linux's conventions.
    pub herald_abi: bool,
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
    let table = file.segments().ok_or(ElfError::Malformed("no program header table"))?;
    if let Some(interpreter) = table.iter().find(|s| s.p_type == abi::PT_INTERP) {
        let start = usize::try_from(interpreter.p_offset).unwrap_or(usize::MAX);
        let len = usize::try_from(interpreter.p_filesz).unwrap_or(usize::MAX);
        let path = data.get(start..start.saturating_add(len)).unwrap_or_default();
        return Err(ElfError::Dynamic(InterpreterName::new(path)));
    }
    let lowest_page = table
        .iter()
        .filter(|s| s.p_type == abi::PT_LOAD)
        .map(|s| s.p_vaddr / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES)
        .min()
        .unwrap_or(0);
    let load_bias = match header.e_type {
        abi::ET_EXEC => 0,
        // Static-PIE: no interpreter (checked above), so it relocates itself once running.
        abi::ET_DYN => PIE_LOAD_BASE.wrapping_sub(lowest_page),
        _ => return Err(ElfError::Unsupported("not an executable (ET_EXEC or static-PIE ET_DYN)")),
    };
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
        let vaddr = segment.p_vaddr.wrapping_add(load_bias);
        let start = vaddr / PAGE_SIZE_BYTES * PAGE_SIZE_BYTES;
        let end = vaddr
            .checked_add(segment.p_memsz)
            .and_then(|end| end.checked_next_multiple_of(PAGE_SIZE_BYTES))
            .ok_or(ElfError::SegmentOutsideUserSpace(index))?;
        if segment.p_memsz == 0 || start < user_space.start || end > user_space.end {
            return Err(ElfError::SegmentOutsideUserSpace(index));
        }
        let protection = Protection {
            read: true,
            write: segment.p_flags & abi::PF_W != 0,
            execute: segment.p_flags & abi::PF_X != 0,
        };
        if protection.is_write_and_execute() {
            return Err(ElfError::WritableAndExecutable(index));
        }
        segments.push((
            index,
            SegmentPlan { pages: start..end, load_address: vaddr, file_bytes, protection },
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
    let entry = header.e_entry.wrapping_add(load_bias);
    let in_code = segments.iter().any(|(_, segment)| {
        segment.protection.execute && (segment.load_address..segment.pages.end).contains(&entry)
    });
    if !in_code {
        return Err(ElfError::EntryNotInCode(entry));
    }
    // The headers' address: a PT_PHDR says it; else the loaded segment whose file bytes hold
    // them (what Linux's loader does for AT_PHDR).
    let headers_bytes = u64::from(header.e_phnum) * u64::from(header.e_phentsize);
    let program_headers = match table.iter().find(|s| s.p_type == abi::PT_PHDR) {
        Some(phdr) => Some(phdr.p_vaddr.wrapping_add(load_bias)),
        None => table.iter().filter(|s| s.p_type == abi::PT_LOAD).find_map(|s| {
            let inside = header.e_phoff >= s.p_offset
                && header.e_phoff + headers_bytes <= s.p_offset + s.p_filesz;
            inside.then(|| s.p_vaddr.wrapping_add(load_bias) + (header.e_phoff - s.p_offset))
        }),
    };
    let mut tls_segments = table.iter().filter(|s| s.p_type == abi::PT_TLS);
    let tls = match (tls_segments.next(), tls_segments.next()) {
        (None, _) => None,
        (Some(tls), None)
            if tls.p_filesz <= tls.p_memsz
                && (tls.p_align <= 1 || tls.p_align.is_power_of_two()) =>
        {
            Some(TlsPlan {
                template_address: tls.p_vaddr.wrapping_add(load_bias),
                file_bytes: tls.p_filesz,
                memory_bytes: tls.p_memsz,
                align: tls.p_align.max(1),
            })
        }
        _ => return Err(ElfError::BadTls),
    };
    // PT_GNU_STACK needs nothing: user stacks are never executable, whatever it asks.
    Ok(ImagePlan {
        entry,
        load_bias,
        program_headers,
        program_header_bytes: header.e_phentsize,
        program_header_count: header.e_phnum,
        tls,
        segments: segments.into_iter().map(|(_, segment)| segment).collect(),
        declared_syscalls: declared_syscalls(&file),
        herald_abi: file.section_header_by_name(crate::abi::ABI_SECTION).ok().flatten().is_some(),
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
        let loads: Vec<Header> = segments
            .iter()
            .map(|&(vaddr, memsz, flags)| (abi::PT_LOAD, vaddr, memsz, flags))
            .collect();
        with_headers(abi::ET_EXEC, entry, &loads)
    }

    /// (type, vaddr, memsz, flags) of one program header.
    type Header = (u32, u64, u64, u32);

    /// [`executable`] of ELF type `kind` with any program headers, each with 16 file bytes
    /// (a `PT_INTERP`'s hold an interpreter path).
    fn with_headers(kind: u16, entry: u64, segments: &[Header]) -> Vec<u8> {
        let phoff = 64u64;
        let data_at = phoff + 56 * segments.len() as u64;
        let mut image = vec![0u8; data_at as usize + 16 * segments.len()];
        image[..4].copy_from_slice(b"\x7fELF");
        image[4] = 2; // ELFCLASS64
        image[5] = 1; // little-endian
        image[6] = 1; // EV_CURRENT
        image[16..18].copy_from_slice(&kind.to_le_bytes());
        image[18..20].copy_from_slice(&abi::EM_X86_64.to_le_bytes());
        image[20..24].copy_from_slice(&1u32.to_le_bytes());
        image[24..32].copy_from_slice(&entry.to_le_bytes());
        image[32..40].copy_from_slice(&phoff.to_le_bytes());
        image[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        image[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        image[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (index, &(kind, vaddr, memsz, flags)) in segments.iter().enumerate() {
            let at = (phoff + 56 * index as u64) as usize;
            image[at..at + 4].copy_from_slice(&kind.to_le_bytes());
            image[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            let offset = data_at + 16 * index as u64;
            image[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            image[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            image[at + 32..at + 40].copy_from_slice(&16u64.to_le_bytes());
            image[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
            image[at + 48..at + 56].copy_from_slice(&8u64.to_le_bytes()); // p_align
            if kind == abi::PT_INTERP {
                let path = b"/lib/ld-musl-x86_64.so.1";
                let data = offset as usize;
                image[data..data + 16].copy_from_slice(&path[..16]);
            }
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
    fn a_dynamically_linked_executable_is_refused_with_its_interpreter_named() {
        let data = with_headers(
            abi::ET_DYN,
            0x1000,
            &[(abi::PT_INTERP, 0, 16, abi::PF_R), (abi::PT_LOAD, 0x1000, 0x100, RX)],
        );
        let error = plan(&data, &USER).expect_err("refused");
        assert!(matches!(error, ElfError::Dynamic(_)), "{error:?}");
        let message = alloc::format!("{error}");
        assert!(message.contains("interpreter /lib/ld-musl-x"), "{message}");
        assert!(message.contains("-static"), "{message}");
    }

    #[test_case]
    fn a_static_pie_is_placed_at_the_load_base_with_its_tls_and_headers() {
        let data = with_headers(
            abi::ET_DYN,
            0x1010,
            &[
                (abi::PT_PHDR, 0x40, 56 * 4, abi::PF_R),
                (abi::PT_LOAD, 0x1000, 0x100, RX),
                (abi::PT_LOAD, 0x3000, 0x200, RW),
                (abi::PT_TLS, 0x3008, 0x40, abi::PF_R),
            ],
        );
        let plan = plan(&data, &USER).expect("a static-PIE is accepted");
        let bias = PIE_LOAD_BASE - 0x1000;
        assert_eq!(plan.load_bias, bias);
        assert_eq!(plan.entry, 0x1010 + bias);
        assert_eq!(plan.segments[0].pages, PIE_LOAD_BASE..PIE_LOAD_BASE + 0x1000);
        assert_eq!(plan.program_headers, Some(0x40 + bias));
        assert_eq!((plan.program_header_bytes, plan.program_header_count), (56, 4));
        let tls = plan.tls.expect("its TLS template");
        assert_eq!(
            (tls.template_address, tls.file_bytes, tls.memory_bytes),
            (0x3008 + bias, 16, 0x40)
        );
        // A fixed-address executable keeps its addresses.
        let fixed = executable(0x401000, &[(0x401000, 0x100, RX)]);
        assert_eq!(super::plan(&fixed, &USER).expect("valid").load_bias, 0);
        // Two TLS segments make no sense.
        let two = with_headers(
            abi::ET_EXEC,
            0x401000,
            &[
                (abi::PT_LOAD, 0x401000, 0x100, RX),
                (abi::PT_TLS, 0x402000, 0x10, abi::PF_R),
                (abi::PT_TLS, 0x403000, 0x10, abi::PF_R),
            ],
        );
        assert_eq!(super::plan(&two, &USER), Err(ElfError::BadTls));
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
