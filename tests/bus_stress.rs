//! The bus under a same-CPU interrupt flood: the timer at 20 kHz pushes into deferred queues
//! of every dropping policy while thread code pops them, pushes into the same queues itself, and
//! subscribers are added and dropped in a loop from thread context and from inside handlers.
//! It must keep making progress (deliveries rise in every 100 ms of guest time), keep every
//! queue's counters exact, deliver in order, and never call a handler after its drop returned.
//!
//! This is the kernel that froze the old bus: a timer push waited, with interrupts off, for an
//! `ArrayQueue::pop` it had interrupted.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use herald::{
    arch,
    events::{
        BUS, BoundedQueue, Bus, Delivery, Event, EventKind, OverflowPolicy, Priority, QueueInfo,
        Reply, Subscription, Verdict,
        irq::{LINES, SOFTWARE_LINE},
    },
    println,
};
use spin::Mutex;

herald::test_kernel!();

/// Guest time the flood lasts: 100 times what the old queue needed to freeze (it hung within
/// the first 100 ms). Longer runs are `cargo xtask shell --soak`'s job.
const STRESS_MS: u64 = 10_000;
/// Timer rate during the flood.
const FLOOD_HZ: u32 = 20_000;
/// The window in which deliveries must rise.
const PROGRESS_WINDOW_MS: u64 = 100;
/// Small queues, so every policy overflows all the time.
const QUEUE_CAPACITY: usize = 4;
/// The timer line (PIT channel 0 on PIC line 0).
const TIMER_LINE: u8 = 0;
/// The timer's storm limit per 10 ms window during the flood: above the flood's 200.
const FLOOD_TIMER_LIMIT_PER_WINDOW: u64 = 1_000;
/// Deliveries per round of deferred work, as the idle task makes them.
const DEFERRED_BUDGET: usize = 64;
/// The kernel's own timer storm limit (arch's `TIMER_STORM_LIMIT_PER_WINDOW`), restored after.
const NORMAL_TIMER_LIMIT_PER_WINDOW: u64 = 50;

/// What one deferred subscriber received.
struct Received {
    items: AtomicU64,
    lost: AtomicU64,
    last_tick: AtomicU64,
    out_of_order: AtomicU64,
}

impl Received {
    const fn new() -> Self {
        Self {
            items: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            last_tick: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
        }
    }

