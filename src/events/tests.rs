//! Tests of the bus's pure logic; they run on the host and inside QEMU alike.
#![expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]

use alloc::{boxed::Box, collections::VecDeque, sync::Arc, vec, vec::Vec};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;

use super::{irq::IrqLines, *};

fn leaked_bus() -> &'static Bus {
    Box::leak(Box::new(Bus::new()))
}

fn syscall(number: u64) -> Event {
    Event::Syscall { number, args: [0; 6], pid: 7, abi: super::SyscallAbi::Herald }
}

/// A small deterministic generator (xorshift64*), so randomized tests repeat exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Subscribes a handler that appends `tag` to `log` and answers `verdict`.
fn recorder(
    bus: &'static Bus,
    kind: EventKind,
    tag: &'static str,
    priority: Priority,
    verdict: Verdict,
    log: &Arc<Mutex<Vec<&'static str>>>,
) -> Subscription {
    let log = log.clone();
    bus.subscribe(kind, tag, priority, move |_, _| {
        log.lock().push(tag);
        verdict
    })
    .expect("subscribe")
}

#[test_case]
fn handlers_run_by_priority_then_registration_order() {
    let bus = leaked_bus();
    let log = Arc::new(Mutex::new(Vec::new()));
    let _a =
        recorder(bus, EventKind::Timer, "observer", Priority::OBSERVER, Verdict::Continue, &log);
    let _b = recorder(bus, EventKind::Timer, "owner-1", Priority::OWNER, Verdict::Continue, &log);
    let _c =
        recorder(bus, EventKind::Timer, "security", Priority::SECURITY, Verdict::Continue, &log);
    let _d = recorder(bus, EventKind::Timer, "owner-2", Priority::OWNER, Verdict::Continue, &log);
    let _e = recorder(
        bus,
        EventKind::Timer,
        "owner-high",
        Priority::owner(900),
        Verdict::Continue,
        &log,
    );
    bus.dispatch(&Event::Timer { tick: 1 }, &mut Reply::new());
    assert_eq!(*log.lock(), ["security", "owner-high", "owner-1", "owner-2", "observer"]);
    let names: Vec<_> = bus.chain(EventKind::Timer).iter().map(|info| info.name).collect();
    assert_eq!(names, ["security", "owner-high", "owner-1", "owner-2", "observer"]);
}

#[test_case]
fn random_registrations_dispatch_in_stable_priority_order() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..50 {
        let bus = leaked_bus();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut expected: Vec<(Priority, usize)> = Vec::new();
        let mut subscriptions = Vec::new();
        for registration in 0..1 + rng.below(20) as usize {
            let priority = match rng.below(3) {
                0 => Priority::security(rng.below(4) as u16),
                1 => Priority::owner(rng.below(4) as u16),
                _ => Priority::observer(rng.below(4) as u16),
            };
            let sink = log.clone();
            subscriptions.push(
                bus.subscribe(EventKind::Irq, "random", priority, move |_, _| {
                    sink.lock().push(registration);
                    Verdict::Continue
                })
                .expect("subscribe"),
            );
            expected.push((priority, registration));
        }
        // Stable sort: equal priorities keep registration order.
        expected.sort_by_key(|&(priority, _)| core::cmp::Reverse(priority));
        bus.dispatch(&Event::Irq { line: 1, seq: 1 }, &mut Reply::new());
        let order: Vec<usize> = expected.iter().map(|&(_, registration)| registration).collect();
        assert_eq!(*log.lock(), order, "round {round}");
    }
}

#[test_case]
fn a_security_deny_stops_owners_but_observers_see_the_outcome() {
    let bus = leaked_bus();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(None));
    let _deny = recorder(
        bus,
        EventKind::Syscall,
        "deny",
        Priority::SECURITY,
        Verdict::Deny(Errno::EPERM),
        &log,
    );
    let _later = recorder(
        bus,
        EventKind::Syscall,
        "later-security",
        Priority::security(0),
        Verdict::Continue,
        &log,
    );
    let _owner =
        recorder(bus, EventKind::Syscall, "owner", Priority::OWNER, Verdict::Handled, &log);
    let sink = seen.clone();
    let _observer = bus
        .subscribe(EventKind::Syscall, "observer", Priority::OBSERVER, move |_, reply| {
            *sink.lock() = Some(reply.outcome);
            Verdict::Continue
        })
        .expect("subscribe");
    let outcome = bus.dispatch(&syscall(1), &mut Reply::new());
    assert_eq!(outcome, Outcome::Denied(Errno::EPERM));
    assert_eq!(*log.lock(), ["deny"]);
    assert_eq!(*seen.lock(), Some(Outcome::Denied(Errno::EPERM)));
}

