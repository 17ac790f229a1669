//! A `-smp 3` machine (the runner boots this kernel so): the firmware's three processors are
//! counted, every one is started, keeps time with its own timer, takes NMIs, and runs processes.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

herald::test_kernel!();

#[test_case]
fn a_booted_machine_has_had_no_stall_reported() {
    // Runs first (tests run in name order): the watchdog's first look at a CPU coming online,
    // before its first tick, is not a stall.
    for cpu in herald::arch::cpus() {
        assert_eq!(herald::arch::last_stall(cpu.index), None, "cpu {}", cpu.index);
    }
}

#[test_case]
fn the_three_processors_qemu_gives_are_counted() {
    assert_eq!(herald::arch::processors_found(), 3);
}

#[test_case]
fn every_processor_starts_and_says_it_is_online() {
    let cpus = herald::arch::cpus();
    let numbers: alloc::vec::Vec<usize> = cpus.iter().map(|cpu| cpu.index).collect();
    assert_eq!(numbers, [0, 1, 2], "{cpus:?}");
    assert!(cpus.iter().all(|cpu| cpu.online), "{cpus:?}");
    let mut apic_ids: alloc::vec::Vec<u32> = cpus.iter().map(|cpu| cpu.apic_id).collect();
    apic_ids.dedup();
    assert_eq!(apic_ids.len(), 3, "each has its own local APIC: {cpus:?}");
}

#[test_case]
fn the_boot_processor_is_number_zero() {
    assert_eq!(herald::arch::cpu_index(), 0);
}

fn wait_ms(duration_ms: u64) {
    let until_ms = herald::arch::milliseconds() + duration_ms;
    while herald::arch::milliseconds() < until_ms {
        core::hint::spin_loop();
    }
}

#[test_case]
fn every_other_processor_keeps_time_with_its_own_timer() {
    let before = herald::arch::cpus();
    wait_ms(50);
    let after = herald::arch::cpus();
    for (was, is) in before.iter().zip(&after).skip(1) {
        // 1 kHz, calibrated against the PIT: about 50 ticks in 50 ms; the bound leaves room for
        // a host that stalls the guest, never for a timer that does not run.
        let ticks = is.ticks - was.ticks;
        assert!((10..=100).contains(&ticks), "cpu {} took {ticks} ticks in 50 ms", is.index);
        assert!(is.interrupts > was.interrupts, "cpu {} counted no interrupts", is.index);
    }
}

#[test_case]
fn an_nmi_is_counted_and_survived_on_every_processor() {
    let before = herald::arch::cpus();
    herald::arch::probes::software_nmi();
    for index in 1..before.len() {
        herald::arch::send_nmi_to(index).expect("the NMI is sent");
    }
    wait_ms(10);
    let after = herald::arch::cpus();
    for (was, is) in before.iter().zip(&after) {
        assert_eq!(is.nmis, was.nmis + 1, "cpu {} counted its NMI once", is.index);
        assert!(is.online);
    }
    // And they keep running: the timers still tick.
    wait_ms(10);
    let later = herald::arch::cpus();
    for (is, then) in after.iter().zip(&later).skip(1) {
        assert!(then.ticks > is.ticks, "cpu {} stopped after its NMI", is.index);
    }
}

#[test_case]
fn cpu_bound_processes_run_at_the_same_time_on_different_processors() {
    const SPINNERS: usize = 3;
    let pids: alloc::vec::Vec<u32> = (0..SPINNERS)
        .map(|_| herald::task::spawn("spin", "400", 0).expect("spawn a spinner"))
        .collect();
    // The boot CPU's idle loop lets them start (the others pick them up at their next tick).
    let deadline_ms = herald::arch::milliseconds() + 200;
    let mut most_at_once = 0;
    let mut cpus_seen = alloc::collections::BTreeSet::new();
    while herald::arch::milliseconds() < deadline_ms {
        herald::task::idle_step();
        let processes = herald::task::processes();
        let running: alloc::vec::Vec<_> =
            processes.iter().filter(|p| pids.contains(&p.pid) && p.state == "running").collect();
        most_at_once = most_at_once.max(running.len());
        cpus_seen.extend(running.iter().map(|p| p.cpu));
    }
    for &pid in &pids {
        let code = herald::task::wait(pid).expect("the spinner ends");
        assert!(code >= 0, "spinner {pid} ended with {code}");
    }
    // A process is `running` on one CPU only: two at once means two CPUs ran them together.
    assert!(most_at_once >= 2, "at most {most_at_once} ran at once (cpus {cpus_seen:?})");
    assert!(cpus_seen.len() >= 2, "they ran on cpus {cpus_seen:?}");
}

