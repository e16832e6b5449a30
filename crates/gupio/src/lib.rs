//! Page-origin tracking for block I/O: the one crate a kernel links.
//!
//! Every page in a block I/O request came from somewhere: the page cache or
//! a kernel allocation (a reference, released with `put_page`), a user
//! buffer pinned by `pin_user_pages` (a pin, released by unpinning: a
//! device may DMA into such a page at any moment), or a caller that keeps
//! ownership (borrowed: release does nothing). gupio stores a page-frame
//! number in each `bio_vec` and spends its two highest bits on that origin,
//! so the completion path, far from where the request was built, releases
//! each page the right way, and a filesystem can ask
//! [`maybe_dma_pinned`](pin::maybe_dma_pinned) before it writes a page back
//! and marks it clean.
//!
//! The crate is freestanding (`no_std`, no allocator, no `unsafe`) and owns
//! algorithms and counter types, never memory. It re-exports the workspace
//! crates as modules: [`pfn`] (the tagged word), [`bio`] (descriptors and
//! the builder), [`pin`] (page counters, the pin tracker, GUP), [`release`]
//! (completion and release), [`writeback`] (the filesystem side) and
//! [`sync`] (the atomics, loom under `cfg(loom)`). The [`prelude`] has what
//! most code needs, [`embed`] gathers the traits an embedder implements,
//! and [`Error`] is one error type every crate's error converts into.
//!
//! The design is written up in the repository's `docs/` directory:
//! `docs/architecture.md` (the crate map, the data path from pin to release
//! with the types that own the pages, the embedder traits),
//! `docs/ordering.md` (each memory-ordering argument and the loom model,
//! test or `cargo xtask mutants` mutation that fails without it) and
//! `docs/linux.md` (what gupio takes from Linux and where it differs).
//!
//! # Embedding gupio in a kernel
//!
//! 1. **Embed the counters.** Put a [`pin::PageCounters`] (16 bytes:
//!    reference count, exact pin count for large folios, flags, folio
//!    shape) in your `struct page`, or keep an array of them beside your
//!    page array; initialise each page's with [`pin::PageCounters::init`]
//!    when your allocator hands it out. [`pin::ArrayMemoryMap`] is a ready
//!    fixed-size map for small kernels and tests.
//! 2. **Implement [`embed::MemoryMap`]** (PFN to counters, which page is
//!    the zero page, which pages may be pinned long term) and
//!    **[`embed::PageOps`]** (free a folio whose last reference dropped,
//!    the tracker's warn hook, pin accounting, and optionally how to lock
//!    and dirty a folio), and, on the same type, **[`embed::Warn`]** (the
//!    release path's warn hook). Each crate names its own warnings
//!    ([`pin::Warning`], [`release::ReleaseWarning`]); both convert into
//!    [`release::AnyWarning`], so both hooks forward to one warn function
//!    of yours.
//! 3. **Implement [`embed::AddressSpace`]** over your page tables for
//!    `pin_user_pages` (answer `translate_run` natively: a huge mapping is
//!    then pinned in one step), and **[`embed::WritebackIo`]** in your
//!    filesystem if it uses the writeback policy.
//! 4. **Build, submit, complete, release.** Pin the user buffer and fill a
//!    bio ([`release::add_user_range`]; or take the pins as values with
//!    [`pin::Tracker::pin_user_pages`], whose [`pin::HeldRun`]s go into a
//!    bio with [`release::add_held_run`]; or [`bio::Bio::add_page`] with the
//!    page's [`Origin`](pfn::Origin)), submit it
//!    ([`release::SubmittedBio::submit`]) so ownership moves to the device,
//!    end it from the interrupt handler ([`release::SubmittedBio::end`]
//!    reports to its [`release::Completion`] and completes it, with an error
//!    when the completion did not finish it; a parent of chained bios asks
//!    the completion, which tells exactly one caller to run `end_io`), and
//!    release its pages by origin
//!    ([`release::CompletedBio::release`], or
//!    [`release::CompletedBio::complete_dio_read`] for direct-I/O reads).
//!
//! ```
//! use gupio::prelude::*;
//! use gupio::pin::{FaultKind, FolioRef, Mapping, MappingFlags, UserAddr};
//!
//! // 1-2. The machine: 64 frames from pfn 0x1000 with the kernel's hooks.
//! struct Kernel {
//!     ram: ArrayMemoryMap<64>,
//! }
//! impl MemoryMap for Kernel {
//!     fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
//!         self.ram.counters(pfn)
//!     }
//!     fn is_zero_page(&self, pfn: Pfn) -> bool {
//!         self.ram.is_zero_page(pfn)
//!     }
//! }
//! impl Kernel {
//!     /// The one warn hook: every gupio warning, of any crate, ends here.
//!     fn report(&self, warning: AnyWarning) {
//!         panic!("WARNING: {warning}") // a kernel prints a backtrace here
//!     }
//! }
//! impl PageOps for Kernel {
//!     fn free_folio(&self, folio: FolioRef<'_>) {
//!         PageOps::free_folio(&self.ram, folio) // back to the page allocator
//!     }
//!     fn warn(&self, warning: Warning) {
//!         self.report(warning.into())
//!     }
//!     fn pins_acquired(&self, pages: usize) {
//!         self.ram.pins_acquired(pages)
//!     }
//!     fn pins_released(&self, pages: usize) {
//!         self.ram.pins_released(pages)
//!     }
//! }
//! impl Warn for Kernel {
//!     fn warn(&self, warning: ReleaseWarning) {
//!         self.report(warning.into())
//!     }
//! }
//!
//! // 3. A process whose user address 0x40_0000 + n * 4096 maps frame 0x1010 + n.
//! struct Process;
//! impl AddressSpace for Process {
//!     fn page_geometry(&self) -> PageGeometry {
//!         PageGeometry::FOUR_KIB
//!     }
//!     fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
//!         let page = addr.get().checked_sub(0x40_0000).ok_or(FaultKind::Unmapped)? >> 12;
//!         let pfn = Pfn::new(0x1010).checked_add(page).ok_or(FaultKind::Unmapped)?;
//!         Ok(Some(Mapping::new(pfn, MappingFlags::WRITABLE)))
//!     }
//!     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> {
//!         Ok(())
//!     }
//! }
//!
//! let kernel = Kernel { ram: ArrayMemoryMap::new(Pfn::new(0x1000)) };
//! // The user buffer is one order-2 folio (4 pages) at 0x1010.
//! kernel.ram.prepare_folio(Pfn::new(0x1010), FolioOrder::try_new(2)?)?;
//! let tracker = Tracker::new(&kernel);
//!
//! // 4. A direct-I/O read of 8 KiB into the user buffer: pin, build, dirty, submit.
//! let mut table = heapless::Vec::<BioVec, 16>::new();
//! let mut bio = Bio::new(&mut table, BioOp::Read, Sector(2048), BioLimits::default());
//! let added = add_user_range(&tracker, &Process, &mut bio, UserAddr::new(0x40_0000), 8192,
//!                            GupFlags::WRITE)?;
//! assert_eq!(added, 8192);
//! assert!(maybe_dma_pinned(&kernel, Pfn::new(0x1011))?, "writeback must not clean it now");
//! set_pages_dirty(&tracker, &bio)?;
//! let completion = Completion::new();
//! completion.start()?;
//! let in_flight = SubmittedBio::submit(bio).map_err(|(_, error)| error)?;
//!
//! // ... the device DMAs into frames 0x1010 and 0x1011, then interrupts:
//! let ended = in_flight.end(&completion, BioStatus::Ok, &kernel);
//! assert_eq!(ended.result, Ok(BioStatus::Ok)); // on an error, still release the bio
//! let deferred: DeferredList<_, 8> = DeferredList::new();
//! match ended.bio.complete_dio_read(&tracker, &deferred) {
//!     Ok(DioRead::Released(released)) => { released.result?; }
//!     Ok(DioRead::Deferred) => { release_deferred(&deferred, &tracker, |_| {}); }
//!     Err(full) => { full.into_inner().release(&tracker, true).result?; }
//! }
//! assert!(!maybe_dma_pinned(&kernel, Pfn::new(0x1011))?);
//! assert_eq!(kernel.ram.stats().acquired(), kernel.ram.stats().released());
//! # Ok::<(), gupio::Error>(())
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;

