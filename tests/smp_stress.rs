//! The bus across four CPUs (the runner boots this kernel with `-smp 4`), for 20 s of guest
//! time: worker processes on every CPU make system calls and raise events, subscribing and
//! dropping their own subscriptions as they start and end, while this CPU subscribes and drops
//! handlers in a loop and every CPU takes its timer's interrupts. Every count must add up
//! exactly — each worker's calls and events seen once each by an observer, every event offered
//! to a deferred queue delivered or counted lost — no handler may run after its drop returned,
//! and the frames come back to where they were.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use alloc::{sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use herald::{
    abi, arch,
    events::{BUS, Event, EventKind, OverflowPolicy, Priority, Verdict},
    task, testing,
};

herald::test_kernel!();

/// Guest time the stress lasts.
const STRESS_MS: u64 = 20_000;
/// Workers alive at once: one per CPU.
const WORKERS: usize = 4;
/// Rounds (a `getpid` and a `raise`) each worker makes.
const ROUNDS: u64 = 3_000;
/// Pids this test can count (workers get pids below it during the run).
const MAX_TRACKED_PID: usize = 2_048;
/// The deferred queue: small, so it overflows and counts what it drops.
const DEFERRED_CAPACITY: usize = 64;
/// Deliveries per round of deferred work on this CPU.
const DEFERRED_BUDGET: usize = 256;
/// Longest the end may take to give every frame back (snapshots retired by other CPUs are
/// freed at their next grace period).
const SETTLE_MS: u64 = 2_000;

static GETPIDS: [AtomicU64; MAX_TRACKED_PID] = [const { AtomicU64::new(0) }; MAX_TRACKED_PID];
static RAISES: [AtomicU64; MAX_TRACKED_PID] = [const { AtomicU64::new(0) }; MAX_TRACKED_PID];
static DEFERRED_DELIVERED: AtomicU64 = AtomicU64::new(0);
static DEFERRED_LOST: AtomicU64 = AtomicU64::new(0);
/// Calls of a churned handler after its drop had returned.
static LATE_CALLS: AtomicU64 = AtomicU64::new(0);

fn tracked(pid: u32) -> Option<usize> {
    usize::try_from(pid).ok().filter(|&index| index < MAX_TRACKED_PID)
}

/// One churned subscriber's view: set once its drop has returned.
#[derive(Default)]
struct Churned {
    dropped: AtomicBool,
}

