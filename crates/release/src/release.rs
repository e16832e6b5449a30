//! Releasing a bio's pages by origin, and dirtying them for direct-I/O reads.

use gupio_bio::{Bio, BioVec, BvecStorage};
use gupio_pfn::Origin;
use gupio_pin::{PageOps, PageRange, PinError, Tracker};

use crate::{ReleaseError, ReleaseWarning, Warn};

/// What one release did, counted in pages (a bvec spanning three pages
/// counts three).
///
/// ```
/// use gupio_release::ReleaseStats;
/// let s = ReleaseStats::default();
/// assert_eq!(s.unpinned + s.put + s.borrowed, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReleaseStats {
    /// Pages unpinned ([`Origin::Pinned`]).
    pub unpinned: usize,
    /// Pages whose reference was put ([`Origin::Referenced`]).
    pub put: usize,
    /// Pages of the zero page in pinned bvecs: never pinned, so not
    /// unpinned either (the tracker's pin accounting counts them nowhere,
    /// and neither does `unpinned`).
    pub zero_page: usize,
    /// Pages left to their owner ([`Origin::Borrowed`]), counted when the
    /// bio also holds pages to release (a bio of borrowed pages only is
    /// skipped in O(1) and counts nothing).
    pub borrowed: usize,
    /// Bvecs released: one batched call into the tracker each.
    pub bvecs: usize,
}

impl ReleaseStats {
    /// Counts one bvec of `pages` pages of `origin`, of which the tracker
    /// released `pins` pins.
    fn count(&mut self, origin: Origin, pages: usize, pins: usize) {
        match origin {
            Origin::Pinned => {
                self.unpinned += pins;
                self.zero_page += pages.saturating_sub(pins);
            }
            Origin::Referenced => self.put += pages,
            Origin::Borrowed => self.borrowed += pages,
        }
        self.bvecs += 1;
    }

    /// Pages seen, whatever their origin.
    pub const fn pages(&self) -> usize {
        self.unpinned + self.zero_page + self.put + self.borrowed
    }
}

/// The pages of one bvec as a tracker range, or `None` for a bvec without a page.
fn bvec_range<S: BvecStorage>(bio: &Bio<S>, bvec: &BioVec) -> Option<(PageRange, Origin)> {
    let geometry = bio.geometry();
    let (first, origin) = (bvec.first_page(geometry)?, bvec.origin()?);
    let count = bvec.page_count(geometry);
    PageRange::try_new(first, count)
        .ok()
        .map(|range| (range, origin))
}

