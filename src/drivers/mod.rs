//! Device drivers, as bus subscribers: each takes its device's interrupt line as a deferred
//! handler (the bottom half runs in the idle task with the line masked until it is done, so a
//! chatty device is paced by its driver) and feeds what it reads into the console input.
//! Drivers are modules (`modules::Module`) started before all others.

mod keyboard;
mod serial;

use crate::modules::Module;

/// Every driver, in start-up order.
pub(crate) static DRIVERS: &[&dyn Module] = &[&serial::DRIVER, &keyboard::DRIVER];

/// Reads what the input devices held back while the console buffer was full. Called by the
/// shell once it has made room (an edge-triggered line raises no new interrupt for data that
/// was already waiting).
pub(crate) fn poll_input() {
    serial::DRIVER.drain();
    keyboard::DRIVER.drain();
}
