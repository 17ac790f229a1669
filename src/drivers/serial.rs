//! COM1 receive: on IRQ 4 the bottom half drains the UART into the console input. While it
//! runs the line is masked and the UART keeps what arrives in its FIFO (QEMU's backend holds
//! back further input), so piped input is never dropped.

use alloc::{format, string::String};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::{
    arch::serial,
    console::input,
    events::OverflowPolicy,
    modules::{Module, ModuleError, Registrar},
};

/// Bytes received.
pub(super) struct SerialDriver {
    received: AtomicU64,
}

pub(super) static DRIVER: SerialDriver = SerialDriver { received: AtomicU64::new(0) };

/// Pending interrupts kept: the line is masked while one waits, so one is enough; coalescing
/// keeps the count honest if the device raises more.
const QUEUE_CAPACITY: usize = 2;

impl SerialDriver {
    /// Moves bytes from the UART into the console buffer while it has room; the rest stay in
    /// the UART (and QEMU's backend), so nothing is lost.
    pub(super) fn drain(&self) {
        while input::has_room() {
            let Some(byte) = serial::read_byte() else { break };
            self.received.fetch_add(1, Ordering::Relaxed);
            input::feed(byte);
        }
    }
}

impl Module for SerialDriver {
    fn name(&self) -> &'static str {
        "com1"
    }

    fn description(&self) -> &'static str {
        "COM1 receive (IRQ 4) into the console input"
    }

    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError> {
        input::register_source(|| DRIVER.drain());
        registrar.subscribe_irq_line(
            serial::COM1_IRQ_LINE,
            QUEUE_CAPACITY,
            OverflowPolicy::Coalesce,
            |_| self.drain(),
        )?;
        serial::enable_receive_interrupt();
        // Anything that arrived before the interrupt was on raises no edge: take it now.
        self.drain();
        Ok(())
    }

    fn stats(&self) -> Option<String> {
        Some(format!("{} bytes received", self.received.load(Ordering::Relaxed)))
    }
}
