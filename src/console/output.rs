//! The console sinks and the lock that serialises them.
//!
//! The lock masks interrupts (the console is written from interrupt context too), so no hold of
//! it may be long: text goes to the framebuffer a bounded step at a time (a scroll moves one
//! text row per step), and the lock is let go between steps.

use alloc::string::String;
use core::fmt::{self, Write};

use super::framebuffer::FramebufferConsole;
use crate::arch::{self, IrqMutex};

/// Most text a capture keeps; later output is still printed, just not captured.
const CAPTURE_CAPACITY_BYTES: usize = 64 * 1024;

/// Every sink beyond COM1, which is always written.
struct Sinks {
    framebuffer: Option<FramebufferConsole>,
    /// Text printed since [`start_capture`], for tests that check what programs print.
    capture: Option<String>,
}

impl Sinks {
    /// COM1 and the capture, which take any text at once.
    fn write_unbounded(&mut self, text: &str) {
        arch::serial::write_bytes(text.as_bytes());
        if let Some(capture) = &mut self.capture
            && capture.len() + text.len() <= CAPTURE_CAPACITY_BYTES
        {
            capture.push_str(text);
        }
    }
}

/// Writes every sink in one hold of the lock: for the panic path only.
impl Write for Sinks {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.write_unbounded(text);
        if let Some(framebuffer) = &mut self.framebuffer {
            framebuffer.write_str(text);
        }
        Ok(())
    }
}

/// Most text `print!` gathers before writing it: a log line usually fits, so it reaches each
/// sink whole (another CPU's or an interrupt's line cannot land inside it).
const GATHER_BYTES: usize = 256;

/// The console as `print!` writes it: formatted pieces gathered, then written together.
struct Console {
    gathered: [u8; GATHER_BYTES],
    len_bytes: usize,
}

impl Console {
    fn flush(&mut self) {
        let text = core::str::from_utf8(&self.gathered[..self.len_bytes]).unwrap_or_default();
        if !text.is_empty() {
            write_text(text, || {});
        }
        self.len_bytes = 0;
    }
}

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if self.len_bytes + text.len() > GATHER_BYTES {
            self.flush();
        }
        if text.len() > GATHER_BYTES {
            write_text(text, || {});
        } else {
            self.gathered[self.len_bytes..self.len_bytes + text.len()]
                .copy_from_slice(text.as_bytes());
            self.len_bytes += text.len();
        }
        Ok(())
    }
}

/// Writes `text` to every sink, the framebuffer a bounded step at a time, calling
/// `between_steps` with no lock held between steps. A system call passes its preempt point, so
/// a long scroll lets other processes run too, not only interrupts.
pub fn write_text(text: &str, mut between_steps: impl FnMut()) {
    let mut rest = text;
    let mut sinks = SINKS.lock();
    sinks.write_unbounded(text);
    loop {
        let Some(framebuffer) = &mut sinks.framebuffer else { return };
        rest = &rest[framebuffer.write_some(rest)..];
        if rest.is_empty() && !framebuffer.is_scrolling() {
            return;
        }
        // Interrupts pending since the step began are served here.
        drop(sinks);
        between_steps();
        sinks = SINKS.lock();
    }
}

static SINKS: IrqMutex<Sinks> = IrqMutex::new(Sinks { framebuffer: None, capture: None });

/// Starts keeping a copy of console output (up to 64 KiB), discarding any earlier capture.
pub fn start_capture() {
    SINKS.lock().capture = Some(String::new());
}

/// Stops capturing and returns what was printed since [`start_capture`].
pub fn take_capture() -> String {
    SINKS.lock().capture.take().unwrap_or_default()
}

/// Whether the capture so far contains `text` (for tests that wait for a program's output).
pub fn capture_contains(text: &str) -> bool {
    SINKS.lock().capture.as_ref().is_some_and(|capture| capture.contains(text))
}

/// Adds the framebuffer console as a sink.
pub fn init(framebuffer: Option<FramebufferConsole>) {
    SINKS.lock().framebuffer = framebuffer;
}

/// Formats `args` to every sink. Used by [`print!`](crate::print).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut console = Console { gathered: [0; GATHER_BYTES], len_bytes: 0 };
    // Formatting cannot fail for sinks that never return an error.
    let _ = console.write_fmt(args);
    console.flush();
}

/// Writes `args` without waiting for the console lock: used by the panic path, where the
/// panicking code may hold that lock. Falls back to COM1 alone if the lock is taken.
pub fn write_emergency(args: fmt::Arguments<'_>) {
    match SINKS.try_lock() {
        Some(mut sinks) => {
            let _ = sinks.write_fmt(args);
        }
        None => {
            let _ = SerialOnly.write_fmt(args);
        }
    }
}

struct SerialOnly;

impl Write for SerialOnly {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        arch::serial::write_bytes(text.as_bytes());
        Ok(())
    }
}

/// Prints to the kernel console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints a line to the kernel console.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::print!("{}\n", format_args!($($arg)*)));
}
