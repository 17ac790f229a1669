//! Real user programs from the boot image in ring 3: output, exit codes, faults that kill only the
//! faulting process, fair preemptive scheduling, a syscall fuzzer, and the frame count coming
//! back after each.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use alloc::{format, vec::Vec};

use herald::{
    abi, arch,
    mm::space,
    security::Policy as _,
    task::{self, SpawnError, elf::ElfError},
    testing::free_frames,
};

herald::test_kernel!();

fn run(name: &str, args: &str) -> (i32, alloc::string::String) {
    herald::testing::run_program(name, args)
}

#[test_case]
fn hello_world_runs_in_ring_3_and_exits_with_its_code() {
    let free = free_frames();
    let (code, output) = run("hello", "a b");
    assert_eq!(code, 7);
    assert!(output.contains("hello from user space: pid "), "output: {output:?}");
    assert!(output.contains("args \"a b\""), "output: {output:?}");
    assert_eq!(free_frames(), free, "the process's frames all came back");
    assert_eq!(space::count(), 0);
}

#[test_case]
fn the_readmes_first_program_runs_under_this_policy() {
    let (code, output) = run("greet", "world");
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("hello, world"),
        "policy {}: {output:?}",
        herald::security::ACTIVE.name()
    );
}

#[test_case]
fn each_faulting_program_is_killed_and_the_next_one_runs() {
    let free = free_frames();
    let cases = [
        ("pf", 14),
        ("kernel", 14),
        ("wx", 14),
        ("stack", 14),
        ("gp", 13),
        ("cli", 13),
        ("de", 0),
        ("ud", 6),
    ];
    for (kind, vector) in cases {
        let (code, output) = run("fault", kind);
        assert_eq!(code, abi::FAULT_EXIT_CODE_BASE + vector, "fault {kind}: {output}");
        let (code, _) = run("hello", "");
        assert_eq!(code, 7, "the next program runs after {kind}");
        assert_eq!(free_frames(), free, "frames leaked by the {kind} fault");
    }
}

#[test_case]
fn every_system_call_check_passes_in_a_real_process() {
    let free = free_frames();
    let (code, output) = run("checks", "");
    assert_eq!(code, 0, "failed check number {code}: {output}");
    assert!(output.contains("checks: all"), "{output}");
    // Regression: a `write` whose buffer ran past the mapping used to print the readable part
    // (here, the program's own image) before answering EFAULT.
    assert!(!output.contains("raw(abi::SYS_WRITE"), "a refused write printed memory");
    assert_eq!(free_frames(), free);
}

#[test_case]
fn one_burst_of_input_wakes_every_blocked_reader_however_many() {
    // More readers than one wake-up batch (32): a push once woke only the first batch, and
    // the rest slept on with their bytes waiting.
    const READERS: usize = 40;
    let free = free_frames();
    let pids: Vec<_> = (0..READERS)
        .map(|_| task::spawn("keylog", "1", 0).expect("spawn a one-byte reader"))
        .collect();
    let blocked = |pids: &[u32]| {
        let processes = task::processes();
        let blocked = |pid: &u32| processes.iter().any(|p| p.pid == *pid && p.state == "blocked");
        pids.iter().filter(|pid| blocked(pid)).count()
    };
    let deadline_ms = arch::milliseconds() + 5_000;
    while blocked(&pids) < READERS && arch::milliseconds() < deadline_ms {
        task::idle_step();
    }
    assert_eq!(blocked(&pids), READERS, "every reader blocks in read first");
    assert!(task::push_input(&[b'a'; READERS]), "the input buffer takes the burst");
    let deadline_ms = arch::milliseconds() + 5_000;
    while pids.iter().any(|&pid| task::is_alive(pid)) && arch::milliseconds() < deadline_ms {
        task::idle_step();
    }
    let still_waiting = pids.iter().filter(|&&pid| task::is_alive(pid)).count();
    for &pid in &pids {
        if still_waiting > 0 {
            let _ = task::kill(pid);
        }
        let _ = task::wait(pid);
    }
    let _ = task::take_input();
    assert_eq!(still_waiting, 0, "readers left asleep with their bytes waiting");
    assert_eq!(free_frames(), free, "the readers' frames all came back");
}

