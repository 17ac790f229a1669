//! The shell's commands. Each prints its answer; a bad command or argument gets a one-line
//! `error:` and nothing else happens.

use alloc::{
    string::{String, ToString as _},
    vec::Vec,
};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::{
    arch,
    events::{BUS, EventKind},
    logger, mm, modules, println,
    security::{self, Policy as _},
    task::{self, Pid},
};

/// The words Tab may complete at a word whose line so far is `before`: a command name first,
/// then a program for `run`, an event kind for `chains`.
pub(super) fn completions(before: &str) -> Vec<String> {
    let words: Vec<&str> = before.split_whitespace().collect();
    match words.as_slice() {
        [] => COMMANDS.iter().map(|(name, _, _)| String::from(*name)).collect(),
        ["run"] => task::programs().into_iter().map(|(name, _)| String::from(name)).collect(),
        ["chains"] => EventKind::ALL.iter().map(|kind| String::from(kind.name())).collect(),
        _ => Vec::new(),
    }
}

/// Every command: name, arguments, what it does (printed by `help`).
const COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "", "this list"),
    ("events", "", "events dispatched, per kind"),
    ("chains", "[kind]", "each chain's subscribers: order, priority, hits, instructions"),
    ("queues", "", "deferred queues: capacity, depth, high-water, dropped, coalesced, policy"),
    ("irqs", "", "interrupt lines: owner (kernel or a driver's pid), counts, ack state; devices"),
    ("ps", "", "processes"),
    ("cpus", "", "processors: APIC id, state, running pid, ticks, interrupts, events, idle %"),
    (
        "run",
        "[NAME [args]]",
        "run /bin/NAME (or the path NAME) in the foreground (Ctrl-C ends it); alone: list /bin",
    ),
    ("kill", "<pid>", "end a process"),
    ("mem", "", "frames free and used, heap, faults, the reserve and every limit"),
    ("policy", "", "the security policy and its denials"),
    ("modules", "", "modules and drivers, where they subscribed, their statistics"),
    ("trace", "on|off", "print every system call (the tracer module)"),
    ("log", "[error|warn|info|debug|trace]", "the log level: show it, or set it"),
    ("bench", "", "run the benchmarks (exact under -icount)"),
    ("uptime", "", "time since boot"),
    ("poweroff", "", "turn the machine off"),
];

/// Runs one command line. Returns the pid of a program started in the foreground.
pub(super) fn run(line: &str) -> Option<Pid> {
    let mut words = line.split_whitespace();
    let command = words.next()?;
    let args: Vec<&str> = words.collect();
    let expect_none = |args: &[&str]| {
        if args.is_empty() {
            true
        } else {
            println!("error: `{command}` takes no arguments");
            false
        }
    };
    match command {
        "help" if expect_none(&args) => help(),
        "events" if expect_none(&args) => events(),
        "chains" => chains(&args),
        "queues" if expect_none(&args) => queues(),
        "irqs" if expect_none(&args) => irqs(),
        "ps" if expect_none(&args) => ps(),
        "cpus" if expect_none(&args) => cpus(),
        "run" => return start_program(line),
        "kill" => kill(&args),
        "mem" if expect_none(&args) => mem(),
        "policy" if expect_none(&args) => policy(),
        "modules" if expect_none(&args) => list_modules(),
        "trace" => trace(&args),
        "log" => log_level(&args),
        "bench" if expect_none(&args) => return bench(),
        "uptime" if expect_none(&args) => uptime(),
        "poweroff" if expect_none(&args) => {
            println!("powering off");
            arch::qemu::power_off()
        }
        "help" | "events" | "queues" | "irqs" | "ps" | "cpus" | "mem" | "policy" | "modules"
        | "bench" | "uptime" | "poweroff" => {}
        _ => println!("error: unknown command `{}`; try `help`", printable(command)),
    }
    None
}

/// The command name as typed, cut short if absurdly long (the line limit applies anyway).
fn printable(word: &str) -> &str {
    word.get(..40).unwrap_or(word)
}

