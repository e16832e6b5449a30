//! `BvecIter`, a position in a bvec table, and the segment and page
//! iterators built on it.

use core::iter::FusedIterator;

use gupio_pfn::PageGeometry;

use crate::bvec::BioVec;
use crate::error::BioError;
use crate::sector::Sector;

/// A position in a bvec table and the bytes left from it: Linux's
/// `struct bvec_iter { bi_sector, bi_size, bi_idx, bi_bvec_done }`.
///
/// The iterator does not own the table: every method that walks takes it,
/// as Linux's `bvec_iter_advance(bv, iter, bytes)` does, so one table can
/// have several positions (a bio and the parts split off it). Given a table
/// other than the one it walked, no method panics: missing bvecs count as
/// empty and iteration stops at the end of the table.
///
/// [`advance`](Self::advance) and [`rewind`](Self::rewind) move the byte
/// position only; the sector is the bio layer's and moves with
/// [`Bio::advance`](crate::Bio::advance). Both keep the position canonical:
/// past empty bvecs, with `bvec_done` below the current bvec's length (or at
/// the end of the table), so a round trip restores an equal iterator.
///
/// ```
/// use gupio_bio::{BioVec, BvecIter, Origin, PageGeometry, Pfn, Sector};
/// let table = [
///     BioVec::new(Pfn::new(1), Origin::Pinned, 1024, 0),
///     BioVec::new(Pfn::new(9), Origin::Pinned, 2048, 512),
/// ];
/// let mut iter = BvecIter::over(&table, Sector(0)).unwrap();
/// iter.advance(&table, 1536).unwrap(); // past the first bvec, 512 into the second
/// assert_eq!((iter.idx(), iter.bvec_done(), iter.size()), (1, 512, 1536));
/// let seg = iter.segment(&table, PageGeometry::FOUR_KIB).unwrap();
/// assert_eq!((seg.page(), seg.offset(), seg.len()), (Some(Pfn::new(9)), 1024, 1536));
/// iter.rewind(&table, 1536).unwrap();
/// assert_eq!((iter.idx(), iter.bvec_done(), iter.size()), (0, 0, 3072));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct BvecIter {
    sector: Sector,
    size: u32,
    idx: usize,
    bvec_done: u32,
}

impl BvecIter {
    /// An iterator at the start of a table, with `size` bytes to go.
    ///
    /// ```
    /// use gupio_bio::{BvecIter, Sector};
    /// let iter = BvecIter::new(Sector(4), 512);
    /// assert_eq!((iter.sector(), iter.size(), iter.idx(), iter.bvec_done()), (Sector(4), 512, 0, 0));
    /// ```
    #[inline]
    pub const fn new(sector: Sector, size: u32) -> Self {
        Self {
            sector,
            size,
            idx: 0,
            bvec_done: 0,
        }
    }

    /// An iterator over all of `bvecs`, from the start.
    ///
    /// # Errors
    /// [`BioError::SizeOverflow`] if the table holds more than `u32::MAX`
    /// bytes (the bio size field's range).
    ///
    /// ```
    /// use gupio_bio::{BioVec, BvecIter, Origin, Pfn, Sector};
    /// let table = [BioVec::new(Pfn::new(1), Origin::Borrowed, 100, 0), BioVec::NONE];
    /// assert_eq!(BvecIter::over(&table, Sector(0)).unwrap().size(), 100);
    /// ```
    pub fn over(bvecs: &[BioVec], sector: Sector) -> Result<Self, BioError> {
        let mut size = 0u32;
        for bv in bvecs {
            size = size.checked_add(bv.len()).ok_or(BioError::SizeOverflow {
                size,
                len: bv.len(),
            })?;
        }
        let mut iter = Self::new(sector, size);
        iter.settle(bvecs);
        Ok(iter)
    }

    /// The device sector (`bi_sector`).
    #[inline]
    pub const fn sector(&self) -> Sector {
        self.sector
    }

    /// The bytes left (`bi_size`).
    #[inline]
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// The index of the current bvec (`bi_idx`).
    #[inline]
    pub const fn idx(&self) -> usize {
        self.idx
    }

