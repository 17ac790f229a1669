//! In-kernel benchmarks of the event path, each printed beside its baseline from the same boot.
//!
//! Run under `qemu -icount shift=0,align=off` (`cargo xtask bench`): the guest TSC then advances
//! once per guest instruction, so the numbers are exact instruction counts, the same on every
//! run. The first line calibrates that with a loop of known length.

use alloc::{boxed::Box, vec::Vec};
use core::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{
    arch::{self, cpu},
    events::{BUS, BoundedQueue, Bus, Event, EventKind, OverflowPolicy, Priority, Reply, Verdict},
    println,
    security::Policy as _,
};

/// Repetitions per measurement; the mean is reported.
const ITERATIONS: u64 = 20_000;
/// Chain lengths measured.
const CHAIN_LENGTHS: [usize; 3] = [1, 4, 16];

static HANDLER_CALLS: AtomicU64 = AtomicU64::new(0);

/// The handler both paths call: a typical small top half (look at the event, bump a counter).
#[inline(never)]
fn handler(event: &Event, _reply: &mut Reply) -> Verdict {
    if let Event::Syscall { number, .. } = event {
        HANDLER_CALLS.fetch_add(*number, Ordering::Relaxed);
    }
    Verdict::Continue
}

/// Returns the mean cost of `op` in hundredths of a timestamp tick, loop overhead removed.
fn hundredths_per_op(op: impl FnMut()) -> u64 {
    hundredths_per_op_over(ITERATIONS, op)
}

/// [`hundredths_per_op`] over `iterations` calls, for operations that use up a resource.
fn hundredths_per_op_over(iterations: u64, mut op: impl FnMut()) -> u64 {
    let measure = |op: &mut dyn FnMut()| {
        let start = cpu::read_timestamp();
        for _ in 0..iterations {
            op();
        }
        cpu::read_timestamp() - start
    };
    // Timer ticks would land in different iterations on different boots (and policies); with
    // interrupts masked the count is the operation's alone, the same on every boot.
    let were_enabled = cpu::mask_interrupts();
    let empty = measure(&mut || black_box(()));
    let full = measure(&mut op);
    cpu::restore_interrupts(were_enabled);
    full.saturating_sub(empty) * 100 / iterations
}

fn row(name: &str, hundredths: u64, baseline: Option<u64>) {
    let ratio = baseline.filter(|&b| b > 0).map(|b| hundredths * 100 / b);
    match ratio {
        Some(ratio) => println!(
            "  {name:<56} {:>6}.{:02}   {:>3}.{:02}x",
            hundredths / 100,
            hundredths % 100,
            ratio / 100,
            ratio % 100
        ),
        None => println!("  {name:<56} {:>6}.{:02}", hundredths / 100, hundredths % 100),
    }
}

/// Calls the first `count` handlers of `table` the way a hand-written dispatcher would.
#[inline(never)]
fn call_table(
    table: &[fn(&Event, &mut Reply) -> Verdict],
    event: &Event,
    reply: &mut Reply,
) -> Verdict {
    for handler in table {
        let verdict = handler(event, reply);
        if verdict != Verdict::Continue {
            return verdict;
        }
    }
    Verdict::Continue
}

