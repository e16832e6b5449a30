//! Power-off through the `virt` machine's SiFive test finisher.
//!
//! A 32-bit store to the finisher ends QEMU: `0x5555` exits with status 0;
//! `(code << 16) | 0x3333` exits with status `code`. This is how the kernel
//! reports its verdict to `cargo xtask qemu`.
//!
//! By hand: one store to a device register. An SBI system reset (`sbi-rt`)
//! needs firmware, which this kernel boots without (`-bios none`), and
//! carries no exit status.

use core::ptr;

/// Address of the test finisher on QEMU `virt` (`/soc/test@100000`).
const FINISHER_BASE: usize = 0x10_0000;
/// Finisher command: power off, QEMU exits with status 0.
const FINISHER_PASS: u32 = 0x5555;
/// Finisher command (low half): power off, QEMU exits with the high half.
const FINISHER_FAIL: u32 = 0x3333;

/// Why the kernel failed: QEMU's exit status.
///
/// Never zero: a failure code of 0 would make QEMU exit with success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum FailureCode {
    /// A check of the self test (or scenario) did not hold.
    CheckFailed = 1,
    /// The kernel panicked.
    Panic = 2,
    /// An unexpected trap (exception or interrupt) reached machine mode.
    Trap = 3,
    /// A panic or trap happened while reporting another one.
    NestedFault = 4,
}

impl FailureCode {
    /// The exit status QEMU reports for this failure.
    pub const fn exit_status(self) -> u16 {
        self as u16
    }
}

fn finish(command: u32) -> ! {
    // SAFETY: FINISHER_BASE is the sifive_test device's 32-bit register on
    // QEMU `virt` (M-mode, no paging); the store ends the machine and touches
    // no memory the program uses.
    unsafe { ptr::write_volatile(FINISHER_BASE as *mut u32, command) };
    // The store ends QEMU; this loop only runs on a machine without the device.
    loop {
        // SAFETY: `wfi` only stalls the hart until an interrupt is pending.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Powers the machine off: QEMU exits with 0 if `success`, otherwise with
/// [`FailureCode::CheckFailed`].
pub fn poweroff(success: bool) -> ! {
    if success {
        finish(FINISHER_PASS)
    } else {
        fail(FailureCode::CheckFailed)
    }
}

/// Powers the machine off with a failure: QEMU exits with `code`'s status.
pub fn fail(code: FailureCode) -> ! {
    finish((u32::from(code.exit_status()) << 16) | FINISHER_FAIL)
}
