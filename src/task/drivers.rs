//! User-space drivers (the L4 model): a process claims an interrupt line and its device's
//! ports (`irq_claim`), sleeps in `irq_wait` until the line fires, serves its device with
//! `in`/`out` from ring 3 and answers `irq_ack`. Between the interrupt and the answer the line
//! stays masked, so a flood is paced by the driver; an answer that never comes is the line's
//! acknowledgement timeout (`events::irq`: unmasked after the backoff, 50 ms doubling to
//! 12.8 s). A driver that ends, however it ends, gives back its lines (masked until the next
//! claim, the interrupts it never saw counted as dropped) and its ports.
//!
//! A driver may also load a verified top half (`irq_program`, see `bpf`): it runs in the
//! interrupt itself, reads its device's ports, queues records for the driver (`irq_read`),
//! acknowledges the line itself and wakes the driver only when it asks — once per line of
//! serial input rather than once per byte.
//!
//! Drivers may also **share** a line (`IRQ_CLAIM_SHARED`), each for its own device: one
//! subscription per shared line asks every sharer's top half whether the interrupt was its
//! device's — all of them, since an edge that two devices raised together is one interrupt.
//! A sharer holds the line only for its own device, and its acknowledgement opens the line
//! once no other sharer holds it: each claim's hold is counted by the line itself
//! (`IrqLines::hold_for`, `end_hold`), under the line's lock, so the count, the claim's mark
//! and the mask change together.
//!
//! Reentrancy: the line's handler runs in interrupt context on the line's CPU. It touches only
//! its claim's counters (atomics), a shared line's list of sharers, its program and ring
//! (interrupt-masked locks, taken in thread context only with interrupts masked, so never held
//! by the code it interrupted) and the scheduler's lock (likewise). Lock order, everywhere: a
//! shared line's sharers, then a claim's top half, then its ring (released before the line's
//! own lock, `irq.rs`, is taken for a hold), then the scheduler — the
//! interrupt (on cpu 0) and an `irq_ack` replay or `irq_read` on another CPU meet only as one
//! waiting briefly for the other, never in a cycle. The claims table and the shared lines'
//! table are taken only in thread context and never held while a subscription is dropped (the
//! drop waits for dispatches in flight). The four-CPU COM2 flood sessions and the drivers
//! test kernel's flood exercise both sides at once.

#![forbid(unsafe_code)]

use alloc::{
    collections::{BTreeMap, VecDeque, btree_map::Entry},
    string::String,
    sync::Arc,
    vec::Vec,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{
    Pid,
    scheduler::{self, BlockReason, SCHEDULER},
};
use crate::{
    abi, arch,
    bpf::{self, Instruction},
    events::{
        BUS, Errno, Event, Priority, SpaceId, Subscription, Verdict,
        irq::{self, LineOwner},
    },
    mm::{space, user_copy},
    sync::IrqSpinLock,
    vocab::PortRange,
};

/// One line a process owns, or shares.
struct Claim {
    handle: u64,
    line: u8,
    counter: Arc<LineCounter>,
    /// Its own subscription; a sharer has none (its line's asker asks it).
    subscription: Option<Subscription>,
}

/// Interrupts given to the owner, the last number its `irq_wait` returned, its wake-ups, its
/// top half and the records that one queued.
struct LineCounter {
    given: AtomicU64,
    seen: AtomicU64,
    /// Wake-ups asked for (every interrupt without a top half; with one, its `wake()` calls)
    /// and the last one an `irq_wait` returned for.
    wakes: AtomicU64,
    wakes_seen: AtomicU64,
    ports: Option<PortRange>,
    /// One of the line's sharers: only its top half serves its interrupts.
    shared: bool,
    /// This claim holds the line masked until its driver acknowledges.
    holding: AtomicBool,
    /// Interrupts its top half answered were not its device's.
    not_mine: AtomicU64,
    top_half: IrqSpinLock<Option<bpf::Verified>>,
    ring: IrqSpinLock<VecDeque<u64>>,
    /// Top-half runs, records its full ring dropped, runs stopped (and programs unloaded).
    runs: AtomicU64,
    ring_dropped: AtomicU64,
    faults: AtomicU64,
}

/// Instructions one top-half run may take: every path of a verified program is shorter, so
/// only a verifier bug reaches it.
const TOP_HALF_BUDGET: usize = abi::bpf::MAX_INSTRUCTIONS;

/// What the top half made of one interrupt.
enum TopHalf {
    /// None is loaded.
    Absent,
    /// It ran to its answer.
    Ran(TopHalfRun),
    /// It faulted or ran out of budget, and is unloaded now.
    Stopped,
}

/// What a top half did to one interrupt.
struct TopHalfRun {
    mine: bool,
    acknowledged: bool,
    woke: bool,
}

/// The world a top half acts on: its driver's ports, ring and line.
struct TopHalfWorld<'a> {
    counter: &'a LineCounter,
    ring: &'a mut VecDeque<u64>,
    seq: u64,
    acknowledged: bool,
    woke: bool,
}