/// Runs every benchmark and prints the table.
pub fn run() {
    println!(
        "benchmark: guest instructions per operation (exact under -icount shift=0), mean of \
         {ITERATIONS}; security policy: {}",
        crate::security::ACTIVE.name()
    );
    let calibration = hundredths_per_op(|| {
        arch::probes::two_nops();
    });
    row("calibration: 2-instruction block (expect 2)", calibration, None);
    if calibration != 200 {
        println!(
            "  (not under -icount: the figures below are time-stamp counter cycles, which vary \
             from run to run, not instruction counts; `cargo xtask bench` measures exactly)"
        );
    }
    row(
        "power-on -> kernel ready (firmware, loader, init)",
        crate::boot_complete_timestamp() * 100,
        None,
    );

    let event =
        Event::Syscall { number: 1, args: [0; 6], pid: 0, abi: crate::events::SyscallAbi::Herald };
    let table: Vec<fn(&Event, &mut Reply) -> Verdict> =
        (0..16).map(|_| handler as fn(&Event, &mut Reply) -> Verdict).collect();
    let mut previous_bus = None;
    for count in CHAIN_LENGTHS {
        let baseline = hundredths_per_op(|| {
            let mut reply = Reply::new();
            black_box(call_table(black_box(&table[..count]), black_box(&event), &mut reply));
        });
        let bus: &'static Bus = Box::leak(Box::new(Bus::new()));
        bus.set_clock(cpu::read_timestamp);
        for _ in 0..count {
            // A closure, as subscribers write them: its body is the handler (a plain `fn` item
            // would add a three-instruction forwarding shim to every call).
            let closure = |event: &Event, _reply: &mut Reply| {
                if let Event::Syscall { number, .. } = event {
                    HANDLER_CALLS.fetch_add(*number, Ordering::Relaxed);
                }
                Verdict::Continue
            };
            bus.subscribe(EventKind::Syscall, "bench", Priority::OWNER, closure)
                .map(|s| s.keep_forever())
                .ok();
        }
        let dispatch = hundredths_per_op(|| {
            let mut reply = Reply::new();
            black_box(bus.dispatch(black_box(&event), &mut reply));
        });
        row(&alloc::format!("fn-pointer table, {count:2} handler(s)"), baseline, None);
        row(
            &alloc::format!("bus dispatch, {count:2} subscriber(s)  (vs table)"),
            dispatch,
            Some(baseline),
        );
        if let Some((previous_count, previous)) = previous_bus {
            // Without -icount (the plain test run) the host's noise can make the larger chain
            // look cheaper: the row then reads 0 rather than the kernel panicking.
            let extra = dispatch.saturating_sub(previous) / (count - previous_count) as u64;
            row("  per extra subscriber", extra, None);
        }
        previous_bus = Some((count, dispatch));
    }

    let queue = BoundedQueue::new("bench", 64, OverflowPolicy::DropNewest);
    let enqueue_dequeue = hundredths_per_op(|| {
        queue.push(black_box(event));
        black_box(queue.pop());
    });
    row("BoundedQueue push + pop", enqueue_dequeue, None);

    let bare = hundredths_per_op(|| {
        arch::probes::bare_interrupt();
    });
    let subscription = BUS
        .subscribe(EventKind::Irq, "bench-top-half", Priority::OWNER, |event, _| {
            black_box(event);
            Verdict::Handled
        })
        .ok();
    let irq = hundredths_per_op(|| {
        arch::probes::raise_software_irq();
    });
    drop(subscription);
    row("int + bare iretq (baseline)", bare, None);
    row("IRQ entry -> bus -> top half -> iretq", irq, Some(bare));
    user_drivers(bare);
    memory(bare);
}

/// Round trips to a user-space driver measured (each wakes it, and waits for its answer).
const DRIVER_ROUND_TRIPS: u64 = 2_000;

/// A user-space driver's interrupt paths: a top half that queues the sequence number and
/// acknowledges, as a native closure and as a verified program on the drivers' own interrupt
/// path; then the L4 round trip, the driver woken in ring 3 and answering.
fn user_drivers(bare_interrupt: u64) {
    use crate::{
        abi::{
            IRQ_RING_RECORDS,
            bpf::{HELPER_ACKNOWLEDGE, HELPER_QUEUE, HELPER_SEQ, MINE, assemble::*},
        },
        events::irq::SOFTWARE_LINE,
        sync::IrqSpinLock,
    };

    let ring: &'static IrqSpinLock<alloc::collections::VecDeque<u64>> = Box::leak(Box::new(
        IrqSpinLock::new(alloc::collections::VecDeque::with_capacity(IRQ_RING_RECORDS)),
    ));
    let native = BUS.subscribe_line(SOFTWARE_LINE, "bench-native", Priority::OWNER, |event, _| {
        let Event::Irq { seq, .. } = *event else { return Verdict::Continue };
        let mut ring = ring.lock();
        if ring.len() < IRQ_RING_RECORDS {
            ring.push_back(seq);
        }
        Verdict::Handled
    });
    let native_cost = hundredths_per_op(|| {
        arch::probes::raise_software_irq();
        black_box(ring.lock().pop_front());
    });
    drop(native);
    let program = [
        call(HELPER_SEQ),
        mov_reg(1, 0),
        call(HELPER_QUEUE),
        call(HELPER_ACKNOWLEDGE),
        mov(0, MINE as i32),
        exit(),
    ];
    let verified = match crate::task::bench_top_half(SOFTWARE_LINE, &program) {
        Ok(verified) => verified,
        Err(error) => {
            println!("  (the verified top half cannot run: {error})");
            return;
        }
    };
    let verified_cost = hundredths_per_op(|| {
        arch::probes::raise_software_irq();
        black_box(verified.take_records());
    });
    drop(verified);
    row("IRQ -> native top half (queue seq) -> iretq", native_cost, Some(bare_interrupt));
    row("IRQ -> verified top half, 6 insns  (vs native)", verified_cost, Some(native_cost));

    if arch::cpus().iter().filter(|cpu| cpu.online).count() > 1 {
        // The driver may be woken on another CPU: the round trip is one CPU's to measure.
        return;
    }
    match driver_round_trip() {
        Ok(round_trip) => row(
            "IRQ -> user driver woken -> irq_ack -> blocks again",
            round_trip,
            Some(bare_interrupt),
        ),
        Err(error) => println!("  (the user-space driver round trip cannot run: {error})"),
    }
}