pub use error::Error;

/// Page-frame numbers and the origin-tagged word ([`gupio_pfn`]).
pub mod pfn {
    pub use gupio_pfn::*;
}

/// Block-I/O descriptors, the iterator and the builder ([`gupio_bio`]).
pub mod bio {
    pub use gupio_bio::*;
}

/// Page counters, the pin tracker and `pin_user_pages` ([`gupio_pin`]).
pub mod pin {
    pub use gupio_pin::*;
}

/// The completion and release path ([`gupio_release`]).
pub mod release {
    pub use gupio_release::*;
}

/// The filesystem side: writeback of pages that may be DMA-pinned
/// ([`gupio_writeback`]).
pub mod writeback {
    pub use gupio_writeback::*;
}

/// The atomics and lock gupio uses, loom's under `cfg(loom)` ([`gupio_sync`]).
pub mod sync {
    pub use gupio_sync::*;
}

/// The traits an embedder implements, in one place.
///
/// - [`MemoryMap`](gupio_pin::MemoryMap): where the counters of a
///   page-frame number live, the zero page, which pages may be pinned long
///   term.
/// - [`PageOps`](gupio_pin::PageOps): freeing a folio whose last reference
///   dropped, the warn hook, pin accounting, locking and dirtying.
/// - [`AddressSpace`](gupio_pin::AddressSpace): translating and faulting in
///   user addresses for `pin_user_pages`.
/// - [`BvecStorage`](gupio_bio::BvecStorage): where a bio's bvec table
///   lives (implemented for `heapless::Vec` and slices already).
/// - [`WritebackIo`](gupio_writeback::WritebackIo): the filesystem's writes
///   (in place, bounced), its wait for an unpin, and write protection.
/// - [`Warn`](gupio_release::Warn): the release path's warn hook, for its
///   own [`ReleaseWarning`](gupio_release::ReleaseWarning)s; implement it
///   on the `PageOps` type and forward both hooks to one function taking an
///   [`AnyWarning`](gupio_release::AnyWarning).
pub mod embed {
    pub use gupio_bio::BvecStorage;
    pub use gupio_pin::{AddressSpace, MemoryMap, PageOps};
    pub use gupio_release::{StableIo, Warn};
    pub use gupio_writeback::WritebackIo;
}

/// What most code that builds and completes bios needs.
///
/// ```
/// use gupio::prelude::*;
/// let word = TaggedPfn::new(Pfn::new(7), Origin::Pinned);
/// assert_eq!(word.decode(), Some((Pfn::new(7), Origin::Pinned)));
/// ```
pub mod prelude {
    pub use crate::embed::*;
    pub use crate::Error;
    pub use gupio_bio::{
        Added, Bio, BioLimits, BioOp, BioStatus, BioVec, BvecIter, OriginSet, Sector, SectorCount,
    };
    pub use gupio_pfn::{Origin, PageGeometry, Pfn, TaggedPfn};
    pub use gupio_pin::{
        maybe_dma_pinned, ArrayMemoryMap, FolioOrder, GupFlags, PageCounters, PageFlags, PageRange,
        Tracker, Warning,
    };
    pub use gupio_release::{
        add_user_range, check_pages_dirty, release_deferred, release_pages, set_pages_dirty,
        AnyWarning, CompletedBio, Completion, DeferredList, DioRead, Ended, Ending, ReleaseWarning,
        SubmittedBio,
    };
    pub use gupio_writeback::{PinnedPolicy, Writeback};
}
