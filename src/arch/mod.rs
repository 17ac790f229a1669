//! The machine boundary: everything that touches the CPU lives below this module.
//!
//! The rest of the kernel uses only what is re-exported here, so a second architecture would add
//! a sibling directory and leave `events/`, `mm/` and `security/` untouched.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