/// The L4 round trip, on one CPU: the software line's interrupt wakes the `driver` program
/// blocked in `irq_wait`; the kernel switches to it, it returns to ring 3, answers `irq_ack`
/// and blocks in `irq_wait` again, and the kernel switches back. Returns hundredths of a tick
/// per round trip.
fn driver_round_trip() -> Result<u64, &'static str> {
    use crate::{
        events::irq::{LINES, LineOwner, SOFTWARE_LINE},
        task,
    };

    let is_blocked = |pid| {
        task::processes().iter().any(|process| process.pid == pid && process.state == "blocked")
    };
    let pid = task::spawn("driver", "wait 1000000000", 0).map_err(|_| "no driver program")?;
    let claimed = |pid| LINES.owner(SOFTWARE_LINE) == LineOwner::Process(pid);
    let deadline = arch::milliseconds() + 10_000;
    while !(claimed(pid) && is_blocked(pid)) {
        if arch::milliseconds() > deadline {
            let _ = task::kill(pid);
            return Err("the driver never waited");
        }
        task::idle_step();
    }
    let before = LINES.stats(SOFTWARE_LINE);
    let start = cpu::read_timestamp();
    for _ in 0..DRIVER_ROUND_TRIPS {
        arch::probes::raise_software_irq();
        // The driver is ready: this step runs it until it blocks again.
        task::idle_step();
    }
    let elapsed = cpu::read_timestamp() - start;
    let after = LINES.stats(SOFTWARE_LINE);
    let answered = !after.awaiting_ack && after.ack_timeouts == before.ack_timeouts;
    let _ = task::kill(pid);
    let _ = task::wait(pid);
    if answered { Ok(elapsed * 100 / DRIVER_ROUND_TRIPS) } else { Err("the driver fell behind") }
}

/// Pages touched by the demand-paging benchmark (each costs a frame until unmapped).
const DEMAND_PAGES: u64 = 2_000;