#[test_case]
fn security_cannot_grant_and_the_first_owner_decides() {
    let bus = leaked_bus();
    let log = Arc::new(Mutex::new(Vec::new()));
    let _grant =
        recorder(bus, EventKind::Syscall, "grant?", Priority::SECURITY, Verdict::Handled, &log);
    assert_eq!(bus.dispatch(&syscall(1), &mut Reply::new()), Outcome::Unhandled);
    let _first =
        recorder(bus, EventKind::Syscall, "first", Priority::owner(600), Verdict::Handled, &log);
    let _second = recorder(
        bus,
        EventKind::Syscall,
        "second",
        Priority::OWNER,
        Verdict::Deny(Errno::EINVAL),
        &log,
    );
    assert_eq!(bus.dispatch(&syscall(1), &mut Reply::new()), Outcome::Handled);
    assert_eq!(*log.lock(), ["grant?", "grant?", "first"]);
}

#[test_case]
fn broadcast_kinds_run_every_owner_and_ignore_deny() {
    let bus = leaked_bus();
    let log = Arc::new(Mutex::new(Vec::new()));
    let _a =
        recorder(bus, EventKind::Irq, "not-mine", Priority::owner(600), Verdict::Continue, &log);
    let _b = recorder(bus, EventKind::Irq, "mine", Priority::OWNER, Verdict::Handled, &log);
    let _c = recorder(
        bus,
        EventKind::Irq,
        "deny",
        Priority::owner(100),
        Verdict::Deny(Errno::EPERM),
        &log,
    );
    let outcome = bus.dispatch(&Event::Irq { line: 3, seq: 1 }, &mut Reply::new());
    assert_eq!(outcome, Outcome::Handled);
    assert_eq!(*log.lock(), ["not-mine", "mine", "deny"]);
}

#[test_case]
fn dropping_a_subscription_unregisters_it() {
    let bus = leaked_bus();
    let log = Arc::new(Mutex::new(Vec::new()));
    let keep = recorder(bus, EventKind::Timer, "keep", Priority::OWNER, Verdict::Continue, &log);
    let gone = recorder(bus, EventKind::Timer, "gone", Priority::OWNER, Verdict::Continue, &log);
    drop(gone);
    bus.dispatch(&Event::Timer { tick: 1 }, &mut Reply::new());
    assert_eq!(*log.lock(), ["keep"]);
    assert_eq!(bus.chain(EventKind::Timer).len(), 1);
    drop(keep);
    assert!(bus.chain(EventKind::Timer).is_empty());
    assert_eq!(bus.dispatch(&Event::Timer { tick: 2 }, &mut Reply::new()), Outcome::Unhandled);
}

#[test_case]
fn a_handler_can_unsubscribe_itself_and_others_mid_dispatch() {
    let bus = leaked_bus();
    let log = Arc::new(Mutex::new(Vec::new()));
    // The first handler drops both subscriptions (its own and a later one) while it runs.
    let slots: Arc<Mutex<Vec<Subscription>>> = Arc::new(Mutex::new(Vec::new()));
    let held = slots.clone();
    let sink = log.clone();
    let first = bus
        .subscribe(EventKind::Timer, "first", Priority::owner(900), move |_, _| {
            sink.lock().push("first");
            held.lock().clear();
            Verdict::Continue
        })
        .expect("subscribe");
    let second =
        recorder(bus, EventKind::Timer, "second", Priority::OWNER, Verdict::Continue, &log);
    slots.lock().push(first);
    slots.lock().push(second);
    bus.dispatch(&Event::Timer { tick: 1 }, &mut Reply::new());
    bus.dispatch(&Event::Timer { tick: 2 }, &mut Reply::new());
    // "second" was removed before its turn: never called. Nothing runs on the second dispatch.
    assert_eq!(*log.lock(), ["first"]);
    assert!(bus.chain(EventKind::Timer).is_empty());
}

