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
//! Reentrancy: the line's handler runs in interrupt context on the line's CPU. It touches only
//! its claim's counters (atomics), its program and ring (interrupt-masked locks, taken in
//! thread context only with interrupts masked, so never held by the code it interrupted) and
//! the scheduler's lock (likewise). Lock order, everywhere: a claim's top half, then its ring,
//! then the scheduler — the interrupt (on cpu 0) and an `irq_ack` replay or `irq_read` on
//! another CPU meet only as one waiting briefly for the other, never in a cycle. The claims
//! table is taken only in thread context and never held while a subscription is dropped (the
//! drop waits for dispatches in flight). The four-CPU COM2 flood sessions and the drivers
//! test kernel's flood exercise both sides at once.

#![forbid(unsafe_code)]

use alloc::{
    collections::{BTreeMap, VecDeque},
    string::String,
    sync::Arc,
    vec::Vec,
};
use core::sync::atomic::{AtomicU64, Ordering};

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

/// One line a process owns.
struct Claim {
    handle: u64,
    line: u8,
    counter: Arc<LineCounter>,
    subscription: Subscription,
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
    fn new(ports: Option<PortRange>) -> Self {
        Self {
            given: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            wakes_seen: AtomicU64::new(0),
            ports,
            top_half: IrqSpinLock::new(None),
            ring: IrqSpinLock::new(VecDeque::with_capacity(abi::IRQ_RING_RECORDS)),
            runs: AtomicU64::new(0),
            ring_dropped: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        }
    }

    /// Runs the top half, if one is loaded; a run that faults unloads it (`None`: the
    /// interrupt is the driver's to serve).
    fn run_top_half(&self, line: u8, seq: u64) -> Option<TopHalfRun> {
        let mut top_half = self.top_half.lock();
        let program = top_half.as_ref()?;
        let mut ring = self.ring.lock();
        let mut world =
            TopHalfWorld { counter: self, ring: &mut ring, seq, acknowledged: false, woke: false };
        self.runs.fetch_add(1, Ordering::Relaxed);
        match bpf::run(program, u64::from(line), seq, TOP_HALF_BUDGET, &mut world) {
            Ok(answer) => Some(TopHalfRun {
                mine: answer == abi::bpf::MINE,
                acknowledged: world.acknowledged,
                woke: world.woke,
            }),
            Err(fault) => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                *top_half = None;
                report_fault(line, fault);
                None
            }
        }
    }
}

impl LineCounter {
    /// The line's interrupt, for driver `pid`: its top half runs; unless that acknowledged,
    /// the line is held for the driver; the driver is woken unless the top half said not to.
    fn interrupt(&self, pid: Pid, event: &Event) -> Verdict {
        let Event::Irq { line, seq } = *event else { return Verdict::Continue };
        let run = self.run_top_half(line, seq);
        let (acknowledged, woke) =
            run.as_ref().map_or((false, true), |run| (run.acknowledged, run.woke));
        if !acknowledged {
            // Held first: the woken driver may acknowledge on another CPU at once.
            irq::LINES.hold_until_acknowledged(line, arch::milliseconds());
        }
        self.given.fetch_add(1, Ordering::SeqCst);
        if woke {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            scheduler::wake_irq_waiter(pid);
        }
        if run.is_some_and(|run| !run.mine) { Verdict::Continue } else { Verdict::Handled }
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
    let counter = Arc::new(LineCounter::new(None));
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

/// `irq_claim(line, port_base, port_count)`.
pub(super) fn claim(pid: Pid, line: u64, port_base: u64, port_count: u64) -> Result<u64, Errno> {
    let line = u8::try_from(line).ok().filter(|&line| usize::from(line) < irq::LINE_COUNT);
    let line = line.ok_or(Errno::EINVAL)?;
    let ports = device_ports(line, port_base, port_count)?;
    if CLAIMS.lock().get(&pid).is_some_and(|held| held.len() >= abi::MAX_CLAIMED_LINES) {
        return Err(Errno::EAGAIN);
    }
    // Another owner's line: refused before a handler joins its chain (the claim below decides
    // a race between two claimers of a free line).
    if irq::LINES.owner(line) != LineOwner::Free {
        return Err(Errno::EBUSY);
    }
    let counter = Arc::new(LineCounter::new(ports));
    let counted = counter.clone();
    // Subscribed before the claim unmasks the line: its first interrupt finds the handler.
    let subscription = BUS
        .subscribe_line(line, "user-driver", Priority::OWNER, move |event, _reply| {
            counted.interrupt(pid, event)
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
    CLAIMS.lock().entry(pid).or_default().push(Claim { handle, line, counter, subscription });
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
    /// Its top half's instructions (0: none loaded).
    pub instructions: usize,
    /// Top-half runs.
    pub runs: u64,
    /// Runs stopped by a fault or the budget (each unloaded the program).
    pub faults: u64,
    /// Records dropped because the driver's ring was full.
    pub ring_dropped: u64,
}

/// The driver serving `line`, if a process does.
pub fn driver_of(line: u8) -> Option<DriverLine> {
    let claims = CLAIMS.lock();
    claims.iter().find_map(|(&pid, held)| {
        let claim = held.iter().find(|claim| claim.line == line)?;
        let counter = &claim.counter;
        let length = counter.top_half.lock().as_ref().map_or(0, |p| p.instructions().len());
        Some(DriverLine {
            pid,
            instructions: length,
            runs: counter.runs.load(Ordering::Relaxed),
            faults: counter.faults.load(Ordering::Relaxed),
            ring_dropped: counter.ring_dropped.load(Ordering::Relaxed),
        })
    })
}

/// `irq_ack(handle)`: the device is served; the line may interrupt again.
pub(super) fn acknowledge(pid: Pid, handle: u64) -> Result<u64, Errno> {
    let (line, counter) = with_claim(pid, handle, |claim| (claim.line, claim.counter.clone()))?;
    if irq::LINES.acknowledge(line) {
        // A top half that held the line (its ring was full) left its device's data waiting:
        // an edge-triggered line would never interrupt for it again, so it runs once now,
        // as if the interrupt came (its lock masks interrupts: the line's own run waits).
        let seq = irq::LINES.stats(line).raised;
        if let Some(run) = counter.run_top_half(line, seq) {
            if !run.acknowledged {
                irq::LINES.hold_until_acknowledged(line, arch::milliseconds());
            }
            if run.woke {
                counter.wakes.fetch_add(1, Ordering::SeqCst);
            }
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
    let Claim { line, counter, subscription, .. } = claim;
    // The handler first: no interrupt is counted for a claim that is going.
    drop(subscription);
    let unseen = counter.given.load(Ordering::SeqCst) - counter.seen.load(Ordering::Relaxed);
    irq::LINES.disown(line, pid, unseen);
}