    /// The bytes of the current bvec already done (`bi_bvec_done`).
    #[inline]
    pub const fn bvec_done(&self) -> u32 {
        self.bvec_done
    }

    /// Whether no bytes are left.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Moves `bytes` forward through `bvecs`, across bvec boundaries
    /// (`bvec_iter_advance`).
    ///
    /// # Errors
    /// [`BioError::AdvancePastEnd`] if `bytes` is more than the bytes left
    /// (or than the table holds from here). As Linux's warning path does,
    /// the iterator is then left empty: moved to the end of its bytes, with
    /// size 0.
    ///
    /// ```
    /// use gupio_bio::{BioError, BioVec, BvecIter, Origin, Pfn, Sector};
    /// let table = [BioVec::new(Pfn::new(1), Origin::Pinned, 1024, 0)];
    /// let mut iter = BvecIter::over(&table, Sector(0)).unwrap();
    /// assert_eq!(
    ///     iter.advance(&table, 2048),
    ///     Err(BioError::AdvancePastEnd { requested: 2048, remaining: 1024 })
    /// );
    /// assert!(iter.is_empty());
    /// ```
    pub fn advance(&mut self, bvecs: &[BioVec], bytes: u32) -> Result<(), BioError> {
        if bytes > self.size {
            let remaining = self.size;
            let walked = self.walk_forward(bvecs, remaining);
            self.size = 0;
            return Err(BioError::AdvancePastEnd {
                requested: bytes,
                remaining: walked,
            });
        }
        let walked = self.walk_forward(bvecs, bytes);
        if walked < bytes {
            // The table ends before the iterator's size says it does.
            self.size = 0;
            return Err(BioError::AdvancePastEnd {
                requested: bytes,
                remaining: walked,
            });
        }
        self.size -= bytes;
        Ok(())
    }

    /// Moves `bytes` back through `bvecs` (`bvec_iter_rewind`): the inverse
    /// of [`advance`](Self::advance).
    ///
    /// # Errors
    /// [`BioError::RewindPastStart`] if fewer than `bytes` lie before the
    /// iterator in the table; [`BioError::SizeOverflow`] if the bytes left
    /// would exceed `u32::MAX`. Either way the iterator is unchanged.
    ///
    /// ```
    /// use gupio_bio::{BioError, BioVec, BvecIter, Origin, Pfn, Sector};
    /// let table = [BioVec::new(Pfn::new(1), Origin::Pinned, 1024, 0)];
    /// let mut iter = BvecIter::over(&table, Sector(0)).unwrap();
    /// iter.advance(&table, 100).unwrap();
    /// assert_eq!(
    ///     iter.rewind(&table, 101),
    ///     Err(BioError::RewindPastStart { requested: 101, available: 100 })
    /// );
    /// iter.rewind(&table, 100).unwrap();
    /// assert_eq!(iter, BvecIter::over(&table, Sector(0)).unwrap());
    /// ```
    pub fn rewind(&mut self, bvecs: &[BioVec], bytes: u32) -> Result<(), BioError> {
        let before = self.bytes_before(bvecs);
        if u64::from(bytes) > before {
            return Err(BioError::RewindPastStart {
                requested: bytes,
                available: u32::try_from(before).unwrap_or(u32::MAX),
            });
        }
        let size = self.size.checked_add(bytes).ok_or(BioError::SizeOverflow {
            size: self.size,
            len: bytes,
        })?;
        if bytes <= self.bvec_done {
            self.bvec_done -= bytes;
            self.size = size;
            self.settle(bvecs);
            return Ok(());
        }
        let mut left = bytes - self.bvec_done;
        let mut idx = self.idx;
        // `before >= bytes` guarantees the walk ends at or after index 0.
        while let Some(prev) = idx.checked_sub(1) {
            idx = prev;
            let len = bvecs.get(idx).map_or(0, BioVec::len);
            if left <= len {
                // left > 0, so the position lands inside a non-empty bvec.
                self.idx = idx;
                self.bvec_done = len - left;
                self.size = size;
                return Ok(());
            }
            left -= len;
        }
        Err(BioError::RewindPastStart {
            requested: bytes,
            available: u32::try_from(before).unwrap_or(u32::MAX),
        })
    }

