//! A simulated machine for gupio: memory, page tables, a page cache and a block device that DMAs.
//!
//! gupio-host is the std-only harness the end-to-end tests, the fuzzer and
//! the demo run on. It embeds gupio the way a kernel would: [`Memory`] is
//! the memory map (frames with gupio's counters and their data, a zero
//! page, a page allocator that records double frees and finds leaks) and
//! implements [`MemoryMap`](gupio::embed::MemoryMap) and
//! [`PageOps`](gupio::embed::PageOps); a [`Process`] has mappings
//! (anonymous, zero-page, shared file, read-only file) and a page table,
//! and hands `pin_user_pages` a [`GupGuard`] implementing
//! [`AddressSpace`](gupio::embed::AddressSpace); the [`PageCache`] keeps
//! files in small pages and large folios and writes them back through
//! gupio's [`Writeback`](gupio::writeback::Writeback) engine (its
//! [`FileIo`] is the [`WritebackIo`](gupio::embed::WritebackIo)), or
//! through an untracked path that never asks whether a page is pinned; the
//! [`Device`] is an in-memory disk whose threads copy data into and out of
//! bio pages slowly, chunk by chunk, then complete the bio from the device
//! thread. The [`Machine`] wires them together, runs direct I/O the way
//! Linux does (pin, dirty, submit, complete, release or defer), and
//! [audits](Machine::audit) the result: pins balanced, every counter at
//! baseline, no leak, no double free, no warning.
//!
//! Two checks make the hazard gupio exists for visible. The page cache
//! computes a checksum of each page it submits for writing, and the device
//! recomputes it over what it wrote: a mismatch is an
//! [unstable write](UnstableWrite), a page that changed while it was being
//! written (what a checksumming filesystem or RAID parity later reports as
//! corruption). And [`PageCache::verify`] compares every page with its disk
//! copy once all I/O is done: a difference is a lost write. The [`demo`]
//! module runs the same direct-I/O-versus-writeback workload with and
//! without pin tracking and counts both.
//!
//! ```
//! use gupio::prelude::*;
//! use gupio::writeback::PinnedAction;
//! use gupio_host::{Machine, MachineConfig, WritebackMode};
//!
//! let machine = Machine::new(MachineConfig::small())?;
//! let file = machine.cache().create_file(8, &[2])?;   // an order-2 folio, 4 small pages
//! let process = machine.spawn_process();
//! let map = process.mmap_file(&file, 0, 8, true)?;    // shared, writable
//! let source = machine.cache().reserve_sectors(64)?;
//!
//! // O_DIRECT read into the mapping: the pages are pinned while the device fills them.
//! let io = machine.submit_dio_read(&process, map, 2 * 4096, Sector(source))?;
//! // Writeback meanwhile: gupio sees the pin and bounces a stable copy if
//! // it runs before the completion, or writes in place after it.
//! machine.cache().writeback(&file, WritebackMode::Tracked(PinnedAction::Bounce));
//! io.wait(&machine)?;
//! machine.quiesce();
//!
//! // The final writeback, then the checks.
//! machine.cache().writeback(&file, WritebackMode::Tracked(PinnedAction::Bounce));
//! assert!(machine.cache().verify(&file).is_ok());
//! assert_eq!(machine.device().stats().unstable_pages, 0);
//! assert!(machine.audit().is_clean());
//! # Ok::<(), gupio_host::HostError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod data;
pub mod demo;
pub mod device;
mod error;
pub mod machine;
pub mod memory;
pub mod space;

pub use cache::{CacheStats, File, FileCheck, FileId, FileIo, PageCache, WritebackMode};
pub use device::{
    Device, DeviceConfig, DeviceStats, Disk, EndIo, Fault, Gate, OwnedBvecs, UnstableWrite,
};
pub use error::{HostError, IoError};
pub use machine::{Audit, DioDone, Machine, MachineConfig, MachineStats, OffBaseline, PendingIo};
pub use memory::{AllocatedFolio, BadFree, BadFreeKind, Frame, Memory, MemoryStats};
pub use space::{GupGuard, MapKind, Process};
