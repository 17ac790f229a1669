//! The `Panic` overflow policy, driven past capacity by the timer, panics naming the queue.
#![no_std]
#![no_main]

use herald::events::{BUS, EventKind, OverflowPolicy, Priority};

herald::panic_test! {
    name: "queue_panic::a_panic_policy_queue_panics_when_the_timer_overfills_it",
    expect: ["queue `strict-timer` overflowed at capacity 4"],
    run: || {
        BUS.subscribe_deferred(EventKind::Timer, "strict-timer", Priority::OBSERVER, 4, OverflowPolicy::Panic, |_| {})
            .expect("subscribe")
            .keep_forever();
        // Nothing drains the queue: the fifth tick overflows it.
        let until = herald::arch::milliseconds() + 100;
        while herald::arch::milliseconds() < until {
            core::hint::spin_loop();
        }
    },
}
