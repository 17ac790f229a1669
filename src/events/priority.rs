//! Handler priorities: three bands with room between them, higher runs first.

use core::fmt;

/// Width of each band; offsets inside a band run from 0 to `BAND_WIDTH - 1`.
const BAND_WIDTH: u16 = 1000;
const OBSERVER_BASE: u16 = 1000;
const OWNER_BASE: u16 = 2000;
const SECURITY_BASE: u16 = 3000;

/// Where a handler sits in a chain. Handlers run from the highest priority down; equal
/// priorities run in registration order (FIFO), as Linux notifier chains and FreeBSD
/// eventhandlers do.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct Priority(u16);

/// The three roles a handler can play.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Band {
    /// Runs first and may only deny: security policies.
    Security,
    /// Does the work: mm, scheduler, drivers.
    Owner,
    /// Sees every dispatched event and its outcome, and cannot change it: tracing, statistics.
    Observer,
}

impl Priority {
    /// The middle of the security band.
    pub const SECURITY: Self = Self::security(BAND_WIDTH / 2);
    /// The middle of the owner band.
    pub const OWNER: Self = Self::owner(BAND_WIDTH / 2);
    /// The middle of the observer band.
    pub const OBSERVER: Self = Self::observer(BAND_WIDTH / 2);

    const fn in_band(base: u16, offset: u16) -> Self {
        let offset = if offset < BAND_WIDTH { offset } else { BAND_WIDTH - 1 };
        Self(base + offset)
    }

    /// A security-band priority; larger offsets run earlier. Offsets past 999 are clamped.
    pub const fn security(offset: u16) -> Self {
        Self::in_band(SECURITY_BASE, offset)
    }

    /// An owner-band priority; larger offsets run earlier.
    pub const fn owner(offset: u16) -> Self {
        Self::in_band(OWNER_BASE, offset)
    }

    /// An observer-band priority; larger offsets run earlier.
    pub const fn observer(offset: u16) -> Self {
        Self::in_band(OBSERVER_BASE, offset)
    }

    /// Returns the band this priority lies in.
    pub const fn band(self) -> Band {
        if self.0 >= SECURITY_BASE {
            Band::Security
        } else if self.0 >= OWNER_BASE {
            Band::Owner
        } else {
            Band::Observer
        }
    }

    /// Returns the offset within the band.
    pub const fn offset(self) -> u16 {
        self.0 % BAND_WIDTH
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Security => "security",
            Self::Owner => "owner",
            Self::Observer => "observer",
        })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.band(), self.offset())
    }
}
