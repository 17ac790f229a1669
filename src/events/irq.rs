//! Interrupt lines: per-line sequence numbers (Managarm) and masking until a deferred handler
//! acknowledges (L4), so a flooding device is paced by its handler.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use conquer_once::spin::OnceCell;

use super::{Outcome, Reply};

/// Lines 0–15 are the two PICs; line 16 is raised by software (`int`), for tests and the
/// interrupt-path benchmark, and has no controller behind it.
pub const LINE_COUNT: usize = 17;
/// The software-raised line.
pub const SOFTWARE_LINE: u8 = 16;

/// Masks and unmasks lines at the interrupt controller; provided by arch code at boot.
pub trait LineControl: Sync {
    /// Stops `line` from interrupting.
    fn mask(&self, line: u8);
    /// Lets `line` interrupt again.
    fn unmask(&self, line: u8);
}

#[derive(Debug)]
struct LineState {
    seq: AtomicU64,
    unhandled: AtomicU64,
    awaiting_ack: AtomicBool,
}

/// A line's counters.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct LineStats {
    /// Interrupts raised so far (the last sequence number).
    pub raised: u64,
    /// Interrupts no handler claimed.
    pub unhandled: u64,
    /// Whether the line is masked until a deferred handler acknowledges.
    pub awaiting_ack: bool,
}

/// Every interrupt line's state.
pub struct IrqLines {
    lines: [LineState; LINE_COUNT],
    control: OnceCell<&'static dyn LineControl>,
}

/// The kernel's interrupt lines.
pub static LINES: IrqLines = IrqLines::new();

impl Default for IrqLines {
    fn default() -> Self {
        Self::new()
    }
}

impl IrqLines {
    /// Creates lines with no interrupts seen.
    pub const fn new() -> Self {
        Self {
            lines: [const {
                LineState {
                    seq: AtomicU64::new(0),
                    unhandled: AtomicU64::new(0),
                    awaiting_ack: AtomicBool::new(false),
                }
            }; LINE_COUNT],
            control: OnceCell::uninit(),
        }
    }

    /// Connects the interrupt controller. Only the first call takes effect.
    pub fn set_control(&self, control: &'static dyn LineControl) {
        let _ = self.control.try_init_once(|| control);
    }

    /// Records an interrupt on `line` and returns its sequence number (1 for the first), or
    /// `None` for a line that does not exist.
    pub fn raise(&self, line: u8) -> Option<u64> {
        let state = self.lines.get(usize::from(line))?;
        Some(state.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Applies a dispatch's result to `line`: counts it if nobody claimed it, and masks the
    /// line if a deferred handler queued the event (it is unmasked by [`acknowledge`](Self::acknowledge)).
    pub fn complete(&self, line: u8, outcome: Outcome, reply: &Reply) {
        let Some(state) = self.lines.get(usize::from(line)) else { return };
        if outcome == Outcome::Unhandled {
            state.unhandled.fetch_add(1, Ordering::Relaxed);
        }
        if reply.keep_line_masked
            && !state.awaiting_ack.swap(true, Ordering::AcqRel)
            && let Some(control) = self.control.get()
        {
            control.mask(line);
        }
    }

    /// A deferred handler finished with `line`'s events: unmask it.
    pub fn acknowledge(&self, line: u8) {
        let Some(state) = self.lines.get(usize::from(line)) else { return };
        if state.awaiting_ack.swap(false, Ordering::AcqRel)
            && let Some(control) = self.control.get()
        {
            control.unmask(line);
        }
    }

    /// Returns `line`'s counters.
    pub fn stats(&self, line: u8) -> LineStats {
        self.lines.get(usize::from(line)).map_or_else(LineStats::default, |state| LineStats {
            raised: state.seq.load(Ordering::Relaxed),
            unhandled: state.unhandled.load(Ordering::Relaxed),
            awaiting_ack: state.awaiting_ack.load(Ordering::Relaxed),
        })
    }
}
