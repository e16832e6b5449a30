//! `Bio`: a block-I/O request over caller storage, and what it tells
//! about itself. Adding pages is in `build`, moving through it in `advance`.

use core::cell::Cell;

use gupio_pfn::PageGeometry;

use crate::bvec::BioVec;
use crate::iter::{BvecIter, Pages, Segments};
use crate::limits::BioLimits;
use crate::op::{BioOp, BioStatus, OriginSet};
use crate::sector::Sector;
use crate::storage::BvecStorage;

mod advance;
pub(crate) mod build;

/// A block-I/O request: an operation, a device sector, a bvec table in
/// caller storage and an iterator over it, plus a summary of the origins of
/// its pages.
///
/// A `Bio` owns the page references its bvecs describe; only the owner
/// releases them, and it must release every page in [`bvecs`](Self::bvecs),
/// wherever the iterator stands. Parts cut off with [`split`](Self::split)
/// are [`BioSplit`](crate::BioSplit) views that share the table but have no
/// way to release.
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

    /// The operation.
    #[inline]
    pub fn op(&self) -> BioOp {
        self.op
    }

    /// The completion status (`bi_status`).
    #[inline]
    pub fn status(&self) -> BioStatus {
        self.status
    }

    /// Records the completion status.
    #[inline]
    pub fn set_status(&mut self, status: BioStatus) {
        self.status = status;
    }

    /// The device sector the bio's bytes left start at.
    #[inline]
    pub fn sector(&self) -> Sector {
        self.iter.get().sector()
    }

    /// Moves the bio to another device sector (a remap by a stacking driver).
    #[inline]
    pub fn set_sector(&mut self, sector: Sector) {
        self.iter.get_mut().set_sector(sector);
    }

    /// The bytes left to transfer (`bi_size`).
    #[inline]
    pub fn size(&self) -> u32 {
        self.iter.get().size()
    }

    /// A copy of the iterator (sector, bytes left, position in the table).
    #[inline]
    pub fn iter(&self) -> BvecIter {
        self.iter.get()
    }

    /// How many bvecs the table holds (`bi_vcnt`).
    #[inline]
    pub fn vcnt(&self) -> usize {
        self.storage.len()
    }

    /// The most bvecs this bio can hold: the limit, capped by the storage.
    #[inline]
    pub fn max_vecs(&self) -> usize {
        self.limits.max_vecs().min(self.storage.capacity())
    }

    /// Whether the table has no room for another bvec (a fragment may still merge).
    #[inline]
    pub fn is_full(&self) -> bool {
        self.vcnt() >= self.max_vecs()
    }

    /// The origins of every page the bio holds.
    #[inline]
    pub fn origins(&self) -> OriginSet {
        self.origins
    }

    /// Whether completion has a pinned or referenced page to release, in O(1).
    #[inline]
    pub fn needs_release(&self) -> bool {
        self.origins.needs_release()
    }

    /// Always true: a `Bio` owns its page references (a split part does not).
    #[inline]
    pub const fn is_owner(&self) -> bool {
        true
    }

    /// The limits the bio was built under.
    #[inline]
    pub fn limits(&self) -> BioLimits {
        self.limits
    }

    /// The page geometry.
    #[inline]
    pub fn geometry(&self) -> PageGeometry {
        self.limits.geometry()
    }

    /// The whole bvec table, wherever the iterator stands (what release walks).
    #[inline]
    pub fn bvecs(&self) -> &[BioVec] {
        self.storage.as_slice()
    }

    /// The multi-page segments of the bytes left (`bio_for_each_bvec`).
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        self.iter().segments(self.bvecs(), self.geometry())
    }

    /// The single-page segments of the bytes left (`bio_for_each_segment`).
    #[inline]
    pub fn pages(&self) -> Pages<'_> {
        self.iter().pages(self.bvecs(), self.geometry())
    }

    /// Every page of every bvec, wherever the iterator stands (`..._segment_all`).
    #[inline]
    pub fn all_pages(&self) -> Pages<'_> {
        let whole = BvecIter::new(self.iter().sector(), self.total_data_bytes());
        whole.pages(self.bvecs(), self.geometry())
    }

    /// Gives the storage back, table included, for reuse after release.
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
}

#[cfg(test)]
mod tests;