    fn record(&self, event: &Event) {
        match *event {
            Event::Timer { tick } => {
                self.items.fetch_add(1, Ordering::Relaxed);
                if tick <= self.last_tick.swap(tick, Ordering::Relaxed) {
                    self.out_of_order.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::Lost { count, .. } => {
                self.lost.fetch_add(count, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

static DROP_NEWEST: Received = Received::new();
static DROP_OLDEST: Received = Received::new();
static COALESCE: Received = Received::new();

/// A queue pushed from the timer interrupt and from thread code alike, popped by thread code.
/// `DropOldest` makes the interrupt's push pop too.
static SHARED_QUEUE: spin::Once<BoundedQueue<u64>> = spin::Once::new();
static SHARED_PUSHES: AtomicU64 = AtomicU64::new(0);

/// Calls made to a subscriber after its `drop` returned: must stay 0.
static CALLS_AFTER_DROP: AtomicU64 = AtomicU64::new(0);
/// Subscriptions the timer handler made and dropped, and subscribes it had refused.
static HANDLER_CHURN: AtomicU64 = AtomicU64::new(0);
static HANDLER_BUSY: AtomicU64 = AtomicU64::new(0);
/// Only the timer interrupt touches this (so its lock is never contended on one CPU).
static HANDLER_HELD: Mutex<Option<(Subscription, Arc<AtomicBool>)>> = Mutex::new(None);
static FLOOD_TICKS: AtomicU64 = AtomicU64::new(0);

/// An immediate timer subscriber that records a call after its drop.
fn watched_subscriber(name: &'static str) -> Option<(Subscription, Arc<AtomicBool>)> {
    let dropped = Arc::new(AtomicBool::new(false));
    let seen = dropped.clone();
    let subscription = BUS
        .subscribe(EventKind::Timer, name, Priority::OBSERVER, move |_, _| {
            if seen.load(Ordering::Acquire) {
                CALLS_AFTER_DROP.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Continue
        })
        .ok()?;
    Some((subscription, dropped))
}

fn drop_watched((subscription, dropped): (Subscription, Arc<AtomicBool>)) {
    drop(subscription);
    dropped.store(true, Ordering::Release);
}

/// The timer's immediate handler: pushes into the shared queue and churns a subscription of
/// its own chain every few ticks.
fn on_flood_tick(event: &Event) {
    let Event::Timer { tick } = *event else { return };
    FLOOD_TICKS.fetch_add(1, Ordering::Relaxed);
    if let Some(queue) = SHARED_QUEUE.get() {
        SHARED_PUSHES.fetch_add(1, Ordering::Relaxed);
        queue.push(tick);
    }
    if tick % 7 == 0
        && let Some(mut held) = HANDLER_HELD.try_lock()
    {
        match held.take() {
            Some(watched) => drop_watched(watched),
            None => match watched_subscriber("stress-in-handler") {
                Some(watched) => {
                    *held = Some(watched);
                    HANDLER_CHURN.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    HANDLER_BUSY.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }
}

fn deferred(received: &'static Received, policy: OverflowPolicy) -> Subscription {
    BUS.subscribe_deferred(
        EventKind::Timer,
        "stress-deferred",
        Priority::OBSERVER,
        QUEUE_CAPACITY,
        policy,
        move |event| received.record(event),
    )
    .expect("deferred subscription")
}

fn delivered() -> u64 {
    DROP_NEWEST.items.load(Ordering::Relaxed)
        + DROP_OLDEST.items.load(Ordering::Relaxed)
        + COALESCE.items.load(Ordering::Relaxed)
}

fn queue_info(id: herald::events::QueueId) -> QueueInfo {
    BUS.queues().into_iter().find(|queue| queue.id == id).expect("queue listed")
}

#[test_case]
fn the_bus_survives_a_same_cpu_interrupt_flood() {
    let queue = SHARED_QUEUE.call_once(|| {
        BoundedQueue::new("stress-shared", QUEUE_CAPACITY, OverflowPolicy::DropOldest)
    });
    let newest = deferred(&DROP_NEWEST, OverflowPolicy::DropNewest);
    let oldest = deferred(&DROP_OLDEST, OverflowPolicy::DropOldest);
    let coalesce = deferred(&COALESCE, OverflowPolicy::Coalesce);
    let queues = BUS.queues();
    let ids: alloc::vec::Vec<_> = queues[queues.len() - 3..].iter().map(|q| q.id).collect();
    let flood = BUS
        .subscribe(EventKind::Timer, "stress-flood", Priority::OBSERVER, |event, _| {
            on_flood_tick(event);
            Verdict::Continue
        })
        .expect("flood subscriber");

    LINES.set_rate_limit(TIMER_LINE, FLOOD_TIMER_LIMIT_PER_WINDOW);
    let rate = arch::set_timer_rate(FLOOD_HZ);
    let start_ms = arch::milliseconds();
    let mut window_end_ms = start_ms + PROGRESS_WINDOW_MS;
    let mut window_start_delivered = delivered();
    let mut windows = 0u64;
    let mut stalled_windows = 0u64;
    let mut thread_churn = 0u64;
    let mut thread_pushes = 0u64;
    let (mut popped_items, mut popped_lost) = (0u64, 0u64);
    let mut last_popped = 0u64;
    let mut shared_out_of_order = 0u64;
    let mut next_report_ms = start_ms + 1000;
    loop {
        let now_ms = arch::milliseconds();
        if now_ms >= window_end_ms {
            windows += 1;
            if delivered() == window_start_delivered {
                stalled_windows += 1;
            }
            window_start_delivered = delivered();
            window_end_ms = now_ms + PROGRESS_WINDOW_MS;
        }
        if now_ms >= next_report_ms {
            println!(
                "  stress: {} ms, {} flood ticks, {} delivered",
                now_ms - start_ms,
                FLOOD_TICKS.load(Ordering::Relaxed),
                delivered()
            );
            next_report_ms += 1000;
        }
        if now_ms - start_ms >= STRESS_MS {
            break;
        }
        // Thread context: pop and push the queue the interrupt also pushes.
        SHARED_PUSHES.fetch_add(1, Ordering::Relaxed);
        thread_pushes += 1;
        queue.push(u64::MAX - thread_pushes);
        while let Some(delivery) = queue.pop() {
            match delivery {
                Delivery::Item(value) if value < u64::MAX / 2 => {
                    popped_items += 1;
                    if value <= last_popped {
                        shared_out_of_order += 1;
                    }
                    last_popped = value;
                }
                Delivery::Item(_) => popped_items += 1,
                Delivery::Lost { count } => popped_lost += count,
            }
        }
        // Thread context: the idle task's work, and subscribe/drop in a loop.
        BUS.run_deferred(DEFERRED_BUDGET);
        if let Some(watched) = watched_subscriber("stress-thread") {
            thread_churn += 1;
            drop_watched(watched);
        }
    }

    arch::set_timer_rate(arch::TICK_HZ);
    LINES.set_rate_limit(TIMER_LINE, NORMAL_TIMER_LIMIT_PER_WINDOW);
    drop(flood);
    if let Some(watched) = arch::cpu::without_interrupts(|| HANDLER_HELD.lock().take()) {
        drop_watched(watched);
    }
    // Drain: no new shared pushes now that the flood subscriber is gone.
    while let Some(delivery) = queue.pop() {
        match delivery {
            Delivery::Item(_) => popped_items += 1,
            Delivery::Lost { count } => popped_lost += count,
        }
    }
    // Drain with interrupts off, so no tick queues more, then read the counters.
    let infos: alloc::vec::Vec<QueueInfo> = arch::cpu::without_interrupts(|| {
        while BUS.run_deferred(usize::MAX) > 0 {}
        ids.iter().map(|&id| queue_info(id)).collect()
    });
    drop((newest, oldest, coalesce));

    println!(
        "  stress: timer {rate} Hz, {} flood ticks, {windows} windows ({stalled_windows} \
         without progress), {} deferred deliveries, churn {thread_churn} thread / {} handler \
         ({} refused), shared queue {} pushes / {popped_items} popped / {popped_lost} lost",
        FLOOD_TICKS.load(Ordering::Relaxed),
        delivered(),
        HANDLER_CHURN.load(Ordering::Relaxed),
        HANDLER_BUSY.load(Ordering::Relaxed),
        SHARED_PUSHES.load(Ordering::Relaxed),
    );
    assert!(FLOOD_TICKS.load(Ordering::Relaxed) > STRESS_MS * 2, "the flood ran faster than 2 kHz");
    assert_eq!(stalled_windows, 0, "deliveries rose in every {PROGRESS_WINDOW_MS} ms window");
    assert_eq!(CALLS_AFTER_DROP.load(Ordering::Relaxed), 0, "no call after drop returned");
    assert!(thread_churn > 0 && HANDLER_CHURN.load(Ordering::Relaxed) > 0, "churn happened");
    BUS.reclaim_retired();
    assert_eq!(BUS.retired_snapshots(), 0, "every retired snapshot reclaimed");

    // The shared queue: every push is delivered or counted lost, none is left.
    let shared = queue.stats();
    assert_eq!(shared.enqueued, SHARED_PUSHES.load(Ordering::Relaxed), "{shared:?}");
    assert_eq!(popped_items + popped_lost, shared.enqueued, "{shared:?}");
    assert_eq!(shared.delivered, popped_items, "{shared:?}");
    assert_eq!(shared.dropped, popped_lost, "{shared:?}");
    assert_eq!(shared_out_of_order, 0, "the interrupt's pushes arrive in order");

    // The bus's queues: counters add up, losses reached the handler, order kept.
    for (info, received) in infos.iter().zip([&DROP_NEWEST, &DROP_OLDEST, &COALESCE]) {
        let stats = info.stats;
        assert_eq!(stats.depth, 0, "{}: drained, {stats:?}", info.policy);
        assert_eq!(received.items.load(Ordering::Relaxed), stats.delivered, "{stats:?}");
        assert_eq!(received.lost.load(Ordering::Relaxed), stats.dropped, "{stats:?}");
        assert_eq!(received.out_of_order.load(Ordering::Relaxed), 0, "{}: in order", info.policy);
        match info.policy {
            OverflowPolicy::DropNewest => {
                assert_eq!(stats.enqueued, stats.delivered, "{stats:?}");
                assert!(stats.dropped > 0, "{stats:?}");
            }
            OverflowPolicy::DropOldest => {
                assert_eq!(stats.enqueued, stats.delivered + stats.dropped, "{stats:?}");
                assert!(stats.dropped > 0, "{stats:?}");
            }
            _ => {
                assert_eq!(stats.enqueued, stats.delivered + stats.coalesced, "{stats:?}");
                assert_eq!(stats.dropped, 0, "{stats:?}");
                assert!(stats.coalesced > 0, "{stats:?}");
            }
        }
        assert!(stats.high_water <= QUEUE_CAPACITY as u64, "{stats:?}");
    }
}

/// Holds the subscription a handler drops mid-dispatch.
static VICTIM: Mutex<Option<Subscription>> = Mutex::new(None);
static VICTIM_CALLS: AtomicU64 = AtomicU64::new(0);

/// A private bus with `dropper` first and the victim after it in one chain.
fn chain_with_victim(
    dropper: impl Fn(&Event, &mut Reply) -> Verdict + Send + Sync + 'static,
) -> (&'static Bus, Subscription) {
    let bus: &'static Bus = alloc::boxed::Box::leak(alloc::boxed::Box::new(Bus::new()));
    let first =
        bus.subscribe(EventKind::Timer, "dropper", Priority::owner(900), dropper).expect("dropper");
    let victim = bus
        .subscribe(EventKind::Timer, "victim", Priority::owner(100), |_, _| {
            VICTIM_CALLS.fetch_add(1, Ordering::Relaxed);
            Verdict::Continue
        })
        .expect("victim");
    VICTIM_CALLS.store(0, Ordering::Relaxed);
    *VICTIM.lock() = Some(victim);
    (bus, first)
}

#[test_case]
fn a_subscription_dropped_by_an_earlier_handler_is_not_called_in_that_dispatch() {
    let (bus, _dropper) = chain_with_victim(|_, _| {
        drop(VICTIM.lock().take());
        Verdict::Continue
    });
    bus.dispatch(&Event::Timer { tick: 1 }, &mut Reply::new());
    bus.dispatch(&Event::Timer { tick: 2 }, &mut Reply::new());
    assert_eq!(VICTIM_CALLS.load(Ordering::Relaxed), 0, "dropped before its turn");
    assert!(bus.chain(EventKind::Timer).iter().all(|info| info.name != "victim"));
}

#[test_case]
fn a_subscription_dropped_by_an_interrupt_mid_dispatch_is_not_called_in_that_dispatch() {
    // The interrupt: the software line's handler drops the victim of the chain that the
    // interrupted code is dispatching.
    let on_interrupt = BUS
        .subscribe(EventKind::Irq, "victim-dropper", Priority::OWNER, |event, _| {
            if let Event::Irq { line: SOFTWARE_LINE, .. } = event {
                drop(VICTIM.lock().take());
                return Verdict::Handled;
            }
            Verdict::Continue
        })
        .expect("irq subscriber");
    let (bus, _raiser) = chain_with_victim(|_, _| {
        arch::probes::raise_software_irq();
        Verdict::Continue
    });
    bus.dispatch(&Event::Timer { tick: 1 }, &mut Reply::new());
    assert!(VICTIM.lock().is_none(), "the interrupt ran and dropped it");
    bus.dispatch(&Event::Timer { tick: 2 }, &mut Reply::new());
    drop(on_interrupt);
    assert_eq!(VICTIM_CALLS.load(Ordering::Relaxed), 0, "dropped before its turn");
}

#[test_case]
fn snapshots_retired_inside_dispatches_are_reclaimed_by_the_idle_task() {
    // Subscribe and drop from inside a handler: each change retires a snapshot while this CPU
    // is reading one, so it cannot be freed on the spot.
    let bus: &'static Bus = alloc::boxed::Box::leak(alloc::boxed::Box::new(Bus::new()));
    let churn = bus
        .subscribe(EventKind::Timer, "churn", Priority::OWNER, move |_, _| {
            let inner = bus
                .subscribe(EventKind::Timer, "inner", Priority::OBSERVER, |_, _| Verdict::Continue);
            drop(inner);
            Verdict::Continue
        })
        .expect("churn");
    for tick in 0..10 {
        bus.dispatch(&Event::Timer { tick }, &mut Reply::new());
    }
    // Each change reclaims what earlier dispatches retired; the last dispatch's two wait.
    assert_eq!(bus.retired_snapshots(), 2, "retired inside the last dispatch");
    bus.reclaim_retired();
    assert_eq!(bus.retired_snapshots(), 0, "every grace period ended");
    drop(churn);
}
