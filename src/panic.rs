//! What a kernel panic does: report message and location on every console, then stop QEMU with
//! a failure status.
#![forbid(unsafe_code)]

use core::{
    panic::PanicInfo,
    sync::atomic::{AtomicBool, Ordering},
};

use crate::{
    arch::{
        cpu,
        qemu::{self, ExitCode},
    },
    console,
};

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Prints the panic and exits QEMU with [`ExitCode::Failure`]. A panic while reporting one
/// prints a single line and exits at once, rather than recursing.
pub fn report(info: &PanicInfo<'_>) -> ! {
    cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::AcqRel) {
        console::write_emergency(format_args!(
            "\nKERNEL PANIC while panicking: {}\n",
            info.message()
        ));
        qemu::exit(ExitCode::Failure);
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