impl bpf::Environment for TopHalfWorld<'_> {
    fn port_in(&mut self, port: u16) -> u8 {
        arch::read_granted_port(self.counter.ports.as_slice(), port).unwrap_or(0xff)
    }

    fn port_out(&mut self, port: u16, value: u8) {
        arch::write_granted_port(self.counter.ports.as_slice(), port, value);
    }

    fn queue(&mut self, value: u64) -> bool {
        if self.ring.len() >= abi::IRQ_RING_RECORDS {
            self.counter.ring_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.ring.push_back(value);
        true
    }

    fn wake(&mut self) {
        self.woke = true;
    }

    fn acknowledge(&mut self) {
        self.acknowledged = true;
    }

    fn seq(&self) -> u64 {
        self.seq
    }

    fn ring_space(&self) -> u64 {
        abi::IRQ_RING_RECORDS.saturating_sub(self.ring.len()) as u64
    }
}

/// Logs a stopped top half; out of line, off the interrupt's fast path.
#[cold]
#[inline(never)]
fn report_fault(line: u8, fault: bpf::Fault) {
    log::warn!(
        "irq line {line}: top half stopped ({fault:?}) and unloaded; its driver serves the line"
    );
}

impl LineCounter {
    fn new(ports: Option<PortRange>, shared: bool) -> Self {
        Self {
            given: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            wakes_seen: AtomicU64::new(0),
            ports,
            shared,
            holding: AtomicBool::new(false),
            not_mine: AtomicU64::new(0),
            top_half: IrqSpinLock::new(None),
            ring: IrqSpinLock::new(VecDeque::with_capacity(abi::IRQ_RING_RECORDS)),
            runs: AtomicU64::new(0),
            ring_dropped: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        }
    }

    /// Runs the top half, if one is loaded; a run that faults unloads it.
    fn run_top_half(&self, line: u8, seq: u64) -> TopHalf {
        let mut top_half = self.top_half.lock();
        let Some(program) = top_half.as_ref() else { return TopHalf::Absent };
        let mut ring = self.ring.lock();
        let mut world =
            TopHalfWorld { counter: self, ring: &mut ring, seq, acknowledged: false, woke: false };
        self.runs.fetch_add(1, Ordering::Relaxed);
        match bpf::run(program, u64::from(line), seq, TOP_HALF_BUDGET, &mut world) {
            Ok(answer) => TopHalf::Ran(TopHalfRun {
                mine: answer == abi::bpf::MINE,
                acknowledged: world.acknowledged,
                woke: world.woke,
            }),
            Err(fault) => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                *top_half = None;
                report_fault(line, fault);
                TopHalf::Stopped
            }
        }
    }
}