#[test_case]
fn the_io_apic_carries_the_isa_lines_and_the_bus_masks_them_there() {
    use herald::events::{Outcome, Reply, irq::LINES};
    assert_eq!(herald::arch::interrupt_controller(), "I/O APIC");
    // The timer (ISA line 0, wired to input 2 on QEMU's boards) keeps time through it.
    let before = herald::arch::ticks();
    wait_ms(20);
    assert!(herald::arch::ticks() >= before + 10, "the PIT ticks through the I/O APIC");
    // The serial line is routed and open.
    assert_eq!(herald::arch::line_masked(4), Some(false));
    // A deferred handler's "keep the line masked" masks the I/O APIC's entry (read back from
    // the chip), and the acknowledgement opens it again. Line 5 has no device on QEMU's boards.
    let mut reply = Reply::new();
    reply.keep_line_masked = true;
    let _ = LINES.complete(5, Outcome::Handled, &reply, herald::arch::milliseconds());
    assert_eq!(herald::arch::line_masked(5), Some(true));
    LINES.acknowledge(5);
    assert_eq!(herald::arch::line_masked(5), Some(false));
    // The cascade line carries nothing once the PICs are masked.
    assert_eq!(herald::arch::line_masked(2), None);
}

#[test_case]
fn a_page_removed_under_a_process_on_another_cpu_faults_there_and_its_frame_waits_for_the_flush() {
    use herald::{events::MemoryRequest, mm};
    const WATCHED_PAGE: u64 = 0x5000_0000;
    const MARKER: u64 = 0x5a5a_0123_4567_a5a5;
    const REUSED: u64 = 0xdead_dead_dead_dead;
    let pid = herald::task::spawn("watcher", "3000", 0).expect("spawn the watcher");
    // This CPU only spins, so the watcher runs on another one; wait until it reads its page.
    let deadline_ms = herald::arch::milliseconds() + 2000;
    let (space, frame) = loop {
        assert!(herald::arch::milliseconds() < deadline_ms, "the watcher never got going");
        let Some(info) = herald::task::processes().into_iter().find(|p| p.pid == pid) else {
            continue;
        };
        let mapping = mm::space::translate(info.space, WATCHED_PAGE);
        if let Some(mapping) = mapping
            && info.state == "running"
            && info.cpu != 0
        {
            let word = herald::arch::paging::phys_to_virt(mapping.frame.start()).cast::<u64>();
            // SAFETY: the window maps every frame; the watcher owns this one and only reads it.
            if unsafe { word.add(511).read_volatile() } == MARKER {
                break (info.space, mapping.frame);
            }
        }
        core::hint::spin_loop();
    };
    mm::request(0, MemoryRequest::Unmap { space, address: WATCHED_PAGE, len_bytes: 4096 })
        .expect("the kernel removes the page");
    // The frame is free now: take frames until it comes back and fill it with something else.
    // Had the watcher's CPU kept its translation, it would read this (or keep reading).
    let mut taken = alloc::vec::Vec::new();
    let spare = mm::frame_stats().free.saturating_sub(1024);
    let mut reused = false;
    while taken.len() < spare
        && let Some(taken_frame) = mm::allocate_frame()
    {
        taken.push(taken_frame);
        if taken_frame == frame {
            let words = herald::arch::paging::phys_to_virt(frame.start()).cast::<u64>();
            for index in 0..512 {
                // SAFETY: the frame was just allocated to this test; the window maps it.
                unsafe { words.add(index).write_volatile(REUSED) };
            }
            reused = true;
            break;
        }
    }
    wait_ms(20);
    for taken_frame in taken {
        mm::release_frame(taken_frame).expect("the test's frames go back");
    }
    assert!(reused, "the freed frame came back to the allocator");
    let code = herald::task::wait(pid).expect("the watcher ends");
    assert_eq!(code, herald::abi::FAULT_EXIT_CODE_BASE + 14, "the watcher's next read faulted");
}

