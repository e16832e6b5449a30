//! Machine-mode entry point and fatal-trap vector.
//!
//! QEMU `virt` with `-bios none` starts every hart at its reset vector, which
//! jumps to `_start` (0x8000_0000, see `linker.ld`) with `a0` = hart id and
//! `a1` = physical address of the flattened device tree. `_start` parks every
//! hart but hart 0, masks interrupts, installs the trap vector, turns the FPU
//! on (the hard-float target may emit FP instructions), arms a PMP guard page
//! below the boot stack, zeroes `.bss`, and calls [`crate::kmain`] with `a0`
//! and `a1` intact.
//!
//! The kernel never expects a trap: `_trap_entry` switches to its own stack
//! (so a stack overflow still reports) and calls [`crate::fatal::trap_handler`],
//! which prints the cause and powers off.
//!
//! By hand rather than with `riscv-rt`: that crate's start-up and linker
//! script arm no guard page below the stack and take traps on the stack
//! that faulted, and this kernel needs both the PMP guard and a trap stack
//! of its own to report a stack overflow.

use core::arch::global_asm;

/// mstatus.FS = Initial: FP instructions allowed, FP state clean.
const MSTATUS_FS_INITIAL: usize = 1 << 13;
/// mstatus.MIE: global machine-mode interrupt enable.
const MSTATUS_MIE: usize = 1 << 3;
/// pmpcfg entry: locked (binds M-mode too), NAPOT-addressed, no R/W/X.
const PMP_LOCKED_NAPOT_NO_ACCESS: usize = 0x80 | 0x18;
/// Low pmpaddr bits selecting a 4 KiB NAPOT region: size / 8 - 1.
const PMP_NAPOT_4K: usize = 4096 / 8 - 1;

global_asm!(
    ".pushsection .text.entry, \"ax\", @progbits",
    ".globl _start",
    "_start:",
    // Interrupts stay off for the kernel's whole life: it polls.
    "    csrw mie, zero",
    "    csrci mstatus, {mstatus_mie}",
    "    csrr t0, mhartid",
    "    bnez t0, 9f",
    "    la t0, _trap_entry",
    "    csrw mtvec, t0",
    "    li t0, {mstatus_fs}",
    "    csrs mstatus, t0",
    "    csrw fcsr, zero",
    // Guard page: a locked PMP entry makes __stack_guard inaccessible even to
    // M-mode, so running off the bottom of the boot stack faults.
    "    la t0, __stack_guard",
    "    srli t0, t0, 2",
    "    ori t0, t0, {pmp_napot_4k}",
    "    csrw pmpaddr0, t0",
    "    li t0, {pmp_cfg}",
    "    csrw pmpcfg0, t0",
    "    la sp, __stack_top",
    // Zero .bss (8-byte aligned at both ends, see linker.ld).
    "    la t0, __bss_start",
    "    la t1, __bss_end",
    "1:  bgeu t0, t1, 2f",
    "    sd zero, 0(t0)",
    "    addi t0, t0, 8",
    "    j 1b",
    // a0 (hart id) and a1 (device tree) are untouched since reset.
    "2:  call {kmain}",
    // kmain never returns; park if it somehow does.
    "9:  wfi",
    "    j 9b",
    "",
    ".balign 4",
    "_trap_entry:",
    "    la sp, __trap_stack_top",
    "    csrr a0, mcause",
    "    csrr a1, mepc",
    "    csrr a2, mtval",
    "    call {trap_handler}",
    "8:  wfi",
    "    j 8b",
    ".popsection",
    mstatus_mie = const MSTATUS_MIE,
    mstatus_fs = const MSTATUS_FS_INITIAL,
    pmp_napot_4k = const PMP_NAPOT_4K,
    pmp_cfg = const PMP_LOCKED_NAPOT_NO_ACCESS,
    trap_handler = sym crate::fatal::trap_handler,
    kmain = sym crate::kmain,
);
