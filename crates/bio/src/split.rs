//! `BioSplit`: the front part cut off a bio, sharing its bvec table.

use gupio_pfn::PageGeometry;

use crate::bvec::BioVec;
use crate::error::BioError;
use crate::iter::{BvecIter, Pages, Segments};
use crate::limits::BioLimits;
use crate::op::{BioOp, BioStatus};
use crate::sector::{Sector, SectorCount};
use crate::window;

/// A part split off a [`Bio`](crate::Bio) (or off another split): a window
/// on the owner's bvec table with its own iterator and status, like the
/// clone Linux's `bio_split` returns.
///
/// It owns no page references and has no way to release any: there is no
/// method that hands out the whole table or takes pages, and the release
/// path accepts only a `Bio`. It borrows the owner, so the owner cannot be
/// changed or released while it exists.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
/// let mut table = heapless::Vec::<_, 4>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
/// let _ = bio.add_page(Pfn::new(7), 4096, 0, Origin::Pinned).unwrap();
/// let front = bio.split(SectorCount(12))?; // 6 KiB
/// let pages: Vec<_> = front.pages().map(|p| (p.page(), p.len())).collect();
/// assert_eq!(pages, [(Some(Pfn::new(1)), 4096), (Some(Pfn::new(7)), 2048)]);
/// let rest: Vec<_> = bio.pages().map(|p| (p.page(), p.offset(), p.len())).collect();
/// assert_eq!(rest, [(Some(Pfn::new(7)), 2048, 2048)]);
/// # Ok::<(), gupio_bio::BioError>(())
/// ```
#[derive(Debug)]
pub struct BioSplit<'a> {
    bvecs: &'a [BioVec],
    iter: BvecIter,
    op: BioOp,
    status: BioStatus,
    limits: BioLimits,
    /// Bytes advanced since the part was made: how far it may rewind.
    advanced: u32,
}

// A part can be handed to another thread (a driver's queue).
static_assertions::assert_impl_all!(BioSplit<'static>: Send, Sync);

impl<'a> BioSplit<'a> {
    pub(crate) fn new(bvecs: &'a [BioVec], iter: BvecIter, op: BioOp, limits: BioLimits) -> Self {
        Self {
            bvecs,
            iter,
            op,
            status: BioStatus::Ok,
            limits,
            advanced: 0,
        }
    }

    /// Cuts the first `sectors` sectors off this part, as
    /// [`Bio::split`](crate::Bio::split) does off a bio.
    ///
    /// # Errors
    /// As [`Bio::split`](crate::Bio::split); this part is then unchanged.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// let mut front = bio.split(SectorCount(4))?;
    /// let first = front.split(SectorCount(1))?;
    /// assert_eq!((first.sector(), first.size()), (Sector(0), 512));
    /// assert_eq!((front.sector(), front.size()), (Sector(1), 1536));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn split(&mut self, sectors: SectorCount) -> Result<BioSplit<'a>, BioError> {
        let (front, rest) = window::split(self.iter, self.bvecs, self.op, &self.limits, sectors)?;
        self.iter = rest;
        self.advanced = 0;
        Ok(BioSplit::new(self.bvecs, front, self.op, self.limits))
    }

    /// Moves the part forward by `bytes`, as
    /// [`Bio::advance`](crate::Bio::advance) does.
    ///
    /// # Errors
    /// As [`Bio::advance`](crate::Bio::advance).
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// let mut front = bio.split(SectorCount(4))?;
    /// front.advance(512)?;
    /// assert_eq!((front.sector(), front.size()), (Sector(1), 1536));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn advance(&mut self, bytes: u32) -> Result<(), BioError> {
        let before = self.iter.size();
        let result = window::advance(&mut self.iter, self.bvecs, self.op, bytes);
        self.advanced = self.advanced.saturating_add(before - self.iter.size());
        result
    }

    /// Moves the part back by `bytes`, at most as far as it was advanced
    /// since it was made (or last split): a part never reaches into bytes
    /// that belong to another.
    ///
    /// # Errors
    /// [`BioError::NotSectorMultiple`], [`BioError::SectorOverflow`],
    /// [`BioError::RewindPastStart`] (checked in that order, as
    /// [`Bio::rewind`](crate::Bio::rewind) does); the part is unchanged.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioError, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(8), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// let mut front = bio.split(SectorCount(4))?;
    /// front.advance(1024)?;
    /// assert_eq!(
    ///     front.rewind(1536),
    ///     Err(BioError::RewindPastStart { requested: 1536, available: 1024 })
    /// );
    /// front.rewind(1024)?;
    /// assert_eq!((front.sector(), front.size()), (Sector(8), 2048));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn rewind(&mut self, bytes: u32) -> Result<(), BioError> {
        let limit = Some(self.advanced);
        window::rewind(&mut self.iter, self.bvecs, self.op, bytes, limit)?;
        self.advanced -= bytes;
        Ok(())
    }

    /// The operation (the owner's).
    #[inline]
    pub fn op(&self) -> BioOp {
        self.op
    }

    /// The part's completion status.
    #[inline]
    pub fn status(&self) -> BioStatus {
        self.status
    }

    /// Records the part's completion status (the owner's is separate).
    #[inline]
    pub fn set_status(&mut self, status: BioStatus) {
        self.status = status;
    }

    /// The device sector of the part's bytes left.
    #[inline]
    pub fn sector(&self) -> Sector {
        self.iter.sector()
    }

    /// The part's bytes left.
    #[inline]
    pub fn size(&self) -> u32 {
        self.iter.size()
    }

    /// A copy of the part's iterator.
    #[inline]
    pub fn iter(&self) -> BvecIter {
        self.iter
    }

    /// Always false: a split part never releases pages.
    #[inline]
    pub const fn is_owner(&self) -> bool {
        false
    }

    /// The owner's limits.
    #[inline]
    pub fn limits(&self) -> BioLimits {
        self.limits
    }

    /// The page geometry.
    #[inline]
    pub fn geometry(&self) -> PageGeometry {
        self.limits.geometry()
    }

    /// The multi-page segments of the part's bytes left.
    #[inline]
    pub fn segments(&self) -> Segments<'a> {
        self.iter.segments(self.bvecs, self.geometry())
    }

    /// The single-page segments of the part's bytes left, each with its bvec's origin.
    #[inline]
    pub fn pages(&self) -> Pages<'a> {
        self.iter.pages(self.bvecs, self.geometry())
    }
}