#[test_case]
fn a_handler_can_subscribe_to_its_own_chain_mid_dispatch() {
    let bus = leaked_bus();
    let added = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (sink, counter) = (added.clone(), calls.clone());
    let _spawner = bus
        .subscribe(EventKind::Timer, "spawner", Priority::OWNER, move |_, _| {
            let counter = counter.clone();
            let subscription = bus
                .subscribe(EventKind::Timer, "spawned", Priority::OBSERVER, move |_, _| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    Verdict::Continue
                })
                .expect("subscribing from inside a handler works");
            sink.lock().push(subscription);
            Verdict::Continue
        })
        .expect("subscribe");
    bus.dispatch(&Event::Timer { tick: 1 }, &mut Reply::new());
    assert_eq!(calls.load(Ordering::Relaxed), 0, "takes part from the next dispatch on");
    bus.dispatch(&Event::Timer { tick: 2 }, &mut Reply::new());
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(added.lock().len(), 2);
}

#[test_case]
fn a_full_chain_refuses_more_subscribers() {
    let bus = leaked_bus();
    let mut subscriptions = Vec::new();
    for _ in 0..MAX_SUBSCRIBERS_PER_CHAIN {
        subscriptions.push(
            bus.subscribe(EventKind::Lost, "filler", Priority::OBSERVER, |_, _| Verdict::Continue)
                .expect("room"),
        );
    }
    let refused = bus
        .subscribe(EventKind::Lost, "one-too-many", Priority::OBSERVER, |_, _| Verdict::Continue);
    assert_eq!(refused.err(), Some(BusError::ChainFull));
}

#[test_case]
fn hits_and_sampled_instructions_are_accounted() {
    static FAKE_CLOCK: AtomicU64 = AtomicU64::new(0);
    fn clock() -> u64 {
        // Each reading advances by 10, so every timed call "costs" exactly 10.
        FAKE_CLOCK.fetch_add(10, Ordering::Relaxed)
    }
    let bus = leaked_bus();
    bus.set_clock(clock);
    let _s = bus
        .subscribe(EventKind::Timer, "timed", Priority::OWNER, |_, _| Verdict::Handled)
        .expect("subscribe");
    for tick in 0..TIMING_SAMPLE_PERIOD * 4 {
        bus.dispatch(&Event::Timer { tick }, &mut Reply::new());
    }
    let info = &bus.chain(EventKind::Timer)[0];
    assert_eq!(info.hits, TIMING_SAMPLE_PERIOD * 4);
    assert_eq!(info.instructions, 10 * TIMING_SAMPLE_PERIOD * 4);
    assert_eq!(bus.dispatch_count(EventKind::Timer), TIMING_SAMPLE_PERIOD * 4);
}

/// Pushes 1..=total into a queue of `capacity` and returns what the consumer then receives.
fn overflow(
    policy: OverflowPolicy,
    capacity: usize,
    total: u64,
) -> (Vec<Delivery<u64>>, QueueStats, Vec<PushOutcome>) {
    let queue = BoundedQueue::new("test", capacity, policy);
    let pushes = (1..=total).map(|item| queue.push(item)).collect();
    let deliveries = core::iter::from_fn(|| queue.pop()).collect();
    (deliveries, queue.stats(), pushes)
}

fn items(values: &[u64]) -> Vec<Delivery<u64>> {
    values.iter().map(|&value| Delivery::Item(value)).collect()
}

#[test_case]
fn drop_newest_keeps_the_first_and_reports_the_loss_in_band() {
    let (deliveries, stats, _) = overflow(OverflowPolicy::DropNewest, 4, 7);
    let mut expected = vec![Delivery::Lost { count: 3 }];
    expected.extend(items(&[1, 2, 3, 4]));
    assert_eq!(deliveries, expected);
    assert_eq!(
        stats,
        QueueStats {
            enqueued: 4,
            delivered: 4,
            dropped: 3,
            coalesced: 0,
            refused: 0,
            high_water: 4,
            depth: 0,
        }
    );
}

#[test_case]
fn drop_oldest_keeps_the_last() {
    let (deliveries, stats, _) = overflow(OverflowPolicy::DropOldest, 4, 7);
    let mut expected = vec![Delivery::Lost { count: 3 }];
    expected.extend(items(&[4, 5, 6, 7]));
    assert_eq!(deliveries, expected);
    assert_eq!(
        stats,
        QueueStats {
            enqueued: 7,
            delivered: 4,
            dropped: 3,
            coalesced: 0,
            refused: 0,
            high_water: 4,
            depth: 0,
        }
    );
}

#[test_case]
fn coalesce_keeps_order_and_the_newest_with_nothing_lost() {
    let (deliveries, stats, pushes) = overflow(OverflowPolicy::Coalesce, 4, 9);
    // The newest queued event is replaced by each newer one: the depth stays within capacity.
    assert_eq!(deliveries, items(&[1, 2, 3, 9]));
    assert_eq!(pushes[4..], [PushOutcome::Coalesced; 5]);
    assert_eq!(
        stats,
        QueueStats {
            enqueued: 9,
            delivered: 4,
            dropped: 0,
            coalesced: 5,
            refused: 0,
            high_water: 4,
            depth: 0,
        }
    );
}

