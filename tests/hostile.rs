//! Hostile programs against the kernel's limits: a reservation loop, touching past the
//! machine's memory, 100 000 maps, a spawn bomb, the longest calls beside a latency probe, and
//! a deferred subscription to a request kind. Each test checks the kernel's answer, that it
//! still runs the next program, and that the free-frame count is back at its baseline.
//!
//! The runner boots this kernel under `-icount` (guest time follows instructions, not the
//! host's load), so the latency bound holds on a busy machine; xtask runs it at 64 MiB too.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use alloc::string::String;

use herald::{
    abi, arch, console,
    events::{BUS, BusError, EventKind, OverflowPolicy, Priority},
    mm,
    task::{self, KERNEL_ONLY_PROCESS_SLOTS, MAX_PROCESSES},
    testing::{assert_recovered, frame_baseline},
};

herald::test_kernel!();

fn run(args: &str) -> (i32, String) {
    herald::testing::run_program("hostile", args)
}

/// Time-stamp counter cycles per millisecond, measured across idle ticks.
fn cycles_per_ms() -> u64 {
    let (start_ms, start) = (arch::milliseconds(), arch::cpu::read_timestamp());
    while arch::milliseconds() < start_ms + 50 {
        task::idle_step();
    }
    (arch::cpu::read_timestamp() - start) / (arch::milliseconds() - start_ms)
}

