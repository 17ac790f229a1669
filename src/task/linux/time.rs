//! A Linux program's clocks and sleeps. Every clock counts in the kernel timer's milliseconds:
//! `CLOCK_MONOTONIC` (and its aliases) from boot, `CLOCK_REALTIME` from 1970 as the RTC said at
//! boot, the CPU-time clocks the time the process has run.

#![forbid(unsafe_code)]

use super::{u64_at, with_state};
use crate::{
    abi::linux,
    arch,
    events::{Errno, SpaceId},
    mm::user_copy,
    task::{
        scheduler,
        syscalls::{self, Served},
    },
};

/// The clocks' resolution: the timer's tick.
const RESOLUTION_NS: u64 = 1_000_000;
const NANOSECONDS_PER_SECOND: u64 = 1_000_000_000;

/// Clock `clock`'s reading in milliseconds (`EINVAL` for a clock Linux does not have).
fn read_ms(clock: u64) -> Result<u64, Errno> {
    match clock {
        linux::CLOCK_REALTIME | linux::CLOCK_REALTIME_COARSE => Ok(arch::unix_time_milliseconds()),
        linux::CLOCK_MONOTONIC
        | linux::CLOCK_MONOTONIC_RAW
        | linux::CLOCK_MONOTONIC_COARSE
        | linux::CLOCK_BOOTTIME => Ok(arch::milliseconds()),
        linux::CLOCK_PROCESS_CPUTIME_ID | linux::CLOCK_THREAD_CPUTIME_ID => {
            Ok(scheduler::current_cpu_ms())
        }
        _ => Err(Errno::EINVAL),
    }
}

/// A `struct timespec` of `milliseconds`.
fn timespec(milliseconds: u64) -> [u8; 16] {
    let mut timespec = [0u8; 16];
    timespec[..8].copy_from_slice(&(milliseconds / 1000).to_le_bytes());
    timespec[8..].copy_from_slice(&((milliseconds % 1000) * 1_000_000).to_le_bytes());
    timespec
}

/// Reads a `struct timespec` as milliseconds, rounded up to the timer's tick.
pub(super) fn read_timespec_ms(at: u64, space: SpaceId) -> Result<u64, Errno> {
    let mut timespec = [0u8; 16];
    user_copy::copy_from_user(space, at, &mut timespec)?;
    let (seconds, nanoseconds) = (u64_at(&timespec, 0), u64_at(&timespec, 8));
    if nanoseconds >= NANOSECONDS_PER_SECOND || seconds > i64::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(seconds.saturating_mul(1000).saturating_add(nanoseconds.div_ceil(RESOLUTION_NS)))
}

/// Reads a `struct timeval` as milliseconds, rounded up to the timer's tick.
pub(super) fn read_timeval_ms(at: u64, space: SpaceId) -> Result<u64, Errno> {
    let mut timeval = [0u8; 16];
    user_copy::copy_from_user(space, at, &mut timeval)?;
    let (seconds, microseconds) = (u64_at(&timeval, 0), u64_at(&timeval, 8));
    if microseconds >= 1_000_000 || seconds > i64::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(seconds.saturating_mul(1000).saturating_add(microseconds.div_ceil(1000)))
}

pub(super) fn clock_gettime(clock: u64, out: u64, space: SpaceId) -> Result<u64, Errno> {
    user_copy::copy_to_user(space, out, &timespec(read_ms(clock)?))?;
    Ok(0)
}

pub(super) fn clock_getres(clock: u64, out: u64, space: SpaceId) -> Result<u64, Errno> {
    read_ms(clock)?;
    if out != 0 {
        let mut resolution = [0u8; 16];
        resolution[8..].copy_from_slice(&RESOLUTION_NS.to_le_bytes());
        user_copy::copy_to_user(space, out, &resolution)?;
    }
    Ok(0)
}

