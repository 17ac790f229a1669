//! Memory management: the kernel heap now; frames, paging and address spaces as they arrive.

#[cfg(target_os = "none")]
pub mod heap;