fn cpus() {
    println!(
        "  {:>3} {:>7}  {:<7} {:>5} {:>8} {:>10} {:>10} {:>8} {:>5} {:>7} {:>7} {:>4} {:>8}",
        "cpu",
        "apic id",
        "state",
        "pid",
        "ticks",
        "interrupts",
        "events",
        "deferred",
        "idle%",
        "resched",
        "flushes",
        "nmis",
        "spurious"
    );
    let processes = crate::task::processes();
    let cpus = arch::cpus();
    for cpu in &cpus {
        let state = if cpu.online { "online" } else { "offline" };
        let running = processes.iter().find(|p| p.state == "running" && p.cpu == cpu.index);
        let pid = running.map_or_else(|| String::from("-"), |p| alloc::format!("{}", p.pid));
        println!(
            "  {:>3} {:>7}  {state:<7} {pid:>5} {:>8} {:>10} {:>10} {:>8} {:>5} {:>7} {:>7} {:>4} {:>8}",
            cpu.index,
            cpu.apic_id,
            cpu.ticks,
            cpu.interrupts,
            BUS.dispatched_on(cpu.index),
            BUS.deferred_run_on(cpu.index),
            cpu.idle_percent,
            cpu.reschedules,
            cpu.flushes,
            cpu.nmis,
            cpu.spurious
        );
    }
    let stalls: u64 =
        cpus.iter().filter_map(|cpu| arch::last_stall(cpu.index)).map(|stall| stall.stalls).sum();
    println!(
        "  NMIs taken: {} in all, {stalls} sent by the watchdog (a cpu without a tick for {} ms)",
        cpus.iter().map(|cpu| cpu.nmis).sum::<u64>(),
        arch::HARD_STALL_BUDGET_MS
    );
    println!(
        "  ISA lines on the {}, to cpu 0; deferred work and the shell run on cpu 0; processes \
         on every online cpu",
        arch::interrupt_controller()
    );
}

fn help() {
    for (name, args, what) in COMMANDS {
        println!("  {:<26} {what}", alloc::format!("{name} {args}"));
    }
}

fn events() {
    println!("  {:<16} {:>12}", "kind", "dispatched");
    for kind in EventKind::ALL {
        println!("  {:<16} {:>12}", kind.name(), BUS.dispatch_count(kind));
    }
}

fn chains(args: &[&str]) {
    let kinds: Vec<EventKind> = match args {
        [] => EventKind::ALL.to_vec(),
        [name] => match EventKind::from_name(name) {
            Some(kind) => alloc::vec![kind],
            None => {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                println!("error: no event kind `{}`; kinds: {}", printable(name), names.join(" "));
                return;
            }
        },
        _ => {
            println!("error: usage: chains [kind]");
            return;
        }
    };
    for kind in kinds {
        crate::print!("{}", BUS.describe_chain(kind));
    }
}

fn queues() {
    println!(
        "  {:>3} {:<14} {:>8} {:>6} {:>6} {:>9} {:>8} {:>9} {:>8}  policy",
        "id", "name", "capacity", "depth", "high", "enqueued", "dropped", "coalesced", "refused"
    );
    for queue in BUS.queues() {
        println!(
            "  {:>3} {:<14} {:>8} {:>6} {:>6} {:>9} {:>8} {:>9} {:>8}  {}",
            queue.id.0,
            queue.name,
            queue.capacity,
            queue.stats.depth,
            queue.stats.high_water,
            queue.stats.enqueued,
            queue.stats.dropped,
            queue.stats.coalesced,
            queue.stats.refused,
            queue.policy
        );
    }
    println!(
        "  console input waiting for the shell: {} bytes",
        crate::console::input::waiting_bytes()
    );
    irq_lines();
}

/// Every line with an owner or a past, and the devices user-space drivers may claim.
fn irqs() {
    irq_lines();
    for line in 0..crate::events::irq::LINE_COUNT as u8 {
        for driver in task::drivers_of(line) {
            let program = match driver.instructions {
                0 => String::from("no top half"),
                length => alloc::format!("top half of {length} instructions"),
            };
            let role = if driver.shared { "sharer" } else { "driver" };
            println!(
                "  irq {line}: {role} pid {}, {program}: {} runs, {} not its device's, {} \
                 stopped (budget or fault), {} records dropped (ring full)",
                driver.pid, driver.runs, driver.not_mine, driver.faults, driver.ring_dropped
            );
        }
    }
    println!("  devices for user-space drivers (irq_claim):");
    let mut any = false;
    for device in arch::devices() {
        any = true;
        let ports = device.ports;
        println!(
            "    {:<6} irq {:>2}  ports {:#x}-{:#x}",
            device.name,
            device.line,
            ports.base,
            ports.end() - 1
        );
    }
    if !any {
        println!("    none found (QEMU: add a second `-serial` for COM2)");
    }
}