fn churn_once() {
    let churned = Arc::new(Churned::default());
    let (on_syscall, on_timer) = (churned.clone(), churned.clone());
    let syscalls = BUS
        .subscribe(EventKind::Syscall, "churn-syscall", Priority::OBSERVER, move |_, _| {
            if on_syscall.dropped.load(Ordering::Acquire) {
                LATE_CALLS.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Continue
        })
        .expect("subscribe a churned syscall observer");
    let timer = BUS
        .subscribe(EventKind::Timer, "churn-timer", Priority::OBSERVER, move |_, _| {
            if on_timer.dropped.load(Ordering::Acquire) {
                LATE_CALLS.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Continue
        })
        .expect("subscribe a churned timer observer");
    task::idle_step();
    drop(syscalls);
    drop(timer);
    churned.dropped.store(true, Ordering::Release);
}

/// Checks a reaped worker's counts: every call and event it made was seen exactly once.
fn check_worker(pid: u32, code: i32, checked: &mut u64) {
    assert_eq!(code, 0, "worker {pid} saw a wrong answer or a failed call");
    let index = tracked(pid).expect("tracked");
    // Its first `getpid` learns who it is; each round makes one more.
    assert_eq!(GETPIDS[index].load(Ordering::Relaxed), ROUNDS + 1, "getpid calls of {pid}");
    assert_eq!(RAISES[index].load(Ordering::Relaxed), ROUNDS, "events raised by {pid}");
    *checked += 1;
}

#[test_case]
fn four_cpus_of_calls_events_and_subscription_churn_add_up_exactly() {
    assert_eq!(arch::cpus().iter().filter(|cpu| cpu.online).count(), WORKERS, "four CPUs");
    let counter = BUS
        .subscribe(EventKind::Syscall, "stress-count", Priority::OBSERVER, |event, _| {
            if let Event::Syscall { number: abi::SYS_GETPID, pid, .. } = *event
                && let Some(index) = tracked(pid)
            {
                GETPIDS[index].fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Continue
        })
        .expect("subscribe the syscall counter");
    let raised = BUS
        .subscribe(EventKind::User, "stress-raised", Priority::OBSERVER, |event, _| {
            if let Event::User { pid, value, .. } = *event
                && value == u64::from(pid)
                && let Some(index) = tracked(pid)
            {
                RAISES[index].fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Continue
        })
        .expect("subscribe the event counter");
    let deferred = BUS
        .subscribe_deferred(
            EventKind::User,
            "stress-deferred",
            Priority::OBSERVER,
            DEFERRED_CAPACITY,
            OverflowPolicy::DropOldest,
            |event| match *event {
                Event::User { .. } => {
                    DEFERRED_DELIVERED.fetch_add(1, Ordering::Relaxed);
                }
                Event::Lost { count, .. } => {
                    DEFERRED_LOST.fetch_add(count, Ordering::Relaxed);
                }
                _ => {}
            },
        )
        .expect("subscribe the deferred counter");
    let baseline_frames = testing::free_frames();
    let before: Vec<_> = arch::cpus();
    let dispatched_before: Vec<u64> = (0..WORKERS).map(|cpu| BUS.dispatched_on(cpu)).collect();
    let rounds = alloc::format!("{ROUNDS}");
    let mut live: Vec<u32> = Vec::new();
    let (mut checked, mut churns) = (0u64, 0u64);
    let deadline_ms = arch::milliseconds() + STRESS_MS;
    while arch::milliseconds() < deadline_ms {
        while live.len() < WORKERS {
            let pid = task::spawn("busy", &rounds, 0).expect("spawn a worker");
            assert!(tracked(pid).is_some(), "pid {pid} beyond what the test counts");
            live.push(pid);
        }
        churn_once();
        churns += 1;
        live.retain(|&pid| match task::try_reap(pid) {
            Some(code) => {
                check_worker(pid, code, &mut checked);
                false
            }
            None => true,
        });
        BUS.run_deferred(DEFERRED_BUDGET);
    }
    for pid in live {
        let code = task::wait(pid).expect("a worker ends");
        check_worker(pid, code, &mut checked);
    }
    while BUS.has_deferred_work() {
        BUS.run_deferred(DEFERRED_BUDGET);
    }
    drop((counter, raised, deferred));
    assert_eq!(LATE_CALLS.load(Ordering::Relaxed), 0, "a handler ran after its drop returned");
    let offered: u64 = RAISES.iter().map(|count| count.load(Ordering::Relaxed)).sum();
    assert_eq!(offered, checked * ROUNDS, "every raise was seen once");
    let delivered = DEFERRED_DELIVERED.load(Ordering::Relaxed);
    let lost = DEFERRED_LOST.load(Ordering::Relaxed);
    assert_eq!(delivered + lost, offered, "deferred: {delivered} delivered + {lost} lost");
    // Every CPU served calls and took interrupts.
    let after = arch::cpus();
    for cpu in 0..WORKERS {
        assert!(BUS.dispatched_on(cpu) > dispatched_before[cpu], "cpu {cpu} dispatched nothing");
        assert!(after[cpu].interrupts > before[cpu].interrupts, "cpu {cpu} took no interrupts");
    }
    let settle_until_ms = arch::milliseconds() + SETTLE_MS;
    while testing::free_frames() != baseline_frames && arch::milliseconds() < settle_until_ms {
        task::idle_step();
        BUS.run_deferred(DEFERRED_BUDGET);
    }
    assert_eq!(testing::free_frames(), baseline_frames, "frames back at the baseline");
    herald::println!(
        "smp stress: {checked} workers, {offered} events ({delivered} deferred, {lost} lost), \
         {churns} subscribe/drop rounds"
    );
    assert!(checked >= WORKERS as u64 && churns > 100, "the stress made progress");
}