    /// The current multi-page segment: the rest of the current bvec, capped
    /// at the bytes left, with its offset brought below the page size
    /// (`mp_bvec_iter_bvec`). Skips empty and no-page bvecs; `None` when
    /// nothing is left.
    ///
    /// ```
    /// use gupio_bio::{BioVec, BvecIter, Origin, PageGeometry, Pfn, Sector};
    /// let table = [BioVec::new(Pfn::new(4), Origin::Referenced, 12288, 0)];
    /// let mut iter = BvecIter::over(&table, Sector(0)).unwrap();
    /// iter.advance(&table, 5000).unwrap();
    /// let seg = iter.segment(&table, PageGeometry::FOUR_KIB).unwrap();
    /// assert_eq!((seg.page(), seg.offset(), seg.len()), (Some(Pfn::new(5)), 904, 7288));
    /// ```
    pub fn segment(&self, bvecs: &[BioVec], geometry: PageGeometry) -> Option<BioVec> {
        if self.size == 0 {
            return None;
        }
        let mut idx = self.idx;
        let mut done = self.bvec_done;
        loop {
            let bv = bvecs.get(idx)?;
            if done < bv.len() {
                let len = (bv.len() - done).min(self.size);
                return bv.window(done, len, geometry);
            }
            idx += 1;
            done = 0;
        }
    }

    /// The current single-page segment: [`segment`](Self::segment) clipped
    /// at the end of its first page (`bvec_iter_bvec`).
    ///
    /// ```
    /// use gupio_bio::{BioVec, BvecIter, Origin, PageGeometry, Pfn, Sector};
    /// let table = [BioVec::new(Pfn::new(4), Origin::Referenced, 12288, 0)];
    /// let mut iter = BvecIter::over(&table, Sector(0)).unwrap();
    /// iter.advance(&table, 5000).unwrap();
    /// let page = iter.page(&table, PageGeometry::FOUR_KIB).unwrap();
    /// assert_eq!((page.page(), page.offset(), page.len()), (Some(Pfn::new(5)), 904, 3192));
    /// ```
    pub fn page(&self, bvecs: &[BioVec], geometry: PageGeometry) -> Option<BioVec> {
        let seg = self.segment(bvecs, geometry)?;
        let room = geometry.size_u32().saturating_sub(seg.offset());
        Some(BioVec::from_tagged(
            seg.tagged(),
            seg.len().min(room),
            seg.offset(),
        ))
    }

    /// Iterates the multi-page segments from here to the end of the bytes
    /// left (`bio_for_each_bvec`). Does not move `self`.
    #[inline]
    pub fn segments(self, bvecs: &[BioVec], geometry: PageGeometry) -> Segments<'_> {
        Segments {
            bvecs,
            iter: self,
            geometry,
        }
    }

    /// Iterates the single-page segments from here to the end of the bytes
    /// left (`bio_for_each_segment`). Does not move `self`.
    #[inline]
    pub fn pages(self, bvecs: &[BioVec], geometry: PageGeometry) -> Pages<'_> {
        Pages::new(bvecs, self, geometry)
    }

    /// Bytes of `bvecs` before the iterator's position.
    pub(crate) fn bytes_before(&self, bvecs: &[BioVec]) -> u64 {
        let whole: u64 = bvecs
            .iter()
            .take(self.idx)
            .map(|bv| u64::from(bv.len()))
            .sum();
        whole + u64::from(self.bvec_done)
    }

    /// Walks up to `bytes` forward through the table without touching the
    /// size; returns how many bytes the table had.
    fn walk_forward(&mut self, bvecs: &[BioVec], bytes: u32) -> u32 {
        let mut left = bytes;
        while left > 0 {
            let Some(bv) = bvecs.get(self.idx) else {
                break;
            };
            let rest = bv.len().saturating_sub(self.bvec_done);
            if left < rest {
                self.bvec_done += left;
                left = 0;
            } else {
                left -= rest;
                self.idx += 1;
                self.bvec_done = 0;
            }
        }
        self.settle(bvecs);
        bytes - left
    }

    /// Keeps the position canonical: `bvec_done` below the current bvec's
    /// length, or the position at the end of the table. Moves past empty
    /// bvecs (and a finished one), so equal byte positions compare equal.
    fn settle(&mut self, bvecs: &[BioVec]) {
        while let Some(bv) = bvecs.get(self.idx) {
            if self.bvec_done < bv.len() {
                break;
            }
            self.idx += 1;
            self.bvec_done = 0;
        }
    }

    /// Moves forward over `bytes` the caller has just seen as a segment.
    fn consume(&mut self, bvecs: &[BioVec], bytes: u32) {
        let walked = self.walk_forward(bvecs, bytes);
        self.size = self.size.saturating_sub(walked);
    }

    /// Advance for an operation without data pages: only the size moves.
    pub(crate) fn advance_no_data(&mut self, bytes: u32) -> Result<(), BioError> {
        if bytes > self.size {
            let remaining = self.size;
            self.size = 0;
            return Err(BioError::AdvancePastEnd {
                requested: bytes,
                remaining,
            });
        }
        self.size -= bytes;
        Ok(())
    }

    pub(crate) fn set_sector(&mut self, sector: Sector) {
        self.sector = sector;
    }

    pub(crate) fn set_position(&mut self, idx: usize, bvec_done: u32) {
        self.idx = idx;
        self.bvec_done = bvec_done;
    }

    pub(crate) fn set_size(&mut self, size: u32) {
        self.size = size;
    }
}

