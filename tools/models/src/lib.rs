//! Loom model checks of the kernel's lock-free pieces, run by `cargo xtask test` (host tools).
//!
//! The kernel's own `src/sync/` and `src/events/queue.rs` are compiled here with `cfg(loom)`,
//! which swaps their atomics and lock for loom's; loom then runs each test under every
//! interleaving of its threads (up to a preemption bound). A thread here plays a CPU.
#![cfg(test)]

extern crate alloc;

// Public, as in the kernel, so the parts these models do not exercise count as used.
#[path = "../../../src/events/queue.rs"]
pub mod queue;
#[path = "../../../src/sync/mod.rs"]
pub mod sync;
mod tests;