#[test_case]
fn backpressure_and_kill_producer_refuse_without_losing() {
    for (policy, refusal) in [
        (OverflowPolicy::Backpressure, PushOutcome::WouldBlock),
        (OverflowPolicy::KillProducer, PushOutcome::KillProducer),
    ] {
        let (deliveries, stats, pushes) = overflow(policy, 3, 5);
        assert_eq!(deliveries, items(&[1, 2, 3]));
        assert_eq!(pushes[3..], [refusal; 2]);
        assert_eq!(
            stats,
            QueueStats {
                enqueued: 3,
                delivered: 3,
                dropped: 0,
                coalesced: 0,
                refused: 2,
                high_water: 3,
                depth: 0,
            }
        );
    }
}

#[test_case]
fn loss_is_reported_before_the_next_event_only_once() {
    let queue = BoundedQueue::new("test", 1, OverflowPolicy::DropNewest);
    queue.push(1);
    queue.push(2);
    assert_eq!(queue.pop(), Some(Delivery::Lost { count: 1 }));
    assert_eq!(queue.pop(), Some(Delivery::Item(1)));
    assert_eq!(queue.pop(), None);
    queue.push(3);
    assert_eq!(queue.pop(), Some(Delivery::Item(3)));
}

/// The reference model a queue is checked against.
fn model_push(
    model: &mut VecDeque<u64>,
    lost: &mut u64,
    policy: OverflowPolicy,
    capacity: usize,
    item: u64,
) {
    if model.len() < capacity {
        model.push_back(item);
    } else {
        match policy {
            OverflowPolicy::DropNewest => *lost += 1,
            OverflowPolicy::DropOldest => {
                model.pop_front();
                model.push_back(item);
                *lost += 1;
            }
            OverflowPolicy::Coalesce => {
                model.pop_back();
                model.push_back(item);
            }
            _ => {}
        }
    }
}

#[test_case]
fn random_push_pop_sequences_match_the_reference_model() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let policies = [
        OverflowPolicy::DropNewest,
        OverflowPolicy::DropOldest,
        OverflowPolicy::Coalesce,
        OverflowPolicy::Backpressure,
        OverflowPolicy::KillProducer,
    ];
    for round in 0..200 {
        let policy = policies[rng.below(policies.len() as u64) as usize];
        let capacity = 1 + rng.below(8) as usize;
        let queue = BoundedQueue::new("model", capacity, policy);
        let (mut model, mut lost) = (VecDeque::new(), 0u64);
        let mut next_item = 0;
        for _ in 0..rng.below(100) {
            if rng.below(3) < 2 {
                next_item += 1;
                queue.push(next_item);
                model_push(&mut model, &mut lost, policy, capacity, next_item);
            } else {
                let expected = if lost > 0 {
                    Some(Delivery::Lost { count: core::mem::take(&mut lost) })
                } else {
                    model.pop_front().map(Delivery::Item)
                };
                assert_eq!(queue.pop(), expected, "round {round}, {policy}, capacity {capacity}");
            }
        }
        let stats = queue.stats();
        let waiting = stats.depth;
        assert!(waiting <= capacity as u64 && stats.high_water <= capacity as u64);
        // Every accepted event is delivered, waiting, discarded or merged: none disappears.
        assert_eq!(
            stats.enqueued,
            stats.delivered
                + waiting
                + stats.coalesced
                + (stats.dropped - dropped_before_queueing(policy, &stats))
        );
    }
}

/// `DropNewest` discards before accepting (not counted in `enqueued`); `DropOldest` discards
/// events it had accepted.
fn dropped_before_queueing(policy: OverflowPolicy, stats: &QueueStats) -> u64 {
    if policy == OverflowPolicy::DropNewest { stats.dropped } else { 0 }
}

/// Only on the host: the kernel cannot catch a panic, so there this policy ends the test run.
#[cfg(not(target_os = "none"))]
#[test_case]
fn panic_policy_panics_on_overflow_and_not_before() {
    extern crate std;
    let queue = BoundedQueue::new("strict", 2, OverflowPolicy::Panic);
    assert_eq!(queue.push(1), PushOutcome::Queued);
    assert_eq!(queue.push(2), PushOutcome::Queued);
    let overflowed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| queue.push(3)));
    assert!(overflowed.is_err());
    assert_eq!(queue.pop(), Some(Delivery::Item(1)));
}

