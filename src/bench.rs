//! In-kernel benchmarks of the event path, each printed beside its baseline from the same boot.
//!
//! Run under `qemu -icount shift=0,align=off` (`cargo xtask bench`): the guest TSC then advances
//! once per guest instruction, so the numbers are exact instruction counts, the same on every
//! run. The first line calibrates that with a loop of known length.

use alloc::{boxed::Box, vec::Vec};
use core::{
    arch::asm,
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{
    arch::{self, cpu},
    events::{BUS, BoundedQueue, Bus, Event, EventKind, OverflowPolicy, Priority, Reply, Verdict},
    println,
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
fn hundredths_per_op(mut op: impl FnMut()) -> u64 {
    let measure = |op: &mut dyn FnMut()| {
        let start = cpu::read_timestamp();
        for _ in 0..ITERATIONS {
            op();
        }
        cpu::read_timestamp() - start
    };
    let empty = measure(&mut || black_box(()));
    let full = measure(&mut op);
    full.saturating_sub(empty) * 100 / ITERATIONS
}

fn row(name: &str, hundredths: u64, baseline: Option<u64>) {
    let ratio = baseline.filter(|&b| b > 0).map(|b| hundredths * 100 / b);
    match ratio {
        Some(ratio) => println!(
            "  {name:<44} {:>6}.{:02}   {:>3}.{:02}x",
            hundredths / 100,
            hundredths % 100,
            ratio / 100,
            ratio % 100
        ),
        None => println!("  {name:<44} {:>6}.{:02}", hundredths / 100, hundredths % 100),
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
        "benchmark: guest instructions per operation (exact under -icount shift=0), mean of {ITERATIONS}"
    );
    let calibration = hundredths_per_op(|| {
        // SAFETY: two `nop`s: no registers, memory or flags touched.
        unsafe { asm!("nop", "nop", options(nomem, nostack, preserves_flags)) };
    });
    row("calibration: 2-instruction block (expect 2)", calibration, None);

    let event = Event::Syscall { number: 1, args: [0; 6], pid: 0 };
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
            bus.subscribe(EventKind::Syscall, "bench", Priority::OWNER, handler)
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
            let extra = (dispatch - previous) / (count - previous_count) as u64;
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
        // SAFETY: this vector's gate is a lone `iretq`.
        unsafe { asm!("int {v}", v = const arch::BARE_IRET_VECTOR) };
    });
    let subscription = BUS
        .subscribe(EventKind::Irq, "bench-top-half", Priority::OWNER, |event, _| {
            black_box(event);
            Verdict::Handled
        })
        .ok();
    let irq = hundredths_per_op(|| {
        // SAFETY: the software IRQ vector dispatches an Irq event and returns.
        unsafe { asm!("int {v}", v = const arch::SOFTWARE_IRQ_VECTOR) };
    });
    drop(subscription);
    row("int + bare iretq (baseline)", bare, None);
    row("IRQ entry -> bus -> top half -> iretq", irq, Some(bare));
}