/// Interrupt lines that have an owner, have fired or been throttled: who serves them, storm
/// and acknowledgement state.
fn irq_lines() {
    use crate::events::irq::{LINE_COUNT, LINES, LineOwner};

    println!(
        "  {:>4} {:<9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>10} {:>8} {:>8}  state",
        "irq",
        "owner",
        "raised",
        "unhandled",
        "limit",
        "storms",
        "ack-late",
        "suppressed",
        "dropped",
        "backoff"
    );
    for line in 0..LINE_COUNT as u8 {
        let stats = LINES.stats(line);
        if stats.raised == 0 && stats.suppressed == 0 && stats.owner == LineOwner::Free {
            continue;
        }
        let owner = match stats.owner {
            LineOwner::Free => String::from("-"),
            LineOwner::Kernel => String::from("kernel"),
            LineOwner::Process(pid) => alloc::format!("pid {pid}"),
            LineOwner::Shared(sharers) => alloc::format!("{sharers} shr"),
        };
        let state = if stats.disabled {
            String::from("disabled (unhandled)")
        } else if let Some(until) = stats.throttled_until_ms {
            alloc::format!("throttled until {until} ms")
        } else if stats.awaiting_ack {
            String::from("masked until ack")
        } else {
            String::from("open")
        };
        println!(
            "  {line:>4} {owner:<9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>10} {:>8} {:>6}ms  {state}",
            stats.raised,
            stats.unhandled,
            stats.limit_per_window,
            stats.throttles,
            stats.ack_timeouts,
            stats.suppressed,
            stats.dropped,
            stats.backoff_ms
        );
    }
}

fn ps() {
    println!(
        "  {:>5} {:>6}  {:<14} {:<10} {:>3} {:>8} {:>9} {:>5} {:>12}",
        "pid", "parent", "name", "state", "cpu", "cpu ms", "syscalls", "maps", "reserved KiB"
    );
    for process in task::processes() {
        let usage = mm::space::usage(process.space);
        let (maps, reserved) = usage.map_or((String::from("-"), String::from("-")), |usage| {
            (usage.regions.to_string(), (usage.reserved_bytes / 1024).to_string())
        });
        println!(
            "  {:>5} {:>6}  {:<14} {:<10} {:>3} {:>8} {:>9} {:>5} {:>12}",
            process.pid,
            process.parent,
            process.name,
            process.state,
            process.cpu,
            process.cpu_ticks,
            process.syscalls,
            maps,
            reserved
        );
    }
}

/// `run NAME ARGS`: starts `/bin/NAME` (or the path NAME) with the rest of the line as its
/// arguments, exactly as typed (a Linux program's argv is split from it as a shell splits
/// words, quotes and all). `run` alone lists `/bin`.
fn start_program(line: &str) -> Option<Pid> {
    let rest = line.trim_start().strip_prefix("run").unwrap_or_default().trim_start();
    let (program, arguments) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if program.is_empty() {
        list_programs();
        return None;
    }
    match task::spawn(program, arguments.trim(), 0) {
        Ok(pid) => {
            println!("[pid {pid} started: {program}]");
            Some(pid)
        }
        Err(error) => {
            println!("error: cannot run `{}`: {error}", printable(program));
            None
        }
    }
}

/// The programs in `/bin`, with each one's size and the system calls it makes.
fn list_programs() {
    let programs = task::programs();
    println!("{} programs in {} (run NAME [ARGS]):", programs.len(), task::PROGRAM_DIRECTORY);
    for (name, len_bytes) in programs {
        let image = task::image_file(&task::program_path(name)).unwrap_or_default();
        let kind = match task::elf::plan(image, &crate::arch::paging::USER_SPACE) {
            Ok(plan) if plan.herald_abi => String::from("Herald calls"),
            Ok(_) => String::from("Linux calls"),
            Err(error) => alloc::format!("refused: {error}"),
        };
        println!("  {name:<24} {:>6} KiB  {kind}", len_bytes.div_ceil(1024));
    }
}

fn kill(args: &[&str]) {
    let [pid] = args else {
        println!("error: usage: kill <pid>");
        return;
    };
    match pid.parse::<Pid>() {
        Ok(0) | Err(_) => println!("error: `{}` is not a process id", printable(pid)),
        Ok(pid) => match task::kill(pid) {
            Ok(()) => println!("killed pid {pid}"),
            Err(errno) => println!("error: cannot kill pid {pid}: {errno}"),
        },
    }
}