/// The number after `label` in `text`.
fn number_after(text: &str, label: &str) -> u64 {
    let rest = &text
        [text.find(label).unwrap_or_else(|| panic!("no {label:?} in {text:?}")) + label.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {label:?} in {text:?}"))
}

#[test_case]
fn a_loop_of_1_gib_reservations_is_refused_at_once() {
    let free = frame_baseline();
    let (code, output) = run("reserve-loop");
    assert_eq!(code, 0, "{output}");
    // One space may reserve at most the machine's user memory: below 1 GiB, nothing fits.
    let fits = mm::user_memory_bytes() >> 30;
    let accepted = number_after(&output, "GiB, ");
    assert!(accepted <= fits, "{output}");
    assert_eq!(number_after(&output, "accepted, "), 1000 - accepted, "{output}");
    herald::println!("    {}", output.trim());
    assert_recovered(free, "the reservation loop");
}

#[test_case]
fn touching_past_the_machines_memory_ends_the_toucher_and_frees_it_all() {
    // One space may reserve the machine's user memory, so it takes two to overcommit: both
    // reserve and touch 4 MiB at a time until memory runs out under one of them.
    let free = frame_baseline();
    let out_of_memory = mm::fault_counters().out_of_memory;
    console::start_capture();
    let first = task::spawn("hostile", "touch-all", 0).expect("spawn");
    let second = task::spawn("hostile", "touch-all", 0).expect("spawn");
    let codes = [task::wait(first).expect("wait"), task::wait(second).expect("wait")];
    let output = console::take_capture();
    // The survivor goes on once the other's memory is back, until its own reservation limit
    // refuses a map (exit 3), or it is ended too.
    assert!(codes.contains(&abi::OUT_OF_MEMORY_EXIT_CODE), "{codes:?}: {output}");
    assert!(
        codes.iter().all(|&code| code == abi::OUT_OF_MEMORY_EXIT_CODE || code == 3),
        "{codes:?}"
    );
    let killed = codes.iter().filter(|&&code| code == abi::OUT_OF_MEMORY_EXIT_CODE).count();
    assert_eq!(mm::fault_counters().out_of_memory, out_of_memory + killed as u64);
    assert!(mm::has_room_for_processes(), "the reserve is intact");
    herald::println!("    touch-all twice: exit codes {codes:?}");
    assert_recovered(free, "the out-of-memory kill");
}

#[test_case]
fn a_hundred_thousand_maps_meet_the_region_limit_at_a_flat_cost() {
    let free = frame_baseline();
    let (code, output) = run("many-maps");
    assert_eq!(code, 0, "{output}");
    let mapped = number_after(&output, "many-maps: ");
    let refused = number_after(&output, "mapped, ");
    assert_eq!(mapped + refused, 100_000, "{output}");
    // The program's image, stack and guard hold a few regions; maps get the rest.
    let limit = mm::space::MAX_REGIONS_PER_SPACE as u64;
    assert!(mapped < limit && mapped > limit - 16, "{output}");
    let first = number_after(&output, "first ");
    let last = number_after(&output, "last ");
    assert!(last <= 2 * first, "cost per map grew from {first} to {last} cycles: {output}");
    assert!(output.contains("unmap of all: Ok(())"), "{output}");
    herald::println!("    {}", output.trim());
    assert_recovered(free, "100 000 maps");
}

#[test_case]
fn a_spawn_bomb_meets_eagain_and_the_process_table_never_overflows() {
    let free = frame_baseline();
    console::start_capture();
    let pid = task::spawn("hostile", "bomb 6 3", 0).expect("spawn");
    let mut most = 0;
    while task::is_alive(pid) {
        most = most.max(task::processes().len());
        task::idle_step();
    }
    let code = task::wait(pid).expect("wait");
    let output = console::take_capture();
    assert!(code & 0x80 != 0, "no spawn was refused (code {code}): {output}");
    assert!(!output.contains("failed"), "{output}");
    assert!(most <= MAX_PROCESSES - KERNEL_ONLY_PROCESS_SLOTS, "{most} processes at once");
    herald::println!("    bomb: at most {most} processes at once; EAGAIN ended it");
    assert_recovered(free, "the spawn bomb");
}

#[test_case]
fn the_longest_calls_keep_another_process_waiting_at_most_10_ms() {
    // Half a second of guest time each: about 500 sleeps beside several rounds of long calls.
    for hog in ["long-calls 500", "long-calls-int80 500"] {
        longest_calls_beside_a_latency_probe(hog);
    }
}

fn longest_calls_beside_a_latency_probe(hog_args: &str) {
    let free = frame_baseline();
    let cycles_per_ms = cycles_per_ms();
    console::start_capture();
    let hog = task::spawn("hostile", hog_args, 0).expect("spawn");
    let probe = task::spawn("hostile", "latency 500", 0).expect("spawn");
    let probe_code = task::wait(probe).expect("wait");
    let hog_code = task::wait(hog).expect("wait");
    let output = console::take_capture();
    assert_eq!((hog_code, probe_code), (0, 0), "{}", &output[output.len().saturating_sub(400)..]);
    let at = output.find("latency: ").expect("a latency line");
    let line = output[at..].lines().next().unwrap_or_default();
    let rounds = number_after(&output, "long-calls: ");
    assert!(rounds > 0, "the hog made no long calls");
    let worst = number_after(line, "worst ");
    // The kernel's clock counts timer ticks, which a call masking interrupts too long would
    // lose; the time-stamp counter (instructions, under -icount) would not.
    let worst_sleep_ms = number_after(line, "longest sleep ") / cycles_per_ms;
    herald::println!(
        "    {line} ({worst_sleep_ms} ms); hog `{hog_args}`: {rounds} rounds of 16 MiB \
         share/protect/unmap"
    );
    assert!(worst <= 10, "{line}");
    assert!(worst_sleep_ms <= 11, "a 1 ms sleep took {worst_sleep_ms} ms: {line}");
    assert_recovered(free, "the long calls");
}

#[test_case]
fn a_producer_overrunning_a_kill_producer_queue_is_ended() {
    let free = frame_baseline();
    let (code, output) = run("flood-kill");
    assert_eq!(code, 0, "{output}");
    assert!(output.contains(&alloc::format!("exited with {}", abi::FLOODED_EXIT_CODE)));
    assert_recovered(free, "the flooding producer");
}

#[test_case]
fn a_producer_overrunning_a_backpressure_queue_waits_then_delivers_everything() {
    let free = frame_baseline();
    let (code, output) = run("flood-block");
    assert_eq!(code, 0, "{output}");
    let at = output.find("flood-block: ").expect("a summary line");
    herald::println!("    {}", output[at..].lines().next().unwrap_or_default());
    assert_recovered(free, "the blocked producer");
}

#[test_case]
fn a_kill_reaches_a_process_preempted_inside_a_call() {
    // Regression: the kill of a task parked at a preempt point set the one global attention
    // flag, which the killer's own return to ring 3 consumed, so the victim ran on.
    let free = frame_baseline();
    let (code, output) = run("kill-parked");
    assert_eq!(code, 0, "{output}");
    let at = output.find("kill-parked: ").expect("a summary line");
    let line = output[at..].lines().next().unwrap_or_default();
    herald::println!("    {line}");
    // The victim's current step, then its exit freeing 32 MiB: a few ms of guest time.
    assert!(number_after(line, "slowest ") <= 20, "{line}");
    assert_recovered(free, "the killed long calls");
}

#[test_case]
fn a_deferred_subscription_to_a_request_kind_is_refused() {
    for kind in [EventKind::PageFault, EventKind::Syscall, EventKind::Memory, EventKind::Exception]
    {
        let refused = BUS
            .subscribe_deferred(
                kind,
                "late",
                Priority::OWNER,
                4,
                OverflowPolicy::DropNewest,
                |_| {},
            )
            .err();
        assert_eq!(refused, Some(BusError::DeferredRequest), "{kind}");
    }
}