impl LineCounter {
    /// The line's interrupt, for driver `pid`: its top half runs; unless that acknowledged,
    /// the line is held for the driver, and a held line always wakes it (someone must answer).
    /// A sharer without a top half cannot tell its device's interrupts from the others' and
    /// answers for none; an answer of "not mine" is final (nothing held, counted or woken:
    /// the next sharer is asked). A top half that stops leaves its device unserved: the
    /// driver is woken to serve it (or load another), shared or not.
    fn interrupt(&self, pid: Pid, event: &Event) -> Verdict {
        let Event::Irq { line, seq } = *event else { return Verdict::Continue };
        let (acknowledged, woke) = match self.run_top_half(line, seq) {
            TopHalf::Ran(run) if !run.mine => {
                self.not_mine.fetch_add(1, Ordering::Relaxed);
                return Verdict::Continue;
            }
            TopHalf::Ran(run) => (run.acknowledged, run.woke),
            TopHalf::Absent if self.shared => return Verdict::Continue,
            TopHalf::Absent | TopHalf::Stopped => (false, true),
        };
        if !acknowledged {
            // Held first: the woken driver may acknowledge on another CPU at once.
            irq::LINES.hold_for(line, arch::milliseconds(), &self.holding);
        }
        self.given.fetch_add(1, Ordering::SeqCst);
        if woke || !acknowledged {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            scheduler::wake_irq_waiter(pid);
        }
        Verdict::Handled
    }
}

/// A verified top half on a line, served by the drivers' own interrupt path but for no
/// process: the benchmark's measure of a handler program against a native one.
pub struct BenchTopHalf {
    counter: Arc<LineCounter>,
    _subscription: Subscription,
}

impl BenchTopHalf {
    /// Empties the ring the program queues to; returns how many records it held.
    pub fn take_records(&self) -> usize {
        let mut ring = self.counter.ring.lock();
        let count = ring.len();
        ring.clear();
        count
    }
}

/// Loads `code` as a top half for `line`'s interrupts, with no ports and no process to wake;
/// the line is not claimed (a bench uses the software line).
pub fn bench_top_half(line: u8, code: &[Instruction]) -> Result<BenchTopHalf, String> {
    /// Nobody: a wake-up finds no process.
    const NO_PROCESS: Pid = 0;
    let counter = Arc::new(LineCounter::new(None, false));
    let program = bpf::verify(code, &[]).map_err(|refusal| alloc::format!("refused: {refusal}"))?;
    *counter.top_half.lock() = Some(program);
    let counted = counter.clone();
    let subscription = BUS
        .subscribe_line(line, "bench-verified", Priority::OWNER, move |event, _reply| {
            counted.interrupt(NO_PROCESS, event)
        })
        .map_err(|error| alloc::format!("not subscribed: {error:?}"))?;
    Ok(BenchTopHalf { counter, _subscription: subscription })
}

/// Every process's claims. Taken in thread context only; subscriptions are dropped after it
/// is let go.
static CLAIMS: IrqSpinLock<BTreeMap<Pid, Vec<Claim>>> = IrqSpinLock::new(BTreeMap::new());

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// `irq_claim(line, port_base, port_count, flags)`.
pub(super) fn claim(
    pid: Pid,
    line: u64,
    port_base: u64,
    port_count: u64,
    flags: u64,
) -> Result<u64, Errno> {
    let line = u8::try_from(line).ok().filter(|&line| usize::from(line) < irq::LINE_COUNT);
    let line = line.ok_or(Errno::EINVAL)?;
    if flags & !abi::IRQ_CLAIM_SHARED != 0 {
        return Err(Errno::EINVAL);
    }
    let shared = flags & abi::IRQ_CLAIM_SHARED != 0;
    let ports = device_ports(line, port_base, port_count)?;
    if CLAIMS.lock().get(&pid).is_some_and(|held| held.len() >= abi::MAX_CLAIMED_LINES) {
        return Err(Errno::EAGAIN);
    }
    // Another owner's line: refused before a handler joins its chain (the claim below decides
    // a race between two claimers of a free line).
    let joinable = match irq::LINES.owner(line) {
        LineOwner::Free => true,
        LineOwner::Shared(sharers) => shared && sharers < abi::MAX_LINE_SHARERS,
        LineOwner::Kernel | LineOwner::Process(_) => false,
    };
    if !joinable {
        return Err(Errno::EBUSY);
    }
    let counter = Arc::new(LineCounter::new(ports, shared));
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    // Served before the claim unmasks the line: its first interrupt finds the handler.
    let subscription = if shared {
        join_sharers(line, Sharer { handle, pid, counter: counter.clone() })?;
        None
    } else {
        let counted = counter.clone();
        let subscription = BUS
            .subscribe_line(line, "user-driver", Priority::OWNER, move |event, _reply| {
                counted.interrupt(pid, event)
            })
            .map_err(|_| Errno::EAGAIN)?;
        Some(subscription)
    };
    let claimed = if shared {
        irq::LINES.claim_shared(line, abi::MAX_LINE_SHARERS).map(drop)
    } else {
        irq::LINES.claim(line, LineOwner::Process(pid))
    };
    if let Err(held) = claimed {
        // An interrupt it took meanwhile may have held the winner's line for it.
        stop_serving(line, handle, subscription);
        irq::LINES.end_hold(line, &counter.holding);
        return Err(if held.is_some() { Errno::EBUSY } else { Errno::EINVAL });
    }
    if let Some(range) = ports
        && !scheduler::change_current_ports(|grant| grant.add(range))
    {
        stop_serving(line, handle, subscription);
        irq::LINES.end_hold(line, &counter.holding);
        leave(line, pid, shared, 0);
        return Err(Errno::EAGAIN);
    }
    CLAIMS.lock().entry(pid).or_default().push(Claim { handle, line, counter, subscription });
    Ok(handle)
}

