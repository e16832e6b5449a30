//! `Bio`: a block-I/O request over caller storage, its builder, and the
//! outcome of an add.

use core::cell::Cell;

use gupio_pfn::{Folio, Origin, PageGeometry, Pfn};

use crate::bvec::{in_page, page_index, BioVec};
use crate::error::{AddError, BioError};
use crate::iter::{BvecIter, Pages, Segments};
use crate::limits::BioLimits;
use crate::op::{BioOp, BioStatus, OriginSet};
use crate::sector::{Sector, SectorCount, SECTOR_SIZE};
use crate::split::{split_iter, BioSplit};
use crate::storage::BvecStorage;

/// What an add did with the fragment. Match on it: the two duplicate
/// outcomes leave the caller one reference to drop.
///
/// ```
/// use gupio_bio::{Added, Origin, Pfn};
/// let added = Added::MergedDuplicatePin { pfn: Pfn::new(3) };
/// assert_eq!(added.duplicate(), Some((Pfn::new(3), Origin::Pinned)));
/// assert!(added.merged());
/// assert_eq!(Added::NewVec.duplicate(), None);
/// ```
#[must_use = "a duplicate pin or reference reported here must be dropped by the caller"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Added {
    /// The fragment became a new bvec; the bio took its reference.
    NewVec,
    /// The fragment extended the last bvec; the bio took its reference
    /// (or, for borrowed pages, there is none).
    Merged,
    /// A pinned fragment extended the last bvec inside page `pfn`, which
    /// that bvec already pins: the bio keeps one pin on `pfn` and the
    /// caller must unpin the fragment's.
    MergedDuplicatePin {
        /// The page pinned twice.
        pfn: Pfn,
    },
    /// A referenced fragment extended the last bvec inside page `pfn`,
    /// which that bvec already references: the bio keeps one reference on
    /// `pfn` and the caller must put the fragment's.
    MergedDuplicateRef {
        /// The page referenced twice.
        pfn: Pfn,
    },
}

impl Added {
    /// The page whose extra pin or reference the caller must drop, and
    /// which kind it is.
    ///
    /// ```
    /// use gupio_bio::{Added, Origin, Pfn};
    /// let added = Added::MergedDuplicateRef { pfn: Pfn::new(4) };
    /// assert_eq!(added.duplicate(), Some((Pfn::new(4), Origin::Referenced)));
    /// ```
    #[inline]
    pub const fn duplicate(self) -> Option<(Pfn, Origin)> {
        match self {
            Self::NewVec | Self::Merged => None,
            Self::MergedDuplicatePin { pfn } => Some((pfn, Origin::Pinned)),
            Self::MergedDuplicateRef { pfn } => Some((pfn, Origin::Referenced)),
        }
    }

    /// Whether the fragment was merged into the last bvec.
    ///
    /// ```
    /// assert!(!gupio_bio::Added::NewVec.merged());
    /// ```
    #[inline]
    pub const fn merged(self) -> bool {
        !matches!(self, Self::NewVec)
    }
}

