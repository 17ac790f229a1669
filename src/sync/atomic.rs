//! The atomics `sync` is built from: core's in the kernel, loom's under `--cfg loom`, so the
//! model checker sees every access that matters.

#![forbid(unsafe_code)]

#[cfg(not(loom))]
pub(super) use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub(super) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

/// Yields to other CPUs while spinning (and, under loom, to other modelled threads).
#[inline]
pub(super) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}