/// Runs `each` over every bvec holding pages; a bvec with no page is warned
/// about and reported. Every bvec is visited even after a failure; the first
/// error is returned.
pub(crate) fn for_each_range<S, M, F>(
    ops: &M,
    bio: &Bio<S>,
    mut each: F,
) -> Result<(), ReleaseError>
where
    S: BvecStorage,
    M: PageOps + Warn + ?Sized,
    F: FnMut(PageRange, Origin) -> Result<(), PinError>,
{
    let mut first_error = None;
    for (index, bvec) in bio.bvecs().iter().enumerate() {
        if bvec.is_empty() && bvec.is_none() {
            // An unused slot with no bytes holds nothing.
            continue;
        }
        let Some((range, origin)) = bvec_range(bio, bvec) else {
            Warn::warn(
                ops,
                ReleaseWarning::BvecWithoutPage {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                },
            );
            first_error.get_or_insert(ReleaseError::NoPage { index });
            continue;
        };
        if let Err(error) = each(range, origin) {
            first_error.get_or_insert(ReleaseError::Pin { index, error });
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Releases every page of `bio` the way its origin says (Linux's
/// `bio_release_pages`, with the 2019 proposal's per-page origin): unpin for
/// pinned pages, put for referenced ones, nothing for borrowed ones. With
/// `mark_dirty` (a read the device wrote into), each page not yet dirty is
/// locked, dirtied and unlocked before its release, as by
/// `unpin_user_pages_dirty_lock`.
///
/// Each bvec is one batched call into the tracker: one atomic
/// read-modify-write per folio run, not per page. A bio whose
/// [`origins`](Bio::origins) say it holds nothing returns at once, whatever
/// its size. Every page of the table is released, wherever the bio's
/// iterator stands; only an owning [`Bio`] can be passed (a
/// [`BioSplit`](gupio_bio::BioSplit) has no way here).
///
/// Takes the bio by reference so the caller keeps its storage; after a
/// release the bio's references are gone, so drop or reset it. The
/// [`CompletedBio`](crate::CompletedBio) path makes that a type rule.
///
/// # Errors
/// [`ReleaseError::Pin`] (the tracker refused a bvec: not in the memory map,
/// unpin without a pin, ...) or [`ReleaseError::NoPage`] (a bvec without a
/// page in a bio holding pages). Both are also reported through the warn
/// hook by whoever detected them; the other bvecs are released regardless.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, Tracker};
/// use gupio_release::AnyWarning;
/// use gupio_release::release_pages;
///
/// let map = ArrayMemoryMap::<4, AnyWarning>::new(Pfn::new(0));
/// for pfn in 0..4 {
///     map.prepare_folio(Pfn::new(pfn), FolioOrder::SMALL).unwrap();
/// }
/// let tracker = Tracker::new(&map);
/// tracker.pin_page(Pfn::new(1)).unwrap();
/// tracker.get_page(Pfn::new(2)).unwrap();
///
/// let mut table = heapless::Vec::<_, 4>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
/// let _ = bio.add_page(Pfn::new(2), 4096, 0, Origin::Referenced).unwrap();
/// let _ = bio.add_page(Pfn::new(3), 4096, 0, Origin::Borrowed).unwrap();
///
/// let stats = release_pages(&tracker, &bio, true).unwrap();
/// assert_eq!((stats.unpinned, stats.put, stats.borrowed), (1, 1, 1));
/// for pfn in 1..4 {
///     assert_eq!(map.counters(Pfn::new(pfn)).unwrap().refcount(), 1);
/// }
/// ```
///
/// A split-off part cannot be handed in: it is a
/// [`BioSplit`](gupio_bio::BioSplit), not a [`Bio`], and only the owner
/// releases.
///
/// ```compile_fail
/// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
/// use gupio_pin::{ArrayMemoryMap, Tracker};
/// use gupio_release::AnyWarning;
/// let map = ArrayMemoryMap::<4, AnyWarning>::new(Pfn::new(0));
/// let mut table = heapless::Vec::<_, 4>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
/// let front = bio.split(SectorCount(4)).unwrap();
/// gupio_release::release_pages(&Tracker::new(&map), &front, false); // no: not the owner
/// ```
pub fn release_pages<S, M>(
    tracker: &Tracker<'_, M>,
    bio: &Bio<S>,
    mark_dirty: bool,
) -> Result<ReleaseStats, ReleaseError>
where
    S: BvecStorage,
    M: PageOps + Warn + ?Sized,
{
    if !bio.needs_release() {
        return Ok(ReleaseStats::default());
    }
    let mut stats = ReleaseStats::default();
    for_each_range(tracker.ops(), bio, |range, origin| {
        let pins = tracker.release_range(range, origin, mark_dirty)?;
        stats.count(origin, range.len(), pins);
        Ok(())
    })?;
    Ok(stats)
}

/// Marks every pinned or referenced page of `bio` dirty before a
/// direct-I/O read is submitted (Linux's `bio_set_pages_dirty`): each folio
/// not yet dirty is locked, dirtied and unlocked. Borrowed pages are their
/// owner's business and are left alone.
///
/// Dirtying before submission is what lets writeback see the page as
/// changing; [`check_pages_dirty`] at completion finds out whether
/// writeback cleaned any of them meanwhile.
///
/// # Errors
/// [`ReleaseError::Pin`] if a page is not in the memory map,
/// [`ReleaseError::NoPage`] for a bvec without a page. Every other page is
/// still dirtied.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, PageFlags, Tracker};
/// use gupio_release::AnyWarning;
/// use gupio_release::{set_pages_dirty, check_pages_dirty};
///
/// let map = ArrayMemoryMap::<1, AnyWarning>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
/// let tracker = Tracker::new(&map);
/// let mut table = heapless::Vec::<_, 1>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(0), 4096, 0, Origin::Pinned).unwrap();
/// set_pages_dirty(&tracker, &bio).unwrap();
/// assert!(map.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
/// assert_eq!(check_pages_dirty(&tracker, &bio), Ok(true));
/// ```
pub fn set_pages_dirty<S, M>(tracker: &Tracker<'_, M>, bio: &Bio<S>) -> Result<(), ReleaseError>
where
    S: BvecStorage,
    M: PageOps + Warn + ?Sized,
{
    if !bio.needs_release() {
        return Ok(());
    }
    for_each_range(tracker.ops(), bio, |range, origin| match origin {
        Origin::Borrowed => Ok(()),
        Origin::Pinned | Origin::Referenced => tracker.dirty_range_lock(range),
    })
}

/// Whether every pinned or referenced page of `bio` is still dirty (Linux's
/// `bio_check_pages_dirty`). `true`: release at once with
/// [`release_pages`] (no dirtying needed). `false`: writeback cleaned a page
/// while the device was writing into it, so the bio must be re-dirtied
/// before release: queue it on a [`DeferredList`](crate::DeferredList) for
/// process context, or call [`release_pages`] with `mark_dirty` where
/// locking pages is allowed.
///
/// # Errors
/// [`ReleaseError::Pin`] if a page is not in the memory map,
/// [`ReleaseError::NoPage`] for a bvec without a page.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, Tracker};
/// use gupio_release::AnyWarning;
/// use gupio_release::check_pages_dirty;
///
/// let map = ArrayMemoryMap::<1, AnyWarning>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
/// let tracker = Tracker::new(&map);
/// let mut table = heapless::Vec::<_, 1>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(0), 4096, 0, Origin::Pinned).unwrap();
/// assert_eq!(check_pages_dirty(&tracker, &bio), Ok(false), "never dirtied");
/// ```
pub fn check_pages_dirty<S, M>(tracker: &Tracker<'_, M>, bio: &Bio<S>) -> Result<bool, ReleaseError>
where
    S: BvecStorage,
    M: PageOps + Warn + ?Sized,
{
    if !bio.needs_release() {
        return Ok(true);
    }
    let mut all_dirty = true;
    for_each_range(tracker.ops(), bio, |range, origin| {
        if origin != Origin::Borrowed && !tracker.range_dirty(range)? {
            all_dirty = false;
        }
        Ok(())
    })?;
    Ok(all_dirty)
}
