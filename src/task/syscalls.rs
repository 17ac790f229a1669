//! The process system calls, served as the owner of `syscall` events. Every user pointer goes
//! through mm's checked copies (`EFAULT` for anything the process may not touch); memory calls
//! become `memory` events, so mm serves them after the security band has seen them.

use alloc::{collections::BTreeMap, sync::Arc, vec, vec::Vec};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{
    Pid,
    process::{self, BlockReason, Reaped, SCHEDULER},
};
use crate::{
    abi::{self, EventRecord},
    events::{
        BUS, BoundedQueue, Delivery, Errno, Event, EventKind, MemoryRequest, OverflowPolicy,
        Priority, Protection, PushOutcome, Reply, SpaceId, Subscription, Verdict,
    },
    mm::{self, space},
    print,
    sync::IrqSpinLock,
};

/// Most bytes one `write` or `read` moves; the caller loops for more (a short count, as POSIX
/// allows).
pub const MAX_IO_BYTES_PER_CALL: usize = 64 * 1024;
/// Most records one `poll` returns.
pub const MAX_POLL_RECORDS: usize = 64;
/// Most event subscriptions one process holds (each queues up to
/// `abi::MAX_SUBSCRIPTION_CAPACITY` records).
pub const MAX_SUBSCRIPTIONS: usize = 8;
/// Longest program name `spawn` accepts.
const MAX_NAME_LEN_BYTES: usize = 32;
/// Longest sleep: a day. Longer requests are refused rather than overflowing tick arithmetic.
const MAX_SLEEP_MS: u64 = 24 * 60 * 60 * 1000;

pub(super) fn subscribe() {
    BUS.subscribe(EventKind::Syscall, "process-calls", Priority::OWNER, on_syscall)
        .expect("the scheduler subscribes at boot")
        .keep_forever();
}

/// What a call did, beyond an ordinary result.
enum Served {
    /// Return this value.
    Value(u64),
    /// The caller blocked; issue the call again when it is woken.
    Restart,
}

fn on_syscall(event: &Event, reply: &mut Reply) -> Verdict {
    let Event::Syscall { number, ref args, pid } = *event else { return Verdict::Continue };
    if pid == 0 || number >= abi::SYSCALL_COUNT {
        // Kernel-raised test syscalls and unknown numbers are not ours (the default: ENOSYS).
        return Verdict::Continue;
    }
    process::SYSCALLS_SINCE_SWITCH.fetch_add(1, Ordering::Relaxed);
    // The call that does nothing but answer stays in this small frame; every other call pays
    // for `serve`'s large one.
    if number == abi::SYS_GETPID {
        reply.value = u64::from(pid);
        return Verdict::Handled;
    }
    serve_and_reply(number, args, pid, reply)
}

#[inline(never)]
fn serve_and_reply(number: u64, args: &[u64; 6], pid: Pid, reply: &mut Reply) -> Verdict {
    match serve(number, args, pid, process::current_space()) {
        Ok(Served::Value(value)) => {
            reply.value = value;
            Verdict::Handled
        }
        Ok(Served::Restart) => {
            reply.restart = true;
            Verdict::Handled
        }
        Err(errno) => Verdict::Deny(errno),
    }
}

fn protection(bits: u64) -> Result<Protection, Errno> {
    Protection::from_bits(bits).ok_or(Errno::EINVAL)
}

fn length(len: u64) -> Result<usize, Errno> {
    usize::try_from(len).map_err(|_| Errno::EFAULT)
}