#[test_case]
fn deferred_handlers_run_later_and_see_losses_in_band() {
    let bus = leaked_bus();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _deferred = bus
        .subscribe_deferred(
            EventKind::Timer,
            "slow",
            Priority::OWNER,
            2,
            OverflowPolicy::DropNewest,
            move |event| {
                sink.lock().push(*event);
            },
        )
        .expect("subscribe");
    for tick in 1..=4 {
        assert_eq!(bus.dispatch(&Event::Timer { tick }, &mut Reply::new()), Outcome::Handled);
    }
    assert!(seen.lock().is_empty(), "nothing runs before the deferred task");
    assert!(bus.has_deferred_work());
    assert_eq!(bus.run_deferred(100), 3);
    let queue = bus.queues()[0].id;
    assert_eq!(
        *seen.lock(),
        [Event::Lost { queue, count: 2 }, Event::Timer { tick: 1 }, Event::Timer { tick: 2 }]
    );
    assert!(!bus.has_deferred_work());
    assert_eq!(bus.queues()[0].stats.dropped, 2);
}

struct FakeController(Mutex<Vec<(bool, u8)>>);

impl irq::LineControl for FakeController {
    fn mask(&self, line: u8) {
        self.0.lock().push((true, line));
    }
    fn unmask(&self, line: u8) {
        self.0.lock().push((false, line));
    }
}

fn lines_with_controller() -> (&'static IrqLines, &'static FakeController) {
    let controller: &'static FakeController =
        Box::leak(Box::new(FakeController(Mutex::new(Vec::new()))));
    let lines: &'static IrqLines = Box::leak(Box::new(IrqLines::new()));
    lines.set_control(controller);
    (lines, controller)
}

#[test_case]
fn irq_lines_count_sequence_and_mask_until_acknowledged() {
    let (lines, controller) = lines_with_controller();
    assert_eq!(lines.raise(4, 0), Some((irq::Raised::Dispatch(1), None)));
    assert_eq!(lines.raise(4, 0), Some((irq::Raised::Dispatch(2), None)));
    assert_eq!(lines.raise(99, 0), None);
    lines.complete(4, Outcome::Unhandled, &Reply::new(), 0);
    let deferred = Reply { keep_line_masked: true, ..Reply::new() };
    lines.complete(4, Outcome::Handled, &deferred, 0);
    lines.complete(4, Outcome::Handled, &deferred, 0);
    let stats = lines.stats(4);
    assert_eq!((stats.raised, stats.unhandled, stats.awaiting_ack), (2, 1, true));
    lines.acknowledge(4);
    lines.acknowledge(4);
    assert_eq!(*controller.0.lock(), [(true, 4), (false, 4)], "masked once, unmasked once");
}

#[test_case]
fn an_acknowledgement_says_whether_it_ended_a_hold() {
    // A user-space driver's top half replays when its acknowledgement ends a hold: asking
    // first and acknowledging after left a window in which a hold from the interrupt on
    // another CPU was ended unseen, its device's byte never read, the line stalled for good.
    let (lines, controller) = lines_with_controller();
    let deferred = Reply { keep_line_masked: true, ..Reply::new() };
    assert!(!lines.acknowledge(5), "nothing held");
    lines.complete(5, Outcome::Handled, &deferred, 0);
    assert!(lines.acknowledge(5), "this acknowledgement ended the hold");
    assert!(!lines.acknowledge(5), "and only this one");
    assert_eq!(*controller.0.lock(), [(true, 5), (false, 5)]);
    // A throttled line's hold ends too, though the line stays masked for its backoff.
    lines.set_rate_limit(5, 1);
    lines.raise(5, 0);
    lines.raise(5, 0);
    lines.complete(5, Outcome::Handled, &deferred, 0);
    assert!(lines.acknowledge(5));
    assert!(lines.stats(5).throttled_until_ms.is_some());
    assert_eq!(controller.0.lock().last(), Some(&(true, 5)), "still masked");
}

