//! A system-call tracer (like strace): while on, an observer of the `syscall` chain that prints
//! each call a process makes and how it ended. `trace on|off` toggles it at run time; when off
//! it is not subscribed at all, so it costs nothing.

use alloc::{format, string::String};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Module, ModuleError, Registrar, linux_arguments};
use crate::{
    abi,
    mm::user_copy,
    task,
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
    match calls {
        SyscallAbi::Herald => println!(
            "[trace] pid {pid} {}({:#x}, {:#x}, {:#x}) = {result}",
            abi::syscall_name(number),
            args[0],
            args[1],
            args[2]
        ),
        // A Linux program's calls as strace shows them: Linux names, decoded arguments (a
        // buffer the call read, read again from the caller's memory), errno names.
        SyscallAbi::Linux => {
            let unknown;
            let name = match abi::linux::name(number) {
                Some(name) => name,
                None => {
                    unknown = format!("syscall_{number}");
                    &unknown
                }
            };
            let space = task::current_space();
            let read_user =
                |address: u64, out: &mut [u8]| user_copy::copy_from_user(space, address, out).is_ok();
            let shown = linux_arguments::call(name, number, &args, &read_user);
            let result = match reply.outcome {
                Outcome::Handled if !reply.restart => linux_arguments::result(number, reply.value),
                _ => result,
            };
            println!("[trace] pid {pid} {shown} = {result}");
        }
    }
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