/// A block-I/O request: an operation, a device sector, a bvec table in
/// caller storage and an iterator over it, plus a summary of the origins of
/// its pages.
///
/// A `Bio` owns the page references its bvecs describe; only the owner
/// releases them, and it must release every page in [`bvecs`](Self::bvecs),
/// wherever the iterator stands. Parts cut off with [`split`](Self::split)
/// are [`BioSplit`] views that share the table but have no way to release.
/// `split` takes `&self` (the iterator sits in a `Cell`, so a `Bio` is not
/// `Sync`), so the front parts and the rest can be in flight together,
/// while the borrow they hold keeps the owner from adding pages, changing
/// status, or being handed to the release path until every part is gone.
///
/// Building follows Linux's `bio_add_page`, with the per-page origin of the
/// 2019 proposal and its merge flaw fixed: see [`add_page`](Self::add_page).
///
/// ```
/// use gupio_bio::{Added, Bio, BioLimits, BioOp, Origin, OriginSet, Pfn, Sector};
/// let mut table = heapless::Vec::<_, 8>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(64), BioLimits::default());
/// assert_eq!(bio.add_page(Pfn::new(10), 2048, 0, Origin::Pinned)?, Added::NewVec);
/// // The next 2 KiB of the same page: merged, and the page is now pinned twice.
/// let added = bio.add_page(Pfn::new(10), 2048, 2048, Origin::Pinned)?;
/// assert_eq!(added, Added::MergedDuplicatePin { pfn: Pfn::new(10) });
/// // ... so the caller unpins one of the two pins here.
/// // Page 11 continues the bvec across a page boundary: no duplicate.
/// assert_eq!(bio.add_page(Pfn::new(11), 4096, 0, Origin::Pinned)?, Added::Merged);
/// // A borrowed page never merges into pinned ones.
/// assert_eq!(bio.add_page(Pfn::new(12), 512, 0, Origin::Borrowed)?, Added::NewVec);
/// assert_eq!((bio.vcnt(), bio.size()), (2, 8704));
/// assert_eq!(bio.origins(), OriginSet::PINNED | OriginSet::BORROWED);
/// # Ok::<(), gupio_bio::AddError>(())
/// ```
#[derive(Debug)]
pub struct Bio<S> {
    storage: S,
    limits: BioLimits,
    op: BioOp,
    status: BioStatus,
    origins: OriginSet,
    /// Bytes in the whole table (or the discard range).
    total: u32,
    iter: Cell<BvecIter>,
}

// The owner, whose iterator is a Cell, can move to another thread but not
// be shared; the parts split off it can be both.
static_assertions::assert_impl_all!(Bio<heapless::Vec<BioVec, 4>>: Send);
static_assertions::assert_not_impl_any!(Bio<heapless::Vec<BioVec, 4>>: Sync);

impl<S: BvecStorage> Bio<S> {
    /// An empty bio over `storage`, starting at `sector`.
    ///
    /// Any bvecs already in `storage` are forgotten; as a `BioVec` holds no
    /// reference by itself, nothing is released. The bio holds at most
    /// `min(limits.max_vecs(), storage.capacity())` bvecs, never more than
    /// [`BIO_MAX_VECS`](crate::BIO_MAX_VECS).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// assert_eq!((bio.vcnt(), bio.max_vecs(), bio.size()), (0, 4, 0));
    /// ```
    pub fn new(mut storage: S, op: BioOp, sector: Sector, limits: BioLimits) -> Self {
        storage.clear();
        Self {
            storage,
            limits,
            op,
            status: BioStatus::Ok,
            origins: OriginSet::empty(),
            total: 0,
            iter: Cell::new(BvecIter::new(sector, 0)),
        }
    }

