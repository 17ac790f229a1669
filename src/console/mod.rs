//! Kernel text output: `print!`/`println!` to COM1 and, when present, the framebuffer.
#![forbid(unsafe_code)]

pub mod framebuffer;
#[cfg(target_os = "none")]
pub mod input;

#[cfg(target_os = "none")]
mod output;
#[cfg(target_os = "none")]
pub use output::{
    _print, capture_contains, init, start_capture, take_capture, write_emergency, write_text,
};
