//! Interrupt lines: per-line sequence numbers (Managarm), masking until a deferred handler
//! acknowledges (L4), and protection against misbehaving lines:
//!
//! - **storms**: a line raised more than its limit within one 10 ms window is masked and
//!   retried after a backoff that doubles on every repeat, 50 ms up to 12.8 s (Managarm's
//!   numbers), and resets once the line behaves;
//! - **missing acknowledgements**: a line whose deferred handler has had its event for the
//!   backoff without acknowledging is unmasked anyway (a retry) and the backoff doubles. The
//!   clock starts when the handler is given the event ([`IrqLines::delivered`]), not when the
//!   line is masked: an event queued behind other kernel work on cpu 0 (the shell printing a
//!   long table) is latency, not a handler at fault, and unmasking would not serve it sooner —
//!   the device is read when its handler runs. Only an event left queued for
//!   [`UNDELIVERED_LIMIT_MS`] is retried (and reported) as well;
//! - **nobody's interrupts**: a line left unhandled 99 900 times out of 100 000 is disabled for
//!   good and reported (Linux's `note_interrupt` rule).
//!
//! A line also has an **owner**: free, the kernel (the timer, the cascade, a kernel driver's
//! line), a process (a user-space driver, `task/drivers.rs`) or several processes sharing it
//! (each with a top half that answers for its own device). Only a free line can be claimed,
//! or a shared one joined; the first claim starts the line afresh (its storm and unhandled
//! history are the last owner's), the last release masks it until the next claim and counts
//! what the owners never saw.
//!
//! The counters are atomics: the state is touched from interrupt context and from the shell.
//! Changes of a line's mask, hold and owner happen under the line's own interrupt-masking lock
//! (`LineState::holders`), which is taken before the controller's and never inside it: an
//! interrupt cannot land inside such a change on this CPU, and another CPU making one waits
//! for it. The four-CPU COM2/COM4 flood sessions (holds from cpu 0's interrupt, acks and
//! releases from the drivers' CPUs) and `tests/pressure.rs`'s storms exercise it.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use conquer_once::spin::OnceCell;

use super::{Outcome, Reply};
use crate::sync::IrqSpinLock;

/// Lines 0–15 are the two PICs; line 16 is raised by software (`int`), for tests and the
/// interrupt-path benchmark, and has no controller behind it.
pub const LINE_COUNT: usize = 17;
/// The software-raised line.
pub const SOFTWARE_LINE: u8 = 16;

/// Length of the window a line's rate limit counts over.
pub const RATE_WINDOW_MS: u64 = 10;
/// Default rate limit per window: 500 000 interrupts a second, far above any healthy device.
pub const DEFAULT_LIMIT_PER_WINDOW: u64 = 5_000;
/// First backoff after a storm or a missing acknowledgement.
pub const INITIAL_BACKOFF_MS: u64 = 50;
/// Longest backoff.
pub const MAX_BACKOFF_MS: u64 = 12_800;
/// How long a line may stay masked with its event still queued (its deferred handler not run
/// yet) before it is unmasked anyway: the deferred work must be stuck, or the event was taken
/// before the line was masked (possible only if the interrupt and the deferred work run on
/// different CPUs).
pub const UNDELIVERED_LIMIT_MS: u64 = MAX_BACKOFF_MS;
/// Interrupts per judging period of the unhandled rule.
pub const UNHANDLED_PERIOD: u64 = 100_000;
/// Unhandled interrupts within a period that disable the line.
pub const UNHANDLED_LIMIT: u64 = 99_900;

/// Who serves a line.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum LineOwner {
    /// Nobody yet: it may be claimed.
    #[default]
    Free,
    /// The kernel: the timer, the PICs' cascade, a kernel driver.
    Kernel,
    /// A user-space driver, this process.
    Process(u32),
    /// This many user-space drivers, each serving its own device on the line through a
    /// verified top half that answers whether an interrupt was its device's.
    Shared(u32),
}

/// `LineState::owner` for a free line.
const OWNER_FREE: u32 = 0;
/// `LineState::owner` for a kernel-held line (no process has this pid).
const OWNER_KERNEL: u32 = u32::MAX;
/// `LineState::owner` tag of a shared line, its sharers counted in the bits below (pids stay
/// far below it).
const OWNER_SHARED: u32 = 1 << 31;