#[test_case]
fn cpu_bound_processes_share_the_cpu_fairly() {
    const PROCESSES: usize = 3;
    let deadline_ms = arch::ticks() * 1000 / u64::from(arch::TICK_HZ) + 600;
    let args = format!("--until {deadline_ms}");
    let pids: Vec<_> =
        (0..PROCESSES).map(|_| task::spawn("spin", &args, 0).expect("spawn")).collect();
    // The scheduler's own division is the ticks each was given, read while they are zombies:
    // the work done in them also depends on how much of each tick the host gave QEMU (on a
    // loaded host one spinner did 2 584 thousand iterations to another's 3 707 in equal ticks).
    let ended = |processes: &[task::ProcessInfo]| {
        pids.iter()
            .all(|pid| processes.iter().any(|p| p.pid == *pid && p.state.starts_with("exited")))
    };
    let wait_until_ms = deadline_ms + 10_000;
    let mut processes = task::processes();
    while !ended(&processes) && arch::milliseconds() < wait_until_ms {
        task::idle_step();
        processes = task::processes();
    }
    let ticks: Vec<u64> = pids
        .iter()
        .map(|pid| processes.iter().find(|p| p.pid == *pid).map_or(0, |p| p.cpu_ticks))
        .collect();
    let work: Vec<i32> = pids.iter().map(|&pid| task::wait(pid).expect("wait")).collect();
    herald::println!("fairness: thousands of iterations {work:?}, timer ticks {ticks:?}");
    assert!(work.iter().all(|&done| done > 0), "a process never ran: {work:?}");
    let (least, most) = (*ticks.iter().min().expect("3"), *ticks.iter().max().expect("3"));
    // On one CPU the scheduler alone divides the time. With several, each spinner may have a
    // CPU of its own, and what each does is then the host's scheduling of QEMU's CPU threads.
    if arch::cpus().iter().filter(|cpu| cpu.online).count() == 1 {
        assert!(least * 10 >= most * 7, "unfair shares of ticks: {ticks:?}");
    }
}

#[test_case]
fn a_syscall_fuzzer_cannot_hurt_the_kernel() {
    // The first kernel stack ever made creates the stack region's tables; those stay.
    run("hello", "");
    let free = free_frames();
    let (code, output) = run("fuzz", "12345");
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("100000 calls answered"), "{output}");
    // Children the fuzzer spawned by chance may still run; let them finish.
    while task::processes().iter().any(|p| !p.state.starts_with("exited")) {
        task::idle_step();
    }
    assert_eq!(free_frames(), free, "frames leaked");
}

#[test_case]
fn malformed_executables_are_refused_with_the_reason() {
    let hello = task::programs().iter().any(|(name, _)| *name == "hello");
    assert!(hello, "ramdisk holds hello: {:?}", task::programs());
    let image = herald::task::ramdisk_file("hello").expect("hello");
    let truncated = &image[..100];
    let mut magic = image.to_vec();
    magic[0] = 0;
    let mut kernel = image.to_vec();
    // Move the first loadable segment (p_type 1) into the kernel half.
    let phoff = u64::from_le_bytes(kernel[32..40].try_into().expect("8 bytes")) as usize;
    let load =
        (phoff..).step_by(56).find(|&at| kernel[at..at + 4] == [1, 0, 0, 0]).expect("PT_LOAD");
    kernel[load + 16..load + 24].copy_from_slice(&0xffff_8000_0000_0000u64.to_le_bytes());
    let cases: [(&[u8], SpawnError); 3] = [
        (truncated, SpawnError::BadExecutable(ElfError::Malformed("truncated"))),
        (&magic, SpawnError::BadExecutable(ElfError::Malformed("bad magic"))),
        (&kernel, SpawnError::BadExecutable(ElfError::SegmentOutsideUserSpace(0))),
    ];
    for (image, expected) in cases {
        assert_eq!(task::spawn_image("bad", image, "", 0), Err(expected));
    }
    assert_eq!(task::spawn("no-such", "", 0), Err(SpawnError::NotFound));
    assert_eq!(space::count(), 0, "refused images leave no address space behind");
}