    /// Adds `len` bytes at `offset` in page `pfn`, whose reference of kind
    /// `origin` the bio takes over (`bio_add_page`).
    ///
    /// The fragment must lie inside the page: `offset + len` at most the
    /// page size (use [`add_folio`](Self::add_folio) for larger runs).
    ///
    /// **Merging.** The fragment is merged into the last bvec only when it
    /// starts exactly where that bvec ends physically (possibly at the start
    /// of the next page, making a multi-page bvec), has the same origin, and
    /// the merged bvec stays within the max segment size. A pinned fragment
    /// never merges into a referenced or borrowed bvec, nor the reverse: the
    /// 2019 patch merged regardless and silently kept the old bvec's flag,
    /// so a pin would have been released with `put_page`. Otherwise the
    /// fragment becomes a new bvec.
    ///
    /// **One reference per page.** At completion the owner releases each
    /// page of each bvec once. When a fragment merges into the last bvec
    /// inside a page that bvec already holds (the fragment starts mid-page),
    /// the bio would hold two pins (or references) on that page but release
    /// one, so the add reports [`Added::MergedDuplicatePin`] (or
    /// [`Added::MergedDuplicateRef`]) and the caller must drop the extra one
    /// at once, as Linux's direct-I/O path does when `bio_iov_iter` pages
    /// merge into the same page. Borrowed pages hold nothing and report
    /// [`Added::Merged`].
    ///
    /// Checks, in order: the operation carries data, `len` is not zero,
    /// the fragment fits the page, offset and length meet the DMA
    /// alignment, the bio's size stays within `u32::MAX`; then, if it
    /// cannot merge, `len` is within the max segment size and there is room
    /// for a bvec.
    ///
    /// # Errors
    /// [`BioError::OpMismatch`], [`BioError::ZeroLength`],
    /// [`BioError::PastPageRun`], [`BioError::Misaligned`],
    /// [`BioError::SizeOverflow`], [`BioError::SegmentTooLarge`],
    /// [`BioError::TooManyVecs`]. The bio is unchanged and the error hands
    /// the fragment back: the caller still owns its reference.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioError, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 8>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(10), 512, 0, Origin::Referenced)?;
    /// // Contiguous, but pinned: a new bvec, not a merge.
    /// let added = bio.add_page(Pfn::new(10), 512, 512, Origin::Pinned)?;
    /// assert!(!added.merged());
    /// let err = bio.add_page(Pfn::new(11), 4096, 512, Origin::Pinned).unwrap_err();
    /// assert_eq!(err.error(), BioError::PastPageRun { offset: 512, len: 4096, run_bytes: 4096 });
    /// # Ok::<(), gupio_bio::AddError>(())
    /// ```
    pub fn add_page(
        &mut self,
        pfn: Pfn,
        len: u32,
        offset: u32,
        origin: Origin,
    ) -> Result<Added, AddError> {
        let rejected = BioVec::new(pfn, origin, len, offset);
        let page_bytes = self.geometry().size_u64();
        self.check_fragment(len, rejected)?;
        if u64::from(offset) + u64::from(len) > page_bytes {
            return Err(AddError::new(
                BioError::PastPageRun {
                    offset,
                    len,
                    run_bytes: page_bytes,
                },
                rejected,
            ));
        }
        self.add_normalised(pfn, origin, len, offset, rejected)
    }

    /// Adds `len` bytes at byte `offset` of `folio`, which may span many
    /// pages (`bio_add_folio`); the bio takes over the caller's reference
    /// of kind `origin` on every page the bytes touch.
    ///
    /// The stored bvec starts at the page holding byte `offset`, with an
    /// offset below the page size. Merging, the one-reference-per-page rule
    /// and the checks are those of [`add_page`](Self::add_page), with the
    /// folio in place of the page: `offset + len` at most the folio size.
    /// A duplicate is reported for the fragment's first page only, the one
    /// page it can share with the last bvec.
    ///
    /// # Errors
    /// As [`add_page`](Self::add_page); the error hands back the folio's
    /// head page with the origin, length and offset passed.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Folio, FolioOrder, Origin, PageGeometry, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let folio = Folio::new(Pfn::new(0x400), FolioOrder::try_new(4)?)?; // 16 pages, 64 KiB
    /// let _ = bio.add_folio(folio, 16384, 8192, Origin::Pinned).unwrap();
    /// let bv = bio.bvecs()[0];
    /// assert_eq!((bv.page(), bv.offset(), bv.len()), (Some(Pfn::new(0x402)), 0, 16384));
    /// assert_eq!(bio.pages().count(), 4);
    /// # Ok::<(), gupio_bio::PfnError>(())
    /// ```
    pub fn add_folio(
        &mut self,
        folio: Folio,
        len: u32,
        offset: u32,
        origin: Origin,
    ) -> Result<Added, AddError> {
        let geometry = self.geometry();
        let rejected = BioVec::new(folio.head(), origin, len, offset);
        self.check_fragment(len, rejected)?;
        let run_bytes = folio.size(geometry);
        let start = u64::from(offset);
        if start + u64::from(len) > run_bytes {
            return Err(AddError::new(
                BioError::PastPageRun {
                    offset,
                    len,
                    run_bytes,
                },
                rejected,
            ));
        }
        // Inside the folio, whose pages are all encodable.
        let first = page_index(start, geometry).and_then(|index| folio.head().checked_add(index));
        let Some(first) = first else {
            return Err(AddError::new(
                BioError::PfnOutOfRange {
                    pfn: folio.head().get(),
                    pages: run_bytes >> geometry.shift(),
                },
                rejected,
            ));
        };
        self.add_normalised(first, origin, len, in_page(start, geometry), rejected)
    }