impl LineOwner {
    const fn encode(self) -> u32 {
        match self {
            Self::Free => OWNER_FREE,
            Self::Kernel => OWNER_KERNEL,
            Self::Process(pid) => pid,
            Self::Shared(sharers) => OWNER_SHARED | sharers,
        }
    }

    const fn decode(raw: u32) -> Self {
        match raw {
            OWNER_FREE => Self::Free,
            OWNER_KERNEL => Self::Kernel,
            raw if raw & OWNER_SHARED != 0 => Self::Shared(raw & !OWNER_SHARED),
            pid => Self::Process(pid),
        }
    }
}

/// Masks and unmasks lines at the interrupt controller; provided by arch code at boot.
pub trait LineControl: Sync {
    /// Stops `line` from interrupting.
    fn mask(&self, line: u8);
    /// Lets `line` interrupt again.
    fn unmask(&self, line: u8);
}

struct LineState {
    seq: AtomicU64,
    unhandled: AtomicU64,
    awaiting_ack: AtomicBool,
    /// Whether the deferred handler has been given the event the line waits on.
    delivered: AtomicBool,
    /// When the line was masked for its event, then when the handler was given it.
    ack_since_ms: AtomicU64,
    window_start_ms: AtomicU64,
    window_count: AtomicU64,
    limit_per_window: AtomicU64,
    /// Throttled until this time; 0: not throttled.
    throttled_until_ms: AtomicU64,
    backoff_ms: AtomicU64,
    throttles: AtomicU64,
    ack_timeouts: AtomicU64,
    /// Interrupts that arrived (software line) or were raised while throttled or disabled.
    suppressed: AtomicU64,
    disabled: AtomicBool,
    period_raised: AtomicU64,
    period_unhandled: AtomicU64,
    /// [`LineOwner`], encoded.
    owner: AtomicU32,
    /// Interrupts a process owner was given and never saw: it ended (or released the line)
    /// before its `irq_wait` returned them.
    dropped: AtomicU64,
    /// How many process claims hold the line ([`IrqLines::hold_for`]). Its lock also orders
    /// every change of the line's mask, hold and owner: each reads the others' results, and
    /// two interleaved (a hold's mask landing after an acknowledgement's unmask, a leaving
    /// owner's mask after the next owner's unmask) left a line masked with nobody to open it.
    holders: IrqSpinLock<u32>,
}

/// A line's counters and state.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct LineStats {
    /// Interrupts raised so far (the last sequence number).
    pub raised: u64,
    /// Interrupts no handler claimed.
    pub unhandled: u64,
    /// Whether the line is masked until a deferred handler acknowledges.
    pub awaiting_ack: bool,
    /// Rate limit per [`RATE_WINDOW_MS`] (0: none).
    pub limit_per_window: u64,
    /// Whether the line is masked after a storm, and until when (ms since boot).
    pub throttled_until_ms: Option<u64>,
    /// The backoff the next storm or missing acknowledgement gets.
    pub backoff_ms: u64,
    /// Storms detected.
    pub throttles: u64,
    /// Acknowledgements that did not come in time.
    pub ack_timeouts: u64,
    /// Interrupts not dispatched because the line was throttled or disabled.
    pub suppressed: u64,
    /// Whether the line was disabled for good by the unhandled rule.
    pub disabled: bool,
    /// Who serves it.
    pub owner: LineOwner,
    /// Interrupts dropped because their process owner ended (or released the line) first.
    pub dropped: u64,
}

/// What [`IrqLines::raise`] decided.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Raised {
    /// Dispatch the interrupt with this sequence number.
    Dispatch(u64),
    /// The line is throttled or disabled: do not dispatch (counted as suppressed).
    Suppressed,
}