/// The multi-page segments of a bvec table from a [`BvecIter`] on; see
/// [`BvecIter::segments`] and [`Bio::segments`](crate::Bio::segments).
///
/// Each item is a [`BioVec`] whose offset is below the page size and which
/// keeps its bvec's origin.
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    bvecs: &'a [BioVec],
    iter: BvecIter,
    geometry: PageGeometry,
}

impl Iterator for Segments<'_> {
    type Item = BioVec;

    fn next(&mut self) -> Option<BioVec> {
        match self.iter.segment(self.bvecs, self.geometry) {
            Some(seg) => {
                self.iter.consume(self.bvecs, seg.len());
                Some(seg)
            }
            None => {
                self.iter.size = 0;
                None
            }
        }
    }
}

impl FusedIterator for Segments<'_> {}

/// The single-page segments of a bvec table from a [`BvecIter`] on; see
/// [`BvecIter::pages`], [`Bio::pages`](crate::Bio::pages) and
/// [`BioVec::pages`].
///
/// Each item is a [`BioVec`] inside one page (offset plus length at most the
/// page size) which keeps its bvec's origin.
#[derive(Clone, Debug)]
pub struct Pages<'a> {
    bvecs: &'a [BioVec],
    iter: BvecIter,
    geometry: PageGeometry,
}

impl<'a> Pages<'a> {
    pub(crate) fn new(bvecs: &'a [BioVec], iter: BvecIter, geometry: PageGeometry) -> Self {
        Self {
            bvecs,
            iter,
            geometry,
        }
    }
}

impl Iterator for Pages<'_> {
    type Item = BioVec;

    fn next(&mut self) -> Option<BioVec> {
        match self.iter.page(self.bvecs, self.geometry) {
            Some(page) => {
                self.iter.consume(self.bvecs, page.len());
                Some(page)
            }
            None => {
                self.iter.size = 0;
                None
            }
        }
    }
}

impl FusedIterator for Pages<'_> {}

// The walk of a single bvec lives here, with the iterator it is built on.
impl BioVec {
    /// The single-page view: one bvec per page touched, clipped to the page,
    /// each carrying this bvec's origin (the proposal's `bvec_iter_pfn`,
    /// which added the page index under the tag).
    ///
    /// Yields nothing for an empty or no-page bvec. It stops early at a page
    /// that is not encodable, which no bvec a [`Bio`](crate::Bio) accepted
    /// has.
    #[inline]
    pub fn pages(&self, geometry: PageGeometry) -> Pages<'_> {
        Pages::new(
            core::slice::from_ref(self),
            BvecIter::new(Sector(0), self.len()),
            geometry,
        )
    }
}

#[cfg(test)]
mod tests;
