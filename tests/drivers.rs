//! User-space drivers against the kernel: the claims it refuses and grants, ports outside the
//! grant (the process is ended with `PORT_FAULT_EXIT_CODE`), a driver that never acknowledges
//! (its line is retried after the backoff, other lines untouched), a driver killed in the
//! middle of a flood (its line released and its unseen interrupts counted, its frames back, a
//! new driver can claim). The interrupts are the software line's, raised by the test; COM2
//! (the runner gives this kernel a second serial port) is the device whose ports are claimed.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

use herald::{
    abi, arch, console,
    events::irq::{INITIAL_BACKOFF_MS, LINES, LineOwner, SOFTWARE_LINE},
    task::{self, Pid},
    testing::{assert_recovered, frame_baseline, run_program},
};

extern crate alloc;

herald::test_kernel!();

/// Longest the test waits for a driver to reach a point (far above the milliseconds it takes).
const PATIENCE_MS: u64 = 20_000;

/// Runs the kernel's idle steps until `done` holds.
fn idle_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = arch::milliseconds() + PATIENCE_MS;
    while !done() {
        assert!(arch::milliseconds() < deadline, "never saw: {what}");
        task::idle_step();
    }
}

/// Idles for `ms` milliseconds.
fn idle_for(ms: u64) {
    let until = arch::milliseconds() + ms;
    idle_until("time passing", || arch::milliseconds() >= until);
}

fn spawn_driver(args: &str) -> Pid {
    console::start_capture();
    let pid = task::spawn("driver", args, 0).expect("spawn driver");
    idle_until("the driver's claim", || LINES.owner(SOFTWARE_LINE) == LineOwner::Process(pid));
    pid
}

fn is_blocked(pid: Pid) -> bool {
    task::processes().iter().any(|process| process.pid == pid && process.state == "blocked")
}

#[test_case]
fn claims_of_kernel_lines_foreign_ports_and_too_many_lines_are_refused() {
    let free = frame_baseline();
    let (code, output) = run_program("driver", "refusals");
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("0 wrong"), "{output}");
    herald::println!("    {}", output.trim());
    // Everything it claimed went back when it ended.
    for line in [3, 5, 6, 7] {
        assert_eq!(LINES.owner(line), LineOwner::Free, "line {line}");
    }
    assert_recovered(free, "the refusals");
}

#[test_case]
fn a_port_outside_the_grant_ends_the_process_with_the_documented_code() {
    let free = frame_baseline();
    // COM1's data port, the PIC's command port, the QEMU exit port: none is COM2's.
    for port in ["0x3f8", "0x20", "0xf4"] {
        let (code, output) = run_program("driver", &alloc::format!("stray-port {port}"));
        assert_eq!(code, abi::PORT_FAULT_EXIT_CODE, "port {port}: {output}");
        assert!(output.contains("now port") && !output.contains("survived"), "{output}");
    }
    let (code, output) = run_program("driver", "released-port");
    assert_eq!(code, abi::PORT_FAULT_EXIT_CODE, "a released device's port: {output}");
    assert_eq!(LINES.owner(3), LineOwner::Free);
    assert_recovered(free, "the port faults");
}

#[test_case]
fn a_driver_that_never_acknowledges_is_retried_after_the_backoff_and_others_are_untouched() {
    let free = frame_baseline();
    let keyboard_before = LINES.stats(1);
    let pid = spawn_driver("hold");
    idle_until("the driver waiting", || is_blocked(pid));
    let before = LINES.stats(SOFTWARE_LINE);
    arch::probes::raise_software_irq();
    idle_until("the driver holding its interrupt", || console::capture_contains("holding"));
    assert!(LINES.stats(SOFTWARE_LINE).awaiting_ack, "masked until the driver answers");
    // The backoff passes without an answer: the line is retried (open again), counted late.
    idle_for(3 * INITIAL_BACKOFF_MS);
    let after = LINES.stats(SOFTWARE_LINE);
    assert!(after.ack_timeouts > before.ack_timeouts, "no retry: {after:?}");
    assert_eq!(after.owner, LineOwner::Process(pid));
    // Open again: the next interrupt is dispatched to the driver, not suppressed.
    arch::probes::raise_software_irq();
    let later = LINES.stats(SOFTWARE_LINE);
    assert_eq!(later.raised, after.raised + 1);
    assert_eq!(later.suppressed, after.suppressed);
    // Another driver's line (the kernel's keyboard) saw none of it.
    let keyboard = LINES.stats(1);
    assert_eq!(keyboard.ack_timeouts, keyboard_before.ack_timeouts);
    assert_eq!(keyboard.awaiting_ack, keyboard_before.awaiting_ack);
    task::kill(pid).expect("kill");
    assert_eq!(task::wait(pid), Ok(abi::KILLED_EXIT_CODE));
    let _ = console::take_capture();
    let released = LINES.stats(SOFTWARE_LINE);
    assert_eq!(released.owner, LineOwner::Free);
    assert!(!released.awaiting_ack, "a released line waits for nobody");
    // The interrupt raised after the retry reached the driver's count but never its wait.
    assert_eq!(released.dropped, before.dropped + 1, "{released:?}");
    assert_recovered(free, "the unanswering driver");
}

#[test_case]
fn a_driver_killed_mid_flood_releases_its_line_and_a_new_driver_claims_it() {
    let free = frame_baseline();
    let dropped_before = LINES.stats(SOFTWARE_LINE).dropped;
    let pid = spawn_driver("wait 1000000000");
    let mut raised = 0;
    // A flood: interrupts raised as fast as the test can, the driver serving them between.
    for round in 0..2_000 {
        arch::probes::raise_software_irq();
        raised += 1;
        if round % 4 == 0 {
            task::idle_step();
        }
    }
    task::kill(pid).expect("kill");
    assert_eq!(task::wait(pid), Ok(abi::KILLED_EXIT_CODE));
    let _ = console::take_capture();
    let stats = LINES.stats(SOFTWARE_LINE);
    assert_eq!(stats.owner, LineOwner::Free);
    assert!(!stats.awaiting_ack);
    let dropped = stats.dropped - dropped_before;
    assert!(dropped <= raised, "dropped {dropped} of {raised}");
    herald::println!("    {raised} raised, {dropped} never seen by the killed driver (counted)");
    assert_recovered(free, "the killed driver");
    // A new driver claims the line and serves it.
    let pid = spawn_driver("wait 3");
    for _ in 0..3 {
        idle_until("the new driver waiting", || is_blocked(pid));
        arch::probes::raise_software_irq();
    }
    assert_eq!(task::wait(pid), Ok(0));
    let output = console::take_capture();
    assert!(output.contains("served 3 wake-ups"), "{output}");
}
