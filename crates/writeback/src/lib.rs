//! Writeback decisions for page-cache folios a device may still be writing into.
//!
//! Before writeback cleans a folio it asks [`maybe_dma_pinned`]; if a device
//! may hold a pin, the folio is not written in place and marked clean, but
//! handled by a pluggable [`PinnedPolicy`]: write a stable bounce copy and
//! keep it dirty ([`PinnedAction::Bounce`]), leave it dirty for a later pass
//! ([`PinnedAction::Skip`]), or wait for the pin to go away and then write
//! it ([`PinnedAction::Wait`]). This is the question the 2019 proposal to
//! track GUP pages through the block layer left open, and Linux still does:
//! its `pin_user_pages` documentation lists what writeback should do with a
//! pinned page as TODO. A [`Writeback`] engine runs the protocol below over
//! the embedder's memory map ([`PageOps`]) and block device ([`WritebackIo`]),
//! and counts what it did in [`WritebackStats`].
//!
//! ```
//! use core::cell::Cell;
//! use gupio_pfn::Pfn;
//! use gupio_pin::{ArrayMemoryMap, FolioRef, FolioOrder, MemoryMap, PageFlags, PageRange, Tracker};
//! use gupio_writeback::{Attempt, PinnedAction, Writeback, WritebackIo, WritebackStats};
//!
//! /// The block device: counts writes; waits by looking once.
//! #[derive(Default)]
//! struct Disk { in_place: Cell<usize>, bounced: Cell<usize> }
//! impl WritebackIo for Disk {
//!     type Error = i32;
//!     fn write_protect(&self, _: FolioRef<'_>) { /* clear the PTEs' write bits */ }
//!     fn write_in_place(&self, _: FolioRef<'_>) -> Result<(), i32> {
//!         Ok(self.in_place.set(self.in_place.get() + 1))
//!     }
//!     fn write_bounced(&self, _: FolioRef<'_>) -> Result<(), i32> {
//!         Ok(self.bounced.set(self.bounced.get() + 1))
//!     }
//!     fn wait_until_unpinned(&self, folio: FolioRef<'_>) -> bool { !folio.maybe_dma_pinned() }
//! }
//!
//! // gupio-pin's ready-made memory map (a kernel implements `PageOps` over
//! // its own page descriptors) holding a file's page cache: two dirty
//! // order-3 folios, pages 0..8 and 8..16.
//! let m = ArrayMemoryMap::<16>::new(Pfn::new(0));
//! for head in [0, 8] {
//!     let head = Pfn::new(head);
//!     m.prepare_folio(head, FolioOrder::try_new(3).unwrap()).unwrap();
//!     m.counters(head).unwrap().set_flags(PageFlags::DIRTY);
//! }
//! // A direct-I/O read into an mmap of the file pins one page of the large folio.
//! let tracker = Tracker::new(&m);
//! tracker.pin_page(Pfn::new(12)).unwrap();
//!
//! // Wait for short pins, bounce what stays pinned.
//! let policy = |_: FolioRef<'_>, attempt: Attempt| match attempt {
//!     Attempt::First => PinnedAction::Wait,
//!     Attempt::AfterWait => PinnedAction::Bounce,
//! };
//! let (disk, stats) = (Disk::default(), WritebackStats::new());
//! let wb = Writeback::new(&m, &disk, &stats);
//! let summary = wb.writeback_range(PageRange::new(Pfn::new(0), 16), &policy);
//! assert!(summary.is_ok());
//! assert_eq!(summary.counts.written_in_place, 1, "the unpinned folio");
//! assert_eq!(summary.counts.bounced, 1, "the pinned one: a stable copy");
//! assert!(m.counters(Pfn::new(8)).unwrap().flags().contains(PageFlags::DIRTY));
//!
//! // The I/O completes and unpins; the next pass writes the final contents.
//! tracker.unpin_page(Pfn::new(12)).unwrap();
//! let summary = wb.writeback_range(PageRange::new(Pfn::new(0), 16), &policy);
//! assert_eq!((summary.counts.clean, summary.counts.written_in_place), (1, 1));
//! assert!(!m.counters(Pfn::new(8)).unwrap().flags().contains(PageFlags::DIRTY));
//! assert_eq!((disk.in_place.get(), disk.bounced.get()), (2, 1));
//! ```
//!
//! # The hazard
//!
//! Writeback write-protects a folio's user mappings, marks it clean and
//! writes it, trusting that nothing can change it meanwhile without first
//! faulting and marking it dirty again. A folio pinned by `pin_user_pages`
//! escapes that: a device DMAs into it through the pin, behind the page
//! tables' back. If writeback writes such a folio in place,
//!
//! - the write is unstable: the disk receives a torn mix of old and new
//!   bytes, and any checksum, parity or encryption computed on the way no
//!   longer matches what was written (the reason Linux has stable pages,
//!   which stop CPU writes during writeback, not DMA through a pin);
//! - the folio is marked clean while the device is still changing it: the
//!   new data can be dropped with the folio, or a filesystem that released
//!   the folio's buffers when it became clean later finds it dirty behind
//!   its back (the ext4 warnings and crashes Jan Kara analysed in 2018).
//!
//! # The protocol, for one folio
//!
//! 1. Lock the folio ([`PageOps::lock_folio`], or [`PageOps::try_lock_folio`] in
//!    [`LockMode::NonBlocking`]). If its `WRITEBACK` bit is already set,
//!    writeback runs elsewhere: unlock, [`WritebackError::UnderWriteback`].
//! 2. Test and clear `DIRTY` with one read-modify-write
//!    ([`PageCounters::clear_flags`], `AcqRel`). Not dirty: unlock,
//!    [`Outcome::Clean`].
//! 3. Set `WRITEBACK`.
//! 4. Write-protect the folio's user mappings ([`WritebackIo::write_protect`]),
//!    then a `SeqCst` fence.
//! 5. Ask whether a device may hold a pin ([`FolioRef::maybe_dma_pinned`]:
//!    `Acquire` loads of the reference or pin count; the zero page never
//!    is). Not pinned: write in place ([`WritebackIo::write_in_place`]); the
//!    folio is now clean ([`Outcome::WrittenInPlace`]), or, if the write
//!    failed, dirty again and the error is returned.
//! 6. Maybe pinned: set `DIRTY` again at once, then follow the policy:
//!    [`PinnedAction::Bounce`] writes a copy ([`WritebackIo::write_bounced`]),
//!    [`PinnedAction::Skip`] writes nothing, [`PinnedAction::Wait`] finishes
//!    steps 7 and 8, waits unlocked ([`WritebackIo::wait_until_unpinned`])
//!    and runs steps 1 to 8 once more ([`Attempt::AfterWait`]).
//! 7. Clear `WRITEBACK`.
//! 8. Unlock ([`PageOps::unlock_folio`]).
//!
//! The engine never marks a folio clean except in step 5, after a pin check
//! that came after it took the dirty bit. Policies cannot change that: by
//! the time one is asked, the folio is dirty again.
//!
//! # Why a pin is never missed
//!
//! "Written in place and clean" must never happen to a folio a device may
//! still write into. Four kinds of pinner race with steps 2 to 5; each is
//! closed by an ordering it shares with writeback:
//!
//! - **The pinner dirties the folio by a read-modify-write after pinning**
//!   (the release path's `set_pages_dirty` before a direct-I/O read is
//!   submitted): pin (refcount RMW), then `set_flags(DIRTY)` (at least
//!   `Release`). Every RMW of the flags word is in its single modification
//!   order. If writeback's clear (step 2) comes first, the pinner's set
//!   comes after it and the folio ends dirty: nothing is lost whatever
//!   writeback wrote. Otherwise the clear, an RMW, reads the value the
//!   pinner's set wrote or one a later RMW wrote (RMWs continue a release
//!   sequence), so the set synchronizes-with the clear's `Acquire` half; the
//!   pin is sequenced before the set, so it happens-before step 5's load,
//!   which (by coherence) sees the pin or a later value: a pin, or the
//!   pinner's own unpin, after which no device writes.
//! - **The pinner checks `DIRTY` with a plain load** and sets it only if
//!   clear: pinner "write count, read flags", writeback "write flags, read
//!   count", the store-buffering shape, which `AcqRel` alone does not
//!   order. The pinner issues a `SeqCst` fence between pin and check
//!   (gupio's `pin_user_pages` does; a caller of `Tracker::pin_page` must
//!   issue its own), writeback the one in step 4. Of two `SeqCst` fences
//!   one comes first, so either the pinner sees `DIRTY` clear and sets it
//!   (the first case), or writeback sees the pin.
//! - **The pinner dirties under the folio lock** (`set_page_dirty_lock`,
//!   as Linux's `bio_set_pages_dirty` does): the lock orders it wholly
//!   before step 1 (the pin happens-before step 5) or wholly after step 8
//!   (the folio ends dirty).
//! - **The pinner does not dirty before the device writes** (a write pin
//!   through GUP-fast, dirtied only at completion): a write pin needs a
//!   writable PTE. Once step 4 made the PTEs read-only, a new one faults,
//!   and the fault waits for the folio lock and marks the folio dirty. A
//!   GUP-fast pinner that read the PTE before step 4 pins, issues a
//!   `SeqCst` fence and re-reads the PTE; with step 4's fence, either
//!   writeback sees the pin or the pinner sees the PTE changed, drops its
//!   pin and faults. The slow path holds the page-table lock, which
//!   `write_protect` takes too.
//!
//! gupio-pin's orderings carry this: `set_flags`/`clear_flags` are `AcqRel`
//! `fetch_or`/`fetch_and`, `maybe_dma_pinned` loads with `Acquire`, pins
//! add with `Relaxed` (ordered by whatever the pinner does next: the
//! `Release` set or the `SeqCst` fence), unpins subtract with `Release`.
//! The loom models in `tests/loom_writeback.rs` check the first three
//! cases (the second as gupio-release's `set_pages_dirty` after
//! `pin_user_pages` does it), and that the second does lose the dirty bit
//! without the pinner's fence.
//!
//! # Choosing a policy
//!
//! | policy | I/O while pinned | folio afterwards | good for |
//! |---|---|---|---|
//! | [`PinnedAction::Bounce`] | one copy and one write | dirty | long-term pins (RDMA), data-integrity sync |
//! | [`PinnedAction::Skip`] | none | dirty | background writeback; short pins |
//! | [`PinnedAction::Wait`] | none, then in place | clean if the pin went | `fsync` of a file under direct I/O |
//!
//! # Writeback by reason
//!
//! The engine knows why it runs ([`Writeback::with_reason`]): background
//! cleaning or data integrity ([`WritebackReason`]), and tells the policy
//! ([`PinnedPolicy::action_for`]). The default policy, [`ByReason::DEFAULT`],
//! skips pinned folios in background writeback and bounces them for
//! integrity, keeping them dirty either way: cleaning never copies a page
//! a later pass will write anyway, and an `fsync` never waits on a pin that
//! may last.
//!
//! A bounce copy is stable, not final: the device may be writing while the
//! folio is copied, so the copy can hold a mix, but it is the exact bytes
//! written (checksums match), and the folio stays dirty so a pass after the
//! unpin writes the final contents. Policies compose: a closure
//! `Fn(FolioRef<'_>, Attempt) -> PinnedAction` can wait first and bounce what
//! stays pinned, or bounce large folios and skip small ones.
//!
//! The answer is conservative where `maybe_dma_pinned` is: a small page
//! with 1024 or more plain references reads as pinned, and a read-only pin
//! (a direct-I/O write out of an mmap, which a device only reads) is not
//! told apart from a write pin, so such folios are bounced or skipped when
//! they did not need to be. Never the other way round.
//!
//! # What the embedder provides
//!
//! Its memory map and page hooks ([`PageOps`], from gupio-pin) and a
//! [`WritebackIo`]: write-protection, synchronous writes in place and
//! through a bounce buffer (it owns the buffers), and a bounded wait. Each
//! folio passed in must be referenced by the caller (the page cache's
//! reference), so it is neither freed nor re-shaped during the call.
//!
//! [`maybe_dma_pinned`]: gupio_pin::maybe_dma_pinned
//! [`PageOps`]: gupio_pin::PageOps
//! [`PageOps::lock_folio`]: gupio_pin::PageOps::lock_folio
//! [`PageOps::try_lock_folio`]: gupio_pin::PageOps::try_lock_folio
//! [`PageOps::unlock_folio`]: gupio_pin::PageOps::unlock_folio
//! [`PageCounters::clear_flags`]: gupio_pin::PageCounters::clear_flags
//! [`FolioRef::maybe_dma_pinned`]: gupio_pin::FolioRef::maybe_dma_pinned
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod doc_fixtures;
mod engine;
mod error;
mod io;
mod policy;
mod reason;
mod stats;

#[cfg(test)]
mod testing;

pub use engine::{LockMode, Outcome, Writeback, WritebackSummary};
pub use error::WritebackError;
pub use io::WritebackIo;
pub use policy::{Attempt, PinnedAction, PinnedPolicy};
pub use reason::{ByReason, WritebackReason};
pub use stats::{WritebackCounts, WritebackStats};
