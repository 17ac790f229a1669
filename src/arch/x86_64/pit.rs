//! The 8254 programmable interval timer, channel 0: the kernel's periodic tick.
//!
//! Ports and mode bits: Intel 82C54 datasheet, "Control Word Format".

use core::sync::atomic::{AtomicU64, Ordering};

use super::port;

/// Input clock of the PIT in Hz (the historic 14.31818 MHz / 12).
const INPUT_FREQUENCY_HZ: u32 = 1_193_182;
/// Channel 0 data port.
const CHANNEL0_DATA_PORT: u16 = 0x40;
/// Mode/command port.
const COMMAND_PORT: u16 = 0x43;
/// Command word fields: select counter 0 (bits 7–6), access low then high byte (bits 5–4),
/// mode 2 "rate generator" (bits 3–1), binary counting (bit 0).
const SELECT_COUNTER0: u8 = 0b00 << 6;
const ACCESS_LOW_THEN_HIGH_BYTE: u8 = 0b11 << 4;
const MODE_RATE_GENERATOR: u8 = 0b010 << 1;
const COUNT_BINARY: u8 = 0;
const COMMAND_CHANNEL0_RATE_GENERATOR: u8 =
    SELECT_COUNTER0 | ACCESS_LOW_THEN_HIGH_BYTE | MODE_RATE_GENERATOR | COUNT_BINARY;

/// Timer interrupts per second.
pub const TICK_HZ: u32 = 1000;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// Time since the PIT started, advanced by each tick's length (the rate can change).
static MICROSECONDS: AtomicU64 = AtomicU64::new(0);
static MICROSECONDS_PER_TICK: AtomicU64 = AtomicU64::new(1_000_000 / TICK_HZ as u64);

/// Lowest and highest rates [`set_rate`] accepts: the 16-bit divisor's range, and a ceiling
/// QEMU still delivers faithfully.
const MIN_RATE_HZ: u32 = 19;
const MAX_RATE_HZ: u32 = 100_000;

/// Starts channel 0 at [`TICK_HZ`].
pub(super) fn init() {
    program(TICK_HZ);
}

/// The rate asked for by [`set_rate`]; the PIT runs at [`TICK_HZ`] instead while a timer
/// storm is throttled.
static REQUESTED_HZ: AtomicU64 = AtomicU64::new(TICK_HZ as u64);
static FALLEN_BACK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Changes the tick rate (flood tests drive the timer far above [`TICK_HZ`]); time keeps
/// counting correctly. Returns the rate set, clamped to what the PIT can do.
pub fn set_rate(hz: u32) -> u32 {
    let hz = hz.clamp(MIN_RATE_HZ, MAX_RATE_HZ);
    REQUESTED_HZ.store(u64::from(hz), Ordering::Relaxed);
    FALLEN_BACK.store(false, Ordering::Relaxed);
    program(hz);
    hz
}

/// A timer storm: tick at [`TICK_HZ`] until the backoff is over. Throttling the source is the
/// only relief for a timer flood — masking the line would stop time, and merely ignoring the
/// interrupts still spends the CPU on taking them.
pub(super) fn fall_back_to_base_rate() {
    if !FALLEN_BACK.swap(true, Ordering::Relaxed) {
        program(TICK_HZ);
    }
}

/// Whether the PIT runs at its base rate because of a timer storm.
pub(super) fn fallen_back() -> bool {
    FALLEN_BACK.load(Ordering::Relaxed)
}

/// The backoff is over: back to the rate asked for (a storm recurs if it is still too fast).
pub(super) fn restore_requested_rate() {
    if FALLEN_BACK.swap(false, Ordering::Relaxed) {
        program(REQUESTED_HZ.load(Ordering::Relaxed) as u32);
    }
}

fn program(hz: u32) {
    MICROSECONDS_PER_TICK.store(1_000_000 / u64::from(hz), Ordering::Relaxed);
    let divisor = INPUT_FREQUENCY_HZ / hz;
    let divisor = u16::try_from(divisor).unwrap_or(u16::MAX);
    let [low, high] = divisor.to_le_bytes();
    // SAFETY: the PIT belongs to this driver; the command word precedes the two divisor bytes
    // exactly as the datasheet requires for lobyte/hibyte access.
    unsafe {
        port::write_u8(COMMAND_PORT, COMMAND_CHANNEL0_RATE_GENERATOR);
        port::write_u8(CHANNEL0_DATA_PORT, low);
        port::write_u8(CHANNEL0_DATA_PORT, high);
    }
}

/// Counts a tick and returns the new total.
pub(super) fn on_tick() -> u64 {
    MICROSECONDS.fetch_add(MICROSECONDS_PER_TICK.load(Ordering::Relaxed), Ordering::Relaxed);
    TICKS.fetch_add(1, Ordering::Relaxed) + 1
}

/// Milliseconds since the PIT started, whatever the tick rate was.
pub fn milliseconds() -> u64 {
    MICROSECONDS.load(Ordering::Relaxed) / 1000
}

/// Returns the number of timer ticks since the PIT was started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}