/// Memory management: frames, heap, and a demand-zero fault through the bus.
fn memory(bare_interrupt: u64) {
    use crate::{
        events::{MemoryRequest, Protection, SpaceId},
        mm::{self, FRAME_SIZE_BYTES, space},
    };

    let frame = hundredths_per_op(|| {
        let frame = mm::allocate_frame().expect("a free frame");
        black_box(mm::release_frame(black_box(frame))).ok();
    });
    let mut page = alloc::vec![0u8; FRAME_SIZE_BYTES as usize];
    let zero_fill = hundredths_per_op(|| {
        // SAFETY: `page` is a live 4 KiB buffer; black_box keeps the fill from being elided.
        unsafe { black_box(page.as_mut_ptr()).write_bytes(0, FRAME_SIZE_BYTES as usize) };
    });
    drop(page);
    row("4 KiB zero fill, as a frame gets (baseline)", zero_fill, None);
    row("frame allocate (zeroed) + release", frame, Some(zero_fill));

    let mut arena = alloc::vec![0u64; 4096];
    let mut bare_heap = linked_list_allocator::Heap::empty();
    // SAFETY: `arena` outlives `bare_heap`, which is its only user from here on.
    unsafe { bare_heap.init(arena.as_mut_ptr().cast(), arena.len() * 8) };
    let layout = core::alloc::Layout::from_size_align(64, 8).expect("valid layout");
    let bare = hundredths_per_op(|| {
        let block = bare_heap.allocate_first_fit(black_box(layout)).expect("room");
        // SAFETY: `block` was just allocated from `bare_heap` with `layout`.
        unsafe { bare_heap.deallocate(block, layout) };
    });
    let kernel_heap = hundredths_per_op(|| {
        black_box(Box::new(black_box([0u64; 8])));
    });
    row("free-list alloc + free, 64 B, no lock (baseline)", bare, None);
    row("kernel heap Box<[u64; 8]> new + drop", kernel_heap, Some(bare));
    drop(arena);

    let id = space::create().expect("an address space");
    let len_bytes = DEMAND_PAGES * FRAME_SIZE_BYTES;
    let protection = Protection::READ_WRITE;
    let base = mm::request(0, MemoryRequest::Map { space: id, address: 0, len_bytes, protection })
        .expect("map");
    space::switch_to(id).expect("switch");
    let mut next = base;
    let fault = cpu::with_user_access(|| {
        hundredths_per_op_over(DEMAND_PAGES, || {
            // SAFETY: `next` walks the pages of the read-write region just mapped, one per call.
            unsafe { (next as *mut u64).write_volatile(1) };
            next += FRAME_SIZE_BYTES;
        })
    });
    space::switch_to(SpaceId::KERNEL).expect("switch back");
    space::destroy(id).expect("destroy");
    row("demand-zero #PF -> bus -> mm -> resume  (vs int+iretq)", fault, Some(bare_interrupt));
}

/// Repetitions of each several-CPU measurement; the smallest is reported (under `-icount` the
/// CPUs take turns, and a measurement a turn lands in counts the other CPU's instructions too).
const SMP_REPETITIONS: usize = 15;
/// Calls per repetition.
const SMP_ITERATIONS: u64 = 200;
/// Work of each `spin --work` process, in millions of iterations.
const SPIN_WORK_MILLIONS: u64 = 100;

fn smallest_of(mut measure: impl FnMut() -> u64) -> u64 {
    (0..SMP_REPETITIONS).map(|_| measure()).min().unwrap_or(0)
}

/// Processes `count` copies of `spin` with `args`, waits until each runs on a CPU other than
/// this one (or `deadline_ms` passes), and returns their pids.
fn spinners_elsewhere(count: usize, args: &str) -> Vec<u32> {
    let pids: Vec<u32> =
        (0..count).filter_map(|_| crate::task::spawn("spin", args, 0).ok()).collect();
    let deadline_ms = arch::milliseconds() + 2_000;
    while arch::milliseconds() < deadline_ms {
        let running = crate::task::processes()
            .iter()
            .filter(|p| pids.contains(&p.pid) && p.state == "running" && p.cpu != 0)
            .count();
        if running == pids.len() {
            break;
        }
        core::hint::spin_loop();
    }
    pids
}

