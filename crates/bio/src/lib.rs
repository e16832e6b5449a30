//! Block-I/O descriptors that remember where each page came from.
//!
//! A [`BioVec`] is the 2019 proposal's `bio_vec`: a tagged page-frame word
//! ([`TaggedPfn`]: the page and its [`Origin`], pinned, referenced or
//! borrowed), a length and an offset, 16 bytes on 64-bit like Linux's. A
//! [`Bio`] is a request over caller-provided bvec storage ([`BvecStorage`]:
//! a `heapless::Vec` or a [`BvecSlice`], up to [`BIO_MAX_VECS`] bvecs) with
//! an operation, a status, a [`BvecIter`] and an [`OriginSet`] summary, so
//! completion knows in O(1) whether it has anything to release and, per
//! bvec, how. Iteration follows Linux's multi-page bvecs: a bvec may span
//! physically contiguous pages, [`Bio::segments`] yields whole segments and
//! [`Bio::pages`] single-page pieces clipped to page boundaries, each
//! keeping its origin. The page size is a [`PageGeometry`] value the
//! embedder picks once and passes in [`BioLimits`].
//!
//! The rules, each enforced by the builder and tested:
//!
//! - **Merging keeps origins apart.** [`Bio::add_page`] merges a fragment
//!   into the last bvec only when it starts exactly where that bvec ends
//!   physically and has the same origin. The 2019 patch merged regardless
//!   and silently kept the old flag; here a pinned fragment never joins a
//!   referenced bvec or the reverse.
//! - **One reference per page per bvec.** Completion releases each page of
//!   each bvec once. When a fragment merges inside a page the last bvec
//!   already holds, the add returns [`Added::MergedDuplicatePin`] (or
//!   [`Added::MergedDuplicateRef`]) and the caller drops its extra pin (or
//!   reference) at once, as Linux's direct-I/O path does.
//! - **Nothing leaks on error.** A refused add changes nothing and returns
//!   an [`AddError`] holding the fragment as passed: the caller still owns
//!   its reference. Every limit (vec count, segment size, total size below
//!   `u32::MAX`, DMA alignment) has its own [`BioError`] variant carrying the
//!   values.
//! - **Only the owner releases.** [`Bio::split`] returns a [`BioSplit`]
//!   sharing the table; it has no way to release, and its borrow keeps the
//!   owner from being released while it exists. The owner releases every
//!   bvec in [`Bio::bvecs`], wherever its iterator stands.
//! - **Stored offsets are below the page size.** Folio and multi-page adds
//!   are normalised to the page holding the first byte, and every bvec the
//!   crate yields has the same form. A bvec with no page ([`BioVec::NONE`])
//!   is representable, has no bytes, is skipped by iteration and refused by
//!   the builder.
//! - **Alignment.** Each fragment's offset and length must meet the DMA
//!   alignment when added; the bio as a whole, and each split point, must be
//!   a whole number of logical blocks ([`Bio::validate`], [`Bio::split`]).
//!
//! ```
//! use gupio_bio::{Added, Bio, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
//!
//! let mut table = heapless::Vec::<_, 16>::new();
//! let mut bio = Bio::new(&mut table, BioOp::Read, Sector(2048), BioLimits::default());
//! // Two pinned user pages that happen to be physically contiguous, then a
//! // borrowed kernel page.
//! assert_eq!(bio.add_page(Pfn::new(0x500), 4096, 0, Origin::Pinned)?, Added::NewVec);
//! assert_eq!(bio.add_page(Pfn::new(0x501), 4096, 0, Origin::Pinned)?, Added::Merged);
//! assert_eq!(bio.add_page(Pfn::new(0x502), 4096, 0, Origin::Borrowed)?, Added::NewVec);
//! assert_eq!(bio.vcnt(), 2);
//! assert!(bio.needs_release());
//! bio.validate()?;
//!
//! // The device takes 8 KiB at a time: split off the front part.
//! {
//!     let front = bio.split(SectorCount(16))?;
//!     assert!(front.pages().all(|p| p.origin() == Some(Origin::Pinned)));
//! }
//! assert_eq!((bio.sector(), bio.size()), (Sector(2064), 4096));
//!
//! // At completion the owner walks every page of every bvec.
//! let pinned = bio.all_pages().filter(|p| p.origin() == Some(Origin::Pinned)).count();
//! assert_eq!(pinned, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bio;
mod bvec;
mod error;
mod iter;
mod limits;
mod op;
mod sector;
mod split;
mod storage;
mod window;

pub use bio::build::Added;
pub use bio::Bio;
pub use bvec::BioVec;
pub use error::{AddError, BioError, Limit};
pub use iter::{BvecIter, Pages, Segments};
pub use limits::{BioLimits, BIO_MAX_VECS};
pub use op::{BioOp, BioStatus, OriginSet};
pub use sector::{Sector, SectorCount, SECTOR_SHIFT, SECTOR_SIZE};
pub use split::BioSplit;
pub use storage::{BvecSlice, BvecStorage};

pub use gupio_pfn::{Folio, FolioOrder, Origin, PageGeometry, Pfn, PfnError, TaggedPfn};