/// `gettimeofday(tv, tz)`: wall time in seconds and microseconds (the time zone is UTC; `tz`
/// is left alone, as Linux leaves it zero).
pub(super) fn gettimeofday(out: u64, space: SpaceId) -> Result<u64, Errno> {
    if out != 0 {
        let milliseconds = arch::unix_time_milliseconds();
        let mut timeval = [0u8; 16];
        timeval[..8].copy_from_slice(&(milliseconds / 1000).to_le_bytes());
        timeval[8..].copy_from_slice(&((milliseconds % 1000) * 1000).to_le_bytes());
        user_copy::copy_to_user(space, out, &timeval)?;
    }
    Ok(0)
}

/// `time(tloc)`: wall time in seconds, also stored at `tloc` unless it is null.
pub(super) fn time(out: u64, space: SpaceId) -> Result<u64, Errno> {
    let seconds = arch::unix_time_milliseconds() / 1000;
    if out != 0 {
        user_copy::copy_to_user(space, out, &seconds.to_le_bytes())?;
    }
    Ok(seconds)
}

/// `nanosleep(req, rem)`: sleeps at least `req` (rounded up to the tick). A handler's signal
/// interrupts it with `EINTR`; `rem` is not written (what is left is not reported).
/// A sleep interrupted by a handler writes the time it had left to `remaining` (if not 0).
pub(super) fn nanosleep(request: u64, remaining: u64, space: SpaceId) -> Result<Served, Errno> {
    sleep_ms(read_timespec_ms(request, space)?, remaining)
}

/// `clock_nanosleep(clock, flags, req, rem)`: relative, or until `req` on `clock` with
/// `TIMER_ABSTIME`; a relative sleep a handler interrupts writes the time left to `remaining`.
pub(super) fn clock_nanosleep(
    clock: u64,
    flags: u64,
    request: u64,
    remaining: u64,
    space: SpaceId,
) -> Result<Served, Errno> {
    if flags & !linux::TIMER_ABSTIME != 0 {
        return Err(Errno::EINVAL);
    }
    if matches!(clock, linux::CLOCK_PROCESS_CPUTIME_ID | linux::CLOCK_THREAD_CPUTIME_ID) {
        // Sleeping on one's own CPU time would never end (Linux: EINVAL for the thread's).
        return Err(Errno::EINVAL);
    }
    let now_ms = read_ms(clock)?;
    let requested_ms = read_timespec_ms(request, space)?;
    let absolute = flags & linux::TIMER_ABSTIME != 0;
    let duration_ms = if absolute { requested_ms.saturating_sub(now_ms) } else { requested_ms };
    // As Linux: an absolute sleep has no time left to tell (it is asked again as it was).
    sleep_ms(duration_ms, if absolute { 0 } else { remaining })
}

/// Where an interrupted sleep's time left goes, written as the call answers `EINTR`.
pub(super) fn write_remaining(until_ms: u64, remaining: u64, space: SpaceId) {
    let left_ms = until_ms.saturating_sub(arch::milliseconds());
    // The call answers EINTR either way; a bad `rem` pointer is the program's to find.
    let _ = user_copy::copy_to_user(space, remaining, &timespec(left_ms));
}

/// Sleeps `duration_ms` from the call's first run: the deadline is kept while the call blocks
/// and starts again, so a signal's handler can interrupt it (`EINTR`).
fn sleep_ms(duration_ms: u64, remaining: u64) -> Result<Served, Errno> {
    let now_ms = arch::milliseconds();
    let until_ms = with_state(|state| {
        state.console.sleep_remaining_at = (remaining != 0).then_some(remaining);
        *state.console.sleep_until_ms.get_or_insert(now_ms.saturating_add(duration_ms))
    });
    if now_ms >= until_ms {
        with_state(|state| state.console.sleep_until_ms = None);
        return Ok(Served::Value(0));
    }
    syscalls::sleep_until(until_ms);
    Ok(Served::Restart)
}
