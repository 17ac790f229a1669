//! The shared vocabulary: value types several rooms speak — process ids, physical frames, the
//! shape of a framebuffer. Below every subsystem (and below `arch`), so no room imports one
//! above it to name them. Plain data only.
#![forbid(unsafe_code)]

/// A process id. 0 is the kernel (the idle task); processes count up from 1.
pub type Pid = u32;

/// Size of a frame (and of a page).
pub const FRAME_SIZE_BYTES: u64 = 4096;

/// A 4 KiB physical frame, named by its start address.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Frame(u64);

impl Frame {
    /// The frame starting at `address`, which must be frame aligned.
    pub const fn from_start(address: u64) -> Option<Self> {
        if address.is_multiple_of(FRAME_SIZE_BYTES) { Some(Self(address)) } else { None }
    }

    /// The frame's physical start address.
    pub const fn start(self) -> u64 {
        self.0
    }

    /// The frame's number: its start address in frames.
    pub const fn number(self) -> u64 {
        self.0 / FRAME_SIZE_BYTES
    }
}

impl core::fmt::Display for Frame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "frame {:#x}", self.0)
    }
}

/// Byte order of a pixel.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PixelLayout {
    /// Red, green, blue (then padding, if 4 bytes per pixel).
    Rgb,
    /// Blue, green, red (then padding).
    Bgr,
    /// One grey byte.
    Gray,
}

/// Shape of a linear framebuffer.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Geometry {
    /// Visible width in pixels.
    pub width_px: usize,
    /// Visible height in pixels.
    pub height_px: usize,
    /// Pixels from the start of one line to the next (≥ `width_px`).
    pub stride_px: usize,
    /// Bytes per pixel.
    pub bytes_per_pixel: usize,
    /// Byte order within a pixel.
    pub layout: PixelLayout,
}

/// A set of Linux system-call numbers (0..512: every number Linux x86-64 has used), as a
/// sandbox allow-list holds them.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct LinuxCallSet([u64; 8]);

impl LinuxCallSet {
    /// The set of `numbers` (those of 512 and above are left out).
    pub const fn of(numbers: &[u64]) -> Self {
        let mut set = Self([0; 8]);
        let mut index = 0;
        while index < numbers.len() {
            set = set.with(numbers[index]);
            index += 1;
        }
        set
    }

    /// This set and `number` (unchanged if `number` is 512 or above).
    pub const fn with(mut self, number: u64) -> Self {
        if number < 512 {
            self.0[(number / 64) as usize] |= 1 << (number % 64);
        }
        self
    }

    /// Whether `number` is in the set.
    pub const fn contains(&self, number: u64) -> bool {
        number < 512 && self.0[(number / 64) as usize] & (1 << (number % 64)) != 0
    }

    /// The calls in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        Self(core::array::from_fn(|word| self.0[word] & other.0[word]))
    }

    /// The calls in either set.
    pub fn union(&self, other: &Self) -> Self {
        Self(core::array::from_fn(|word| self.0[word] | other.0[word]))
    }
}

/// A run of I/O ports, `base..base + count`.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct PortRange {
    /// The first port.
    pub base: u16,
    /// How many ports (≥ 1 in a grant).
    pub count: u16,
}

impl PortRange {
    /// One past the last port (up to 0x1_0000).
    pub const fn end(self) -> u32 {
        self.base as u32 + self.count as u32
    }

    /// Whether `other` lies wholly inside this range.
    pub const fn covers(self, other: Self) -> bool {
        other.base >= self.base && other.end() <= self.end()
    }

    /// Whether the two ranges have a port in common.
    pub const fn overlaps(self, other: Self) -> bool {
        (self.base as u32) < other.end() && (other.base as u32) < self.end()
    }
}

/// Most port ranges one process is granted at once: one per claimed line.
pub const MAX_PORT_RANGES: usize = 4;

/// The I/O ports a process may use from ring 3 (its device's, granted with its interrupt
/// line); loaded into the CPU's I/O permission bitmap whenever it runs. Empty for almost every
/// process, which then costs the task switch one compare (equality looks at the length
/// first, and only at the ranges in use).
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct PortGrant {
    ranges: [PortRange; MAX_PORT_RANGES],
    len: usize,
}

impl PartialEq for PortGrant {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.ranges() == other.ranges()
    }
}

impl PortGrant {
    /// No ports.
    pub const EMPTY: Self =
        Self { ranges: [PortRange { base: 0, count: 0 }; MAX_PORT_RANGES], len: 0 };

    /// The ranges granted.
    #[inline]
    pub fn ranges(&self) -> &[PortRange] {
        &self.ranges[..self.len]
    }

    /// Adds `range`; `false` if the grant is full.
    pub fn add(&mut self, range: PortRange) -> bool {
        let Some(slot) = self.ranges.get_mut(self.len) else { return false };
        *slot = range;
        self.len += 1;
        true
    }

    /// Removes `range` (one occurrence), if granted.
    pub fn remove(&mut self, range: PortRange) {
        if let Some(at) = self.ranges().iter().position(|&held| held == range) {
            self.ranges.copy_within(at + 1..self.len, at);
            self.len -= 1;
            self.ranges[self.len] = PortRange::default();
        }
    }
}

/// A device the kernel found at boot and leaves to a user-space driver: its interrupt line
/// and its ports.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct DeviceInfo {
    /// Its name (`com2`).
    pub name: &'static str,
    /// Its interrupt line.
    pub line: u8,
    /// Its I/O ports.
    pub ports: PortRange,
}