#[test_case]
fn a_shared_line_takes_sharers_up_to_its_limit_and_is_freed_by_the_last() {
    use irq::LineOwner::{Free, Kernel, Process, Shared};
    let (lines, controller) = lines_with_controller();
    assert_eq!(lines.claim(3, Shared(1)), Err(None), "sharers join, they do not claim");
    assert_eq!(lines.claim_shared(3, 2), Ok(1));
    assert_eq!(*controller.0.lock(), [(false, 3)], "the first sharer opens the line");
    lines.hold_for(3, 0, &core::sync::atomic::AtomicBool::new(false));
    assert_eq!(lines.claim_shared(3, 2), Ok(2));
    assert!(lines.stats(3).awaiting_ack, "a joining sharer leaves the line as it is");
    assert_eq!(lines.claim_shared(3, 2), Err(Some(Shared(2))), "at the limit");
    assert_eq!(lines.claim(3, Process(9)), Err(Some(Shared(2))), "no exclusive claim");
    // Not shareable: one process's line, the kernel's.
    assert_eq!(lines.claim(4, Process(9)), Ok(()));
    assert_eq!(lines.claim_shared(4, 2), Err(Some(Process(9))));
    assert_eq!(lines.claim(5, Kernel), Ok(()));
    assert_eq!(lines.claim_shared(5, 2), Err(Some(Kernel)));
    // Leaving: the line stays open for the one left, is freed and masked by the last.
    controller.0.lock().clear();
    lines.leave_shared(3, 2);
    assert_eq!(lines.owner(3), Shared(1));
    assert!(controller.0.lock().is_empty(), "still served: not masked");
    lines.leave_shared(3, 1);
    let freed = lines.stats(3);
    assert_eq!((freed.owner, freed.awaiting_ack, freed.dropped), (Free, false, 3));
    assert_eq!(*controller.0.lock(), [(true, 3)]);
    lines.leave_shared(3, 5);
    assert_eq!(lines.stats(3).dropped, 3, "a line nobody shares has nobody to leave it");
    lines.leave_shared(4, 5);
    assert_eq!(lines.owner(4), Process(9), "nor does one process's line");
}

#[test_case]
fn a_line_held_by_two_claims_opens_when_the_last_lets_go() {
    use core::sync::atomic::AtomicBool;
    let (lines, controller) = lines_with_controller();
    let (first, second) = (AtomicBool::new(false), AtomicBool::new(false));
    lines.hold_for(3, 0, &first);
    lines.hold_for(3, 0, &first);
    lines.hold_for(3, 0, &second);
    assert_eq!(*controller.0.lock(), [(true, 3)], "masked once");
    assert!(lines.end_hold(3, &first), "the first claim held it");
    assert!(!lines.end_hold(3, &first), "once, however often it held");
    assert!(lines.stats(3).awaiting_ack, "the second still holds it");
    assert_eq!(controller.0.lock().len(), 1, "still masked");
    assert!(lines.end_hold(3, &second));
    assert!(!lines.stats(3).awaiting_ack);
    assert_eq!(*controller.0.lock(), [(true, 3), (false, 3)], "open once nobody holds it");
    // A claim that holds when its owner leaves: the count starts afresh with the next owner.
    assert_eq!(lines.claim(4, irq::LineOwner::Process(7)), Ok(()));
    lines.hold_for(4, 0, &first);
    lines.disown(4, 7, 0);
    assert_eq!(lines.claim(4, irq::LineOwner::Process(8)), Ok(()));
    lines.hold_for(4, 0, &second);
    assert!(lines.end_hold(4, &second));
    assert!(!lines.stats(4).awaiting_ack, "the last owner's hold is not counted against it");
}

#[test_case]
fn a_storm_masks_the_line_with_doubling_backoff_that_resets_when_it_behaves() {
    let (lines, controller) = lines_with_controller();
    lines.set_rate_limit(3, 10);
    let mut now = 1000;
    let storm = |now: u64| {
        let mut report = None;
        for _ in 0..11 {
            if let Some((_, Some(r))) = lines.raise(3, now) {
                report = Some(r);
            }
        }
        report
    };
    for expected_backoff in [50, 100, 200, 400] {
        let report = storm(now);
        assert_eq!(
            report,
            Some(irq::LineReport::Storm { line: 3, in_window: 11, backoff_ms: expected_backoff })
        );
        assert_eq!(lines.raise(3, now + 1).map(|(r, _)| r), Some(irq::Raised::Suppressed));
        assert_eq!(lines.tick(now + expected_backoff - 1), None, "still backing off");
        assert_eq!(lines.tick(now + expected_backoff), Some(irq::LineReport::Retry { line: 3 }));
        now += expected_backoff;
    }
    let stats = lines.stats(3);
    assert_eq!((stats.throttles, stats.suppressed, stats.backoff_ms), (4, 4, 800));
    // A calm window afterwards resets the backoff.
    lines.raise(3, now + irq::RATE_WINDOW_MS);
    lines.raise(3, now + 2 * irq::RATE_WINDOW_MS);
    assert_eq!(lines.stats(3).backoff_ms, irq::INITIAL_BACKOFF_MS);
    let masks = controller.0.lock().iter().filter(|(masked, _)| *masked).count();
    assert_eq!(masks, 4);
}

