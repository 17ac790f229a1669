//! A system-call tracer (like strace): while on, an observer of the `syscall` chain that prints
//! each call a process makes and how it ended. `trace on|off` toggles it at run time; when off
//! it is not subscribed at all, so it costs nothing.

use alloc::{format, string::String};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Module, ModuleError, Registrar};
use crate::{
    abi,
    arch::IrqMutex,
    events::{BUS, Event, EventKind, Outcome, Priority, Reply, Subscription, SyscallAbi, Verdict},
    println,
};

/// The tracer's subscription while on, and its counter.
pub(super) struct Tracer {
    subscription: IrqMutex<Option<Subscription>>,
    traced: AtomicU64,
}

pub(super) static MODULE: Tracer =
    Tracer { subscription: IrqMutex::new(None), traced: AtomicU64::new(0) };

fn trace(event: &Event, reply: &mut Reply) -> Verdict {
    let Event::Syscall { number, args, pid, abi: calls } = *event else {
        return Verdict::Continue;
    };
    if pid == 0 {
        return Verdict::Continue;
    }
    MODULE.traced.fetch_add(1, Ordering::Relaxed);
    let result = match reply.outcome {
        _ if reply.restart => String::from("(blocked, restarts)"),
        Outcome::Handled => format!("{}", reply.value as i64),
        Outcome::Denied(errno) => format!("-1 {errno}"),
        Outcome::Unhandled => String::from("-1 ENOSYS"),
    };
    // A Linux program's calls by their Linux names (strace's); an unknown one by its number.
    let linux_unknown;
    let name = match calls {
        SyscallAbi::Herald => abi::syscall_name(number),
        SyscallAbi::Linux => match abi::linux::name(number) {
            Some(name) => name,
            None => {
                linux_unknown = format!("syscall_{number}");
                &linux_unknown
            }
        },
    };
    println!(
        "[trace] pid {pid} {name}({:#x}, {:#x}, {:#x}) = {result}",
        args[0],
        args[1],
        args[2]
    );
    Verdict::Continue
}

/// Turns tracing on or off (the shell's `trace`).
pub(super) fn set_enabled(enabled: bool) {
    let mut subscription = MODULE.subscription.lock();
    if enabled && subscription.is_none() {
        match BUS.subscribe(EventKind::Syscall, "tracer", Priority::OBSERVER, trace) {
            Ok(new) => *subscription = Some(new),
            Err(error) => log::error!("tracer: cannot subscribe: {error:?}"),
        }
    } else if !enabled {
        // Dropping the subscription unregisters the observer; outside the lock, since a drop
        // waits for dispatches on other CPUs to finish.
        let old = subscription.take();
        drop(subscription);
        drop(old);
    }
}

impl Module for Tracer {
    fn name(&self) -> &'static str {
        "tracer"
    }

    fn description(&self) -> &'static str {
        "prints every system call and its result while `trace on` (subscribed only then)"
    }

    fn init(&'static self, _registrar: &mut Registrar) -> Result<(), ModuleError> {
        Ok(())
    }

    fn stats(&self) -> Option<String> {
        let state = if self.subscription.lock().is_some() { "on" } else { "off" };
        Some(format!("{state}, {} calls traced", self.traced.load(Ordering::Relaxed)))
    }
}
