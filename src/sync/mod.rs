//! Synchronisation below the bus: which CPU runs and how to mask its interrupts ([`local`]),
//! a spin lock whose holder cannot be interrupted on its own CPU ([`IrqSpinLock`]),
//! read-copy-update publication with grace periods ([`rcu`]), and counted requests between
//! CPUs ([`handshake`], under TLB shootdowns).
//!
//! No CPU instructions here: arch code installs the two per-CPU operations at boot. Under
//! `cfg(loom)` the atomics and locks are loom's: `tools/models` compiles these files that way,
//! and `cargo xtask test` model-checks the lock, the grace period and the queue on the host.

mod atomic;
pub mod handshake;
pub mod local;
mod lock;
pub mod rcu;

pub use self::lock::{IrqSpinLock, IrqSpinLockGuard};
