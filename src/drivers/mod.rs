//! Device drivers, as bus subscribers: each takes its device's interrupt line as a deferred
//! handler (the bottom half runs in the idle task with the line masked until it is done, so a
//! chatty device is paced by its driver) and feeds what it reads into the console input, where
//! it registers to be asked again once the reader has made room. Drivers are modules
//! (`modules::Module`) started before all others.
#![forbid(unsafe_code)]

mod keyboard;
mod serial;

use crate::modules::Module;

/// Every driver, in start-up order.
pub(crate) static DRIVERS: &[&dyn Module] = &[&serial::DRIVER, &keyboard::DRIVER];
