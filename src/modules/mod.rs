//! Kernel modules: code that extends Herald by subscribing to events. A module is one file in
//! this directory with a `pub(super) static MODULE` implementing [`Module`], added to the build
//! by one line in the `modules!` list at the bottom of this file. Drivers (`src/drivers/`) are
//! modules too and are started first.
//!
//! A module subscribes only through its [`Registrar`], which names every subscription after
//! the module and keeps it: the `modules` shell command lists what each module joined, and a
//! module whose `init` fails has everything it subscribed dropped again.
#![forbid(unsafe_code)]

use alloc::{format, string::String, vec::Vec};
use core::fmt;

use crate::{
    arch::IrqMutex,
    events::{
        BUS, BusError, Event, EventKind, OverflowPolicy, Priority, Reply, Subscription, Verdict,
        irq,
    },
};

/// A kernel extension.
pub trait Module: Sync {
    /// Short name: shown by `modules`, and the name of every subscription it makes.
    fn name(&self) -> &'static str;
    /// One line on what it does.
    fn description(&self) -> &'static str;
    /// Subscribes its handlers. Runs once at boot, after mm, processes and the policy exist.
    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError>;
    /// A line of statistics for `modules`, if the module keeps any.
    fn stats(&self) -> Option<String> {
        None
    }
}

/// Why a module could not start.
#[derive(Debug)]
pub enum ModuleError {
    /// The bus refused a subscription.
    Bus(BusError),
    /// The module's own reason.
    Other(&'static str),
}

impl From<BusError> for ModuleError {
    fn from(error: BusError) -> Self {
        Self::Bus(error)
    }
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bus(error) => write!(f, "bus refused a subscription: {error:?}"),
            Self::Other(reason) => f.write_str(reason),
        }
    }
}

/// Subscribes on a module's behalf and remembers what it subscribed.
pub struct Registrar {
    module: &'static str,
    subscriptions: Vec<(EventKind, Priority, Subscription)>,
}

impl Registrar {
    /// Subscribes an immediate handler (see [`crate::events::Bus::subscribe`]).
    pub fn subscribe(
        &mut self,
        kind: EventKind,
        priority: Priority,
        handler: impl Fn(&Event, &mut Reply) -> Verdict + Send + Sync + 'static,
    ) -> Result<(), ModuleError> {
        let subscription = BUS.subscribe(kind, self.module, priority, handler)?;
        self.subscriptions.push((kind, priority, subscription));
        Ok(())
    }

    /// Subscribes a deferred handler (see [`crate::events::Bus::subscribe_deferred`]).
    pub fn subscribe_deferred(
        &mut self,
        kind: EventKind,
        priority: Priority,
        capacity: usize,
        policy: OverflowPolicy,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<(), ModuleError> {
        let subscription =
            BUS.subscribe_deferred(kind, self.module, priority, capacity, policy, handler)?;
        self.subscriptions.push((kind, priority, subscription));
        Ok(())
    }
}

impl Registrar {
    /// Subscribes a driver's bottom half for interrupt `line` (see
    /// [`crate::events::Bus::subscribe_irq_line`]): the line stays masked until it has run.
    /// The line becomes the kernel's: no process can claim it (kernel lines are shared among
    /// kernel drivers, never with a process's).
    pub fn subscribe_irq_line(
        &mut self,
        line: u8,
        capacity: usize,
        policy: OverflowPolicy,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> Result<(), ModuleError> {
        match irq::LINES.claim(line, irq::LineOwner::Kernel) {
            Ok(()) | Err(Some(irq::LineOwner::Kernel)) => {}
            Err(_) => return Err(ModuleError::Other("its interrupt line is a process's")),
        }
        let priority = Priority::OWNER;
        let subscription =
            BUS.subscribe_irq_line(line, self.module, priority, capacity, policy, handler)?;
        self.subscriptions.push((EventKind::Irq, priority, subscription));
        Ok(())
    }
}

impl Registrar {
    /// Joins interrupt `line` as one of several devices sharing it: `is_mine` answers whether
    /// this device raised the interrupt. Handlers are asked in order of how often they claimed
    /// the line (see `events::SharedLine`); an interrupt nobody claims counts as spurious.
    /// Shared-line handlers stay for the kernel's lifetime.
    pub fn subscribe_shared_irq(
        &mut self,
        line: u8,
        is_mine: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) -> Result<(), ModuleError> {
        BUS.shared_irq_line(line, crate::events::Asking::UntilClaimed)?.add(self.module, is_mine);
        Ok(())
    }
}

struct Loaded {
    module: &'static dyn Module,
    is_driver: bool,
    subscriptions: Vec<(EventKind, Priority, Subscription)>,
    error: Option<String>,
}

static LOADED: IrqMutex<Vec<Loaded>> = IrqMutex::new(Vec::new());

/// What `modules` shows of one module.
#[derive(Clone, Debug)]
pub struct ModuleInfo {
    /// Its name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Whether it is a driver.
    pub is_driver: bool,
    /// Where it subscribed.
    pub subscriptions: Vec<(EventKind, Priority)>,
    /// Its statistics line.
    pub stats: Option<String>,
    /// Why it failed to start, if it did.
    pub error: Option<String>,
}

fn start(module: &'static dyn Module, is_driver: bool) {
    let mut registrar = Registrar { module: module.name(), subscriptions: Vec::new() };
    let (subscriptions, error) = match module.init(&mut registrar) {
        Ok(()) => (registrar.subscriptions, None),
        Err(error) => {
            log::error!("module {}: failed to start: {error}", module.name());
            // Dropping the registrar's subscriptions unsubscribes them.
            (Vec::new(), Some(format!("{error}")))
        }
    };
    LOADED.lock().push(Loaded { module, is_driver, subscriptions, error });
}

/// Starts every driver in `drivers`, then every module.
pub fn init(drivers: &[&'static dyn Module]) {
    for driver in drivers {
        start(*driver, true);
    }
    for module in MODULES {
        start(*module, false);
    }
    let loaded = LOADED.lock();
    let names: Vec<&str> = loaded.iter().map(|l| l.module.name()).collect();
    log::info!("{}", names.join(", "));
}

/// Every started module and driver.
pub fn list() -> Vec<ModuleInfo> {
    LOADED
        .lock()
        .iter()
        .map(|loaded| ModuleInfo {
            name: loaded.module.name(),
            description: loaded.module.description(),
            is_driver: loaded.is_driver,
            subscriptions: loaded.subscriptions.iter().map(|(k, p, _)| (*k, *p)).collect(),
            stats: loaded.module.stats(),
            error: loaded.error.clone(),
        })
        .collect()
}

/// Turns the system-call tracer on or off (the shell's `trace`).
pub fn set_tracing(enabled: bool) {
    tracer::set_enabled(enabled);
}

/// Declares the module files and the start-up list in one place.
macro_rules! modules {
    ($($name:ident),* $(,)?) => {
        $(mod $name;)*

        /// Every module, in start-up order.
        static MODULES: &[&dyn Module] = &[$(&$name::MODULE),*];
    };
}

/// How the tracer shows a Linux call's arguments (a helper, not a module).
mod linux_arguments;

// Add a module: create `src/modules/<name>.rs` with `pub(super) static MODULE`, then add its
// name here.
modules! {
    tracer,
    fault_stats,
    heartbeat,
    farewell,
}
