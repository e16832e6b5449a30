//! The pin tracker: get/put and pin/unpin on single pages, arrays and ranges,
//! batched per folio run.

use core::fmt;
use core::ops::ControlFlow;

use gupio_pfn::{Origin, Pfn};
use gupio_sync::atomic::{fence, Ordering};

use crate::counters::{AddRefsError, SubError, GUP_PIN_COUNTING_BIAS};
use crate::{maybe_dma_pinned, FolioRef, PageFlags, PageOps, PinAccount, PinError, Warning};

/// A run of physically contiguous pages: a first frame and a page count.
///
/// The whole run is encodable (its last frame is at most [`Pfn::MAX`]).
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::PageRange;
/// let range = PageRange::try_new(Pfn::new(8), 4).unwrap();
/// assert_eq!(range.last(), Some(Pfn::new(11)));
/// assert!(PageRange::try_new(Pfn::MAX, 2).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageRange {
    first: Pfn,
    count: usize,
}

impl PageRange {
    /// The `count` pages from `first`.
    ///
    /// # Panics
    /// If the last page would be above [`Pfn::MAX`]. For constants; use
    /// [`PageRange::try_new`] on values that come from a caller.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert_eq!(gupio_pin::PageRange::new(Pfn::new(1), 3).len(), 3);
    /// ```
    #[track_caller]
    pub const fn new(first: Pfn, count: usize) -> Self {
        match Self::try_new(first, count) {
            Ok(range) => range,
            Err(_) => panic!("page range runs past Pfn::MAX"),
        }
    }

    /// The `count` pages from `first`, if the last one is encodable.
    ///
    /// # Errors
    /// [`PinError::RangeOverflow`] if the last page would be above [`Pfn::MAX`].
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{PageRange, PinError};
    /// assert!(PageRange::try_new(Pfn::MAX, 1).is_ok());
    /// assert_eq!(
    ///     PageRange::try_new(Pfn::MAX, 2),
    ///     Err(PinError::RangeOverflow { first: Pfn::MAX, count: 2 })
    /// );
    /// ```
    pub const fn try_new(first: Pfn, count: usize) -> Result<Self, PinError> {
        if count > 0 && first.checked_add(count - 1).is_none() {
            return Err(PinError::RangeOverflow { first, count });
        }
        Ok(Self { first, count })
    }

    /// The single page `pfn`.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert_eq!(gupio_pin::PageRange::single(Pfn::new(5)).len(), 1);
    /// ```
    pub const fn single(pfn: Pfn) -> Self {
        Self {
            first: pfn,
            count: 1,
        }
    }

    /// The first page.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert_eq!(gupio_pin::PageRange::new(Pfn::new(5), 2).first(), Pfn::new(5));
    /// ```
    pub const fn first(&self) -> Pfn {
        self.first
    }

    /// The last page, or `None` for an empty range.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert_eq!(gupio_pin::PageRange::new(Pfn::new(5), 0).last(), None);
    /// ```
    pub const fn last(&self) -> Option<Pfn> {
        if self.count == 0 {
            None
        } else {
            Some(Pfn::new_truncate(self.first.get() + (self.count - 1)))
        }
    }

    /// The number of pages.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert_eq!(gupio_pin::PageRange::new(Pfn::new(5), 2).len(), 2);
    /// ```
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether the range has no pages.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert!(gupio_pin::PageRange::new(Pfn::new(5), 0).is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `pfn` is in the range.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// let r = gupio_pin::PageRange::new(Pfn::new(5), 2);
    /// assert!(r.contains(Pfn::new(6)) && !r.contains(Pfn::new(7)));
    /// ```
    pub const fn contains(&self, pfn: Pfn) -> bool {
        match pfn.get().checked_sub(self.first.get()) {
            Some(offset) => offset < self.count,
            None => false,
        }
    }

    /// The page `offset` pages into the range (`offset < len`).
    const fn nth(&self, offset: usize) -> Pfn {
        // first + offset <= first + (count - 1), checked encodable in try_new.
        Pfn::new_truncate(self.first.get() + offset)
    }

    /// The `count` pages from `first`, known to lie inside one folio of a
    /// memory map (so every one is encodable).
    #[inline]
    pub(crate) const fn inside_folio(first: Pfn, count: usize) -> Self {
        Self { first, count }
    }

    /// The first `count` pages of the range (`count <= len`).
    const fn prefix(&self, count: usize) -> Self {
        Self {
            first: self.first,
            count,
        }
    }
}

/// What a grab takes on each page: a plain reference or a pin.
///
/// ```
/// use gupio_pfn::Origin;
/// use gupio_pin::GrabKind;
/// assert_eq!(GrabKind::Pin.origin(), Origin::Pinned);
/// assert_eq!(GrabKind::Get.origin(), Origin::Referenced);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrabKind {
    /// A plain reference (`FOLL_GET`), dropped by a put.
    Get,
    /// A pin (`FOLL_PIN`), dropped by an unpin.
    Pin,
}

impl GrabKind {
    /// The origin a page held this way carries in a bio.
    ///
    /// ```
    /// assert!(gupio_pin::GrabKind::Pin.origin().is_pinned());
    /// ```
    pub const fn origin(self) -> Origin {
        match self {
            Self::Get => Origin::Referenced,
            Self::Pin => Origin::Pinned,
        }
    }
}

