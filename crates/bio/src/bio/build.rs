//! Building a bio: adding pages, folios and bvecs (merging only where the
//! origins agree, one reference per page per bvec), a discard's range, and
//! the check before submission; and `Added`, what an add did.

use gupio_pfn::{Folio, Origin, Pfn};

use super::Bio;
use crate::bvec::{in_page, page_index, BioVec};
use crate::error::{AddError, BioError};
use crate::iter::BvecIter;
use crate::op::{BioOp, OriginSet};
use crate::sector::SectorCount;
use crate::storage::BvecStorage;
use crate::window;

/// What an add did with the fragment. Match on it: the two duplicate
/// outcomes leave the caller one reference to drop.
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
    /// The page whose extra pin or reference the caller must drop, and its kind.
    #[inline]
    pub const fn duplicate(self) -> Option<(Pfn, Origin)> {
        match self {
            Self::NewVec | Self::Merged => None,
            Self::MergedDuplicatePin { pfn } => Some((pfn, Origin::Pinned)),
            Self::MergedDuplicateRef { pfn } => Some((pfn, Origin::Referenced)),
        }
    }

    /// Whether the fragment was merged into the last bvec.
    #[inline]
    pub const fn merged(self) -> bool {
        !matches!(self, Self::NewVec)
    }
}

impl<S: BvecStorage> Bio<S> {
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
        window::sector_after(iter.sector(), SectorCount::from_bytes(iter.size()))?;
        Ok(())
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
