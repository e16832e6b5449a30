//! The completion path: every page of a finished bio released exactly once,
//! the right way for its origin.
//!
//! When a device finishes a bio, far from where the bio was built, the
//! block layer must give back what the builder took for each page: a pin
//! for pages from `pin_user_pages` (unpin), a reference for page-cache and
//! kernel pages (put), nothing for borrowed pages. The origin travels in
//! each bvec's tagged word ([`gupio_pfn::TaggedPfn`]), so
//! [`release_pages`] needs nothing but the bio and the embedder's
//! [`Tracker`](gupio_pin::Tracker). This crate adds what a completion path
//! needs around that:
//!
//! - **Dirtying.** A direct-I/O read lets the device write into the pages:
//!   [`set_pages_dirty`] before submission, [`release_pages`] with
//!   `mark_dirty`, or [`CompletedBio::complete_dio_read`] at completion,
//!   which releases at once when every page is still dirty and otherwise
//!   queues the bio on a [`DeferredList`] that a process-context worker
//!   drains with [`release_deferred`] (re-dirty, then release), as Linux's
//!   `bio_check_pages_dirty` does.
//! - **Ownership in types.** A built [`Bio`](gupio_bio::Bio) is consumed by
//!   [`SubmittedBio::submit`]; only [`SubmittedBio::complete`] gives it
//!   back, as a [`CompletedBio`], which only [`CompletedBio::release`]
//!   consumes. A split-off part ([`gupio_bio::BioSplit`]) has no way in.
//! - **Completion.** A [`Completion`] counts a bio's outstanding parts (its
//!   own I/O and each chained child), keeps the first error, lets exactly
//!   one reporter run `end_io`, and detects a second completion (warn hook
//!   and [`ReleaseError::DoubleCompletion`]) without releasing anything twice.
//!   [`SubmittedBio::end`] is the one rule for ending a lone bio from its
//!   interrupt handler: every outcome gives back a completed bio to release.
//! - **Its own warnings.** What only a bug can cause on this path (a bvec
//!   without a page, a second completion, a corrupt status word) is a
//!   [`ReleaseWarning`], reported through [`Warn`], which the embedder
//!   implements beside the tracker's [`PageOps`](gupio_pin::PageOps);
//!   [`AnyWarning`] is either crate's warning, for one warn function.
//! - **Building from user memory.** [`add_user_range`] pins a user buffer
//!   through the embedder's address space and fills a bio with one pin per
//!   page, handing back every pin that did not fit.
//!
//! Nothing here allocates or blocks except [`release_deferred`] and
//! `mark_dirty` releases, which lock pages. The paths an interrupt-context
//! completion takes ([`Completion`], [`release_pages`] without dirtying,
//! [`check_pages_dirty`], [`DeferredList::push`] with interrupts off) are
//! lock-free on gupio-sync atomics, bar the deferred list's short spin lock.
//!
//! ```
//! use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
//! use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, Tracker};
//! use gupio_release::{AnyWarning, Completion, SubmittedBio};
//!
//! // A map whose one warn hook logs the tracker's and the release path's warnings.
//! let map = ArrayMemoryMap::<4, AnyWarning>::new(Pfn::new(0));
//! map.prepare_folio(Pfn::new(0), FolioOrder::try_new(2).unwrap()).unwrap();
//! let tracker = Tracker::new(&map);
//! tracker.pin_page(Pfn::new(1)).unwrap(); // a user page, pinned
//!
//! let mut table = heapless::Vec::<_, 4>::new();
//! let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
//! let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
//! let completion = Completion::new();
//! completion.start()?;
//! let in_flight = SubmittedBio::submit(bio).map_err(|(_, e)| e)?;
//! // ... the device DMAs into pfn 1, then its interrupt handler runs:
//! let ended = in_flight.end(&completion, BioStatus::Ok, &map);
//! assert_eq!(ended.result, Ok(BioStatus::Ok));
//! let released = ended.bio.release(&tracker, true);
//! assert_eq!(released.result?.unpinned, 1);
//! assert_eq!(map.counters(Pfn::new(0)).unwrap().pincount(), 0);
//! assert_eq!(map.warnings(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod completion;
mod deferred;
mod end;
mod error;
mod extract;
mod release;
pub mod stable;
mod submit;
mod warning;

pub use completion::{ChildToken, Completion, Ending};
pub use deferred::{DeferredFull, DeferredList};
pub use end::Ended;
pub use error::ReleaseError;
pub use extract::{add_held_run, add_user_range, RunRefused};
pub use release::{check_pages_dirty, release_pages, set_pages_dirty, ReleaseStats};
pub use stable::{
    bounce_bio, bounce_piece, for_each_checksum, pinned_elsewhere, verify_pages, Bounced, BySize,
    FaultChoice, FaultResolution, Mismatch, ProtectWindow, StableCounts, StableError, StableIo,
    StableMode, StablePolicy, StableStats, StableWrite,
};
pub use submit::{release_deferred, CompletedBio, DioRead, Released, SubmittedBio};
pub use warning::{AnyWarning, ReleaseWarning, Warn};

#[cfg(test)]
mod tests;