/// The pages an operation walks: a caller's array or a contiguous range.
#[derive(Clone, Copy)]
enum Pages<'p> {
    Array(&'p [Pfn]),
    Range(PageRange),
}

impl Pages<'_> {
    /// The first `count` pages.
    fn prefix(self, count: usize) -> Self {
        match self {
            Self::Array(pfns) => Self::Array(pfns.get(..count).unwrap_or(pfns)),
            Self::Range(range) => Self::Range(range.prefix(count.min(range.len()))),
        }
    }
}

/// Takes and drops page references and pins through the embedder's
/// [`PageOps`], with Linux's semantics and gupio's protections.
///
/// - A **get** adds one reference per page, a **pin** adds
///   [`GUP_PIN_COUNTING_BIAS`](crate::GUP_PIN_COUNTING_BIAS) references per
///   small page, or one reference and one pin per page of a large folio.
///   Pinning the zero page changes nothing and succeeds; unpinning it does
///   nothing; neither is counted in the pin accounting.
/// - Arrays and ranges are walked in **folio runs** (consecutive entries in
///   one folio): each run costs one read-modify-write of the reference count
///   (plus one of the pin count for a large folio), whatever its length.
/// - Gets and pins are **all or nothing**: an increment that would pass
///   [`REFCOUNT_MAX`](crate::REFCOUNT_MAX), a page not in the map, or a free
///   page fails the call, and every reference the call took before is
///   dropped again (with the usual release, which frees a folio whose other
///   holders let go meanwhile) before the error returns.
/// - Puts and unpins **release every run they can**: a run that holds fewer
///   references or pins than released is refused (nothing changes on it, the
///   warn hook hears of it), the other runs are released, and the first
///   error is returned. No count ever goes below zero, and no folio is freed
///   while its pin count is non-zero. On small pages the check is as good as
///   the counts allow: a stray unpin of a page holding 1024 plain references
///   is indistinguishable from a real one (as in Linux).
/// - Puts, unpins and gets are lock-free (compare-and-swap loops on
///   gupio-sync atomics) and safe in interrupt-like completion context; only
///   the `*_dirty_lock` forms with `make_dirty` take the folio lock.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, Tracker};
/// let m = ArrayMemoryMap::<4>::new(Pfn::new(0));
/// m.prepare_folio(Pfn::new(2), FolioOrder::SMALL).unwrap();
/// let t = Tracker::new(&m);
/// t.pin_page(Pfn::new(2)).unwrap();
/// assert_eq!(m.counters(Pfn::new(2)).unwrap().refcount(), 1 + 1024);
/// t.unpin_page(Pfn::new(2)).unwrap();
/// assert!(t.unpin_page(Pfn::new(2)).is_err(), "no pin left to drop");
/// ```
pub struct Tracker<'a, M: PageOps + ?Sized> {
    ops: &'a M,
}

impl<M: PageOps + ?Sized> Clone for Tracker<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: PageOps + ?Sized> Copy for Tracker<'_, M> {}

impl<M: PageOps + ?Sized> fmt::Debug for Tracker<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

impl<'a, M: PageOps + ?Sized> Tracker<'a, M> {
    /// A tracker over the embedder's memory map and hooks.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::*;
    /// # struct M;
    /// # impl MemoryMap for M {
    /// #     fn counters(&self, _: Pfn) -> Option<&PageCounters> { None }
    /// #     fn is_zero_page(&self, _: Pfn) -> bool { false }
    /// # }
    /// # impl PageOps for M {
    /// #     fn free_folio(&self, _: FolioRef<'_>) {}
    /// #     fn warn(&self, _: Warning) {}
    /// #     fn pins_acquired(&self, _: usize) {}
    /// #     fn pins_released(&self, _: usize) {}
    /// # }
    /// let tracker = Tracker::new(&M);
    /// assert_eq!(
    ///     tracker.get_page(Pfn::new(1)),
    ///     Err(PinError::NotInMemoryMap { pfn: Pfn::new(1) })
    /// );
    /// ```
    pub const fn new(ops: &'a M) -> Self {
        Self { ops }
    }

