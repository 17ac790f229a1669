//! Memory requests as events: the vocabulary shared by whoever asks (syscalls, kernel code),
//! whoever may veto (the security band) and whoever serves them (mm, in the owner band).

use core::fmt;

/// Names an address space. Space 0 is the kernel's own; the process subsystem gives each
/// process the space it creates.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct SpaceId(pub u32);

impl SpaceId {
    /// The kernel's address space: not a valid target for requests.
    pub const KERNEL: Self = Self(0);
}

impl fmt::Display for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "space {}", self.0)
    }
}

/// What a mapping allows. A mapping that allows anything allows reads (x86_64 has no
/// write-only or execute-only pages without protection keys); one that allows nothing
/// ([`Protection::NONE`], Linux's `PROT_NONE`) is reserved but faults on every access.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Protection {
    /// Loads are allowed (false only for [`Protection::NONE`]).
    pub read: bool,
    /// Stores are allowed.
    pub write: bool,
    /// Instruction fetches are allowed.
    pub execute: bool,
}

impl Protection {
    /// No access: reserved address space (a guard, or memory a program will open up later).
    pub const NONE: Self = Self { read: false, write: false, execute: false };
    /// Read-only data.
    pub const READ: Self = Self { read: true, write: false, execute: false };
    /// Read-write data.
    pub const READ_WRITE: Self = Self { read: true, write: true, execute: false };
    /// Code.
    pub const READ_EXECUTE: Self = Self { read: true, write: false, execute: true };

    /// Linux's `PROT_*` bits (`PROT_READ` 1, `PROT_WRITE` 2, `PROT_EXEC` 4): any right implies
    /// read, as on x86_64 Linux. Other bits are refused.
    pub const fn from_linux_bits(bits: u64) -> Option<Self> {
        if bits & !0b111 != 0 {
            return None;
        }
        Some(Self { read: bits != 0, write: bits & 2 != 0, execute: bits & 4 != 0 })
    }

    /// Bit encoding used by the syscall ABI: bit 0 write, bit 1 execute. Other bits are
    /// refused, so a later ABI can give them meaning.
    pub const fn from_bits(bits: u64) -> Option<Self> {
        if bits & !0b11 != 0 {
            return None;
        }
        Some(Self { read: true, write: bits & 1 != 0, execute: bits & 2 != 0 })
    }

    /// Whether the mapping is writable and executable at once (refused: W^X).
    pub const fn is_write_and_execute(self) -> bool {
        self.write && self.execute
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let read = if self.read { 'r' } else { '-' };
        let write = if self.write { 'w' } else { '-' };
        let execute = if self.execute { 'x' } else { '-' };
        write!(f, "{read}{write}{execute}")
    }
}

/// A change to an address space. Lengths are in bytes and addresses must be page aligned;
/// mm answers malformed requests with `EINVAL`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum MemoryRequest {
    /// Reserve zero-filled memory, backed page by page on first touch. `address` 0 lets mm
    /// choose; the reply's value is the address used.
    Map {
        /// The space to change.
        space: SpaceId,
        /// Where, or 0 for anywhere.
        address: u64,
        /// How much.
        len_bytes: u64,
        /// What the pages allow.
        protection: Protection,
    },
    /// Remove mappings; backing frames are freed when no space maps them any more.
    Unmap {
        /// The space to change.
        space: SpaceId,
        /// Start of the range.
        address: u64,
        /// Length of the range.
        len_bytes: u64,
    },
    /// Change what a mapped range allows.
    Protect {
        /// The space to change.
        space: SpaceId,
        /// Start of the range.
        address: u64,
        /// Length of the range.
        len_bytes: u64,
        /// The new protection.
        protection: Protection,
    },
    /// Map the frames behind a range of one space into another (shared memory): both see the
    /// same bytes. This is the request that changes *another* space's page tables.
    Share {
        /// Where the memory is now.
        from: SpaceId,
        /// Start of the source range (must be mapped).
        from_address: u64,
        /// Length of both ranges.
        len_bytes: u64,
        /// The space to map into.
        into: SpaceId,
        /// Where in `into` (0: anywhere); the reply's value is the address used.
        into_address: u64,
        /// What the new mapping allows (at most what the source allows).
        protection: Protection,
    },
}

impl MemoryRequest {
    /// The space whose page tables the request changes.
    pub const fn target(&self) -> SpaceId {
        match *self {
            Self::Map { space, .. } | Self::Unmap { space, .. } | Self::Protect { space, .. } => {
                space
            }
            Self::Share { into, .. } => into,
        }
    }

    /// Short name of the operation, for logs and audit records.
    pub const fn operation(&self) -> &'static str {
        match self {
            Self::Map { .. } => "map",
            Self::Unmap { .. } => "unmap",
            Self::Protect { .. } => "protect",
            Self::Share { .. } => "share",
        }
    }
}
