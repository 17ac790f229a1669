//! User-space drivers (the L4 model): a process claims an interrupt line and its device's
//! ports (`irq_claim`), sleeps in `irq_wait` until the line fires, serves its device with
//! `in`/`out` from ring 3 and answers `irq_ack`. Between the interrupt and the answer the line
//! stays masked, so a flood is paced by the driver; an answer that never comes is the line's
//! acknowledgement timeout (`events::irq`: unmasked after the backoff, 50 ms doubling to
//! 12.8 s). A driver that ends, however it ends, gives back its lines (masked until the next
//! claim, the interrupts it never saw counted as dropped) and its ports.
//!
//! Reentrancy: the line's handler runs in interrupt context on the line's CPU. It touches only
//! its claim's counter (atomics) and the scheduler's lock (interrupt-masked, so never held by
//! the code it interrupted on that CPU). The claims table is taken only in thread context and
//! never held while a subscription is dropped (the drop waits for dispatches in flight).

#![forbid(unsafe_code)]

use alloc::{collections::BTreeMap, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{
    Pid,
    scheduler::{self, BlockReason, SCHEDULER},
};
use crate::{
    abi, arch,
    events::{
        BUS, Errno, Event, Priority, Subscription, Verdict,
        irq::{self, LineOwner},
    },
    sync::IrqSpinLock,
    vocab::PortRange,
};

/// One line a process owns.
struct Claim {
    handle: u64,
    line: u8,
    ports: Option<PortRange>,
    counter: Arc<LineCounter>,
    subscription: Subscription,
}

/// Interrupts given to the owner, and the last number its `irq_wait` returned.
#[derive(Default)]
struct LineCounter {
    given: AtomicU64,
    seen: AtomicU64,
}

/// Every process's claims. Taken in thread context only; subscriptions are dropped after it
/// is let go.
static CLAIMS: IrqSpinLock<BTreeMap<Pid, Vec<Claim>>> = IrqSpinLock::new(BTreeMap::new());

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// `irq_claim(line, port_base, port_count)`.
pub(super) fn claim(pid: Pid, line: u64, port_base: u64, port_count: u64) -> Result<u64, Errno> {
    let line = u8::try_from(line).ok().filter(|&line| usize::from(line) < irq::LINE_COUNT);
    let line = line.ok_or(Errno::EINVAL)?;
    let ports = device_ports(line, port_base, port_count)?;
    if CLAIMS.lock().get(&pid).is_some_and(|held| held.len() >= abi::MAX_CLAIMED_LINES) {
        return Err(Errno::EAGAIN);
    }
    let counter = Arc::new(LineCounter::default());
    let counted = counter.clone();
    // Subscribed before the claim unmasks the line: its first interrupt finds the handler.
    let subscription = BUS
        .subscribe_line(line, "user-driver", Priority::OWNER, move |event, _reply| {
            let Event::Irq { line, .. } = *event else { return Verdict::Continue };
            // Held first: the woken driver may acknowledge on another CPU at once.
            irq::LINES.hold_until_acknowledged(line, arch::milliseconds());
            counted.given.fetch_add(1, Ordering::SeqCst);
            scheduler::wake_irq_waiter(pid);
            Verdict::Handled
        })
        .map_err(|_| Errno::EAGAIN)?;
    if let Err(held) = irq::LINES.claim(line, LineOwner::Process(pid)) {
        drop(subscription);
        return Err(if held.is_some() { Errno::EBUSY } else { Errno::EINVAL });
    }
    if let Some(range) = ports
        && !scheduler::change_current_ports(|grant| grant.add(range))
    {
        irq::LINES.disown(line, pid, 0);
        drop(subscription);
        return Err(Errno::EAGAIN);
    }
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    CLAIMS.lock().entry(pid).or_default().push(Claim {
        handle,
        line,
        ports,
        counter,
        subscription,
    });
    Ok(handle)
}

/// The ports asked for, if they lie within one device the kernel knows on `line` (`None`: no
/// ports asked for).
fn device_ports(line: u8, base: u64, count: u64) -> Result<Option<PortRange>, Errno> {
    if count == 0 {
        return Ok(None);
    }
    let asked = u16::try_from(base)
        .ok()
        .zip(u16::try_from(count).ok())
        .map(|(base, count)| PortRange { base, count })
        .filter(|range| range.end() <= 0x1_0000)
        .ok_or(Errno::EINVAL)?;
    let known = arch::devices().any(|device| device.line == line && device.ports.covers(asked));
    if known { Ok(Some(asked)) } else { Err(Errno::EACCES) }
}

/// Runs `serve` on `pid`'s claim `handle` (`EINVAL`: no such claim of its).
fn with_claim<T>(pid: Pid, handle: u64, serve: impl FnOnce(&Claim) -> T) -> Result<T, Errno> {
    let claims = CLAIMS.lock();
    let claim = claims.get(&pid).and_then(|held| held.iter().find(|c| c.handle == handle));
    claim.map(serve).ok_or(Errno::EINVAL)
}

/// What `irq_wait` did.
pub(super) enum Waited {
    /// The line's count, past the one asked about.
    Count(u64),
    /// The caller is blocked until the line interrupts; the call runs again then.
    Blocked,
}

/// `irq_wait(handle, last_seq)`: the line's count once it is past `last_seq`, blocking until
/// it is. The count it returns is what the owner has seen: the line's acknowledgement is due
/// from now.
pub(super) fn wait(pid: Pid, handle: u64, last_seq: u64) -> Result<Waited, Errno> {
    let (line, counter) = with_claim(pid, handle, |claim| (claim.line, claim.counter.clone()))?;
    // Under the lock the handler's wake-up takes: an interrupt after the look below wakes the
    // block below.
    let mut scheduler = SCHEDULER.lock();
    let given = counter.given.load(Ordering::SeqCst);
    if last_seq > given {
        return Err(Errno::EINVAL);
    }
    if given == last_seq {
        scheduler.block_current(BlockReason::Irq);
        return Ok(Waited::Blocked);
    }
    drop(scheduler);
    counter.seen.store(given, Ordering::Relaxed);
    irq::LINES.delivered(line, arch::milliseconds());
    Ok(Waited::Count(given))
}

/// `irq_ack(handle)`: the device is served; the line may interrupt again.
pub(super) fn acknowledge(pid: Pid, handle: u64) -> Result<u64, Errno> {
    let line = with_claim(pid, handle, |claim| claim.line)?;
    irq::LINES.acknowledge(line);
    Ok(0)
}

/// `irq_release(handle)`.
pub(super) fn release(pid: Pid, handle: u64) -> Result<u64, Errno> {
    let claim = {
        let mut claims = CLAIMS.lock();
        let held = claims.get_mut(&pid).ok_or(Errno::EINVAL)?;
        let at = held.iter().position(|claim| claim.handle == handle).ok_or(Errno::EINVAL)?;
        held.remove(at)
    };
    if let Some(range) = claim.ports {
        scheduler::change_current_ports(|grant| {
            grant.remove(range);
            true
        });
    }
    give_back(pid, claim);
    Ok(0)
}

/// Gives back every line `pid` owns: it has ended. Its ports went with it (a task that does
/// not run has none open).
pub(super) fn release_all(pid: Pid) {
    let claims = CLAIMS.lock().remove(&pid).unwrap_or_default();
    for claim in claims {
        give_back(pid, claim);
    }
}

fn give_back(pid: Pid, claim: Claim) {
    let Claim { line, counter, subscription, .. } = claim;
    // The handler first: no interrupt is counted for a claim that is going.
    drop(subscription);
    let unseen = counter.given.load(Ordering::SeqCst) - counter.seen.load(Ordering::Relaxed);
    irq::LINES.disown(line, pid, unseen);
}