#[test_case]
fn each_process_keeps_its_own_sse_registers_through_preemption() {
    // Two processes with different patterns in all sixteen SSE registers, yielding to each
    // other (and to whoever else runs) hundreds of times: each must read back its own.
    let seeds = [3u64, 11];
    let pids: Vec<u32> = seeds
        .iter()
        .map(|seed| task::spawn("simd", &format!("{seed} 300"), 0).expect("spawn"))
        .collect();
    for (pid, seed) in pids.iter().zip(seeds) {
        assert_eq!(task::wait(*pid), Ok(0), "simd {seed} found a register changed");
    }
}

#[test_case]
fn a_static_musl_c_program_runs_with_its_arguments_and_exit_code() {
    let free = free_frames();
    let (code, output) = run("hello-musl", "a bc");
    assert_eq!(code, 42, "output: {output:?}");
    // Under the sandbox too: its manifest (hello-musl.syscalls) lists what it needs.
    assert!(
        output.contains(
            "hello from musl: argc 3, argv[0] \"hello-musl\", argv[1] \"a\", argv[2] \"bc\""
        ),
        "output: {output:?}"
    );
    assert_eq!(free_frames(), free, "the process's frames all came back");
}

#[test_case]
fn a_linux_program_whose_manifest_omits_write_prints_nothing_under_the_sandbox() {
    let (code, output) = run("write-hello", "");
    if herald::security::ACTIVE.name() == "sandbox" {
        assert_eq!(code, 3, "the write failed: {output:?}");
        assert!(!output.contains("write-hello: hello"), "output: {output:?}");
        let denials = herald::security::recent_denials();
        assert!(
            denials.iter().any(|d| d.what.contains("(write)")),
            "the denial names write: {:?}",
            denials.iter().map(|d| &d.what).collect::<Vec<_>>()
        );
    } else {
        assert_eq!(code, 0, "output: {output:?}");
        assert!(output.contains("write-hello: hello"), "output: {output:?}");
    }
}

#[test_case]
fn a_linux_program_without_a_manifest_may_only_start_and_end_under_the_sandbox() {
    // The same program from a path without a manifest beside it: spawn_image has none.
    let image = herald::task::ramdisk_file("hello-musl").expect("hello-musl is in /bin");
    let pid = task::spawn_image("no-manifest", image, "", 0).expect("spawn");
    let code = task::wait(pid).expect("wait");
    assert_eq!(code, 42);
    if herald::security::ACTIVE.name() == "sandbox" {
        let denials = herald::security::recent_denials();
        assert!(denials.iter().any(|d| d.what.contains("(writev)")), "writev is denied");
    }
}

#[test_case]
fn a_manifest_naming_an_unknown_call_refuses_the_spawn() {
    assert_eq!(task::parse_manifest(b"write\nwirte # typo\n"), Err(SpawnError::BadManifest(2)));
    assert!(task::parse_manifest(b"# comment only\n\n  mmap  munmap\n").is_ok());
}

#[test_case]
fn a_musl_program_gets_memory_time_sleep_and_randomness_from_linux_calls() {
    // Under the sandbox too: its manifest lists every call it checks.
    let free = free_frames();
    let (code, output) = run("linux-calls", "");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("linux-calls: all 39 passed"), "output: {output:?}");
    assert_eq!(free_frames(), free, "the process's frames all came back");
}

#[test_case]
fn a_rust_std_program_runs_with_quoted_arguments_and_a_panic_exits_101() {
    let free = free_frames();
    let (code, output) = run("rust-std", "'two words' x");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("rust-std: all 8 passed"), "output: {output:?}");
    let (code, output) = run("rust-std", "panic");
    assert_eq!(code, 101, "output: {output:?}");
    assert!(output.contains("panicked at") && output.contains("asked to panic"), "{output:?}");
    assert_eq!(free_frames(), free, "the processes' frames all came back");
}

#[test_case]
fn an_unclosed_quote_in_a_linux_programs_arguments_is_refused() {
    assert_eq!(task::spawn("hello-musl", "'open", 0), Err(SpawnError::UnclosedQuote));
}

