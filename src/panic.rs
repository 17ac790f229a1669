//! What a kernel panic does: stop every other CPU, report message and location on every
//! console once, then stop QEMU with a failure status.
#![forbid(unsafe_code)]

use core::{
    panic::PanicInfo,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::{
    arch::{
        self, cpu,
        qemu::{self, ExitCode},
    },
    console,
};

/// The panicking CPU's number plus one (0: no panic yet).
static PANICKING_CPU: AtomicUsize = AtomicUsize::new(0);

/// Stops the other CPUs, prints the panic and exits QEMU with [`ExitCode::Failure`]. A panic
/// while reporting one prints a single line and exits at once, rather than recursing; a CPU
/// that panics while another reports stops quietly, so the message is printed once.
pub fn report(info: &PanicInfo<'_>) -> ! {
    cpu::disable_interrupts();
    let me = arch::cpu_index() + 1;
    match PANICKING_CPU.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => arch::stop_other_processors(),
        Err(first) if first == me => {
            console::write_emergency(format_args!(
                "\nKERNEL PANIC while panicking: {}\n",
                info.message()
            ));
            qemu::exit(ExitCode::Failure);
        }
        Err(_) => loop {
            cpu::halt();
        },
    }
    match info.location() {
        Some(location) => console::write_emergency(format_args!(
            "\nKERNEL PANIC: {}\n  at {location}\n",
            info.message()
        )),
        None => console::write_emergency(format_args!("\nKERNEL PANIC: {}\n", info.message())),
    }
    qemu::exit(ExitCode::Failure);
}