/// One driver sharing a line, as the line's interrupt asks it.
struct Sharer {
    handle: u64,
    pid: Pid,
    counter: Arc<LineCounter>,
}

/// A shared line's drivers and the one subscription that asks them.
struct Sharers {
    asked: Arc<IrqSpinLock<Vec<Sharer>>>,
    _subscription: Subscription,
}

/// The shared lines' drivers. Taken in thread context only, never while a subscription is
/// dropped; each line's list is taken by its interrupt too (interrupts masked).
static SHARED_LINES: IrqSpinLock<BTreeMap<u8, Sharers>> = IrqSpinLock::new(BTreeMap::new());

/// Asks every sharer about the interrupt, not only until one answers "mine": the ISA lines
/// are edge-triggered, and two devices that interrupted together raised one edge — the
/// second, not asked, would wait for good with its line high.
fn ask_all(sharers: &IrqSpinLock<Vec<Sharer>>, event: &Event) -> Verdict {
    let sharers = sharers.lock();
    let mut claimed = false;
    for sharer in sharers.iter() {
        claimed |= sharer.counter.interrupt(sharer.pid, event) == Verdict::Handled;
    }
    if claimed { Verdict::Handled } else { Verdict::Continue }
}

/// Adds `sharer` to `line`'s drivers, subscribing the line's asker with the first. Refused
/// (`EBUSY`) if another sharer has any of its ports: sharing a line is not sharing a device.
fn join_sharers(line: u8, sharer: Sharer) -> Result<(), Errno> {
    let join = |asked: &IrqSpinLock<Vec<Sharer>>, sharer: Sharer| {
        let mut asked = asked.lock();
        let ports = sharer.counter.ports;
        let overlaps =
            |other: &Sharer| ports.zip(other.counter.ports).is_some_and(|(a, b)| a.overlaps(b));
        if asked.iter().any(overlaps) {
            return Err(Errno::EBUSY);
        }
        asked.push(sharer);
        Ok(())
    };
    if let Some(sharers) = SHARED_LINES.lock().get(&line) {
        return join(&sharers.asked, sharer);
    }
    let asked = Arc::new(IrqSpinLock::new(Vec::new()));
    let asking = asked.clone();
    let subscription = BUS
        .subscribe_line(line, "user-drivers (shared)", Priority::OWNER, move |event, _reply| {
            ask_all(&asking, event)
        })
        .map_err(|_| Errno::EAGAIN)?;
    let mut lines = SHARED_LINES.lock();
    let (joined, spare) = match lines.entry(line) {
        // Another sharer's claim made the asker first.
        Entry::Occupied(sharers) => (join(&sharers.get().asked, sharer), Some(subscription)),
        Entry::Vacant(vacant) => {
            asked.lock().push(sharer);
            vacant.insert(Sharers { asked, _subscription: subscription });
            (Ok(()), None)
        }
    };
    drop(lines);
    drop(spare);
    joined
}

