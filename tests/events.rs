//! Real interrupts, faults and system calls reach bus subscribers with the right payload, in
//! priority order, and a deny stops the handlers below it.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use alloc::{sync::Arc, vec::Vec};
use core::{
    arch::asm,
    sync::atomic::{AtomicU64, Ordering},
};

use herald::{
    arch::{self, IrqMutex},
    events::{
        Access, BUS, Errno, Event, EventKind, OverflowPolicy, Priority, Verdict,
        irq::{self, SOFTWARE_LINE},
    },
};

herald::test_kernel!();

type Log = Arc<IrqMutex<Vec<(&'static str, Event)>>>;

fn recorder(
    kind: EventKind,
    name: &'static str,
    priority: Priority,
    verdict: Verdict,
    log: &Log,
) -> herald::events::Subscription {
    let log = log.clone();
    BUS.subscribe(kind, name, priority, move |event, _| {
        log.lock().push((name, *event));
        verdict
    })
    .expect("subscribe")
}

/// Issues `int 0x80` with `number` in rax and two arguments; returns rax.
fn syscall(number: u64, arg0: u64, arg1: u64) -> u64 {
    let result: u64;
    // SAFETY: vector 0x80 is the kernel's syscall gate; the handler preserves every register but rax.
    unsafe { asm!("int 0x80", inlateout("rax") number => result, in("rdi") arg0, in("rsi") arg1) };
    result
}

#[test_case]
fn timer_ticks_reach_subscribers_in_priority_order() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let subscriptions = [
        recorder(EventKind::Timer, "stats", Priority::OBSERVER, Verdict::Continue, &log),
        recorder(EventKind::Timer, "scheduler", Priority::OWNER, Verdict::Handled, &log),
        recorder(EventKind::Timer, "audit", Priority::SECURITY, Verdict::Continue, &log),
    ];
    // Ticks that arrived while the three were being registered saw a partial chain. Clearing
    // under the IRQ-masking lock cannot split a tick's dispatch, which runs with interrupts off.
    log.lock().clear();
    while log.lock().len() < 9 {
        arch::cpu::halt();
    }
    drop(subscriptions);
    let log = log.lock();
    for (group, calls) in log.chunks(3).take(3).enumerate() {
        let names: Vec<_> = calls.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["audit", "scheduler", "stats"], "group {group}");
        let ticks: Vec<_> = calls.iter().map(|(_, event)| *event).collect();
        assert!(ticks.iter().all(|event| *event == ticks[0]), "one event per group");
        assert!(matches!(ticks[0], Event::Timer { tick } if tick > 0));
    }
    let (Event::Timer { tick: first }, Event::Timer { tick: second }) = (log[0].1, log[3].1) else {
        panic!("not timer events");
    };
    assert_eq!(second, first + 1, "consecutive ticks");
}

#[test_case]
fn a_breakpoint_reaches_exception_subscribers_with_its_rip() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let _s = recorder(EventKind::Exception, "debugger", Priority::OWNER, Verdict::Handled, &log);
    let after_int3: u64;
    // SAFETY: int3 raises #BP, which the subscriber handles; execution resumes after it.
    unsafe { asm!("int3", "2:", "lea {after}, [rip + 2b]", after = out(reg) after_int3) };
    let log = log.lock();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].1,
        Event::Exception { vector: 3, error_code: 0, rip: after_int3, from_user: false }
    );
}

static RESUME_AT: AtomicU64 = AtomicU64::new(0);
/// Canonical, in the lower half, and never mapped by the loader (it maps the kernel, stack and
/// physical memory far from here).
const UNMAPPED_ADDRESS: u64 = 0x0000_4444_4444_0000;

#[test_case]
fn a_page_fault_reaches_its_owner_who_can_resume_past_it() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let sink = log.clone();
    let _mm = BUS
        .subscribe(EventKind::PageFault, "test-mm", Priority::OWNER, move |event, reply| {
            sink.lock().push(("test-mm", *event));
            reply.resume_at = Some(RESUME_AT.load(Ordering::Relaxed));
            Verdict::Handled
        })
        .expect("subscribe");
    let (fault_rip, value): (u64, u64);
    // SAFETY: the load faults; the subscriber resumes at label 4, after it. `resume` is stored
    // before the load and every operand is a register.
    unsafe {
        asm!(
            "lea {resume}, [rip + 4f]",
            "mov [{slot}], {resume}",
            "lea {fault}, [rip + 3f]",
            "3: mov {value}, qword ptr [{address}]",
            "4:",
            resume = out(reg) _,
            fault = out(reg) fault_rip,
            value = inout(reg) 7u64 => value,
            slot = in(reg) RESUME_AT.as_ptr(),
            address = in(reg) UNMAPPED_ADDRESS,
        );
    }
    assert_eq!(value, 7, "the load never completed");
    let log = log.lock();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].1,
        Event::PageFault {
            address: UNMAPPED_ADDRESS,
            access: Access::Read,
            present: false,
            from_user: false,
            rip: fault_rip
        }
    );
}

