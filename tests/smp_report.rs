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