fn serve(number: u64, args: &[u64; 6], pid: Pid, space: SpaceId) -> Result<Served, Errno> {
    let value = match number {
        abi::SYS_READ => return read(args[0], args[1], length(args[2])?, space),
        abi::SYS_WRITE => write(args[0], args[1], args[2], space)?,
        abi::SYS_EXIT => {
            // The return path sees the pending exit and never comes back to ring 3.
            exit(args[0] as i32);
            0
        }
        abi::SYS_GETPID => u64::from(pid),
        abi::SYS_YIELD => {
            SCHEDULER.lock().request_resched();
            0
        }
        abi::SYS_SLEEP => sleep(args[0])?,
        abi::SYS_SPAWN => spawn(*args, space, pid)?,
        abi::SYS_WAIT => return wait(args[0], args[1], pid, space),
        abi::SYS_KILL => {
            let target = Pid::try_from(args[0]).map_err(|_| Errno::ESRCH)?;
            if target == 0 {
                return Err(Errno::EPERM);
            }
            process::kill(target)?;
            0
        }
        abi::SYS_MAP => mm::request(
            pid,
            MemoryRequest::Map {
                space,
                address: args[0],
                len_bytes: args[1],
                protection: protection(args[2])?,
            },
        )?,
        abi::SYS_UNMAP => {
            mm::request(pid, MemoryRequest::Unmap { space, address: args[0], len_bytes: args[1] })?
        }
        abi::SYS_PROTECT => mm::request(
            pid,
            MemoryRequest::Protect {
                space,
                address: args[0],
                len_bytes: args[1],
                protection: protection(args[2])?,
            },
        )?,
        abi::SYS_SHARE => {
            let target = Pid::try_from(args[2]).map_err(|_| Errno::ESRCH)?;
            let into = space_of(target)?;
            mm::request(
                pid,
                MemoryRequest::Share {
                    from: space,
                    from_address: args[0],
                    len_bytes: args[1],
                    into,
                    into_address: args[3],
                    protection: protection(args[4])?,
                },
            )?
        }
        abi::SYS_SUBSCRIBE => subscribe_process(args[0], args[1], args[2])?,
        abi::SYS_RAISE => return raise(args[0], pid),
        abi::SYS_POLL => poll(args[0], args[1], args[2], space)?,
        abi::SYS_UPTIME => crate::arch::milliseconds(),
        _ => return Err(Errno::ENOSYS),
    };
    Ok(Served::Value(value))
}

fn space_of(pid: Pid) -> Result<SpaceId, Errno> {
    let scheduler = SCHEDULER.lock();
    match scheduler.tasks.get(&pid) {
        Some(task) if !matches!(task.state, process::State::Zombie(_)) => Ok(task.space),
        _ => Err(Errno::ESRCH),
    }
}

fn exit(code: i32) {
    let pid = SCHEDULER.lock().current;
    process::request_exit(pid, code);
}

fn write(fd: u64, buffer: u64, len: u64, space: SpaceId) -> Result<u64, Errno> {
    if fd != 1 && fd != 2 {
        return Err(Errno::EBADF);
    }
    // The whole buffer must be the caller's, even the part beyond this call's share.
    space::check_user(space, buffer, len, false)?;
    let requested = length(len)?;
    let len = requested.min(MAX_IO_BYTES_PER_CALL);
    // A piece at a time, printed with no lock on the caller's memory and a preempt point
    // between pieces: a long write keeps neither interrupts nor other processes waiting.
    let mut piece = [0u8; WRITE_PIECE_BYTES + MAX_UTF8_TAIL_BYTES];
    let mut carried = 0;
    let mut offset = 0;
    while offset < len {
        let count = (len - offset).min(WRITE_PIECE_BYTES);
        let filled = carried + count;
        space::copy_from_user(space, buffer + offset as u64, &mut piece[carried..filled])?;
        offset += count;
        // A character cut by the piece's end waits for the rest in the next piece, or, cut by
        // the end of a short write, for the caller's next call.
        let more_follows = offset < len || requested > len;
        let keep = if more_follows { incomplete_utf8_tail(&piece[..filled]) } else { 0 };
        print_text(&piece[..filled - keep]);
        piece.copy_within(filled - keep..filled, 0);
        carried = keep;
        if crate::arch::preempt_point() && offset < len {
            // Killed: a short write of what was shown.
            return Ok((offset - carried) as u64);
        }
    }
    Ok((len - carried) as u64)
}