#[test_case]
fn an_edge_that_arrives_while_its_line_is_masked_is_delivered_once_it_is_unmasked() {
    use herald::{
        arch::ps2,
        events::{Outcome, Reply, irq::LINES},
    };
    let line = ps2::KEYBOARD_IRQ_LINE;
    let mut reply = Reply::new();
    reply.keep_line_masked = true;
    let _ = LINES.complete(line, Outcome::Handled, &reply, herald::arch::milliseconds());
    assert_eq!(herald::arch::line_masked(line), Some(true));
    let raised = LINES.stats(line).raised;
    // A key release (no character): the controller raises the line, an edge, while masked.
    ps2::inject_scancode(0x9e).expect("the PS/2 controller takes the byte");
    wait_ms(20);
    assert_eq!(LINES.stats(line).raised, raised, "nothing is delivered while the line is masked");
    LINES.acknowledge(line);
    wait_ms(20);
    // The I/O APIC ignores an edge on a masked input; the kernel held it and sent it again.
    assert_eq!(LINES.stats(line).raised, raised + 1, "the held interrupt came once unmasked");
}

/// Armed by the watchdog test: the next `getpid` from a process spins with interrupts off.
static STALL_ARMED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// The CPU the stall happened on (`usize::MAX`: none yet).
static STALLED_ON: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(usize::MAX);
/// How long the stall lasts: longer than the watchdog's budget, then the CPU comes back.
const STALL_MS: u64 = herald::arch::HARD_STALL_BUDGET_MS + 400;
/// Time-stamp counts per millisecond, measured before the stall: the stall cannot use the
/// kernel's clock, which stops if it happens on cpu 0 (whose PIT keeps it).
static TIMESTAMPS_PER_MS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

#[test_case]
fn a_cpu_spinning_with_interrupts_off_is_caught_by_an_nmi_with_its_rip_and_handler() {
    use core::sync::atomic::Ordering;

    use herald::events::{BUS, Event, EventKind, Priority, Verdict};
    let subscription = BUS
        .subscribe(EventKind::Syscall, "stall-test", Priority::OBSERVER, |event, _| {
            if let Event::Syscall { number: herald::abi::SYS_GETPID, pid, .. } = *event
                && pid != 0
                && STALL_ARMED.swap(false, Ordering::Relaxed)
            {
                STALLED_ON.store(herald::arch::cpu_index(), Ordering::Relaxed);
                let per_ms = TIMESTAMPS_PER_MS.load(Ordering::Relaxed);
                herald::arch::cpu::without_interrupts(|| {
                    let until = herald::arch::cpu::read_timestamp() + STALL_MS * per_ms;
                    while herald::arch::cpu::read_timestamp() < until {
                        core::hint::spin_loop();
                    }
                });
            }
            Verdict::Continue
        })
        .expect("subscribe the stalling handler");
    let start = herald::arch::cpu::read_timestamp();
    wait_ms(20);
    let per_ms = (herald::arch::cpu::read_timestamp() - start) / 20;
    TIMESTAMPS_PER_MS.store(per_ms.max(1), Ordering::Relaxed);
    STALL_ARMED.store(true, Ordering::Relaxed);
    // Whichever CPU runs the caller is held; the one after it watches, cpu 0 included.
    let pid = herald::task::spawn("syscaller", "1000", 0).expect("spawn the caller");
    let code = herald::task::wait(pid).expect("the caller ends");
    drop(subscription);
    assert_eq!(code, 0, "the caller's calls were all answered, the stalled one too");
    let cpu = STALLED_ON.load(Ordering::Relaxed);
    assert!(cpu < herald::arch::MAX_CPUS, "the stall happened");
    let report = herald::arch::last_stall(cpu).expect("the watchdog caught the stall");
    assert_eq!(report.handler, Some("stall-test"), "{report:?}");
    assert!(!report.from_user && herald::arch::paging::is_kernel_address(report.rip), "{report:?}");
    // And the CPU came back: its timer ticks again.
    let before = herald::arch::cpus()[cpu].ticks;
    wait_ms(20);
    assert!(herald::arch::cpus()[cpu].ticks > before, "cpu {cpu} ticks again");
}