/// The several-CPU table: what one CPU's dispatch and system-call event cost while the others
/// idle and while they run processes, the IPI round trip and a shootdown, and how four
/// CPU-bound processes share the CPUs. Prints nothing on one CPU.
pub fn run_smp() {
    let others: Vec<usize> = arch::cpus()
        .iter()
        .filter(|cpu| cpu.online && cpu.index != 0)
        .map(|cpu| cpu.index)
        .collect();
    if others.is_empty() {
        return;
    }
    let exact = hundredths_per_op(arch::probes::two_nops) == 200;
    println!(
        "several cpus: {} online; {}",
        others.len() + 1,
        if exact {
            "exact instruction counts (-icount): the CPUs take turns, so only per-CPU costs mean \
             something here"
        } else {
            "time-stamp cycles without -icount: compare rows of this table only"
        }
    );
    let bus: &'static Bus = Box::leak(Box::new(Bus::new()));
    bus.subscribe(EventKind::Syscall, "bench", Priority::OWNER, handler)
        .map(|s| s.keep_forever())
        .ok();
    let event =
        Event::Syscall { number: 1, args: [0; 6], pid: 0, abi: crate::events::SyscallAbi::Herald };
    let dispatch = || {
        smallest_of(|| {
            hundredths_per_op_over(SMP_ITERATIONS, || {
                let mut reply = Reply::new();
                black_box(bus.dispatch(black_box(&event), &mut reply));
            })
        })
    };
    let syscall = || {
        smallest_of(|| {
            hundredths_per_op_over(SMP_ITERATIONS, || {
                black_box(arch::probes::kernel_syscall(crate::abi::SYS_GETPID));
            })
        })
    };
    let dispatch_alone = dispatch();
    let syscall_alone = syscall();
    let busy = spinners_elsewhere(others.len(), "2000");
    let dispatch_busy = dispatch();
    let syscall_busy = syscall();
    for &pid in &busy {
        let _ = crate::task::kill(pid);
        let _ = crate::task::wait(pid);
    }
    let label = alloc::format!("{} other cpus running processes", others.len());
    row("dispatch, 1 subscriber, the other cpus idle", dispatch_alone, None);
    row(&alloc::format!("dispatch, 1 subscriber, {label}"), dispatch_busy, Some(dispatch_alone));
    row("syscall event (int 0x80 getpid), the other cpus idle", syscall_alone, None);
    row(&alloc::format!("syscall event, {label}"), syscall_busy, Some(syscall_alone));
    if exact {
        return;
    }
    let bare = smallest_of(|| hundredths_per_op_over(SMP_ITERATIONS, arch::probes::bare_interrupt));
    let round_trip = smallest_of(|| {
        hundredths_per_op_over(SMP_ITERATIONS, || {
            let _ = arch::probes::ipi_round_trip(others[0]);
        })
    });
    // Any kernel page will do: its entry is not changed, only flushed everywhere.
    let page = (&raw const HANDLER_CALLS) as u64 & !0xfff;
    let shootdown = smallest_of(|| {
        hundredths_per_op_over(SMP_ITERATIONS, || arch::probes::shootdown_everywhere(page))
    });
    row("int + bare iretq on this cpu (baseline)", bare, None);
    row("IPI round trip to cpu 1 (ping, answer)", round_trip, Some(bare));
    row(
        &alloc::format!("TLB shootdown of one page to {} cpus", others.len()),
        shootdown,
        Some(bare),
    );
    // Four CPU-bound processes: one alone, then as many as there are CPUs at once.
    let work = alloc::format!("--work {SPIN_WORK_MILLIONS}");
    // Timed with the time-stamp counter, not the tick count: a starved vCPU loses ticks. Twice
    // alone, the faster counted: the first run also pays QEMU's translation of the code.
    let alone_cycles = (0..2)
        .map(|_| {
            let started = cpu::read_timestamp();
            let _ = crate::task::spawn("spin", &work, 0).map(crate::task::wait);
            cpu::read_timestamp() - started
        })
        .min()
        .unwrap_or(0);
    let together = others.len() + 1;
    let started = cpu::read_timestamp();
    let pids: Vec<u32> =
        (0..together).filter_map(|_| crate::task::spawn("spin", &work, 0).ok()).collect();
    // This CPU runs them too: its idle steps pick them up.
    while pids.iter().any(|&pid| crate::task::is_alive(pid)) {
        crate::task::idle_step();
    }
    for &pid in &pids {
        let _ = crate::task::wait(pid);
    }
    let together_cycles = cpu::read_timestamp() - started;
    let ratio_hundredths = together_cycles * 100 / (alone_cycles * together as u64).max(1);
    println!(
        "  {together} cpu-bound processes at once take {}.{:02}x the time one cpu would take for \
         all ({} M cycles; one alone {} M). QEMU runs each vcpu on a host thread: with fewer \
         host cores than vcpus, the host bounds this",
        ratio_hundredths / 100,
        ratio_hundredths % 100,
        together_cycles / 1_000_000,
        alone_cycles / 1_000_000
    );
}
