//! The interactive shell, on COM1 and on the framebuffer with the keyboard: both drivers feed
//! one console input stream into [`feed`]. While a program runs in the foreground its input
//! goes to the program (`read` on fd 0) and Ctrl-C ends it; otherwise the line editor collects
//! a command line and the shell runs it. Commands run in the idle task, never in interrupt
//! context.
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
mod commands;
pub mod line;
#[cfg(target_os = "none")]
mod session;

#[cfg(target_os = "none")]
pub use self::session::{run_pending, start};