#[test_case]
fn every_software_raisable_exception_vector_becomes_an_event() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let _s = recorder(EventKind::Exception, "catch-all", Priority::OWNER, Verdict::Handled, &log);
    macro_rules! raise {
        ($($vector:literal)*) => {{
            $(
                // SAFETY: a software interrupt to a vector without an error code; the
                // subscriber handles it and execution resumes after the `int`.
                unsafe { asm!("int {v}", v = const $vector) };
            )*
            [$($vector),*]
        }};
    }
    // Vectors whose exceptions push an error code (8, 10–14, 17, 21, 29, 30) cannot be raised
    // with `int` (the frame would lack it); #PF, #GP and #DF are covered by real faults. The
    // NMI (2) is not an event: arch counts it (`cpus`) and resumes, since it can land anywhere
    // and handlers may take locks.
    let nmis_before = herald::arch::cpus()[0].nmis;
    herald::arch::probes::software_nmi();
    assert_eq!(herald::arch::cpus()[0].nmis, nmis_before + 1, "the NMI was counted");
    let raised: &[u8] = &raise!(0 1 3 4 5 6 7 9 15 16 18 19 20 22 23 24 25 26 27 28 31);
    let seen: Vec<u8> = log
        .lock()
        .iter()
        .map(|(_, event)| match event {
            Event::Exception { vector, .. } => *vector,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(seen, raised);
}

#[test_case]
fn a_general_protection_fault_carries_its_error_code() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let sink = log.clone();
    let _s = BUS
        .subscribe(EventKind::Exception, "gp", Priority::OWNER, move |event, reply| {
            sink.lock().push(("gp", *event));
            reply.resume_at = Some(RESUME_AT.load(Ordering::Relaxed));
            Verdict::Handled
        })
        .expect("subscribe");
    // SAFETY: loading GDT selector 0x1230 (index far beyond the GDT limit) into ds raises #GP with that selector as
    // error code; the subscriber resumes at label 2 with ds unchanged.
    unsafe {
        asm!(
            "lea {resume}, [rip + 2f]",
            "mov [{slot}], {resume}",
            "mov ds, {selector:x}",
            "2:",
            resume = out(reg) _,
            slot = in(reg) RESUME_AT.as_ptr(),
            selector = in(reg) 0x1230u64,
        );
    }
    let log = log.lock();
    assert!(matches!(
        log[0].1,
        Event::Exception { vector: 13, error_code: 0x1230, from_user: false, .. }
    ));
}

#[test_case]
fn a_syscall_is_served_by_its_owner_with_the_arguments() {
    let _owner = BUS
        .subscribe(EventKind::Syscall, "adder", Priority::OWNER, |event, reply| match event {
            Event::Syscall { number: 500, args, pid: 0, .. } => {
                reply.value = args[0] + args[1];
                Verdict::Handled
            }
            _ => Verdict::Continue,
        })
        .expect("subscribe");
    assert_eq!(syscall(500, 40, 2), 42);
    assert_eq!(syscall(501, 0, 0), Errno::ENOSYS.as_return_value(), "nobody serves 501");
}

#[test_case]
fn a_security_deny_stops_the_owner_and_returns_the_errno() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let _owner = recorder(EventKind::Syscall, "owner", Priority::OWNER, Verdict::Handled, &log);
    let _policy = BUS
        .subscribe(EventKind::Syscall, "policy", Priority::SECURITY, |event, _| match event {
            Event::Syscall { number: 13, .. } => Verdict::Deny(Errno::EPERM),
            _ => Verdict::Continue,
        })
        .expect("subscribe");
    assert_eq!(syscall(13, 0, 0), Errno::EPERM.as_return_value());
    assert!(log.lock().is_empty(), "the owner must not see a denied call");
    assert_eq!(syscall(14, 0, 0), 0, "allowed calls still reach the owner");
    assert_eq!(log.lock().len(), 1);
}

#[test_case]
fn software_irq_events_carry_increasing_sequence_numbers() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let _s = recorder(EventKind::Irq, "driver", Priority::OWNER, Verdict::Handled, &log);
    let before = irq::LINES.stats(SOFTWARE_LINE).raised;
    for _ in 0..3 {
        // SAFETY: the software IRQ vector dispatches an Irq event and returns.
        unsafe { asm!("int 0xf0") };
    }
    let seqs: Vec<u64> = log
        .lock()
        .iter()
        .filter_map(|(_, event)| match event {
            Event::Irq { line: SOFTWARE_LINE, seq } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [before + 1, before + 2, before + 3]);
}

#[test_case]
fn a_deferred_irq_handler_keeps_its_line_masked_until_it_ran() {
    let log: Log = Arc::new(IrqMutex::new(Vec::new()));
    let sink = log.clone();
    let _s = BUS
        .subscribe_deferred(
            EventKind::Irq,
            "bottom-half",
            Priority::OWNER,
            4,
            OverflowPolicy::Coalesce,
            move |event| {
                sink.lock().push(("bottom-half", *event));
            },
        )
        .expect("subscribe");
    // SAFETY: as above.
    unsafe { asm!("int 0xf0") };
    assert!(irq::LINES.stats(SOFTWARE_LINE).awaiting_ack, "masked until the handler runs");
    assert!(log.lock().is_empty(), "deferred: nothing ran in interrupt context");
    while BUS.has_deferred_work() {
        BUS.run_deferred(16);
    }
    assert!(!irq::LINES.stats(SOFTWARE_LINE).awaiting_ack, "acknowledged after running");
    assert!(matches!(log.lock()[..], [("bottom-half", Event::Irq { line: SOFTWARE_LINE, .. })]));
}

#[test_case]
fn chains_and_counts_are_introspectable() {
    let _s = BUS
        .subscribe(EventKind::Timer, "introspected", Priority::observer(7), |_, _| {
            Verdict::Continue
        })
        .expect("subscribe");
    let start = BUS.dispatch_count(EventKind::Timer);
    for _ in 0..5 {
        arch::cpu::halt();
    }
    assert!(BUS.dispatch_count(EventKind::Timer) >= start + 4);
    let chain = BUS.chain(EventKind::Timer);
    let entry = chain.iter().find(|info| info.name == "introspected").expect("listed");
    assert!(entry.hits >= 4);
    assert_eq!(entry.priority, Priority::observer(7));
    let text = BUS.describe_chain(EventKind::Timer);
    assert!(text.contains("introspected") && text.contains("observer:7"), "{text}");
}
