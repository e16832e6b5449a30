//! Console output on the `virt` machine's ns16550a UART, and `print!`/`println!`.
//!
//! Output is polled (the transmit-holding-register-empty bit), with the UART's
//! interrupts off. The console has no state besides the device registers, so
//! any code, the panic and trap handlers included, can print without a lock;
//! only hart 0 runs, so lines never interleave.
//!
//! By hand rather than with a 16550 crate such as `uart_16550`: its driver
//! is a value that keeps its configuration and sends through `&mut self`,
//! so the panic and trap handlers would need a shared instance behind a
//! lock, which a fault in the middle of a print would leave held. Here the
//! console is the device registers alone.

use core::fmt;
use core::ptr;

/// Base address of the UART's registers on QEMU `virt` (`/soc/serial@10000000`).
const UART_BASE: usize = 0x1000_0000;
/// Transmit holding register (write).
const THR: usize = 0;
/// Interrupt enable register.
const IER: usize = 1;
/// FIFO control register (write).
const FCR: usize = 2;
/// Line control register.
const LCR: usize = 3;
/// Line status register.
const LSR: usize = 5;
/// LSR bit: the transmit holding register can take a byte.
const LSR_THR_EMPTY: u8 = 1 << 5;
/// LCR value: 8 data bits, no parity, one stop bit, divisor latch closed.
const LCR_8N1: u8 = 0b0000_0011;
/// FCR value: FIFOs enabled, both cleared.
const FCR_ENABLE_AND_CLEAR: u8 = 0b0000_0111;

fn write_register(register: usize, value: u8) {
    // SAFETY: UART_BASE + register (0..8) is the ns16550a's byte-wide register
    // block on QEMU `virt`, always mapped (M-mode, no paging); a volatile byte
    // store has no effect on memory the program uses.
    unsafe { ptr::write_volatile((UART_BASE + register) as *mut u8, value) }
}

fn read_register(register: usize) -> u8 {
    // SAFETY: as in `write_register`; reading LSR has no side effect.
    unsafe { ptr::read_volatile((UART_BASE + register) as *const u8) }
}

/// Puts the UART in a known state: 8N1, FIFOs on, no interrupts.
///
/// QEMU's model needs no baud rate, so the divisor is left as reset.
pub fn init() {
    write_register(IER, 0);
    write_register(LCR, LCR_8N1);
    write_register(FCR, FCR_ENABLE_AND_CLEAR);
}

fn put_byte(byte: u8) {
    while read_register(LSR) & LSR_THR_EMPTY == 0 {
        core::hint::spin_loop();
    }
    write_register(THR, byte);
}

/// The UART as a [`fmt::Write`] sink; `\n` goes out as `\r\n` for terminals.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                put_byte(b'\r');
            }
            put_byte(byte);
        }
        Ok(())
    }
}

/// Writes formatted text to the console; the target of `print!`/`println!`.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    // Console::write_str never fails.
    let _ = fmt::Write::write_fmt(&mut Console, args);
}

/// Prints to the UART console.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::uart::print_fmt(format_args!($($arg)*))
    };
}

/// Prints to the UART console, with a newline.
macro_rules! println {
    () => {
        $crate::uart::print_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::uart::print_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
