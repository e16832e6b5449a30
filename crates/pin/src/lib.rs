//! Page and folio counters, the GUP pin tracker, and `pin_user_pages`.
//!
//! A kernel embeds a [`PageCounters`] in each page's descriptor and describes
//! its memory through two traits: [`MemoryMap`] (where the counters of a
//! page-frame number live, which page is the zero page, which pages may be
//! pinned long term) and [`PageOps`] (freeing a folio whose last reference
//! dropped, locking and dirtying, the warn hook, pin accounting). A
//! [`Tracker`] over those traits takes and drops references and pins with
//! Linux's semantics: a pin on a small page adds [`GUP_PIN_COUNTING_BIAS`]
//! references, a pin on a large folio one reference and one exact pin, so
//! [`maybe_dma_pinned`] never misses a pin. Arrays and ranges of pages cost
//! one atomic read-modify-write per folio run, not per page. Every increment
//! is checked against [`REFCOUNT_MAX`] before it commits (no user can wrap a
//! count: the CVE-2019-11487 class), every decrement refuses to go below what
//! the caller may hold, and the zero page is never pinned.
//! [`Tracker::pin_user_pages`] and [`Tracker::get_user_pages`] resolve user
//! addresses through the embedder's [`AddressSpace`] with Linux's `FOLL_*`
//! rules ([`GupFlags`]), refusing what the mapping decides
//! ([`MappingKind`]) before any fault or count change;
//! [`Tracker::pin_user_pages_longterm`] also charges the pins to their
//! owner's [`PinAccount`] against its limit, and [`fork_action`] tells an
//! embedder's fork which anonymous pages to copy for the child because a
//! device may hold them pinned. The crate owns algorithms and counter
//! types, never memory.
//!
//! ```
//! use gupio_pfn::Pfn;
//! use gupio_pin::{maybe_dma_pinned, ArrayMemoryMap, FolioOrder, MemoryMap, PageRange, Tracker};
//!
//! // Sixteen pages of RAM; an order-3 folio (8 pages) at pfn 8, holding its
//! // allocation reference. A kernel implements `MemoryMap` and `PageOps`
//! // over its own `struct page` array instead.
//! let ram = ArrayMemoryMap::<16>::new(Pfn::new(0));
//! ram.prepare_folio(Pfn::new(8), FolioOrder::try_new(3).unwrap()).unwrap();
//! let tracker = Tracker::new(&ram);
//! let range = PageRange::new(Pfn::new(10), 4);
//! tracker.pin_range(range).unwrap(); // one refcount and one pincount update
//! assert!(maybe_dma_pinned(&ram, Pfn::new(15)).unwrap());
//! assert_eq!(ram.counters(Pfn::new(8)).unwrap().pincount(), 4);
//! tracker.unpin_range(range).unwrap();
//! assert!(!maybe_dma_pinned(&ram, Pfn::new(15)).unwrap());
//! assert_eq!((ram.stats().acquired(), ram.stats().released()), (4, 4));
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod counters;
#[doc(hidden)]
pub mod doc_fixtures;
mod error;
mod fork;
mod gup;
mod held;
mod map;
mod protect;
mod range;
mod space;
mod tracker;

#[cfg(any(test, loom))]
#[doc(hidden)]
pub mod testing;

pub use account::{PinAccount, ACCOUNT_UNIT};
#[cfg(all(feature = "rmw-stats", not(loom)))]
pub use counters::rmw_stats;
pub use counters::{FolioShape, PageCounters, PageFlags, GUP_PIN_COUNTING_BIAS, REFCOUNT_MAX};
pub use error::{PinError, Warning};
pub use fork::{fork_action, ForkAction};
pub use gup::{GupFlags, UserPages, FAULT_RETRIES};
pub use gupio_pfn::{Folio, FolioOrder};
pub use held::HeldRun;
pub use map::{
    maybe_dma_pinned, ArrayMemoryMap, FolioRef, MemoryMap, PageOps, PinStats, WARNING_LOG_LEN,
};
pub use protect::ProtectError;
pub use range::PageRange;
pub use space::{AddressSpace, FaultKind, MappedRun, Mapping, MappingFlags, MappingKind, UserAddr};
pub use tracker::{GrabKind, Tracker};
