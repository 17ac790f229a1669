//! The `log` backend: timestamped records to the console, filtered by level.
#![forbid(unsafe_code)]

use log::{LevelFilter, Log, Metadata, Record};

use crate::arch;

/// Level used unless changed at run time with [`set_level`].
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::Info;

struct ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let uptime_ms = arch::milliseconds();
        let (seconds, milliseconds) = (uptime_ms / 1000, uptime_ms % 1000);
        // The room, not the module path: `herald::security::hooks` prints as `security`.
        let target = record.target();
        let room = target.split("::").nth(1).unwrap_or(target);
        crate::println!(
            "[{seconds:5}.{milliseconds:03}] {:5} {room}: {}",
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console logger at [`DEFAULT_LEVEL`]. Safe to call more than once.
pub(crate) fn init() {
    // A second call finds the logger already set, which is the state we want.
    let _ = log::set_logger(&LOGGER);
    set_level(DEFAULT_LEVEL);
}

/// Changes which records are printed.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}