    /// The embedder's hooks this tracker works through.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::*;
    /// # struct M;
    /// # impl MemoryMap for M {
    /// #     fn counters(&self, _: Pfn) -> Option<&PageCounters> { None }
    /// #     fn is_zero_page(&self, _: Pfn) -> bool { false }
    /// # }
    /// # impl PageOps for M {
    /// #     fn free_folio(&self, _: FolioRef<'_>) {}
    /// #     fn warn(&self, _: Warning) {}
    /// #     fn pins_acquired(&self, _: usize) {}
    /// #     fn pins_released(&self, _: usize) {}
    /// # }
    /// assert!(!Tracker::new(&M).ops().is_zero_page(Pfn::new(0)));
    /// ```
    pub const fn ops(&self) -> &'a M {
        self.ops
    }

    /// Takes one reference on the page at `pfn` (Linux's `try_get_page`).
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`], [`PinError::PageFree`] (warned: the
    /// caller held no reference), [`PinError::RefcountOverflow`],
    /// [`PinError::CorruptCounters`] (warned). Nothing changes on error.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// Tracker::new(&m).get_page(page).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 2);
    /// ```
    pub fn get_page(&self, pfn: Pfn) -> Result<(), PinError> {
        self.grab(Pages::Array(core::slice::from_ref(&pfn)), GrabKind::Get)
    }

    /// Drops one reference on the page at `pfn` (Linux's `put_page`), and
    /// frees the folio if it was the last.
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`], [`PinError::NoReference`] (warned; the
    /// count is left alone), [`PinError::CorruptCounters`] (warned).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// Tracker::new(&m).put_page(page).unwrap();
    /// assert_eq!(m.folios_freed(), 1);
    /// ```
    pub fn put_page(&self, pfn: Pfn) -> Result<(), PinError> {
        self.release_and_account(
            Pages::Array(core::slice::from_ref(&pfn)),
            GrabKind::Get,
            false,
        )
    }

    /// Pins the page at `pfn` (the caller holds a reference on it, or a lock
    /// that keeps it mapped). The zero page is left untouched.
    ///
    /// # Errors
    /// As [`get_page`](Self::get_page). Nothing changes on error.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// Tracker::new(&m).pin_page(page).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 1025);
    /// ```
    pub fn pin_page(&self, pfn: Pfn) -> Result<(), PinError> {
        self.grab(Pages::Array(core::slice::from_ref(&pfn)), GrabKind::Pin)
    }

    /// Unpins the page at `pfn` (Linux's `unpin_user_page`), freeing the
    /// folio if that dropped its last reference.
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`], [`PinError::NotPinned`] (warned; the
    /// counts are left alone), [`PinError::CorruptCounters`] (warned).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// let t = Tracker::new(&m);
    /// t.pin_page(page).unwrap();
    /// t.unpin_page(page).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 1);
    /// ```
    pub fn unpin_page(&self, pfn: Pfn) -> Result<(), PinError> {
        self.release_and_account(
            Pages::Array(core::slice::from_ref(&pfn)),
            GrabKind::Pin,
            false,
        )
    }

    /// Takes one reference on every page of `pfns`, one update per folio run.
    /// All or nothing.
    ///
    /// # Errors
    /// As [`get_page`](Self::get_page), for the first page that fails; the
    /// references taken before it are dropped again.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<4>::new(Pfn::new(0));
    /// let head = Pfn::new(0);
    /// m.prepare_folio(head, FolioOrder::try_new(2).unwrap()).unwrap();
    /// let pfns: Vec<_> = (0..4).map(|i| head.checked_add(i).unwrap()).collect();
    /// Tracker::new(&m).get_pages(&pfns).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 5);
    /// ```
    pub fn get_pages(&self, pfns: &[Pfn]) -> Result<(), PinError> {
        self.grab(Pages::Array(pfns), GrabKind::Get)
    }

    /// Drops one reference on every page of `pfns`, one update per folio run.
    ///
    /// # Errors
    /// The first error of any run (see [`put_page`](Self::put_page)); every
    /// other run is still released.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<2>::new(Pfn::new(0));
    /// let (a, b) = (Pfn::new(0), Pfn::new(1));
    /// m.prepare_folio(a, FolioOrder::SMALL).unwrap();
    /// m.prepare_folio(b, FolioOrder::SMALL).unwrap();
    /// Tracker::new(&m).put_pages(&[a, b]).unwrap();
    /// assert_eq!(m.folios_freed(), 2);
    /// ```
    pub fn put_pages(&self, pfns: &[Pfn]) -> Result<(), PinError> {
        self.release_and_account(Pages::Array(pfns), GrabKind::Get, false)
    }

    /// Pins every page of `pfns`, one update per folio run (two for a large
    /// folio). All or nothing.
    ///
    /// # Errors
    /// As [`pin_page`](Self::pin_page), for the first page that fails; the
    /// pins taken before it are dropped again.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<4>::new(Pfn::new(0));
    /// let head = Pfn::new(0);
    /// m.prepare_folio(head, FolioOrder::try_new(2).unwrap()).unwrap();
    /// let pfns: Vec<_> = (1..3).map(|i| head.checked_add(i).unwrap()).collect();
    /// Tracker::new(&m).pin_pages(&pfns).unwrap();
    /// assert_eq!((m.counters(Pfn::new(0)).unwrap().refcount(), m.counters(Pfn::new(0)).unwrap().pincount()), (3, 2));
    /// ```
    pub fn pin_pages(&self, pfns: &[Pfn]) -> Result<(), PinError> {
        self.grab(Pages::Array(pfns), GrabKind::Pin)
    }

    /// Unpins every page of `pfns` (Linux's `unpin_user_pages`), one update
    /// per folio run (two for a large folio).
    ///
    /// # Errors
    /// The first error of any run (see [`unpin_page`](Self::unpin_page));
    /// every other run is still released.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<2>::new(Pfn::new(0));
    /// let (a, b) = (Pfn::new(0), Pfn::new(1));
    /// m.prepare_folio(a, FolioOrder::SMALL).unwrap();
    /// m.prepare_folio(b, FolioOrder::SMALL).unwrap();
    /// let t = Tracker::new(&m);
    /// t.pin_pages(&[a, b, a]).unwrap();
    /// t.unpin_pages(&[a, b, a]).unwrap();
    /// assert_eq!(m.stats().in_flight(), 0);
    /// ```
    pub fn unpin_pages(&self, pfns: &[Pfn]) -> Result<(), PinError> {
        self.release_and_account(Pages::Array(pfns), GrabKind::Pin, false)
    }

    /// Unpins every page of `pfns`, first marking each folio dirty if
    /// `make_dirty` and it is not dirty yet (lock, mark dirty, unlock: Linux's
    /// `unpin_user_pages_dirty_lock`). Process context when `make_dirty`.
    ///
    /// # Errors
    /// As [`unpin_pages`](Self::unpin_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageFlags, Tracker};
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// let t = Tracker::new(&m);
    /// t.pin_page(page).unwrap();
    /// t.unpin_pages_dirty_lock(&[page], true).unwrap();
    /// assert!(m.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
    /// ```
    pub fn unpin_pages_dirty_lock(&self, pfns: &[Pfn], make_dirty: bool) -> Result<(), PinError> {
        self.release_and_account(Pages::Array(pfns), GrabKind::Pin, make_dirty)
    }

    /// Drops one reference on every page of `pfns`, first marking each folio
    /// dirty if `make_dirty` (as
    /// [`unpin_pages_dirty_lock`](Self::unpin_pages_dirty_lock) does for pins).
    ///
    /// # Errors
    /// As [`put_pages`](Self::put_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageFlags, Tracker};
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// let t = Tracker::new(&m);
    /// t.get_page(page).unwrap();
    /// t.put_pages_dirty_lock(&[page], true).unwrap();
    /// assert!(m.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
    /// ```
    pub fn put_pages_dirty_lock(&self, pfns: &[Pfn], make_dirty: bool) -> Result<(), PinError> {
        self.release_and_account(Pages::Array(pfns), GrabKind::Get, make_dirty)
    }

    /// Takes one reference on every page of `range`, one update per folio it
    /// touches. All or nothing.
    ///
    /// # Errors
    /// As [`get_pages`](Self::get_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageRange, Tracker};
    /// let m = ArrayMemoryMap::<8>::new(Pfn::new(0));
    /// let head = Pfn::new(0);
    /// m.prepare_folio(head, FolioOrder::try_new(3).unwrap()).unwrap();
    /// Tracker::new(&m).get_range(PageRange::new(head, 8)).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 9);
    /// ```
    pub fn get_range(&self, range: PageRange) -> Result<(), PinError> {
        self.grab(Pages::Range(range), GrabKind::Get)
    }

    /// Drops one reference on every page of `range`.
    ///
    /// # Errors
    /// As [`put_pages`](Self::put_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageRange, Tracker};
    /// let m = ArrayMemoryMap::<8>::new(Pfn::new(0));
    /// let head = Pfn::new(0);
    /// m.prepare_folio(head, FolioOrder::try_new(3).unwrap()).unwrap();
    /// let t = Tracker::new(&m);
    /// t.get_range(PageRange::new(head, 7)).unwrap();
    /// t.put_range(PageRange::new(head, 7)).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 1);
    /// ```
    pub fn put_range(&self, range: PageRange) -> Result<(), PinError> {
        self.release_and_account(Pages::Range(range), GrabKind::Get, false)
    }

    /// Pins every page of `range`, one update per folio it touches (two for a
    /// large folio). All or nothing.
    ///
    /// # Errors
    /// As [`pin_pages`](Self::pin_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageRange, Tracker};
    /// let m = ArrayMemoryMap::<8>::new(Pfn::new(0));
    /// let head = Pfn::new(0);
    /// m.prepare_folio(head, FolioOrder::try_new(3).unwrap()).unwrap();
    /// Tracker::new(&m).pin_range(PageRange::new(head, 8)).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().pincount(), 8);
    /// assert_eq!(m.stats().acquired(), 8);
    /// ```
    pub fn pin_range(&self, range: PageRange) -> Result<(), PinError> {
        self.grab(Pages::Range(range), GrabKind::Pin)
    }

    /// Unpins every page of `range` (Linux's `unpin_user_page_range_dirty_lock`
    /// without dirtying).
    ///
    /// # Errors
    /// As [`unpin_pages`](Self::unpin_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageRange, Tracker};
    /// let m = ArrayMemoryMap::<8>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::try_new(3).unwrap()).unwrap();
    /// let range = PageRange::new(Pfn::new(0), 8);
    /// let t = Tracker::new(&m);
    /// t.pin_range(range).unwrap();
    /// t.unpin_range(range).unwrap();
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().pincount(), 0);
    /// ```
    pub fn unpin_range(&self, range: PageRange) -> Result<(), PinError> {
        self.release_and_account(Pages::Range(range), GrabKind::Pin, false)
    }

    /// Unpins every page of `range`, first marking each folio dirty if
    /// `make_dirty` and it is not dirty yet (Linux's
    /// `unpin_user_page_range_dirty_lock`).
    ///
    /// # Errors
    /// As [`unpin_pages`](Self::unpin_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageFlags, PageRange, Tracker};
    /// let m = ArrayMemoryMap::<8>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::try_new(3).unwrap()).unwrap();
    /// let range = PageRange::new(Pfn::new(0), 8);
    /// let t = Tracker::new(&m);
    /// t.pin_range(range).unwrap();
    /// t.unpin_range_dirty_lock(range, true).unwrap();
    /// assert!(m.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
    /// ```
    pub fn unpin_range_dirty_lock(
        &self,
        range: PageRange,
        make_dirty: bool,
    ) -> Result<(), PinError> {
        self.release_and_account(Pages::Range(range), GrabKind::Pin, make_dirty)
    }

    /// Drops one reference on every page of `range`, first marking each
    /// folio dirty if `make_dirty` and it is not dirty yet.
    ///
    /// # Errors
    /// As [`put_pages`](Self::put_pages).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageFlags, PageRange, Tracker};
    /// let m = ArrayMemoryMap::<2>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::try_new(1).unwrap()).unwrap();
    /// let range = PageRange::new(Pfn::new(0), 2);
    /// let t = Tracker::new(&m);
    /// t.get_range(range).unwrap();
    /// t.put_range_dirty_lock(range, true).unwrap();
    /// assert!(m.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
    /// ```
    pub fn put_range_dirty_lock(&self, range: PageRange, make_dirty: bool) -> Result<(), PinError> {
        self.release_and_account(Pages::Range(range), GrabKind::Get, make_dirty)
    }

    /// Releases `range` the way `origin` says (what a bio's completion does
    /// for one bvec): unpin for [`Origin::Pinned`], put for
    /// [`Origin::Referenced`], nothing at all for [`Origin::Borrowed`] (the
    /// owner keeps and dirties its pages). With `make_dirty`, folios are
    /// dirtied first as by the `*_dirty_lock` forms.
    ///
    /// Returns the pins released: the pages unpinned, as
    /// [`PageOps::pins_released`](crate::PageOps::pins_released) was told.
    /// Pages of the zero page are never pinned and so never unpinned: a
    /// pinned range over it releases fewer pins than it has pages, and a
    /// put or a borrowed range releases none.
    ///
    /// # Errors
    /// As [`unpin_range`](Self::unpin_range) or [`put_range`](Self::put_range).
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::{PageRange, Tracker};
    /// use gupio_pfn::Origin;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    /// let range = PageRange::single(Pfn::new(0));
    /// let t = Tracker::new(&m);
    /// t.pin_range(range).unwrap();
    /// assert_eq!(t.release_range(range, Origin::Borrowed, true), Ok(0));
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 1025, "borrowed: untouched");
    /// assert_eq!(t.release_range(range, Origin::Pinned, false), Ok(1));
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().refcount(), 1);
    /// ```
    #[inline]
    pub fn release_range(
        &self,
        range: PageRange,
        origin: Origin,
        make_dirty: bool,
    ) -> Result<usize, PinError> {
        let kind = match origin {
            Origin::Borrowed => return Ok(0),
            Origin::Referenced => GrabKind::Get,
            Origin::Pinned => GrabKind::Pin,
        };
        self.release_and_count(Pages::Range(range), kind, make_dirty)
    }

    /// Releases a [`HeldRun`](crate::HeldRun), consuming it: unpins a
    /// pinned run, puts a referenced one, dirtying its folio first if
    /// `make_dirty` (under the folio lock, as
    /// [`unpin_range_dirty_lock`](Self::unpin_range_dirty_lock)). One update
    /// of the folio's counts; the pins are accounted. A run charged to a
    /// [`PinAccount`] (from
    /// [`pin_user_pages_longterm`](Self::pin_user_pages_longterm)) gives its
    /// charge back too, whatever the release's outcome: the run is gone.
    ///
    /// # Errors
    /// As [`release_range`](Self::release_range): only a bug elsewhere (a
    /// stray release of the same pages) makes the counts refuse; nothing is
    /// then changed and the warn hook has heard of it. Likewise
    /// [`PinError::AccountUnderflow`] (warned) if a stray uncharge left the
    /// account holding less than the run's charge.
    ///
    /// ```
    /// # use gupio_pfn::{PageGeometry, Pfn};
    /// # use gupio_pin::*;
    /// # struct Identity;
    /// # impl AddressSpace for Identity {
    /// #     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
    /// #     fn translate(&self, a: UserAddr) -> Result<Option<Mapping>, FaultKind> {
    /// #         Ok(Some(Mapping::new(Pfn::new(a.get() >> 12), MappingFlags::WRITABLE)))
    /// #     }
    /// #     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Ok(()) }
    /// # }
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    /// let t = Tracker::new(&m);
    /// for run in t.pin_user_pages(&Identity, UserAddr::new(0), 1, GupFlags::WRITE)? {
    ///     t.release_held(run?, true)?;
    /// }
    /// assert_eq!((m.stats().acquired(), m.stats().released()), (1, 1));
    /// assert!(m.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
    /// # Ok::<(), PinError>(())
    /// ```
    pub fn release_held(
        &self,
        run: crate::HeldRun<'a, M>,
        make_dirty: bool,
    ) -> Result<(), PinError> {
        run.release(make_dirty)
    }

    /// The release of a [`HeldRun`](crate::HeldRun)'s parts.
    pub(crate) fn release_held_parts(
        &self,
        folio: FolioRef<'a>,
        pages: usize,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<(), PinError> {
        let pins = self.release_run(folio, pages, kind, make_dirty)?;
        if pins > 0 {
            self.ops.pins_released(pins);
        }
        Ok(())
    }

    /// Gives `units` back to `account`, warning if it holds fewer (a
    /// stray uncharge elsewhere).
    pub(crate) fn uncharge(&self, account: &PinAccount, units: usize) -> Result<(), PinError> {
        account.uncharge_units(units).inspect_err(|error| {
            if let PinError::AccountUnderflow { charged, request } = *error {
                self.ops.warn(Warning::AccountUnderflow {
                    charged: u64::try_from(charged).unwrap_or(u64::MAX),
                    request: u64::try_from(request).unwrap_or(u64::MAX),
                });
            }
        })
    }

    /// Whether a device may hold a pin on the page at `pfn`: see
    /// [`maybe_dma_pinned`](crate::maybe_dma_pinned).
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`] or [`PinError::CorruptCounters`].
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// # use gupio_pin::Tracker;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// let t = Tracker::new(&m);
    /// assert_eq!(t.maybe_dma_pinned(page), Ok(false));
    /// t.pin_page(page).unwrap();
    /// assert_eq!(t.maybe_dma_pinned(page), Ok(true));
    /// ```
    pub fn maybe_dma_pinned(&self, pfn: Pfn) -> Result<bool, PinError> {
        maybe_dma_pinned(self.ops, pfn)
    }

    /// Dirties every folio of `range` that is not dirty yet, each under its
    /// lock (Linux's `bio_set_pages_dirty`: lock, mark dirty, unlock), and
    /// changes no count. The zero page is never dirtied. One lock per folio
    /// run, not per page.
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`] (or [`PinError::CorruptCounters`]) for
    /// a page the map does not know; every other folio is still dirtied.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, PageFlags, PageRange, Tracker};
    /// let m = ArrayMemoryMap::<4>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::try_new(2).unwrap()).unwrap();
    /// let t = Tracker::new(&m);
    /// t.dirty_range_lock(PageRange::new(Pfn::new(1), 2)).unwrap();
    /// assert!(m.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
    /// assert_eq!(t.range_dirty(PageRange::new(Pfn::new(0), 4)), Ok(true));
    /// ```
    pub fn dirty_range_lock(&self, range: PageRange) -> Result<(), PinError> {
        // SeqCst: orders the caller's earlier pins before the DIRTY checks
        // below; pairs with writeback's SeqCst fence between clearing DIRTY
        // and asking maybe_dma_pinned, so either writeback sees the pin or
        // this sees the page clean and dirties it (loom: gupio-writeback's
        // release-path models).
        fence(Ordering::SeqCst);
        let mut first_error = None;
        self.for_each_run(Pages::Range(range), |folio, _, _| {
            match folio {
                Ok(folio) => {
                    let dirty = folio.counters().flags().contains(PageFlags::DIRTY);
                    if !dirty && !self.ops.is_zero_page(folio.head()) {
                        self.ops.lock_folio(folio);
                        self.ops.mark_folio_dirty(folio);
                        self.ops.unlock_folio(folio);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            ControlFlow::Continue(())
        });
        first_error.map_or(Ok(()), Err)
    }

    /// Whether every folio of `range` is dirty (Linux's
    /// `bio_check_pages_dirty` test); the zero page counts as dirty, since
    /// it is never written back. Takes no lock: a snapshot.
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`] (or [`PinError::CorruptCounters`]) for
    /// the first page the map does not know.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, PageRange, Tracker};
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    /// assert_eq!(Tracker::new(&m).range_dirty(PageRange::single(Pfn::new(0))), Ok(false));
    /// ```
    pub fn range_dirty(&self, range: PageRange) -> Result<bool, PinError> {
        let mut result = Ok(true);
        self.for_each_run(Pages::Range(range), |folio, _, _| match folio {
            Ok(folio) => {
                let dirty = folio.counters().flags().contains(PageFlags::DIRTY);
                if dirty || self.ops.is_zero_page(folio.head()) {
                    ControlFlow::Continue(())
                } else {
                    result = Ok(false);
                    ControlFlow::Break(())
                }
            }
            Err(e) => {
                result = Err(e);
                ControlFlow::Break(())
            }
        });
        result
    }

    /// Looks up the folio of `pfn`, warning if the map's answer is
    /// inconsistent.
    pub(crate) fn lookup(&self, pfn: Pfn) -> Result<FolioRef<'a>, PinError> {
        match self.ops.folio(pfn) {
            Ok(folio) if folio.contains(pfn) => Ok(folio),
            Ok(_) | Err(PinError::CorruptCounters { .. }) => {
                self.ops.warn(Warning::CorruptFolio { pfn });
                Err(PinError::CorruptCounters { pfn })
            }
            Err(other) => Err(other),
        }
    }

    /// Calls `visit(folio, start, len)` for each folio run of `pages`, in
    /// order, until it breaks. A page whose lookup fails is a run of one.
    fn for_each_run(
        &self,
        pages: Pages<'_>,
        mut visit: impl FnMut(Result<FolioRef<'a>, PinError>, usize, usize) -> ControlFlow<()>,
    ) {
        match pages {
            Pages::Array(pfns) => {
                let mut start = 0;
                let mut rest = pfns;
                while let Some((&pfn, tail)) = rest.split_first() {
                    let (folio, len) = match self.lookup(pfn) {
                        Ok(folio) => {
                            let more = tail.iter().take_while(|&&p| folio.contains(p)).count();
                            (Ok(folio), 1 + more)
                        }
                        Err(e) => (Err(e), 1),
                    };
                    if visit(folio, start, len).is_break() {
                        return;
                    }
                    start += len;
                    rest = rest.get(len..).unwrap_or_default();
                }
            }
            Pages::Range(range) => {
                let mut start = 0;
                while start < range.len() {
                    let pfn = range.nth(start);
                    let (folio, len) = match self.lookup(pfn) {
                        // `lookup` checked that the folio contains `pfn`, so
                        // the run has at least one page.
                        Ok(folio) => (Ok(folio), folio.pages_from(pfn).min(range.len() - start)),
                        Err(e) => (Err(e), 1),
                    };
                    if visit(folio, start, len).is_break() {
                        return;
                    }
                    start += len;
                }
            }
        }
    }

    /// Takes a reference or pin on every page, all or nothing, and accounts
    /// the pins once at the end.
    fn grab(&self, pages: Pages<'_>, kind: GrabKind) -> Result<(), PinError> {
        let mut pins = 0usize;
        let mut failure = None;
        self.for_each_run(pages, |folio, start, len| {
            match folio.and_then(|folio| self.grab_run(folio, len, kind)) {
                Ok(taken) => {
                    pins += taken;
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failure = Some((start, e));
                    ControlFlow::Break(())
                }
            }
        });
        if let Some((done, error)) = failure {
            // Undo the runs before the failure. Not yet accounted, so the
            // release is not accounted either. Its own failures (a bug
            // elsewhere) have been warned about; the caller gets the error
            // that stopped the grab.
            let _ = self.release(pages.prefix(done), kind, false);
            return Err(error);
        }
        if pins > 0 {
            self.ops.pins_acquired(pins);
        }
        Ok(())
    }

    /// Takes `pages` references or pins on `folio` with one checked update
    /// of its refcount (and one of its pin count if it is large and this is
    /// a pin). Returns the pins to account.
    pub(crate) fn grab_run(
        &self,
        folio: FolioRef<'a>,
        pages: usize,
        kind: GrabKind,
    ) -> Result<usize, PinError> {
        let head = folio.head();
        if kind == GrabKind::Pin && self.ops.is_zero_page(head) {
            // Linux 6.5: the zero page is never pinned; nothing to undo later.
            return Ok(0);
        }
        let counters = folio.counters();
        let refs = refs_needed(&folio, pages, kind);
        let overflow = |refcount| PinError::RefcountOverflow {
            pfn: head,
            refcount,
            adding: refs,
        };
        let delta = u32::try_from(refs).map_err(|_| overflow(counters.refcount()))?;
        // A large folio counts the pin exactly as well: one update of both
        // counts (one read-modify-write where they share a word).
        let pins = if kind == GrabKind::Pin && folio.has_pincount() {
            delta
        } else {
            0
        };
        match counters.try_add(delta, pins) {
            Ok(()) => {}
            Err(AddRefsError::Free) => {
                self.ops.warn(Warning::GrabOfFreePage { pfn: head });
                return Err(PinError::PageFree { pfn: head });
            }
            Err(AddRefsError::Overflow(refcount)) => return Err(overflow(refcount)),
        }
        Ok(if kind == GrabKind::Pin { pages } else { 0 })
    }

    /// Releases every run it can and accounts the pins released.
    #[inline]
    fn release_and_account(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<(), PinError> {
        self.release_and_count(pages, kind, make_dirty).map(|_| ())
    }

    /// [`release_and_account`](Self::release_and_account), returning the
    /// pins released and accounted (0 for puts and for the zero page).
    #[inline]
    fn release_and_count(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<usize, PinError> {
        // A range inside one folio (every single-page bvec) is one run:
        // release it without the walk, with the same result.
        if let Pages::Range(range) = pages {
            if let Some(folio) = self.single_run(range) {
                let pins = self.release_run(folio, range.len(), kind, make_dirty)?;
                if pins > 0 {
                    self.ops.pins_released(pins);
                }
                return Ok(pins);
            }
        }
        self.release_and_account_walk(pages, kind, make_dirty)
    }

    /// [`release_and_count`](Self::release_and_count) for pages that
    /// span several folio runs (or that the map answers badly for): the
    /// walk, kept out of line so the one-run case stays small.
    #[inline(never)]
    fn release_and_account_walk(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<usize, PinError> {
        let (released, result) = self.release(pages, kind, make_dirty);
        if released > 0 {
            self.ops.pins_released(released);
        }
        result.map(|()| released)
    }

    /// The folio holding every page of the non-empty `range`, if the map
    /// answers consistently; otherwise `None`, and the general walk looks
    /// the pages up again and reports (and warns about) what is wrong.
    #[inline]
    fn single_run(&self, range: PageRange) -> Option<FolioRef<'a>> {
        if range.is_empty() {
            return None;
        }
        let first = range.first();
        let folio = self.ops.folio(first).ok()?;
        (folio.contains(first) && folio.pages_from(first) >= range.len()).then_some(folio)
    }

    /// Releases every run it can; returns the pins released and the first
    /// error.
    fn release(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> (usize, Result<(), PinError>) {
        let mut released = 0usize;
        let mut first_error = None;
        self.for_each_run(pages, |folio, _, len| {
            match folio.and_then(|folio| self.release_run(folio, len, kind, make_dirty)) {
                Ok(pins) => released += pins,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            ControlFlow::Continue(())
        });
        (released, first_error.map_or(Ok(()), Err))
    }

    /// Drops `pages` references or pins from `folio` with one checked update
    /// of its refcount (and one of its pin count if it is large and this is
    /// an unpin), dirtying it first if asked. Returns the pins to account.
    pub(crate) fn release_run(
        &self,
        folio: FolioRef<'a>,
        pages: usize,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<usize, PinError> {
        let head = folio.head();
        let counters = folio.counters();
        let zero = self.ops.is_zero_page(head);
        if make_dirty && !zero && !counters.flags().contains(PageFlags::DIRTY) {
            // Linux's unpin_user_pages_dirty_lock: lock, mark dirty, unlock.
            // Racing writeback may clean it again: at worst one more
            // writeback of the folio.
            self.ops.lock_folio(folio);
            self.ops.mark_folio_dirty(folio);
            self.ops.unlock_folio(folio);
        }
        if kind == GrabKind::Pin && zero {
            return Ok(0);
        }
        let refs = refs_needed(&folio, pages, kind);
        let large_unpin = kind == GrabKind::Pin && folio.has_pincount();
        // More references than a count can hold are certainly not held.
        let Ok(delta) = u32::try_from(refs) else {
            return Err(self.refuse_release(&folio, pages, refs, kind, counters.refcount()));
        };
        let pins = if large_unpin { delta } else { 0 };
        match counters.try_sub(delta, pins) {
            Ok(0) => self.last_reference_dropped(folio)?,
            Ok(_) => {}
            Err(SubError::Pins { refcount, pincount }) => {
                self.ops.warn(Warning::UnpinWithoutPin {
                    pfn: head,
                    pages: widen(pages),
                    refcount,
                    pincount,
                });
                return Err(PinError::NotPinned { pfn: head });
            }
            Err(SubError::Refs { refcount, pincount }) if large_unpin => {
                // The pins are there but their references are not: nothing
                // changed, and the folio is left alone.
                self.ops.warn(Warning::RefcountBelowPincount {
                    pfn: head,
                    refcount,
                    pincount,
                });
                return Err(PinError::CorruptCounters { pfn: head });
            }
            Err(SubError::Refs { refcount, .. }) => {
                return Err(self.refuse_release(&folio, pages, refs, kind, refcount))
            }
        }
        Ok(if kind == GrabKind::Pin { pages } else { 0 })
    }

    /// Warns about and returns the error for a release of more than is held
    /// (`refcount` is the count seen).
    fn refuse_release(
        &self,
        folio: &FolioRef<'a>,
        pages: usize,
        refs: u64,
        kind: GrabKind,
        refcount: u32,
    ) -> PinError {
        let pfn = folio.head();
        match kind {
            GrabKind::Get => {
                self.ops.warn(Warning::PutWithoutReference {
                    pfn,
                    refcount,
                    dropping: refs,
                });
                PinError::NoReference { pfn }
            }
            GrabKind::Pin => {
                self.ops.warn(Warning::UnpinWithoutPin {
                    pfn,
                    pages: widen(pages),
                    refcount,
                    pincount: folio.counters().pincount(),
                });
                PinError::NotPinned { pfn }
            }
        }
    }

    /// The caller's update took the count to zero (and ran the Acquire
    /// fence): free the folio, unless pins remain, which only a bug causes;
    /// then it is leaked rather than freed under a device.
    fn last_reference_dropped(&self, folio: FolioRef<'a>) -> Result<(), PinError> {
        if folio.has_pincount() {
            let pincount = folio.counters().pincount();
            if pincount != 0 {
                let pfn = folio.head();
                self.ops.warn(Warning::FreedWhilePinned { pfn, pincount });
                return Err(PinError::CorruptCounters { pfn });
            }
        }
        self.ops.free_folio(folio);
        Ok(())
    }
}

/// The references `pages` gets or pins of `folio` amount to, saturating.
fn refs_needed(folio: &FolioRef<'_>, pages: usize, kind: GrabKind) -> u64 {
    let pages = widen(pages);
    match kind {
        GrabKind::Pin if !folio.has_pincount() => {
            pages.saturating_mul(u64::from(GUP_PIN_COUNTING_BIAS))
        }
        _ => pages,
    }
}

/// A page count as a `u64` (lossless on every supported target).
fn widen(pages: usize) -> u64 {
    u64::try_from(pages).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
