//! Modules and drivers observed from outside: each is registered where it says, the README's
//! walkthrough module (farewell) counts process exits, the tracer prints calls only while on,
//! and the deferred heartbeat handler runs in the idle task.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use herald::{
    arch, console,
    events::{BUS, Band, EventKind},
    modules::{self, ModuleInfo},
    task,
};

herald::test_kernel!();

fn module(name: &str) -> ModuleInfo {
    modules::list().into_iter().find(|m| m.name == name).expect("module loaded")
}

fn run(name: &str) -> i32 {
    let pid = task::spawn(name, "", 0).expect("spawn");
    task::wait(pid).expect("wait")
}

#[test_case]
fn drivers_own_their_interrupt_lines_and_modules_observe() {
    for driver in ["com1", "ps2-keyboard"] {
        let info = module(driver);
        assert!(info.is_driver && info.error.is_none());
        assert_eq!(info.subscriptions[0].0, EventKind::Irq);
        assert_eq!(info.subscriptions[0].1.band(), Band::Owner);
    }
    for name in ["tracer", "fault-stats", "heartbeat", "farewell"] {
        let info = module(name);
        assert!(!info.is_driver && info.error.is_none(), "{name}: {:?}", info.error);
        assert!(info.subscriptions.iter().all(|(_, p)| p.band() == Band::Observer));
        // The tracer subscribes only while tracing is on.
        assert_eq!(info.subscriptions.is_empty(), name == "tracer");
    }
    let irq_chain = BUS.chain(EventKind::Irq);
    assert!(irq_chain.iter().any(|s| s.name == "com1" && s.deferred_queue.is_some()));
}

#[test_case]
fn the_walkthrough_module_sees_processes_off() {
    let before = module("farewell").stats.expect("stats");
    assert_eq!(run("hello"), 7);
    let after = module("farewell").stats.expect("stats");
    let count = |text: &str| text.split(' ').next().and_then(|n| n.parse::<u64>().ok());
    assert_eq!(count(&after), count(&before).map(|n| n + 1), "{before} -> {after}");
}

#[test_case]
fn the_tracer_prints_calls_only_while_on() {
    console::start_capture();
    run("hello");
    modules::set_tracing(true);
    run("hello");
    modules::set_tracing(false);
    run("hello");
    let output = console::take_capture();
    assert_eq!(output.matches("[trace]").count(), 3, "getpid, write, exit once: {output}");
    assert!(output.contains(") = 7\n") || output.contains("exit(0x7"), "{output}");
}

#[test_case]
fn the_deferred_heartbeat_runs_in_the_idle_task() {
    let handled = |info: ModuleInfo| -> u64 {
        info.stats.and_then(|s| s.split(' ').next()?.parse().ok()).expect("count")
    };
    let before = handled(module("heartbeat"));
    let until = arch::ticks() + 20;
    while arch::ticks() < until {
        task::idle_step();
    }
    assert!(handled(module("heartbeat")) > before, "deferred timer handler never ran");
}

#[test_case]
fn the_tracer_names_a_linux_programs_calls_as_strace_would() {
    console::start_capture();
    modules::set_tracing(true);
    assert_eq!(run("hello-musl"), 42);
    modules::set_tracing(false);
    let output = console::take_capture();
    for call in [
        "arch_prctl(ARCH_SET_FS, 0x",
        "set_tid_address(0x",
        "ioctl(1, TIOCGWINSZ, 0x",
        "writev(1, 0x",
        "exit_group(42) = 0",
    ] {
        assert!(output.contains(call), "{call}: {output}");
    }
    // A buffer the call reads is shown as the string it holds; an unserved call by its errno.
    console::start_capture();
    modules::set_tracing(true);
    assert_eq!(run("write-hello"), 0);
    assert_eq!(run("linux-calls"), 0);
    assert_eq!(run("files"), 0);
    modules::set_tracing(false);
    let output = console::take_capture();
    assert!(output.contains(r#"write(1, "write-hello: hello\n", 19) = 19"#), "{output}");
    assert!(
        output.contains("mprotect(0x") && output.contains(", 4096, PROT_NONE) = 0"),
        "{output}"
    );
    assert!(
        output.contains("futex(0x") && output.contains("FUTEX_WAIT_PRIVATE, 6, NULL) = -1 EAGAIN"),
        "{output}"
    );
    // Paths as strings, open flags and modes by name, errno names for refusals.
    assert!(output.contains(r#"mkdir("/tmp/files-"#), "{output}");
    let refused = r#"open("a.txt", O_WRONLY|O_CREAT|O_EXCL|O_LARGEFILE, 0644) = -1 EEXIST"#;
    assert!(output.contains(refused), "{output}");
}