#[test_case]
fn floating_point_results_survive_preemption_by_another_fp_program() {
    // Alone first, then two at once (each preempted by the other every slice).
    let (code, alone_1) = run("fp-work", "1");
    assert_eq!(code, 0, "{alone_1}");
    let (code, alone_2) = run("fp-work", "2");
    assert_eq!(code, 0, "{alone_2}");
    herald::console::start_capture();
    let first = task::spawn("fp-work", "1", 0).expect("spawn");
    let second = task::spawn("fp-work", "2", 0).expect("spawn");
    assert_eq!(task::wait(first), Ok(0));
    assert_eq!(task::wait(second), Ok(0));
    let together = herald::console::take_capture();
    for alone in [&alone_1, &alone_2] {
        let line = alone.lines().find(|line| line.starts_with("fp-work ")).expect("a result line");
        assert!(together.contains(line), "alone: {line:?}; together: {together:?}");
    }
}

#[test_case]
fn an_unmasked_simd_or_x87_exception_ends_the_program_with_sigfpe() {
    // A Linux program's fault is the signal Linux sends for it (SIGFPE, 8), uncaught here.
    let sigfpe = abi::signalled_exit_code(8);
    let (code, output) = run("fp-fault", "x87");
    assert_eq!(code, sigfpe, "#MF: {output:?}");
    // QEMU's TCG does not raise SIMD floating-point exceptions (it computes the IEEE result,
    // here infinity); a CPU that does must end the program with #XM's code.
    let (code, output) = run("fp-fault", "");
    let not_raised = code == 0 && output.contains("no exception, result inf");
    assert!(code == sigfpe || not_raised, "#XM: {code} {output:?}");
}

#[test_case]
fn each_process_keeps_its_own_avx_registers_where_the_cpu_has_avx() {
    let saves_avx = arch::fpu_saved_components().contains("AVX");
    herald::console::start_capture();
    let pids: Vec<u32> = [11, 22]
        .iter()
        .map(|seed| task::spawn("avx", &format!("{seed} 300"), 0).expect("spawn"))
        .collect();
    for pid in pids {
        assert_eq!(task::wait(pid), Ok(0), "a ymm register changed");
    }
    let output = herald::console::take_capture();
    let verdict = if saves_avx {
        "avx: ymm registers kept through 300 switches"
    } else {
        "avx: not available"
    };
    assert_eq!(
        output.matches(verdict).count(),
        2,
        "kernel saves {}: {output:?}",
        arch::fpu_saved_components()
    );
}

#[test_case]
fn a_sandbox_manifests_path_rules_confine_its_program_children_and_execs() {
    let confined = herald::security::ACTIVE.name() == "sandbox";
    let free = free_frames();
    let (code, output) = run("paths", if confined { "confined" } else { "free" });
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("paths: all 21 passed"), "output: {output:?}");
    if confined {
        let denials: Vec<alloc::string::String> =
            herald::security::recent_denials().into_iter().map(|denial| denial.what).collect();
        for what in ["execute of /bin/write-hello", "write of /etc/paths-a", "read of /"] {
            assert!(denials.iter().any(|denial| denial == what), "{what}: {denials:?}");
        }
    }
    assert_eq!(free_frames(), free, "the processes' frames all came back");
}

#[test_case]
fn proc_shows_processes_as_linux_programs_read_them() {
    // The same binary passes on Linux (its checks were written against Linux 6.1's /proc).
    let free = free_frames();
    let (code, output) = run("procfs", "a 'b c'");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("procfs: all 24 passed"), "output: {output:?}");
    assert_eq!(free_frames(), free, "the processes' frames all came back");
}

#[test_case]
fn a_musl_program_makes_reads_renames_and_removes_files() {
    let free = free_frames();
    let (code, output) = run("files", "");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("files: all 52 passed"), "output: {output:?}");
    // Everything it made it removed: the file system's own bytes are back at what they were.
    assert_eq!(free_frames(), free, "the process's frames all came back");
}

#[test_case]
fn a_musl_program_moves_bytes_through_pipes_to_the_end_of_the_data() {
    let free = free_frames();
    let (code, output) = run("pipes", "");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("pipes: all 26 passed"), "output: {output:?}");
    assert_eq!(free_frames(), free, "the process's frames all came back");
}