#[test_case]
fn the_backoff_stops_at_its_maximum() {
    let (lines, _) = lines_with_controller();
    lines.set_rate_limit(5, 1);
    let mut now = 0;
    let mut last = 0;
    for _ in 0..12 {
        lines.raise(5, now);
        if let Some((_, Some(irq::LineReport::Storm { backoff_ms, .. }))) = lines.raise(5, now) {
            last = backoff_ms;
            now += backoff_ms;
            lines.tick(now);
        }
    }
    assert_eq!(last, irq::MAX_BACKOFF_MS);
}

#[test_case]
fn a_missing_acknowledgement_is_retried_with_backoff() {
    let (lines, controller) = lines_with_controller();
    lines.raise(6, 90);
    lines.complete(6, Outcome::Handled, &Reply { keep_line_masked: true, ..Reply::new() }, 90);
    // The handler gets the event 10 ms later: its 50 ms run from then.
    lines.delivered(6, 100);
    assert_eq!(lines.tick(149), None);
    assert_eq!(
        lines.tick(150),
        Some(irq::LineReport::AckTimeout { line: 6, waited_ms: 50, owner: irq::LineOwner::Free })
    );
    assert_eq!(lines.tick(249), None, "the next timeout waits twice as long");
    assert_eq!(
        lines.tick(250),
        Some(irq::LineReport::AckTimeout { line: 6, waited_ms: 100, owner: irq::LineOwner::Free })
    );
    assert_eq!(lines.stats(6).ack_timeouts, 2);
    assert_eq!(*controller.0.lock(), [(true, 6), (false, 6), (false, 6)]);
}

#[test_case]
fn an_event_still_queued_keeps_its_line_masked_until_the_undelivered_limit() {
    let (lines, controller) = lines_with_controller();
    lines.raise(9, 1000);
    lines.complete(9, Outcome::Handled, &Reply { keep_line_masked: true, ..Reply::new() }, 1000);
    // Deferred work busy elsewhere (the shell printing) for longer than any backoff: no
    // retry, no report, the line stays masked.
    let limit = irq::UNDELIVERED_LIMIT_MS;
    for now in (1000..1000 + limit).step_by(10) {
        assert_eq!(lines.tick(now), None, "at {now} ms");
    }
    assert_eq!(lines.stats(9).backoff_ms, irq::INITIAL_BACKOFF_MS, "no backoff for a wait");
    assert_eq!(
        lines.tick(1000 + limit),
        Some(irq::LineReport::Undelivered { line: 9, waited_ms: limit })
    );
    // Delivered, then acknowledged at once, as every kernel bottom half does: no timeout.
    lines.delivered(9, 1000 + limit + 5);
    lines.acknowledge(9);
    assert_eq!(lines.tick(1000 + 3 * limit), None);
    assert_eq!(lines.stats(9).ack_timeouts, 1);
    assert_eq!(*controller.0.lock(), [(true, 9), (false, 9), (false, 9)]);
}

#[test_case]
fn a_line_nobody_handles_is_disabled_after_99900_of_100000() {
    let (lines, controller) = lines_with_controller();
    lines.set_rate_limit(7, 0);
    let mut report = None;
    for i in 0..irq::UNHANDLED_PERIOD {
        lines.raise(7, i);
        let outcome = if i < 99 { Outcome::Handled } else { Outcome::Unhandled };
        report = report.or(lines.complete(7, outcome, &Reply::new(), i));
    }
    assert_eq!(report, Some(irq::LineReport::Disabled { line: 7, unhandled: 99_901 }));
    assert!(lines.stats(7).disabled);
    assert_eq!(lines.raise(7, 0).map(|(r, _)| r), Some(irq::Raised::Suppressed));
    assert_eq!(*controller.0.lock(), [(true, 7)]);
    // A line that is mostly handled is left alone.
    let (lines, _) = lines_with_controller();
    lines.set_rate_limit(8, 0);
    for i in 0..irq::UNHANDLED_PERIOD {
        lines.raise(8, i);
        let outcome = if i < 101 { Outcome::Handled } else { Outcome::Unhandled };
        assert_eq!(lines.complete(8, outcome, &Reply::new(), i), None);
    }
    assert!(!lines.stats(8).disabled);
}