fn mem() {
    let frames = mm::frame_stats();
    let heap = mm::heap::stats();
    let faults = mm::fault_counters();
    let mib = |frames: usize| frames as u64 * mm::FRAME_SIZE_BYTES / (1024 * 1024);
    println!(
        "  frames: {} free, {} used, {} total ({} MiB free of {} MiB)",
        frames.free,
        frames.used(),
        frames.total,
        mib(frames.free),
        mib(frames.total)
    );
    println!(
        "  heap: {} KiB used of {} KiB ({} KiB grown beyond the boot arena)",
        heap.used_bytes / 1024,
        heap.size_bytes / 1024,
        heap.grown_bytes / 1024
    );
    println!(
        "  faults: {} demand-zero, {} guard-page hits, {} unresolved; {} bad frame releases caught",
        faults.demand_zero, faults.guard_hits, faults.invalid, faults.bad_releases
    );
    println!("  address spaces: {}", mm::space::count());
    println!(
        "  kernel reserve: {} frames ({} MiB) no process can take; a process may reserve up to \
         {} MiB (more in one map is refused at once)",
        mm::reserve_frames(),
        mib(mm::reserve_frames()),
        mm::user_memory_bytes() / (1024 * 1024)
    );
    println!(
        "  limits: {} processes ({} for programs' spawns), {} regions per process, {} \
         subscriptions of up to {} records each, {} bytes per read/write, {} records per poll, \
         {} bytes of spawn arguments",
        task::MAX_PROCESSES,
        task::MAX_PROCESSES - task::KERNEL_ONLY_PROCESS_SLOTS,
        mm::space::MAX_REGIONS_PER_SPACE,
        task::MAX_SUBSCRIPTIONS,
        crate::abi::MAX_SUBSCRIPTION_CAPACITY,
        task::MAX_IO_BYTES_PER_CALL,
        task::MAX_POLL_RECORDS,
        task::MAX_ARGS_LEN_BYTES,
    );
}

fn policy() {
    println!("  policy: {} ({})", security::ACTIVE.name(), security::ACTIVE.summary());
    println!("  denials so far: {}", security::denial_count());
    for denial in security::recent_denials() {
        println!("    pid {} {}: {} -> {}", denial.pid, denial.kind, denial.what, denial.errno);
    }
}

fn list_modules() {
    for module in modules::list() {
        let role = if module.is_driver { "driver" } else { "module" };
        println!("  {:<14} {role:<6} {}", module.name, module.description);
        let joined: Vec<String> = module
            .subscriptions
            .iter()
            .map(|(kind, priority)| alloc::format!("{kind}@{priority}"))
            .collect();
        if !joined.is_empty() {
            println!("  {:<14} subscribed: {}", "", joined.join(", "));
        }
        if let Some(stats) = module.stats {
            println!("  {:<14} {stats}", "");
        }
        if let Some(error) = module.error {
            println!("  {:<14} failed: {error}", "");
        }
    }
}

fn trace(args: &[&str]) {
    match args {
        ["on"] => {
            modules::set_tracing(true);
            println!("tracing system calls");
        }
        ["off"] => {
            modules::set_tracing(false);
            println!("tracing off");
        }
        _ => println!("error: usage: trace on|off"),
    }
}

/// `log`: shows the level, or sets it (`log warn` keeps a benchmark's output free of the
/// farewell module's line per process).
fn log_level(args: &[&str]) {
    match args {
        [] => println!("log level: {}", log::max_level()),
        [level] => match level.parse::<log::LevelFilter>() {
            Ok(level) if level != log::LevelFilter::Off => {
                logger::set_level(level);
                println!("log level: {level}");
            }
            _ => println!("error: usage: log [error|warn|info|debug|trace]"),
        },
        _ => println!("error: usage: log [error|warn|info|debug|trace]"),
    }
}

/// The benchmark program whose end restores the log level (0: none).
static QUIETED_FOR: AtomicU32 = AtomicU32::new(0);

fn bench() -> Option<Pid> {
    // Log lines (the farewell module's, one per spawned process) would land inside the tables.
    logger::set_level(log::LevelFilter::Warn);
    crate::bench::run();
    match task::spawn("bench", "", 0) {
        Ok(pid) => {
            QUIETED_FOR.store(pid, Ordering::Release);
            Some(pid)
        }
        Err(error) => {
            logger::set_level(logger::DEFAULT_LEVEL);
            println!("error: the user-space benchmarks cannot run: {error}");
            None
        }
    }
}

/// The foreground program `pid` ended: undoes what its command changed (the benchmark's quiet
/// log).
pub(super) fn foreground_ended(pid: Pid) {
    if QUIETED_FOR.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        logger::set_level(logger::DEFAULT_LEVEL);
    }
}

fn uptime() {
    let ms = arch::milliseconds();
    println!("up {}.{:03} s", ms / 1000, ms % 1000);
}