/// Something a line did that deserves a log line; returned so the caller decides how to report.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LineReport {
    /// A storm: masked for `backoff_ms`.
    Storm {
        /// The line.
        line: u8,
        /// Interrupts in the window that tripped the limit.
        in_window: u64,
        /// How long it stays masked.
        backoff_ms: u64,
    },
    /// A throttled line is unmasked to try again.
    Retry {
        /// The line.
        line: u8,
    },
    /// A deferred handler (or the line's user-space driver) did not acknowledge in time; the
    /// line is unmasked anyway.
    AckTimeout {
        /// The line.
        line: u8,
        /// How long it waited.
        waited_ms: u64,
        /// Who was to answer.
        owner: LineOwner,
    },
    /// The line's event stayed queued, its handler not run, for [`UNDELIVERED_LIMIT_MS`]; the
    /// line is unmasked anyway.
    Undelivered {
        /// The line.
        line: u8,
        /// How long it waited.
        waited_ms: u64,
    },
    /// A `kill-producer` queue overflowed with the line's events: the device is the producer,
    /// so the line is disabled for good.
    ProducerKilled {
        /// The line.
        line: u8,
    },
    /// The unhandled rule disabled the line for good.
    Disabled {
        /// The line.
        line: u8,
        /// Unhandled interrupts in the last period.
        unhandled: u64,
    },
}