/// Regression: queue ids were the registry length after pruning, so a new queue could take the
/// id of a live one once an earlier queue was gone.
#[test_case]
fn deferred_queue_ids_are_never_reused() {
    let bus = leaked_bus();
    let subscribe = |name| {
        bus.subscribe_deferred(
            EventKind::Timer,
            name,
            Priority::OWNER,
            2,
            OverflowPolicy::DropNewest,
            |_| {},
        )
        .expect("subscribe")
    };
    let first = subscribe("first");
    let _second = subscribe("second");
    drop(first);
    let _third = subscribe("third");
    let ids: Vec<u16> = bus.queues().iter().map(|queue| queue.id.0).collect();
    assert_eq!(ids, [1, 2]);
}

#[test_case]
fn a_shared_line_asks_the_busiest_device_first_and_counts_spurious_interrupts() {
    use core::sync::atomic::AtomicU8;

    use super::{Asking, SharedLine};

    // Which device raised the current interrupt: 0 none, 1 `a`, 2 `b`, 3 `c`.
    static RAISED_BY: AtomicU8 = AtomicU8::new(0);
    let line = SharedLine::new(Asking::UntilClaimed);
    for (name, device) in [("a", 1u8), ("b", 2), ("c", 3)] {
        line.add(name, move |_| RAISED_BY.load(Ordering::Relaxed) == device);
    }
    let irq = Event::Irq { line: 9, seq: 1 };
    let mut rng = Rng(7);
    for _ in 0..2000 {
        // c raises 80 % of the interrupts, b 15 %, a 5 %.
        let device = match rng.below(100) {
            0..80 => 3,
            80..95 => 2,
            _ => 1,
        };
        RAISED_BY.store(device, Ordering::Relaxed);
        assert_eq!(line.offer(&irq), Verdict::Handled);
    }
    let order: Vec<&str> = line.claimants().iter().map(|c| c.name).collect();
    assert_eq!(order, ["c", "b", "a"], "the order follows the claims");
    let asked: u64 = line.claimants().iter().map(|c| c.asked).sum();
    // In registration order (a, b, c) the average would be about 2.75 questions per interrupt.
    assert!(asked < 2000 * 14 / 10, "{asked} questions for 2000 interrupts");
    RAISED_BY.store(0, Ordering::Relaxed);
    assert_eq!(line.offer(&irq), Verdict::Continue, "nobody's interrupt");
    assert_eq!(line.spurious(), 1);
}

#[test_case]
fn a_line_has_one_owner_a_claim_starts_it_afresh_and_a_release_masks_and_counts() {
    use irq::LineOwner::{Free, Kernel, Process};
    let (lines, controller) = lines_with_controller();
    assert_eq!(lines.claim(1, Kernel), Ok(()));
    assert_eq!(lines.claim(1, Process(7)), Err(Some(Kernel)), "a kernel driver's line");
    assert_eq!(lines.claim(99, Process(7)), Err(None), "no such line");
    assert_eq!(lines.claim(3, Free), Err(None), "nobody is not an owner");
    // A line the last owner left disabled and waiting: the claim clears both and unmasks.
    lines.set_rate_limit(3, 1);
    lines.raise(3, 0);
    lines.raise(3, 0);
    assert!(lines.stats(3).throttled_until_ms.is_some());
    controller.0.lock().clear();
    assert_eq!(lines.claim(3, Process(7)), Ok(()));
    assert_eq!(lines.claim(3, Process(8)), Err(Some(Process(7))));
    assert_eq!(lines.claim(3, Kernel), Err(Some(Process(7))));
    let fresh = lines.stats(3);
    assert_eq!((fresh.throttled_until_ms, fresh.awaiting_ack), (None, false));
    assert_eq!(*controller.0.lock(), [(false, 3)]);
    // Held from inside the dispatch, then released unanswered by its owner.
    lines.hold_for(3, 0, &core::sync::atomic::AtomicBool::new(false));
    lines.disown(3, 8, 5);
    assert_eq!(lines.owner(3), Process(7), "only the owner releases");
    lines.disown(3, 7, 5);
    let released = lines.stats(3);
    assert_eq!((released.owner, released.awaiting_ack, released.dropped), (Free, false, 5));
    assert_eq!(
        *controller.0.lock(),
        [(false, 3), (true, 3), (true, 3)],
        "masked: nobody serves it"
    );
    assert_eq!(lines.claim(3, Process(8)), Ok(()), "a new driver may claim it");
}