    /// Adds an existing descriptor, which may span several pages and whose
    /// offset may exceed the page size (it is normalised); the bio takes
    /// over the reference of the bvec's origin on every page it touches.
    ///
    /// Merging, the one-reference-per-page rule and the checks are those of
    /// [`add_page`](Self::add_page), with the bvec's own page run in place
    /// of the page.
    ///
    /// # Errors
    /// As [`add_page`](Self::add_page), with [`BioError::NoPage`] for
    /// [`BioVec::NONE`] (checked after the operation) and
    /// [`BioError::PfnOutOfRange`] if a page of the run is not encodable
    /// (checked in place of [`BioError::PastPageRun`]). The error hands
    /// `bvec` back.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioError, BioLimits, BioOp, BioVec, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// let _ = bio.add_bvec(BioVec::new(Pfn::new(5), Origin::Borrowed, 1024, 4096 + 512))?;
    /// assert_eq!(bio.bvecs()[0], BioVec::new(Pfn::new(6), Origin::Borrowed, 1024, 512));
    /// let err = bio.add_bvec(BioVec::NONE).unwrap_err();
    /// assert_eq!(err.error(), BioError::NoPage);
    /// # Ok::<(), gupio_bio::AddError>(())
    /// ```
    pub fn add_bvec(&mut self, bvec: BioVec) -> Result<Added, AddError> {
        let geometry = self.geometry();
        if !self.op.has_data() {
            return Err(AddError::new(BioError::OpMismatch { op: self.op }, bvec));
        }
        let Some((pfn, origin)) = bvec.decode() else {
            return Err(AddError::new(BioError::NoPage, bvec));
        };
        self.check_fragment(bvec.len(), bvec)?;
        let (Some(first), Some(_)) = (bvec.first_page(geometry), bvec.last_page(geometry)) else {
            // Pages from the stored one through the one holding the last byte.
            let end = u64::from(bvec.offset()) + u64::from(bvec.len());
            let pages = ((end - 1) >> geometry.shift()) + 1;
            return Err(AddError::new(
                BioError::PfnOutOfRange {
                    pfn: pfn.get(),
                    pages,
                },
                bvec,
            ));
        };
        let offset = in_page(u64::from(bvec.offset()), geometry);
        self.add_normalised(first, origin, bvec.len(), offset, bvec)
    }

