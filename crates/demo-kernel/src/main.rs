//! gupio's demo kernel: a bare-metal riscv64 kernel for QEMU's `virt` machine.
//!
//! Booted with `qemu-system-riscv64 -M virt -bios none -kernel <elf>`, it runs
//! in machine mode on hart 0 without paging (every address is physical, the
//! identity mapping), reads RAM and the timer rate from the device tree QEMU
//! passes, drives a virtio-blk device over virtio-mmio by polling, and reports
//! on the ns16550a UART. It powers off through the SiFive test finisher: QEMU
//! exits with 0 when every check held and with a non-zero status otherwise.
//! `cargo xtask qemu` builds it, creates the disk image, runs QEMU and checks
//! the image afterwards.
//!
//! It runs in three phases. Phase 1 (`selftest`) checks the hardware side:
//! virtio-blk DMA into frames of free RAM. Phase 2 (`scenario`) links gupio
//! the way a kernel does: a memory map whose page descriptors embed gupio's
//! counters, a "user" address space, bios built from pinned user pages and
//! referenced and borrowed kernel pages, DMA straight into them, and release
//! by origin; it checks the data and that every counter is back at baseline.
//! Phase 3 (`files`) keeps files: a FAT32 filesystem (embedded-sdmmc) on a
//! second virtio-blk drive, through a page cache of gupio-tracked folios
//! with writeback by gupio-writeback, direct I/O from an `mmap` of the
//! page cache under writeback, and a manifest that `cargo xtask qemu`
//! checks on the image with `fsck.fat` and mtools.
//!
//! Modules: `boot` (entry, trap vector), `uart` (console, `println!`),
//! `finisher` (power-off), `fatal` (panic and trap reports), `fdt` and `mem`
//! (RAM, free frames), `time` (mtime), `virtio` (the `Hal` and the block
//! driver), `pattern` (the disk image's contents, shared with xtask),
//! `selftest` (phase 1), and for phase 2: `pagemap` (gupio's `MemoryMap` and
//! `PageOps`: page descriptors, allocator, zero page, warn hook), `physmem`
//! (byte access and DMA buffers), `userspace` (gupio's `AddressSpace`:
//! software page tables), `blk` (bios to virtio-blk requests) and
//! `scenario`; for phase 3: `pagecache` (the page cache, gupio-writeback's
//! `WritebackIo`, embedded-sdmmc's block device), `checksum` (shared with
//! xtask) and `files`.

#![no_std]
#![no_main]

#[macro_use]
mod uart;

mod blk;
mod boot;
mod checksum;
mod fatal;
mod fdt;
mod files;
mod finisher;
mod logger;
mod mem;
mod pagecache;
mod pagemap;
mod pattern;
mod physmem;
mod scenario;
mod selftest;
mod time;
mod userspace;
mod virtio;

use core::fmt::Display;
use core::num::NonZeroU64;

use crate::fdt::DeviceTree;
use crate::mem::{FrameAllocator, MemoryLayout};
use crate::time::Clock;

/// The last line of a successful run; `cargo xtask qemu` looks for it.
const PASS_LINE: &str = "gupio-demo-kernel: PASS";
/// The last line of a failed run.
const FAIL_LINE: &str = "gupio-demo-kernel: FAIL";

/// Reports a failure before the self test could start and powers off.
fn boot_failure(what: &str, error: impl Display) -> ! {
    println!("boot failed: {what}: {error}");
    println!("{FAIL_LINE}");
    finisher::poweroff(false)
}

/// The kernel's Rust entry, called by `_start` on hart 0 with the boot stack
/// set up and `.bss` zeroed.
///
/// `device_tree_address` is the physical address QEMU passed in `a1`.
extern "C" fn kmain(hart_id: usize, device_tree_address: usize) -> ! {
    uart::init();
    logger::init();
    println!();
    println!(
        "gupio-demo-kernel {}: riscv64 M-mode, hart {hart_id}, device tree at {device_tree_address:#x}",
        env!("CARGO_PKG_VERSION")
    );

    // SAFETY: QEMU's reset code passes in a1 the address of the device tree
    // blob it placed in RAM; nothing writes it: `MemoryLayout::discover` keeps
    // it out of free RAM, and nothing else in the kernel writes memory it does
    // not own.
    let device_tree = match unsafe { DeviceTree::from_address(device_tree_address) } {
        Ok(device_tree) => device_tree,
        Err(error) => boot_failure("device tree", error),
    };
    let layout = match MemoryLayout::discover(&device_tree, device_tree_address) {
        Ok(layout) => layout,
        Err(error) => boot_failure("memory layout", error),
    };
    println!("RAM          {}", layout.ram);
    println!("kernel image {}", layout.kernel);
    println!(
        "boot stack   {} (guard page {})",
        mem::boot_stack(),
        mem::boot_stack_guard()
    );
    println!("device tree  {}", layout.device_tree);
    println!(
        "free RAM     {} ({} frames)",
        layout.free,
        layout.free.len() / mem::PAGE_SIZE
    );
    let Some(timebase) = NonZeroU64::new(layout.timebase_hz) else {
        boot_failure("timer", "timebase frequency is zero")
    };
    let clock = Clock::new(timebase);
    println!("timebase     {} Hz", layout.timebase_hz);

    // SAFETY: `layout.free` is page-aligned RAM past the kernel image and its
    // stacks, clear of the device tree and reservations (`discover` checked),
    // identity mapped, and this is the only allocator over it.
    let mut frames = unsafe { FrameAllocator::new(layout.free) };

    println!("phase 1 self test: virtio-blk DMA into frames of free RAM");
    match selftest::run(&mut frames, clock) {
        Ok(summary) => println!("self test passed: {summary}"),
        Err(error) => {
            println!("self test failed: {error}");
            println!("{FAIL_LINE}");
            finisher::poweroff(false)
        }
    }

    println!("phase 2 scenario: gupio-tracked pages under virtio-blk DMA");
    let (summary, verdict) = scenario::run(&mut frames, clock);
    summary.print();
    println!(
        "frames used {} of {} (free RAM {})",
        frames.managed().len() / mem::PAGE_SIZE - frames.free_pages(),
        frames.managed().len() / mem::PAGE_SIZE,
        frames.managed()
    );
    if let Err(error) = verdict {
        println!("scenario failed: {error}");
        println!("{FAIL_LINE}");
        finisher::poweroff(false)
    }
    println!("scenario passed");

    println!("phase 3 files: FAT32 on the second drive through a gupio page cache");
    let facts = match device_tree.facts() {
        Ok(facts) => facts,
        Err(error) => boot_failure("device tree", error),
    };
    let (summary, verdict) = files::run(&mut frames, clock, facts.bootargs());
    summary.print();
    match verdict {
        Ok(()) => {
            println!("files passed");
            println!("{PASS_LINE}");
            finisher::poweroff(true)
        }
        Err(error) => {
            println!("files failed: {error}");
            println!("{FAIL_LINE}");
            finisher::poweroff(false)
        }
    }
}