/// Takes claim `handle` off `line`'s drivers: its subscription, or its place among the
/// sharers (the asker goes with the last). After this no interrupt reaches the claim.
fn stop_serving(line: u8, handle: u64, subscription: Option<Subscription>) {
    if subscription.is_some() {
        drop(subscription);
        return;
    }
    let emptied = {
        let mut lines = SHARED_LINES.lock();
        let Some(sharers) = lines.get(&line) else { return };
        let mut asked = sharers.asked.lock();
        asked.retain(|sharer| sharer.handle != handle);
        let empty = asked.is_empty();
        drop(asked);
        if empty { lines.remove(&line) } else { None }
    };
    drop(emptied);
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
    let has_top_half = counter.top_half.lock().is_some();
    // Under the lock the handler's wake-up takes: an interrupt after the look below wakes the
    // block below.
    let mut scheduler = SCHEDULER.lock();
    let given = counter.given.load(Ordering::SeqCst);
    if last_seq > given {
        return Err(Errno::EINVAL);
    }
    let wakes = counter.wakes.load(Ordering::SeqCst);
    // Without a top half every interrupt is news; with one, only those it woke the driver for.
    let news = if has_top_half {
        wakes > counter.wakes_seen.load(Ordering::Relaxed)
    } else {
        given > last_seq
    };
    if !news {
        scheduler.block_current(BlockReason::Irq);
        return Ok(Waited::Blocked);
    }
    drop(scheduler);
    counter.wakes_seen.store(wakes, Ordering::Relaxed);
    counter.seen.store(given, Ordering::Relaxed);
    irq::LINES.delivered(line, arch::milliseconds());
    Ok(Waited::Count(given))
}