/// Bytes copied from the caller and printed per step of a `write`: the console draws them with
/// interrupts masked (its lock is shared with interrupt handlers' logging), and at 64 bytes a
/// step stays around a millisecond even when it scrolls the framebuffer.
const WRITE_PIECE_BYTES: usize = 64;
/// Longest UTF-8 sequence less one: what a piece may have to carry over.
const MAX_UTF8_TAIL_BYTES: usize = 3;

/// Console text: invalid UTF-8 is shown with replacement characters, never refused.
fn print_text(bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        print!("{}", chunk.valid());
        if !chunk.invalid().is_empty() {
            print!("\u{fffd}");
        }
    }
}

/// How many bytes at the end of `bytes` begin a UTF-8 sequence that continues past it.
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    for back in 1..=MAX_UTF8_TAIL_BYTES.min(bytes.len()) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xc0 == 0x80 {
            continue;
        }
        let needed = match byte {
            0xf0.. => 4,
            0xe0.. => 3,
            0xc0.. => 2,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

fn read(fd: u64, buffer: u64, len: usize, space: SpaceId) -> Result<Served, Errno> {
    if fd != 0 {
        return Err(Errno::EBADF);
    }
    if len == 0 {
        return Ok(Served::Value(0));
    }
    // Check the whole buffer before taking input, so a bad pointer loses no bytes.
    space::check_user(space, buffer, len as u64, true)?;
    let len = len.min(MAX_IO_BYTES_PER_CALL);
    let taken: Vec<u8> = {
        let mut scheduler = SCHEDULER.lock();
        if scheduler.input.is_empty() {
            scheduler.block_current(BlockReason::Input);
            return Ok(Served::Restart);
        }
        let count = len.min(scheduler.input.len());
        scheduler.input.drain(..count).collect()
    };
    space::copy_to_user(space, buffer, &taken)?;
    // Cooked console: what a program reads is shown, as a terminal echoes typed keys.
    for chunk in taken.utf8_chunks() {
        print!("{}", chunk.valid());
    }
    Ok(Served::Value(taken.len() as u64))
}

fn sleep(milliseconds: u64) -> Result<u64, Errno> {
    if milliseconds > MAX_SLEEP_MS {
        return Err(Errno::EINVAL);
    }
    let mut scheduler = SCHEDULER.lock();
    if milliseconds == 0 {
        scheduler.request_resched();
    } else {
        let until_ms = crate::arch::milliseconds() + milliseconds;
        scheduler.block_current(BlockReason::Sleep { until_ms });
    }
    Ok(0)
}

fn spawn(args: [u64; 6], space: SpaceId, parent: Pid) -> Result<u64, Errno> {
    let name_len = length(args[1])?;
    let args_len = length(args[3])?;
    if name_len == 0 || name_len > MAX_NAME_LEN_BYTES {
        return Err(Errno::EINVAL);
    }
    if args_len > process::MAX_ARGS_LEN_BYTES {
        return Err(Errno::E2BIG);
    }
    let mut name = vec![0; name_len];
    space::copy_from_user(space, args[0], &mut name)?;
    let mut arguments = vec![0; args_len];
    space::copy_from_user(space, args[2], &mut arguments)?;
    let name = core::str::from_utf8(&name).map_err(|_| Errno::EINVAL)?;
    let arguments = core::str::from_utf8(&arguments).map_err(|_| Errno::EINVAL)?;
    process::spawn_withholding(name, arguments, parent, args[4])
        .map(u64::from)
        .map_err(|error| error.errno())
}

fn wait(target: u64, status_out: u64, pid: Pid, space: SpaceId) -> Result<Served, Errno> {
    let target = Pid::try_from(target).map_err(|_| Errno::ECHILD)?;
    if status_out != 0 {
        // Check before reaping, so a bad pointer does not lose the child's status.
        space::check_user(space, status_out, 4, true)?;
    }
    match process::reap(pid, target)? {
        Reaped::Child(child, code) => {
            if status_out != 0 {
                space::copy_to_user(space, status_out, &code.to_le_bytes())?;
            }
            Ok(Served::Value(u64::from(child)))
        }
        Reaped::NotYet => {
            SCHEDULER.lock().block_current(BlockReason::WaitChild { pid: target });
            Ok(Served::Restart)
        }
    }
}

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
/// [`process::MAX_PROCESSES`] are alive, so a waiting producer is never forgotten).
const MAX_REMEMBERED_PRODUCERS: usize = process::MAX_PROCESSES;

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
                offers.last_from.retain(|&producer, _| process::is_alive(producer));
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

fn subscribe_process(kind: u64, capacity: u64, overflow: u64) -> Result<u64, Errno> {
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
    if SCHEDULER.lock().current_task().is_some_and(|t| t.subscriptions.len() >= MAX_SUBSCRIPTIONS) {
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
    let refused = {
        let mut scheduler = SCHEDULER.lock();
        match scheduler.current_task() {
            Some(task) => {
                task.subscriptions.push(subscription);
                None
            }
            None => Some(subscription),
        }
    };
    // Never dropped under the scheduler lock: a drop waits for other CPUs to leave dispatch,
    // and the timer's dispatch takes that lock.
    match refused {
        None => Ok(handle),
        Some(subscription) => {
            drop(subscription);
            Err(Errno::ESRCH)
        }
    }
}

/// Publishes a user event. A `kill-producer` queue it overran ends the caller; a full
/// `backpressure` queue blocks it until a subscriber polls (or the next tick), and the call
/// runs again with the same event.
fn raise(value: u64, pid: Pid) -> Result<Served, Errno> {
    let (seq, retry) = {
        let mut scheduler = SCHEDULER.lock();
        let task = scheduler.current_task().ok_or(Errno::ESRCH)?;
        (task.raised + 1, task.raise_refused)
    };
    let mut reply = Reply::new();
    BUS.dispatch(&Event::User { pid, seq, value, retry }, &mut reply);
    if reply.kill_producer {
        log::warn!("pid {pid} killed: its raised events overran a kill-producer queue");
        process::request_exit(pid, abi::FLOODED_EXIT_CODE);
        return Ok(Served::Value(0));
    }
    let mut scheduler = SCHEDULER.lock();
    let Some(task) = scheduler.current_task() else { return Err(Errno::ESRCH) };
    task.raise_refused = reply.would_block;
    if reply.would_block {
        scheduler.block_current(BlockReason::Room);
        return Ok(Served::Restart);
    }
    task.raised = seq;
    Ok(Served::Value(0))
}

fn poll(handle: u64, buffer: u64, max_records: u64, space: SpaceId) -> Result<u64, Errno> {
    let max = length(max_records)?.min(MAX_POLL_RECORDS);
    let record_bytes = core::mem::size_of::<EventRecord>();
    // Check the whole buffer first, so a bad pointer loses no records.
    space::check_user(space, buffer, (max * record_bytes) as u64, true)?;
    let queue = {
        let mut scheduler = SCHEDULER.lock();
        let task = scheduler.current_task().ok_or(Errno::ESRCH)?;
        let found = task.subscriptions.iter().find(|s| s.handle == handle);
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
        SCHEDULER.lock().wake_all(BlockReason::Room);
    }
    space::copy_to_user(space, buffer, &bytes)?;
    Ok(count as u64)
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::incomplete_utf8_tail;

    #[test_case]
    fn a_character_cut_at_a_pieces_end_is_carried_whole() {
        let euro = "€".as_bytes(); // three bytes
        assert_eq!(incomplete_utf8_tail(b"abc"), 0);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0]]), 1);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0], euro[1]]), 2);
        assert_eq!(incomplete_utf8_tail(&[b'a', euro[0], euro[1], euro[2]]), 0);
        let crab = "🦀".as_bytes(); // four bytes
        assert_eq!(incomplete_utf8_tail(&crab[..3]), 3);
        assert_eq!(incomplete_utf8_tail(crab), 0);
        // Stray continuation bytes are not a character to wait for.
        assert_eq!(incomplete_utf8_tail(&[0x80, 0x80, 0x80]), 0);
    }
}
