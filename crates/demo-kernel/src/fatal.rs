//! The panic handler and the fatal-trap handler: report on the UART, power off.
//!
//! Both end QEMU with a non-zero exit status (see [`FailureCode`]), so
//! `cargo xtask qemu` fails and shows the report. A fault while reporting a
//! fault powers off at once with [`FailureCode::NestedFault`].

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::finisher::{self, FailureCode};
use crate::mem;

/// Set by the first panic or trap; a second one skips the report.
///
/// Only hart 0 runs, so Relaxed suffices: there is no other hart to pair with.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Returns false if a fault report is already under way.
fn begin_report() -> bool {
    !REPORTING.swap(true, Ordering::Relaxed)
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if !begin_report() {
        finisher::fail(FailureCode::NestedFault);
    }
    match info.location() {
        Some(location) => println!(
            "\nPANIC at {}:{}:{}: {}",
            location.file(),
            location.line(),
            location.column(),
            info.message()
        ),
        None => println!("\nPANIC: {}", info.message()),
    }
    println!("gupio-demo-kernel: FAIL (panic)");
    finisher::fail(FailureCode::Panic)
}

/// mcause bit that marks an interrupt rather than an exception.
const MCAUSE_INTERRUPT: usize = 1 << (usize::BITS - 1);
/// Exception code: load access fault.
const LOAD_ACCESS_FAULT: usize = 5;
/// Exception code: store/AMO access fault.
const STORE_ACCESS_FAULT: usize = 7;

fn exception_name(code: usize) -> &'static str {
    match code {
        0 => "instruction address misaligned",
        1 => "instruction access fault",
        2 => "illegal instruction",
        3 => "breakpoint",
        4 => "load address misaligned",
        LOAD_ACCESS_FAULT => "load access fault",
        6 => "store/AMO address misaligned",
        STORE_ACCESS_FAULT => "store/AMO access fault",
        8 => "environment call from U-mode",
        9 => "environment call from S-mode",
        11 => "environment call from M-mode",
        12 => "instruction page fault",
        13 => "load page fault",
        15 => "store/AMO page fault",
        _ => "reserved exception",
    }
}

/// Reports a trap that reached machine mode and powers off; called by `_trap_entry`.
///
/// The kernel enables no interrupt and expects no exception, so every trap is
/// fatal. Runs on the trap stack; registers are not saved since it never returns.
pub extern "C" fn trap_handler(mcause: usize, mepc: usize, mtval: usize) -> ! {
    if !begin_report() {
        finisher::fail(FailureCode::NestedFault);
    }
    if mcause & MCAUSE_INTERRUPT != 0 {
        let code = mcause & !MCAUSE_INTERRUPT;
        println!("\nTRAP: unexpected interrupt {code} at mepc {mepc:#x}");
    } else {
        let name = exception_name(mcause);
        println!("\nTRAP: {name} (mcause {mcause}) at mepc {mepc:#x}, mtval {mtval:#x}");
        let is_access_fault = mcause == LOAD_ACCESS_FAULT || mcause == STORE_ACCESS_FAULT;
        if is_access_fault && mem::boot_stack_guard().contains(mtval) {
            println!("TRAP: that is the boot stack's guard page: the boot stack overflowed");
        }
    }
    println!("gupio-demo-kernel: FAIL (trap)");
    finisher::fail(FailureCode::Trap)
}