#[test_case]
fn a_reader_waiting_on_an_empty_pipe_can_be_killed_and_its_pipe_goes() {
    let free = free_frames();
    herald::console::start_capture();
    let pid = task::spawn("pipes", "block", 0).expect("spawn");
    let deadline = arch::milliseconds() + 5_000;
    while !herald::console::capture_contains("pipes: waiting") && arch::milliseconds() < deadline {
        task::idle_step();
    }
    // Waiting, it costs no CPU: give it a moment to reach the read and block.
    let until = arch::milliseconds() + 30;
    while arch::milliseconds() < until {
        task::idle_step();
    }
    let state = task::processes().into_iter().find(|process| process.pid == pid).map(|p| p.state);
    assert!(state.as_deref().is_some_and(|state| state.contains("blocked")), "state: {state:?}");
    task::kill(pid).expect("kill");
    assert_eq!(task::wait(pid), Ok(abi::signalled_exit_code(9)), "SIGKILL, to a Linux program");
    herald::console::take_capture();
    assert_eq!(free_frames(), free, "the process's frames and its pipe all came back");
}

#[test_case]
fn a_musl_program_forks_waits_and_passes_bytes_through_a_pipe_to_its_child() {
    let free = free_frames();
    let (code, output) = run("fork", "100");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("fork: all 25 passed"), "output: {output:?}");
    assert_eq!(free_frames(), free, "104 children's frames all came back");
    assert_eq!(space::count(), 0, "and their address spaces");
}

#[test_case]
fn a_musl_program_replaces_itself_with_execve_and_its_children_report_what_they_got() {
    let free = free_frames();
    let (code, output) = run("execve", "50");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("execve: all 13 passed"), "output: {output:?}");
    assert_eq!(free_frames(), free, "the children's frames all came back");
    assert_eq!(space::count(), 0, "and their address spaces");
}

#[test_case]
fn a_musl_program_catches_blocks_and_is_ended_by_signals_as_on_linux() {
    let free = free_frames();
    let (code, output) = run("signals", "");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("signals: all 39 passed"), "output: {output:?}");
    assert_eq!(free_frames(), free, "its children's frames all came back");
}

#[test_case]
fn a_musl_program_stops_continues_and_waits_for_its_children_as_on_linux() {
    // Job control's signals and reports; the same binary passes on Linux.
    let free = free_frames();
    let (code, output) = run("jobs", "");
    assert_eq!(code, 0, "output: {output:?}");
    assert!(output.contains("jobs: all 41 passed"), "output: {output:?}");
    assert_eq!(free_frames(), free, "its children's frames all came back");
    assert_eq!(space::count(), 0, "and their address spaces");
}

/// Whether `line` is one of the kernel log's (`[   12.345] LEVEL ...`).
fn is_kernel_log_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let Some((stamp, _)) = rest.split_once("] ") else { return false };
    stamp.contains('.') && stamp.trim_start().chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// The boot image's busybox (Debian's `busybox-static`, packed by the runner when the host has
/// it) running a shell script whose output Linux gave, byte for byte, from the same binary.
#[test_case]
fn debian_busybox_runs_a_shell_script_exactly_as_on_linux() {
    assert!(
        task::image_file("/bin/busybox").is_some(),
        "no /bin/busybox in the boot image: install Debian's busybox-static (the README's set-up)"
    );
    let free = free_frames();
    // The log's lines (a module's farewell to each process) would land among the script's.
    let level = log::max_level();
    log::set_max_level(log::LevelFilter::Warn);
    let (code, output) = run("busybox", "sh /etc/herald/busybox-check.sh");
    log::set_max_level(level);
    // What still reaches the console from the log (the watchdog's report of a CPU the host
    // did not run for half a second, on a loaded machine) is the kernel's, not the script's.
    let output: alloc::string::String =
        output.split_inclusive('\n').filter(|line| !is_kernel_log_line(line)).collect();
    let expected = include_str!("busybox-check.expected");
    assert_eq!(output, expected, "busybox's output differs from Linux's");
    assert_eq!(code, 0);
    assert_eq!(free_frames(), free, "the script's processes' frames all came back");
}