/// `irq_program(handle, instructions, count, refusal_out)`.
pub(super) fn load_program(
    pid: Pid,
    handle: u64,
    code_address: u64,
    count: u64,
    refusal_out: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    let counter = with_claim(pid, handle, |claim| claim.counter.clone())?;
    if count == 0 {
        *counter.top_half.lock() = None;
        return Ok(0);
    }
    // One more than the most allowed is enough to be refused for it.
    let count =
        usize::try_from(count).map_err(|_| Errno::EINVAL)?.min(abi::bpf::MAX_INSTRUCTIONS + 1);
    let mut bytes = alloc::vec![0u8; count * 8];
    user_copy::copy_from_user(space, code_address, &mut bytes)?;
    let code: Vec<Instruction> = bytes
        .as_chunks::<8>()
        .0
        .iter()
        .map(|b| Instruction {
            opcode: b[0],
            registers: b[1],
            offset: i16::from_le_bytes([b[2], b[3]]),
            immediate: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect();
    match bpf::verify(&code, counter.ports.as_slice()) {
        Ok(program) => {
            *counter.top_half.lock() = Some(program);
            Ok(0)
        }
        Err(refusal) => {
            log::info!("pid {pid}: top half refused: {refusal}");
            if refusal_out != 0 {
                let mut record = [0u8; 8];
                record[..4].copy_from_slice(&(refusal.index as u32).to_le_bytes());
                record[4..].copy_from_slice(&u32::from(refusal.rule as u8).to_le_bytes());
                user_copy::copy_to_user(space, refusal_out, &record)?;
            }
            Err(Errno::EINVAL)
        }
    }
}

/// `irq_read(handle, records, max)`: the records the top half queued, oldest first.
pub(super) fn read(
    pid: Pid,
    handle: u64,
    buffer: u64,
    max: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    let max = usize::try_from(max).map_err(|_| Errno::EFAULT)?.min(abi::IRQ_RING_RECORDS);
    // Checked first, so a bad pointer loses no records.
    space::check_user(space, buffer, (max * 8) as u64, true)?;
    let counter = with_claim(pid, handle, |claim| claim.counter.clone())?;
    let mut bytes = Vec::with_capacity(max * 8);
    {
        let mut ring = counter.ring.lock();
        while bytes.len() < max * 8 {
            let Some(record) = ring.pop_front() else { break };
            bytes.extend_from_slice(&record.to_le_bytes());
        }
    }
    user_copy::copy_to_user(space, buffer, &bytes)?;
    Ok((bytes.len() / 8) as u64)
}

/// A user-space driver's line, as the shell's `irqs` shows it.
#[derive(Clone, Copy, Debug)]
pub struct DriverLine {
    /// The driver.
    pub pid: Pid,
    /// Whether it shares the line.
    pub shared: bool,
    /// Interrupts its top half answered were another device's.
    pub not_mine: u64,
    /// Its top half's instructions (0: none loaded).
    pub instructions: usize,
    /// Top-half runs.
    pub runs: u64,
    /// Runs stopped by a fault or the budget (each unloaded the program).
    pub faults: u64,
    /// Records dropped because the driver's ring was full.
    pub ring_dropped: u64,
}

/// The drivers serving `line` (one, or its sharers).
pub fn drivers_of(line: u8) -> Vec<DriverLine> {
    let claims = CLAIMS.lock();
    let on_line = claims.iter().flat_map(|(&pid, held)| held.iter().map(move |c| (pid, c)));
    on_line
        .filter(|(_, claim)| claim.line == line)
        .map(|(pid, claim)| {
            let counter = &claim.counter;
            let length = counter.top_half.lock().as_ref().map_or(0, |p| p.instructions().len());
            DriverLine {
                pid,
                shared: counter.shared,
                not_mine: counter.not_mine.load(Ordering::Relaxed),
                instructions: length,
                runs: counter.runs.load(Ordering::Relaxed),
                faults: counter.faults.load(Ordering::Relaxed),
                ring_dropped: counter.ring_dropped.load(Ordering::Relaxed),
            }
        })
        .collect()
}

/// `irq_ack(handle)`: the device is served; the line may interrupt again (a shared line once
/// no other sharer holds it).
pub(super) fn acknowledge(pid: Pid, handle: u64) -> Result<u64, Errno> {
    let (line, counter) = with_claim(pid, handle, |claim| (claim.line, claim.counter.clone()))?;
    // Decided in the one step that ends this claim's hold, under the line's lock: a hold from
    // the interrupt on another CPU is either ended here or lands after, with the driver
    // woken for it.
    if irq::LINES.end_hold(line, &counter.holding) {
        // A top half that held the line (its ring was full) left its device's data waiting:
        // an edge-triggered line would never interrupt for it again, so it runs once now,
        // as if the interrupt came (its lock masks interrupts: the line's own run waits).
        let seq = irq::LINES.stats(line).raised;
        if let TopHalf::Ran(run) = counter.run_top_half(line, seq)
            && run.mine
            && (run.woke || !run.acknowledged)
        {
            if !run.acknowledged {
                irq::LINES.hold_for(line, arch::milliseconds(), &counter.holding);
            }
            // The caller is the driver: its next `irq_wait` returns at once.
            counter.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }
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
    if let Some(range) = claim.counter.ports {
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
    let Claim { handle, line, counter, subscription } = claim;
    // The handler first: no interrupt is counted for a claim that is going.
    stop_serving(line, handle, subscription);
    // A claim that held the line lets it go (a shared line opens unless another holds it).
    irq::LINES.end_hold(line, &counter.holding);
    let unseen = counter.given.load(Ordering::SeqCst) - counter.seen.load(Ordering::Relaxed);
    leave(line, pid, counter.shared, unseen);
}

/// `pid`'s claim leaves `line`: one sharer fewer, or the owner gone.
fn leave(line: u8, pid: Pid, shared: bool, unseen: u64) {
    if shared {
        irq::LINES.leave_shared(line, unseen);
    } else {
        irq::LINES.disown(line, pid, unseen);
    }
}