/// The killed worker's pid while the kill test runs (0: none), and its calls served after its
/// kill returned.
static KILL_TARGET: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static KILL_RETURNED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
static SERVED_AFTER_KILL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static SERVED_BEFORE_KILL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

#[test_case]
fn a_process_killed_on_another_cpu_makes_no_more_system_calls() {
    use core::sync::atomic::Ordering;

    use herald::events::{BUS, Event, EventKind, Priority, Verdict};
    // Counted where the call is served (the owner band's decision), not merely raised.
    let subscription = BUS
        .subscribe(EventKind::Syscall, "kill-test", Priority::OBSERVER, |event, reply| {
            if let Event::Syscall { number: herald::abi::SYS_GETPID, pid, .. } = *event
                && pid == KILL_TARGET.load(Ordering::Relaxed)
                && reply.outcome == herald::events::Outcome::Handled
            {
                let counter = if KILL_RETURNED.load(Ordering::Acquire) {
                    &SERVED_AFTER_KILL
                } else {
                    &SERVED_BEFORE_KILL
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Continue
        })
        .expect("subscribe the counter");
    let pid = herald::task::spawn("syscaller", "100000000", 0).expect("spawn the caller");
    KILL_TARGET.store(pid, Ordering::Relaxed);
    let deadline_ms = herald::arch::milliseconds() + 2000;
    while SERVED_BEFORE_KILL.load(Ordering::Relaxed) < 1000 {
        assert!(herald::arch::milliseconds() < deadline_ms, "the caller never got going");
        core::hint::spin_loop();
    }
    herald::task::kill(pid).expect("kill the caller");
    KILL_RETURNED.store(true, Ordering::Release);
    let code = herald::task::wait(pid).expect("the caller ends");
    drop(subscription);
    assert_eq!(code, herald::abi::KILLED_EXIT_CODE);
    // One call may have been past the check already when the kill landed; no more.
    let late = SERVED_AFTER_KILL.load(Ordering::Relaxed);
    assert!(late <= 1, "{late} calls were served after kill returned");
}

#[test_case]
fn children_killed_while_being_born_leave_nothing_behind_in_the_policy() {
    const CHILDREN: u32 = 100;
    let baseline = herald::security::tracked_processes();
    // The spawner runs on another CPU; this one kills each child the moment it exists.
    let spawner = herald::task::spawn("spawner", "100", 0).expect("spawn the spawner");
    let deadline_ms = herald::arch::milliseconds() + 30_000;
    for child in spawner + 1..=spawner + CHILDREN {
        while herald::task::kill(child).is_err() {
            assert!(herald::arch::milliseconds() < deadline_ms, "child {child} never came");
            assert!(herald::task::is_alive(spawner), "the spawner ended early");
            core::hint::spin_loop();
        }
    }
    assert_eq!(herald::task::wait(spawner), Ok(0), "every spawn and wait succeeded");
    assert_eq!(
        herald::security::tracked_processes(),
        baseline,
        "the policy tracks only the living"
    );
}

#[test_case]
fn a_parent_that_reaps_a_child_ended_on_another_cpu_finds_every_frame_back_at_once() {
    // The child's kernel stack is freed by the CPU it ended on, after it switched away; the
    // parent may be woken and reap on another CPU meanwhile. Every round must find the count
    // back at once, not a moment later.
    use herald::{task, testing::free_frames};
    let baseline = free_frames();
    for round in 0..300 {
        let pid = task::spawn("hello", "", 0).expect("spawn");
        assert_eq!(task::wait(pid), Ok(7));
        assert_eq!(free_frames(), baseline, "round {round}: frames still held after the reap");
    }
}
