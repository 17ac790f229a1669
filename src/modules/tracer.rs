//! A system-call tracer (like strace): an observer of the `syscall` chain that prints each call
//! a process makes and how it ended. Off by default; `trace on|off` toggles it at run time.

use alloc::{format, string::String};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Module, ModuleError, Registrar};
use crate::{
    abi,
    events::{Event, EventKind, Outcome, Priority, Verdict},
    println,
};

/// The tracer's switch and counter.
pub(super) struct Tracer {
    enabled: AtomicBool,
    traced: AtomicU64,
}

pub(super) static MODULE: Tracer =
    Tracer { enabled: AtomicBool::new(false), traced: AtomicU64::new(0) };

/// Turns tracing on or off (the shell's `trace`).
pub(super) fn set_enabled(enabled: bool) {
    MODULE.enabled.store(enabled, Ordering::Relaxed);
}

impl Module for Tracer {
    fn name(&self) -> &'static str {
        "tracer"
    }

    fn description(&self) -> &'static str {
        "prints every system call and its result while `trace on`"
    }

    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError> {
        registrar.subscribe(EventKind::Syscall, Priority::OBSERVER, |event, reply| {
            let Event::Syscall { number, args, pid } = *event else { return Verdict::Continue };
            if pid == 0 || !self.enabled.load(Ordering::Relaxed) {
                return Verdict::Continue;
            }
            self.traced.fetch_add(1, Ordering::Relaxed);
            let result = match reply.outcome {
                _ if reply.restart => String::from("(blocked, restarts)"),
                Outcome::Handled => format!("{}", reply.value as i64),
                Outcome::Denied(errno) => format!("-1 {errno}"),
                Outcome::Unhandled => String::from("-1 ENOSYS"),
            };
            println!(
                "[trace] pid {pid} {}({:#x}, {:#x}, {:#x}) = {result}",
                abi::syscall_name(number),
                args[0],
                args[1],
                args[2]
            );
            Verdict::Continue
        })
    }

    fn stats(&self) -> Option<String> {
        let state = if self.enabled.load(Ordering::Relaxed) { "on" } else { "off" };
        Some(format!("{state}, {} calls traced", self.traced.load(Ordering::Relaxed)))
    }
}
