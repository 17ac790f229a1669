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