    /// Sets the byte range of a discard bio (its size; it has no pages).
    /// The iterator restarts at the current sector with that size.
    ///
    /// # Errors
    /// [`BioError::OpMismatch`] unless the operation is
    /// [`BioOp::Discard`]. Alignment is checked by
    /// [`validate`](Self::validate).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Discard, Sector(8), BioLimits::default());
    /// bio.set_discard_size(1 << 20)?;
    /// assert_eq!((bio.size(), bio.vcnt()), (1 << 20, 0));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn set_discard_size(&mut self, bytes: u32) -> Result<(), BioError> {
        if self.op != BioOp::Discard {
            return Err(BioError::OpMismatch { op: self.op });
        }
        let sector = self.iter.get().sector();
        self.total = bytes;
        self.iter.set(BvecIter::new(sector, bytes));
        Ok(())
    }

    /// Checks the bio is ready to submit: a data or discard bio is not
    /// empty, its bytes left are a whole number of logical blocks, and its
    /// sector range stays within `u64`.
    ///
    /// # Errors
    /// [`BioError::ZeroLength`], [`BioError::NotBlockMultiple`],
    /// [`BioError::SectorOverflow`].
    ///
    /// ```
    /// use gupio_bio::{Bio, BioError, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let limits = BioLimits::default().with_logical_block_size(4096)?;
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), limits);
    /// let _ = bio.add_page(Pfn::new(1), 2048, 0, Origin::Pinned).unwrap();
    /// assert_eq!(
    ///     bio.validate(),
    ///     Err(BioError::NotBlockMultiple { bytes: 2048, logical_block_size: 4096 })
    /// );
    /// let _ = bio.add_page(Pfn::new(1), 2048, 2048, Origin::Pinned).unwrap();
    /// assert_eq!(bio.validate(), Ok(()));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn validate(&self) -> Result<(), BioError> {
        let iter = self.iter.get();
        if self.op != BioOp::Flush && iter.size() == 0 {
            return Err(BioError::ZeroLength);
        }
        let logical_block_size = self.limits.logical_block_size();
        if iter.size() % logical_block_size != 0 {
            return Err(BioError::NotBlockMultiple {
                bytes: iter.size(),
                logical_block_size,
            });
        }
        let sectors = SectorCount::from_bytes(iter.size());
        if iter.sector().checked_add(sectors).is_none() {
            return Err(BioError::SectorOverflow {
                sector: iter.sector().0,
                sectors: sectors.0,
            });
        }
        Ok(())
    }

    /// Moves the bio forward by `bytes` (`bio_advance`): the iterator moves
    /// across bvecs and the sector by `bytes >> 9`. A bio without data
    /// pages moves only its size and sector.
    ///
    /// # Errors
    /// [`BioError::NotSectorMultiple`] or [`BioError::SectorOverflow`]
    /// (nothing moves); [`BioError::AdvancePastEnd`] if `bytes` is more
    /// than the bio has left: the bio is then left empty, its iterator and
    /// sector moved to the end.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioError, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(100), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// bio.advance(1024)?;
    /// assert_eq!((bio.sector(), bio.size()), (Sector(102), 3072));
    /// assert_eq!(bio.advance(100), Err(BioError::NotSectorMultiple { bytes: 100 }));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn advance(&mut self, bytes: u32) -> Result<(), BioError> {
        if bytes % SECTOR_SIZE != 0 {
            return Err(BioError::NotSectorMultiple { bytes });
        }
        let has_data = self.op.has_data();
        let iter = self.iter.get_mut();
        let moved = SectorCount::from_bytes(bytes.min(iter.size()));
        let sector = iter
            .sector()
            .checked_add(moved)
            .ok_or(BioError::SectorOverflow {
                sector: iter.sector().0,
                sectors: moved.0,
            })?;
        let result = if has_data {
            iter.advance(self.storage.as_slice(), bytes)
        } else {
            iter.advance_no_data(bytes)
        };
        iter.set_sector(sector);
        result
    }

    /// Moves the bio back by `bytes` (`bio_rewind`): the inverse of
    /// [`advance`](Self::advance). The owner may rewind to the start of its
    /// table, over bytes it split off earlier.
    ///
    /// # Errors
    /// [`BioError::NotSectorMultiple`], [`BioError::SectorOverflow`] (below
    /// sector 0), [`BioError::RewindPastStart`], [`BioError::SizeOverflow`];
    /// the bio is unchanged.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(100), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// bio.advance(1024)?;
    /// bio.rewind(1024)?;
    /// assert_eq!((bio.sector(), bio.size()), (Sector(100), 4096));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn rewind(&mut self, bytes: u32) -> Result<(), BioError> {
        if bytes % SECTOR_SIZE != 0 {
            return Err(BioError::NotSectorMultiple { bytes });
        }
        let has_data = self.op.has_data();
        let total = self.total;
        let iter = self.iter.get_mut();
        let sectors = SectorCount::from_bytes(bytes);
        let sector = iter
            .sector()
            .checked_sub(sectors)
            .ok_or(BioError::SectorOverflow {
                sector: iter.sector().0,
                sectors: sectors.0,
            })?;
        if has_data {
            iter.rewind(self.storage.as_slice(), bytes)?;
        } else {
            let before = total.saturating_sub(iter.size());
            if bytes > before {
                return Err(BioError::RewindPastStart {
                    requested: bytes,
                    available: before,
                });
            }
            iter.set_size(iter.size() + bytes);
        }
        iter.set_sector(sector);
        Ok(())
    }

    /// Cuts the first `sectors` sectors off the bio (`bio_split`): returns
    /// them as a [`BioSplit`] that shares the bvec table, and advances this
    /// bio past them. The split part can be iterated, advanced and split
    /// further, but never releases pages: only the owner does, after every
    /// part is gone (the borrow enforces it).
    ///
    /// # Errors
    /// [`BioError::SplitOutOfRange`] for zero sectors or at least all the
    /// sectors the bio has left; [`BioError::SplitUnaligned`] unless
    /// `sectors` is a whole number of logical blocks;
    /// [`BioError::SectorOverflow`]. The bio is unchanged.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// let front = bio.split(SectorCount(2))?;
    /// assert_eq!((front.sector(), front.size()), (Sector(0), 1024));
    /// assert_eq!((bio.sector(), bio.size()), (Sector(2), 3072));
    /// assert!(bio.is_owner() && !front.is_owner());
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn split(&self, sectors: SectorCount) -> Result<BioSplit<'_>, BioError> {
        let table = self.storage.as_slice();
        let (front, rest) = split_iter(self.iter.get(), table, self.op, &self.limits, sectors)?;
        self.iter.set(rest);
        Ok(BioSplit::new(table, front, self.op, self.limits))
    }

    /// The operation.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// assert_eq!(Bio::new(&mut table, BioOp::Flush, Sector(0), BioLimits::default()).op(), BioOp::Flush);
    /// ```
    #[inline]
    pub fn op(&self) -> BioOp {
        self.op
    }

    /// The completion status (`bi_status`).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// assert_eq!(Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default()).status(), BioStatus::Ok);
    /// ```
    #[inline]
    pub fn status(&self) -> BioStatus {
        self.status
    }

    /// Records the completion status.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// bio.set_status(BioStatus::Medium);
    /// assert!(bio.status().is_err());
    /// ```
    #[inline]
    pub fn set_status(&mut self, status: BioStatus) {
        self.status = status;
    }

    /// The device sector the bio's bytes left start at.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// assert_eq!(Bio::new(&mut table, BioOp::Read, Sector(7), BioLimits::default()).sector(), Sector(7));
    /// ```
    #[inline]
    pub fn sector(&self) -> Sector {
        self.iter.get().sector()
    }

    /// Moves the bio to another device sector (a remap by a stacking driver).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(7), BioLimits::default());
    /// bio.set_sector(Sector(1000));
    /// assert_eq!(bio.sector(), Sector(1000));
    /// ```
    #[inline]
    pub fn set_sector(&mut self, sector: Sector) {
        self.iter.get_mut().set_sector(sector);
    }

    /// The bytes left to transfer (`bi_size`).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Pinned).unwrap();
    /// assert_eq!(bio.size(), 512);
    /// ```
    #[inline]
    pub fn size(&self) -> u32 {
        self.iter.get().size()
    }

    /// A copy of the iterator (sector, bytes left, position in the table).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let bio = Bio::new(&mut table, BioOp::Read, Sector(3), BioLimits::default());
    /// assert_eq!(bio.iter().sector(), Sector(3));
    /// ```
    #[inline]
    pub fn iter(&self) -> BvecIter {
        self.iter.get()
    }

    /// How many bvecs the table holds (`bi_vcnt`).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// assert_eq!(Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default()).vcnt(), 0);
    /// ```
    #[inline]
    pub fn vcnt(&self) -> usize {
        self.storage.len()
    }

    /// The most bvecs this bio can hold: the limit, capped by the storage.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1000>::new();
    /// let bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// assert_eq!(bio.max_vecs(), 256);
    /// ```
    #[inline]
    pub fn max_vecs(&self) -> usize {
        self.limits.max_vecs().min(self.storage.capacity())
    }

    /// Whether the table has no room for another bvec (a fragment may
    /// still merge into the last one).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Pinned).unwrap();
    /// assert!(bio.is_full());
    /// ```
    #[inline]
    pub fn is_full(&self) -> bool {
        self.vcnt() >= self.max_vecs()
    }

    /// The origins of every page the bio holds.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, OriginSet, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 2>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Referenced).unwrap();
    /// assert_eq!(bio.origins(), OriginSet::REFERENCED);
    /// ```
    #[inline]
    pub fn origins(&self) -> OriginSet {
        self.origins
    }

    /// Whether completion has anything to release (any pinned or referenced
    /// page), in O(1).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 2>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Borrowed).unwrap();
    /// assert!(!bio.needs_release());
    /// ```
    #[inline]
    pub fn needs_release(&self) -> bool {
        self.origins.needs_release()
    }

    /// Always true: a `Bio` owns its page references (a [`BioSplit`] does
    /// not).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// assert!(Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default()).is_owner());
    /// ```
    #[inline]
    pub const fn is_owner(&self) -> bool {
        true
    }

    /// The limits the bio was built under.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// assert_eq!(bio.limits(), BioLimits::default());
    /// ```
    #[inline]
    pub fn limits(&self) -> BioLimits {
        self.limits
    }

    /// The page geometry.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, PageGeometry, Sector};
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let limits = BioLimits::new(PageGeometry::SIXTEEN_KIB);
    /// assert_eq!(Bio::new(&mut table, BioOp::Read, Sector(0), limits).geometry().size(), 16384);
    /// ```
    #[inline]
    pub fn geometry(&self) -> PageGeometry {
        self.limits.geometry()
    }

    /// The whole bvec table, whatever the iterator's position: what the
    /// release path walks, since every page must be released even after the
    /// bio was advanced or split.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 2>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Pinned).unwrap();
    /// bio.advance(512)?;
    /// assert_eq!(bio.size(), 0);
    /// assert_eq!(bio.bvecs().len(), 1);
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    #[inline]
    pub fn bvecs(&self) -> &[BioVec] {
        self.storage.as_slice()
    }

    /// The multi-page segments of the bytes left (`bio_for_each_bvec`).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 2>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// let _ = bio.add_page(Pfn::new(2), 4096, 0, Origin::Pinned).unwrap();
    /// assert_eq!(bio.segments().map(|s| s.len()).collect::<Vec<_>>(), [8192]);
    /// ```
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        self.iter().segments(self.bvecs(), self.geometry())
    }

    /// The single-page segments of the bytes left (`bio_for_each_segment`),
    /// each keeping its bvec's origin.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 2>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// let _ = bio.add_page(Pfn::new(2), 4096, 0, Origin::Pinned).unwrap();
    /// assert_eq!(bio.pages().map(|p| p.len()).collect::<Vec<_>>(), [4096, 4096]);
    /// ```
    #[inline]
    pub fn pages(&self) -> Pages<'_> {
        self.iter().pages(self.bvecs(), self.geometry())
    }

    /// The single-page segments of the whole table, whatever the iterator's
    /// position (`bio_for_each_segment_all`): one item per page per bvec,
    /// the unit the release path releases.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 2>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// bio.advance(4096)?;
    /// assert_eq!(bio.pages().count(), 0);
    /// assert_eq!(bio.all_pages().count(), 1);
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    #[inline]
    pub fn all_pages(&self) -> Pages<'_> {
        let whole = BvecIter::new(self.iter().sector(), self.total_data_bytes());
        whole.pages(self.bvecs(), self.geometry())
    }

    /// Gives the storage back, with the table still in it (for reuse once
    /// the pages are released).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 2>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Pinned).unwrap();
    /// assert_eq!(bio.into_storage().len(), 1);
    /// ```
    #[inline]
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Bytes in the table (0 for a bio without data pages).
    fn total_data_bytes(&self) -> u32 {
        if self.op.has_data() {
            self.total
        } else {
            0
        }
    }

    /// The checks every add makes first: a data operation, a non-empty
    /// fragment.
    fn check_fragment(&self, len: u32, rejected: BioVec) -> Result<(), AddError> {
        if !self.op.has_data() {
            return Err(AddError::new(
                BioError::OpMismatch { op: self.op },
                rejected,
            ));
        }
        if len == 0 {
            return Err(AddError::new(BioError::ZeroLength, rejected));
        }
        Ok(())
    }

    /// Adds a fragment whose offset is below the page size and whose pages
    /// are all encodable: alignment, size, then merge or a new bvec.
    fn add_normalised(
        &mut self,
        pfn: Pfn,
        origin: Origin,
        len: u32,
        offset: u32,
        rejected: BioVec,
    ) -> Result<Added, AddError> {
        let dma_alignment = self.limits.dma_alignment();
        if (offset | len) & dma_alignment != 0 {
            return Err(AddError::new(
                BioError::Misaligned {
                    offset,
                    len,
                    dma_alignment,
                },
                rejected,
            ));
        }
        let Some(total) = self.total.checked_add(len) else {
            return Err(AddError::new(
                BioError::SizeOverflow {
                    size: self.total,
                    len,
                },
                rejected,
            ));
        };
        let vcnt = self.vcnt();
        let added = match self.try_merge(pfn, origin, len, offset) {
            Some((added, old_len)) => {
                // An iterator at the end of the table (past the last bvec)
                // now stands inside it, where its old bytes end.
                let iter = self.iter.get_mut();
                if iter.idx() >= vcnt {
                    iter.set_position(vcnt.saturating_sub(1), old_len);
                }
                added
            }
            None => {
                let max_segment_size = self.limits.max_segment_size();
                if len > max_segment_size {
                    return Err(AddError::new(
                        BioError::SegmentTooLarge {
                            len,
                            max_segment_size,
                        },
                        rejected,
                    ));
                }
                let max_vecs = self.max_vecs();
                if vcnt >= max_vecs
                    || self
                        .storage
                        .push(BioVec::new(pfn, origin, len, offset))
                        .is_err()
                {
                    return Err(AddError::new(BioError::TooManyVecs { max_vecs }, rejected));
                }
                self.origins |= OriginSet::of(origin);
                Added::NewVec
            }
        };
        self.total = total;
        let iter = self.iter.get_mut();
        iter.set_size(iter.size().saturating_add(len));
        Ok(added)
    }

    /// Extends the last bvec by the fragment if it starts exactly where
    /// that bvec ends, has its origin, and the result fits a segment;
    /// returns what happened and the bvec's length before.
    fn try_merge(
        &mut self,
        pfn: Pfn,
        origin: Origin,
        len: u32,
        offset: u32,
    ) -> Option<(Added, u32)> {
        let geometry = self.limits.geometry();
        let max_segment_size = self.limits.max_segment_size();
        let last = self.storage.as_mut_slice().last_mut()?;
        if last.origin()? != origin {
            return None;
        }
        let (end_pfn, end_offset) = last.end(geometry)?;
        if (end_pfn, end_offset) != (pfn, offset) {
            return None;
        }
        let merged = last
            .len()
            .checked_add(len)
            .filter(|&merged| merged <= max_segment_size)?;
        let old_len = last.len();
        *last = BioVec::from_tagged(last.tagged(), merged, last.offset());
        // Starting mid-page, the fragment shares that page with the bvec.
        let added = match (end_offset, origin) {
            (0, _) | (_, Origin::Borrowed) => Added::Merged,
            (_, Origin::Pinned) => Added::MergedDuplicatePin { pfn },
            (_, Origin::Referenced) => Added::MergedDuplicateRef { pfn },
        };
        Some((added, old_len))
    }
}

#[cfg(test)]
mod tests;
