//! Routes the `log` records of `virtio-drivers` to the UART console.
//!
//! Only warnings and errors are shown: the crate logs every feature
//! negotiation at info level, which the kernel reports itself.

use log::{LevelFilter, Log, Metadata, Record};

struct UartLogger;

impl Log for UartLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= LevelFilter::Warn
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            println!("[{} {}] {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: UartLogger = UartLogger;

/// Installs the UART logger (once; a second call changes nothing).
pub fn init() {
    // The only failure is "a logger is already set", which leaves that one in place.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Warn);
}
