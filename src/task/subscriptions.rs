//! Processes' event subscriptions: `subscribe` (an observer on the bus that copies each event
//! into a bounded queue with the overflow policy the process chose), `poll` (records out to the
//! process) and `raise` (a process's own events, with backpressure and kill-producer made real).

#![forbid(unsafe_code)]

use alloc::{collections::BTreeMap, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{
    Pid,
    scheduler::{self, BlockReason, MAX_PROCESSES, SCHEDULER},
};
use crate::{
    abi::{self, EventRecord},
    events::{
        BUS, BoundedQueue, Delivery, Errno, Event, EventKind, OverflowPolicy, Priority,
        PushOutcome, Reply, SpaceId, Subscription, Verdict,
    },
    mm::{self, space, user_copy},
    sync::IrqSpinLock,
};

/// Most records one `poll` returns.
pub const MAX_POLL_RECORDS: usize = 64;
/// Most event subscriptions one process holds (each queues up to
/// `abi::MAX_SUBSCRIPTION_CAPACITY` records).
pub const MAX_SUBSCRIPTIONS: usize = 8;

/// A process's subscription: an observer that copies each event into a bounded queue with the
/// overflow policy the process chose; `seq` counts every offer, so gaps tell the process what
/// it missed.
pub(super) struct ProcessSubscription {
    handle: u64,
    queue: Arc<RecordQueue>,
    _subscription: Subscription,
}

/// Filled by an observer, in interrupt context for timer and IRQ events and in the raising
/// process's call for user events; emptied by `poll`. The bus's `BoundedQueue` is reentrant
/// (one short critical section with interrupts masked) and applies the policy.
struct RecordQueue {
    records: BoundedQueue<EventRecord>,
    offers: IrqSpinLock<Offers>,
}

/// Offer numbering, and for a backpressure queue which producer's events it took already.
struct Offers {
    offered: u64,
    /// Producer → the `seq` of its last event this queue took: the event a full backpressure
    /// queue refused comes back with the same number, to every backpressure queue, and one
    /// that took it the first time must not take it twice.
    last_from: BTreeMap<Pid, u64>,
}

/// Producers a backpressure subscription remembers before it forgets the ended ones (at most
/// [`MAX_PROCESSES`] are alive, so a waiting producer is never forgotten).
const MAX_REMEMBERED_PRODUCERS: usize = MAX_PROCESSES;

impl RecordQueue {
    /// Offers `event`; tells the raiser (through `reply`) to wait or to die if the policy says so.
    fn offer(&self, event: &Event, reply: &mut Reply) {
        let backpressure = self.records.policy() == OverflowPolicy::Backpressure;
        let mut offers = self.offers.lock();
        if let Event::User { pid, seq, retry, .. } = *event {
            let taken = if backpressure {
                offers.last_from.get(&pid).is_some_and(|&taken| taken >= seq)
            } else {
                // Taken or dropped on the first offer.
                retry
            };
            if taken {
                return;
            }
        }
        let Some(record) = record(offers.offered + 1, event) else { return };
        match self.records.push(record) {
            PushOutcome::WouldBlock => {
                // Not an offer yet: the same event comes back once the producer has waited.
                reply.would_block = true;
                return;
            }
            PushOutcome::KillProducer => reply.kill_producer = true,
            _ => {}
        }
        offers.offered += 1;
        if backpressure && let Event::User { pid, seq, .. } = *event {
            offers.last_from.insert(pid, seq);
            if offers.last_from.len() > MAX_REMEMBERED_PRODUCERS {
                offers.last_from.retain(|&producer, _| scheduler::is_alive(producer));
            }
        }
    }

    fn pop(&self) -> Option<EventRecord> {
        loop {
            match self.records.pop()? {
                Delivery::Item(record) => return Some(record),
                // The records' `seq` gaps already say what was lost.
                Delivery::Lost { .. } => {}
            }
        }
    }
}

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// Counts polls that made room. A raiser that found a queue full blocks only if no poll made
/// room since it looked: a poll on another CPU between its look and its block would otherwise
/// wake nobody, and it would sleep with room waiting.
static ROOM_MADE: AtomicU64 = AtomicU64::new(0);

/// Every process's subscriptions, by pid. Taken alone, never with the scheduler's lock, and
/// nothing is dropped under it: a subscription's drop waits for other CPUs to leave dispatch.
static BY_PROCESS: IrqSpinLock<BTreeMap<Pid, Vec<ProcessSubscription>>> =
    IrqSpinLock::new(BTreeMap::new());

/// Takes every subscription of `pid` (it has ended), for the caller to drop outside any lock.
pub(super) fn take(pid: Pid) -> Vec<ProcessSubscription> {
    BY_PROCESS.lock().remove(&pid).unwrap_or_default()
}

fn record(seq: u64, event: &Event) -> Option<EventRecord> {
    let (kind, a, b) = match *event {
        Event::Timer { tick } => (abi::EVENT_TIMER, tick, 0),
        Event::Irq { line, seq } => (abi::EVENT_IRQ, u64::from(line), seq),
        Event::ProcessExited { pid, code } => {
            (abi::EVENT_PROCESS_EXITED, u64::from(pid), code as u64)
        }
        Event::User { pid, value, .. } => (abi::EVENT_USER, u64::from(pid), value),
        _ => return None,
    };
    Some(EventRecord { seq, kind, a, b })
}

/// `subscribe(kind, capacity, overflow)`: a new subscription of the calling process; returns its
/// handle.
pub(super) fn subscribe(pid: Pid, kind: u64, capacity: u64, overflow: u64) -> Result<u64, Errno> {
    let kind = match kind {
        abi::EVENT_TIMER => EventKind::Timer,
        abi::EVENT_IRQ => EventKind::Irq,
        abi::EVENT_PROCESS_EXITED => EventKind::ProcessExited,
        abi::EVENT_USER => EventKind::User,
        _ => return Err(Errno::EINVAL),
    };
    let policy = match overflow {
        abi::OVERFLOW_DROP_OLDEST => OverflowPolicy::DropOldest,
        // Only a process's own events have a producer that can wait or be ended.
        abi::OVERFLOW_KILL_PRODUCER if kind == EventKind::User => OverflowPolicy::KillProducer,
        abi::OVERFLOW_BACKPRESSURE if kind == EventKind::User => OverflowPolicy::Backpressure,
        _ => return Err(Errno::EINVAL),
    };
    if capacity == 0 || capacity > abi::MAX_SUBSCRIPTION_CAPACITY {
        return Err(Errno::EINVAL);
    }
    if !mm::has_room_for_processes() {
        return Err(Errno::ENOMEM);
    }
    if BY_PROCESS.lock().get(&pid).is_some_and(|held| held.len() >= MAX_SUBSCRIPTIONS) {
        return Err(Errno::EAGAIN);
    }
    let queue = Arc::new(RecordQueue {
        records: BoundedQueue::new("process", capacity as usize, policy),
        offers: IrqSpinLock::new(Offers { offered: 0, last_from: BTreeMap::new() }),
    });
    let sink = queue.clone();
    let subscription = BUS
        .subscribe(kind, "process", Priority::OBSERVER, move |event, reply| {
            sink.offer(event, reply);
            Verdict::Continue
        })
        .map_err(|_| Errno::EAGAIN)?;
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let subscription = ProcessSubscription { handle, queue, _subscription: subscription };
    // The caller is this process, alive while its call runs: its subscriptions are taken
    // only once it has ended.
    BY_PROCESS.lock().entry(pid).or_default().push(subscription);
    Ok(handle)
}

/// What `raise` did.
pub(super) enum Raised {
    /// Every queue took the event (or the caller was ended for overrunning one).
    Taken,
    /// A full `backpressure` queue refused it: the caller is blocked until a subscriber polls,
    /// and the call runs again with the same event.
    MustWait,
}

/// Publishes a user event. A `kill-producer` queue it overran ends the caller; a full
/// `backpressure` queue blocks it until a subscriber polls.
pub(super) fn raise(value: u64, pid: Pid) -> Result<Raised, Errno> {
    let (seq, retry) = {
        let mut scheduler = SCHEDULER.lock();
        let task = scheduler.current_task().ok_or(Errno::ESRCH)?;
        (task.raised + 1, task.raise_refused)
    };
    let room_seen = ROOM_MADE.load(Ordering::SeqCst);
    let mut reply = Reply::new();
    BUS.dispatch(&Event::User { pid, seq, value, retry }, &mut reply);
    if reply.kill_producer {
        log::warn!("pid {pid} killed: its raised events overran a kill-producer queue");
        scheduler::request_exit(pid, abi::FLOODED_EXIT_CODE);
        return Ok(Raised::Taken);
    }
    let mut scheduler = SCHEDULER.lock();
    let Some(task) = scheduler.current_task() else { return Err(Errno::ESRCH) };
    task.raise_refused = reply.would_block;
    if reply.would_block {
        // Under the lock a poll's wake-up takes: either room was made since the look (offer
        // again at once) or the wake-up comes after this block.
        if ROOM_MADE.load(Ordering::SeqCst) == room_seen {
            scheduler.block_current(BlockReason::Room);
        }
        return Ok(Raised::MustWait);
    }
    task.raised = seq;
    Ok(Raised::Taken)
}

/// `poll(handle, records, max)`: moves waiting records to the caller; never blocks.
pub(super) fn poll(
    pid: Pid,
    handle: u64,
    buffer: u64,
    max_records: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    let max = usize::try_from(max_records).map_err(|_| Errno::EFAULT)?.min(MAX_POLL_RECORDS);
    let record_bytes = core::mem::size_of::<EventRecord>();
    // Check the whole buffer first, so a bad pointer loses no records.
    space::check_user(space, buffer, (max * record_bytes) as u64, true)?;
    let queue = {
        let by_process = BY_PROCESS.lock();
        let found = by_process.get(&pid).and_then(|held| held.iter().find(|s| s.handle == handle));
        found.map(|s| s.queue.clone()).ok_or(Errno::EINVAL)?
    };
    let mut bytes = Vec::with_capacity(max * record_bytes);
    let mut count = 0;
    while count < max {
        let Some(record) = queue.pop() else { break };
        for word in [record.seq, record.kind, record.a, record.b] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        count += 1;
    }
    if count > 0 {
        // Room in a queue: producers waiting on backpressure try again.
        let mut scheduler = SCHEDULER.lock();
        ROOM_MADE.fetch_add(1, Ordering::SeqCst);
        scheduler.wake_all(BlockReason::Room);
    }
    user_copy::copy_to_user(space, buffer, &bytes)?;
    Ok(count as u64)
}