impl core::fmt::Display for LineReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Storm { line, in_window, backoff_ms } => write!(
                f,
                "irq line {line}: storm ({in_window} interrupts in {RATE_WINDOW_MS} ms); masked \
                 for {backoff_ms} ms"
            ),
            Self::Retry { line } => write!(f, "irq line {line}: backoff over, unmasked to retry"),
            Self::AckTimeout { line, waited_ms, owner: LineOwner::Process(pid) } => write!(
                f,
                "irq line {line}: its driver, pid {pid}, did not acknowledge in {waited_ms} ms; \
                 unmasked to retry"
            ),
            Self::AckTimeout { line, waited_ms, owner: LineOwner::Shared(sharers) } => write!(
                f,
                "irq line {line}: one of its {sharers} drivers did not acknowledge in \
                 {waited_ms} ms; unmasked to retry"
            ),
            Self::AckTimeout { line, waited_ms, .. } => write!(
                f,
                "irq line {line}: deferred handler did not acknowledge in {waited_ms} ms; \
                 unmasked to retry"
            ),
            Self::Undelivered { line, waited_ms } => write!(
                f,
                "irq line {line}: event queued {waited_ms} ms without its deferred handler \
                 running; unmasked to retry"
            ),
            Self::ProducerKilled { line } => {
                write!(f, "irq line {line}: flooded a kill-producer queue; line disabled")
            }
            Self::Disabled { line, unhandled } => write!(
                f,
                "irq line {line}: {unhandled} of the last {UNHANDLED_PERIOD} interrupts were \
                 unhandled; line disabled"
            ),
        }
    }
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
                    delivered: AtomicBool::new(false),
                    ack_since_ms: AtomicU64::new(0),
                    window_start_ms: AtomicU64::new(0),
                    window_count: AtomicU64::new(0),
                    limit_per_window: AtomicU64::new(DEFAULT_LIMIT_PER_WINDOW),
                    throttled_until_ms: AtomicU64::new(0),
                    backoff_ms: AtomicU64::new(INITIAL_BACKOFF_MS),
                    throttles: AtomicU64::new(0),
                    ack_timeouts: AtomicU64::new(0),
                    suppressed: AtomicU64::new(0),
                    disabled: AtomicBool::new(false),
                    period_raised: AtomicU64::new(0),
                    period_unhandled: AtomicU64::new(0),
                    owner: AtomicU32::new(OWNER_FREE),
                    dropped: AtomicU64::new(0),
                    holders: IrqSpinLock::new(0),
                }
            }; LINE_COUNT],
            control: OnceCell::uninit(),
        }
    }

    /// Connects the interrupt controller. Only the first call takes effect.
    pub fn set_control(&self, control: &'static dyn LineControl) {
        let _ = self.control.try_init_once(|| control);
    }

    fn mask(&self, line: u8) {
        if let Some(control) = self.control.get() {
            control.mask(line);
        }
    }

    fn unmask(&self, line: u8) {
        if let Some(control) = self.control.get() {
            control.unmask(line);
        }
    }

    /// Sets `line`'s storm limit: more than `limit` interrupts in one window throttle it
    /// (0: no limit).
    pub fn set_rate_limit(&self, line: u8, limit: u64) {
        if let Some(state) = self.lines.get(usize::from(line)) {
            state.limit_per_window.store(limit, Ordering::Relaxed);
        }
    }

    /// Records an interrupt on `line` at `now_ms` and decides whether to dispatch it. `None`
    /// for a line that does not exist.
    #[inline]
    pub fn raise(&self, line: u8, now_ms: u64) -> Option<(Raised, Option<LineReport>)> {
        let state = self.lines.get(usize::from(line))?;
        if state.disabled.load(Ordering::Relaxed)
            || state.throttled_until_ms.load(Ordering::Relaxed) != 0
        {
            state.suppressed.fetch_add(1, Ordering::Relaxed);
            return Some((Raised::Suppressed, None));
        }
        let seq = state.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let in_window = if now_ms.saturating_sub(state.window_start_ms.load(Ordering::Relaxed))
            >= RATE_WINDOW_MS
        {
            // A window ended within the limit: the line behaves, forget past storms.
            if !state.awaiting_ack.load(Ordering::Relaxed) {
                state.backoff_ms.store(INITIAL_BACKOFF_MS, Ordering::Relaxed);
            }
            state.window_start_ms.store(now_ms, Ordering::Relaxed);
            state.window_count.store(1, Ordering::Relaxed);
            1
        } else {
            state.window_count.fetch_add(1, Ordering::Relaxed) + 1
        };
        let limit = state.limit_per_window.load(Ordering::Relaxed);
        if limit != 0 && in_window > limit {
            return Some((
                Raised::Dispatch(seq),
                Some(self.throttle(state, line, now_ms, in_window)),
            ));
        }
        Some((Raised::Dispatch(seq), None))
    }

    /// A storm: masks `line` for its backoff. Off the interrupt's fast path.
    #[cold]
    #[inline(never)]
    fn throttle(&self, state: &LineState, line: u8, now_ms: u64, in_window: u64) -> LineReport {
        let backoff_ms = self.next_backoff(state);
        let _transition = state.holders.lock();
        state.throttled_until_ms.store(now_ms + backoff_ms, Ordering::Relaxed);
        state.throttles.fetch_add(1, Ordering::Relaxed);
        self.mask(line);
        LineReport::Storm { line, in_window, backoff_ms }
    }

    /// Disables `line` for good (`false`: it was already). Off the interrupt's fast path.
    #[cold]
    #[inline(never)]
    fn disable(&self, state: &LineState, line: u8) -> bool {
        let _transition = state.holders.lock();
        if state.disabled.swap(true, Ordering::Relaxed) {
            return false;
        }
        self.mask(line);
        true
    }

    /// Returns the current backoff and doubles it for next time (up to the maximum).
    fn next_backoff(&self, state: &LineState) -> u64 {
        let backoff = state.backoff_ms.load(Ordering::Relaxed);
        state.backoff_ms.store((backoff * 2).min(MAX_BACKOFF_MS), Ordering::Relaxed);
        backoff
    }

    /// Applies a dispatch's result to `line`: counts it if nobody claimed it (and applies the
    /// unhandled rule), and masks the line if a deferred handler queued the event (it is
    /// unmasked by [`acknowledge`](Self::acknowledge)).
    #[inline]
    pub fn complete(
        &self,
        line: u8,
        outcome: Outcome,
        reply: &Reply,
        now_ms: u64,
    ) -> Option<LineReport> {
        let state = self.lines.get(usize::from(line))?;
        let mut report = None;
        let unhandled = outcome == Outcome::Unhandled;
        if unhandled {
            state.unhandled.fetch_add(1, Ordering::Relaxed);
            state.period_unhandled.fetch_add(1, Ordering::Relaxed);
        }
        if state.period_raised.fetch_add(1, Ordering::Relaxed) + 1 >= UNHANDLED_PERIOD {
            let unhandled_in_period = state.period_unhandled.swap(0, Ordering::Relaxed);
            state.period_raised.store(0, Ordering::Relaxed);
            if unhandled_in_period >= UNHANDLED_LIMIT && self.disable(state, line) {
                report = Some(LineReport::Disabled { line, unhandled: unhandled_in_period });
            }
        }
        if reply.kill_producer && self.disable(state, line) {
            report = Some(LineReport::ProducerKilled { line });
        }
        // A `Backpressure` refusal needs no more: the line stays masked until the deferred
        // handler has taken events and acknowledges (or the acknowledgement times out).
        if reply.keep_line_masked {
            self.hold(state, line, now_ms);
        }
        report
    }

    #[inline(never)]
    fn hold(&self, state: &LineState, line: u8, now_ms: u64) {
        let _transition = state.holders.lock();
        self.hold_locked(state, line, now_ms);
    }

    fn hold_locked(&self, state: &LineState, line: u8, now_ms: u64) {
        if !state.awaiting_ack.swap(true, Ordering::AcqRel) {
            // A tick on another CPU between the swap and these stores (possible only for the
            // software line, raised anywhere; ISA lines and the timer are cpu 0's) sees the
            // last wait's values: at worst one early retry, counted as late.
            state.delivered.store(false, Ordering::Relaxed);
            state.ack_since_ms.store(now_ms, Ordering::Relaxed);
            self.mask(line);
        }
    }

    /// `line`'s deferred handler is given an event at `now_ms`: its acknowledgement is due
    /// within the backoff from now. Later deliveries before the acknowledgement keep the
    /// first one's time. Called by the deferred work, never in interrupt context; the timer's
    /// [`tick`](Self::tick) landing between the two stores sees the new time and no delivery,
    /// a wait of 0 against the longer limit.
    pub fn delivered(&self, line: u8, now_ms: u64) {
        let Some(state) = self.lines.get(usize::from(line)) else { return };
        if state.awaiting_ack.load(Ordering::Acquire) && !state.delivered.load(Ordering::Relaxed) {
            state.ack_since_ms.store(now_ms, Ordering::Relaxed);
            state.delivered.store(true, Ordering::Release);
        }
    }

    /// A deferred handler finished with `line`'s events: unmask it (unless throttled or
    /// disabled, which keep it masked). Returns whether this ended a hold — decided in the
    /// same step that ends it, so a hold landing from another CPU just before is never missed
    /// (a separate look first would leave that window).
    pub fn acknowledge(&self, line: u8) -> bool {
        let Some(state) = self.lines.get(usize::from(line)) else { return false };
        let _transition = state.holders.lock();
        self.acknowledge_locked(state, line)
    }

    fn acknowledge_locked(&self, state: &LineState, line: u8) -> bool {
        let was_held = state.awaiting_ack.swap(false, Ordering::AcqRel);
        if was_held
            && state.throttled_until_ms.load(Ordering::Relaxed) == 0
            && !state.disabled.load(Ordering::Relaxed)
        {
            self.unmask(line);
        }
        was_held
    }

    /// A process claim holds `line` until it acknowledges: `holding` is the claim's mark,
    /// set here together with the line's count of holders, so the two never disagree. A
    /// claim already holding holds once.
    pub fn hold_for(&self, line: u8, now_ms: u64, holding: &AtomicBool) {
        let Some(state) = self.lines.get(usize::from(line)) else { return };
        let mut holders = state.holders.lock();
        if !holding.swap(true, Ordering::AcqRel) {
            *holders += 1;
            self.hold_locked(state, line, now_ms);
        }
    }

    /// The claim marked by `holding` lets `line` go: the line is acknowledged (and unmasked)
    /// once no claim holds it. Returns whether the claim held it.
    pub fn end_hold(&self, line: u8, holding: &AtomicBool) -> bool {
        let Some(state) = self.lines.get(usize::from(line)) else { return false };
        let mut holders = state.holders.lock();
        if !holding.swap(false, Ordering::AcqRel) {
            return false;
        }
        *holders = holders.saturating_sub(1);
        if *holders == 0 {
            self.acknowledge_locked(state, line);
        }
        true
    }

    /// Ends backoffs that are over and retries acknowledgements that are overdue. Called on
    /// every timer tick; returns what happened to the first line that needed attention (the
    /// rest are handled too, and reported on later ticks only if they change again).
    pub fn tick(&self, now_ms: u64) -> Option<LineReport> {
        let mut report = None;
        for (index, state) in self.lines.iter().enumerate() {
            let line = index as u8;
            let until = state.throttled_until_ms.load(Ordering::Relaxed);
            if until != 0 && now_ms >= until {
                let _transition = state.holders.lock();
                state.throttled_until_ms.store(0, Ordering::Relaxed);
                state.window_count.store(0, Ordering::Relaxed);
                state.window_start_ms.store(now_ms, Ordering::Relaxed);
                if !state.awaiting_ack.load(Ordering::Relaxed)
                    && !state.disabled.load(Ordering::Relaxed)
                {
                    self.unmask(line);
                }
                report = report.or(Some(LineReport::Retry { line }));
            }
            if state.awaiting_ack.load(Ordering::Relaxed) {
                let delivered = state.delivered.load(Ordering::Acquire);
                let since = state.ack_since_ms.load(Ordering::Relaxed);
                let waited_ms = now_ms.saturating_sub(since);
                let limit_ms = if delivered {
                    state.backoff_ms.load(Ordering::Relaxed)
                } else {
                    UNDELIVERED_LIMIT_MS
                };
                if waited_ms >= limit_ms {
                    let _transition = state.holders.lock();
                    if delivered {
                        self.next_backoff(state);
                    }
                    state.ack_timeouts.fetch_add(1, Ordering::Relaxed);
                    // Retry: keep waiting for the acknowledgement, but let the line interrupt.
                    state.ack_since_ms.store(now_ms, Ordering::Relaxed);
                    if state.throttled_until_ms.load(Ordering::Relaxed) == 0
                        && !state.disabled.load(Ordering::Relaxed)
                    {
                        self.unmask(line);
                    }
                    report = report.or(Some(if delivered {
                        let owner = LineOwner::decode(state.owner.load(Ordering::Relaxed));
                        LineReport::AckTimeout { line, waited_ms, owner }
                    } else {
                        LineReport::Undelivered { line, waited_ms }
                    }));
                }
            }
        }
        report
    }

    /// Ends `line`'s throttling and resets its backoff (after the cause of a storm is gone,
    /// e.g. a test slowing a timer it flooded). Unmasks it unless it waits for an ack or is
    /// disabled.
    pub fn release(&self, line: u8) {
        let Some(state) = self.lines.get(usize::from(line)) else { return };
        let _transition = state.holders.lock();
        state.throttled_until_ms.store(0, Ordering::Relaxed);
        state.backoff_ms.store(INITIAL_BACKOFF_MS, Ordering::Relaxed);
        state.window_count.store(0, Ordering::Relaxed);
        if !state.awaiting_ack.load(Ordering::Relaxed) && !state.disabled.load(Ordering::Relaxed) {
            self.unmask(line);
        }
    }

    /// Makes `owner` the owner of free `line`; returns the owner it has if it is not free (or
    /// `None` for a line that does not exist, or for `Free` and `Shared`, which are no owner
    /// to claim as: sharers use [`claim_shared`](Self::claim_shared)). A process's claim starts the line afresh — no
    /// backoff, throttle, disabled state or pending acknowledgement carried over from the last
    /// owner — and unmasks it; a kernel claim leaves the mask to the kernel's driver.
    pub fn claim(&self, line: u8, owner: LineOwner) -> Result<(), Option<LineOwner>> {
        let state = self.lines.get(usize::from(line)).ok_or(None)?;
        if matches!(owner, LineOwner::Free | LineOwner::Shared(_)) {
            return Err(None);
        }
        let mut holders = state.holders.lock();
        state
            .owner
            .compare_exchange(OWNER_FREE, owner.encode(), Ordering::AcqRel, Ordering::Acquire)
            .map_err(|held| Some(LineOwner::decode(held)))?;
        if let LineOwner::Process(_) = owner {
            self.start_afresh(line, state, &mut holders);
        }
        Ok(())
    }

    /// A line's first process owner starts with none of the last owner's history, unmasked.
    fn start_afresh(&self, line: u8, state: &LineState, holders: &mut u32) {
        *holders = 0;
        state.awaiting_ack.store(false, Ordering::Release);
        state.delivered.store(false, Ordering::Relaxed);
        state.throttled_until_ms.store(0, Ordering::Relaxed);
        state.backoff_ms.store(INITIAL_BACKOFF_MS, Ordering::Relaxed);
        state.window_count.store(0, Ordering::Relaxed);
        state.period_raised.store(0, Ordering::Relaxed);
        state.period_unhandled.store(0, Ordering::Relaxed);
        state.disabled.store(false, Ordering::Relaxed);
        self.unmask(line);
    }

    /// A process joins `line`'s sharers (at most `max_sharers`), or starts sharing a free line
    /// (afresh and unmasked, as [`claim`](Self::claim) does); returns how many share it now.
    /// Refused with the owner it has if that is the kernel, one process, or sharers enough.
    pub fn claim_shared(&self, line: u8, max_sharers: u32) -> Result<u32, Option<LineOwner>> {
        let state = self.lines.get(usize::from(line)).ok_or(None)?;
        // Owners change only under this lock: a plain read and write suffice.
        let mut holders = state.holders.lock();
        let sharers = match LineOwner::decode(state.owner.load(Ordering::Acquire)) {
            LineOwner::Free => 1,
            LineOwner::Shared(sharers) if sharers < max_sharers => sharers + 1,
            other => return Err(Some(other)),
        };
        state.owner.store(LineOwner::Shared(sharers).encode(), Ordering::Release);
        if sharers == 1 {
            self.start_afresh(line, state, &mut holders);
        }
        Ok(sharers)
    }

    /// One of `line`'s sharers leaves it, having never seen `unseen` of its interrupts; the
    /// last one's leaving frees and masks the line, as [`disown`](Self::disown) does.
    pub fn leave_shared(&self, line: u8, unseen: u64) {
        let Some(state) = self.lines.get(usize::from(line)) else { return };
        let mut holders = state.holders.lock();
        let LineOwner::Shared(sharers) = LineOwner::decode(state.owner.load(Ordering::Acquire))
        else {
            return;
        };
        if sharers > 1 {
            state.owner.store(LineOwner::Shared(sharers - 1).encode(), Ordering::Release);
        } else {
            state.owner.store(OWNER_FREE, Ordering::Release);
            self.mask(line);
            state.awaiting_ack.store(false, Ordering::Release);
            *holders = 0;
        }
        state.dropped.fetch_add(unseen, Ordering::Relaxed);
    }

    /// Process `pid` gives `line` up, having never seen `unseen` of the interrupts it was
    /// given: the line is masked (nobody serves its device now) until the next claim, and the
    /// unseen ones are counted as dropped. Does nothing unless `pid` owns the line.
    pub fn disown(&self, line: u8, pid: u32, unseen: u64) {
        let Some(state) = self.lines.get(usize::from(line)) else { return };
        let mut holders = state.holders.lock();
        let owner = LineOwner::Process(pid).encode();
        if state
            .owner
            .compare_exchange(owner, OWNER_FREE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        self.mask(line);
        state.awaiting_ack.store(false, Ordering::Release);
        *holders = 0;
        state.dropped.fetch_add(unseen, Ordering::Relaxed);
    }

    /// Who serves `line` (`Free` for a line that does not exist).
    pub fn owner(&self, line: u8) -> LineOwner {
        self.lines
            .get(usize::from(line))
            .map_or(LineOwner::Free, |state| LineOwner::decode(state.owner.load(Ordering::Acquire)))
    }

    /// Returns `line`'s counters.
    pub fn stats(&self, line: u8) -> LineStats {
        self.lines.get(usize::from(line)).map_or_else(LineStats::default, |state| {
            let until = state.throttled_until_ms.load(Ordering::Relaxed);
            LineStats {
                raised: state.seq.load(Ordering::Relaxed),
                unhandled: state.unhandled.load(Ordering::Relaxed),
                awaiting_ack: state.awaiting_ack.load(Ordering::Relaxed),
                limit_per_window: state.limit_per_window.load(Ordering::Relaxed),
                throttled_until_ms: (until != 0).then_some(until),
                backoff_ms: state.backoff_ms.load(Ordering::Relaxed),
                throttles: state.throttles.load(Ordering::Relaxed),
                ack_timeouts: state.ack_timeouts.load(Ordering::Relaxed),
                suppressed: state.suppressed.load(Ordering::Relaxed),
                disabled: state.disabled.load(Ordering::Relaxed),
                owner: LineOwner::decode(state.owner.load(Ordering::Relaxed)),
                dropped: state.dropped.load(Ordering::Relaxed),
            }
        })
    }
}
