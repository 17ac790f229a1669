//! Synchronisation below the bus: which CPU runs and how to mask its interrupts ([`local`]),
//! a spin lock whose holder cannot be interrupted on its own CPU ([`IrqSpinLock`]), and
//! read-copy-update publication with grace periods ([`rcu`]).
//!
//! No CPU instructions here: arch code installs the two per-CPU operations at boot. Under
//! `--cfg loom` the atomics and locks are loom's, so `cargo xtask test` model-checks the lock and
//! the grace period on the host (`loom_tests.rs`).

mod atomic;
pub mod local;
mod lock;
#[cfg(all(test, loom))]
mod loom_tests;
pub mod rcu;

pub use self::lock::{IrqSpinLock, IrqSpinLockGuard};
