//! The pin tracker: get/put and pin/unpin on single pages, arrays and ranges,
//! batched per folio run.

use core::fmt;
use core::ops::ControlFlow;

use gupio_pfn::{Origin, Pfn};
use gupio_sync::atomic::{fence, Ordering};

use crate::{
    maybe_dma_pinned, FolioRef, PageFlags, PageOps, PageRange, PinAccount, PinError, Warning,
};

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
    /// # use gupio_pin::doc_fixtures::NoMemory as M;
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

    /// Adds one more pin to the page at `pfn`, whose folio the caller
    /// already holds pinned (Linux's `folio_add_pin`): for a second holder
    /// of a page pinned once, such as a bio that needs its own pin on a
    /// page another bio of the same request holds, without walking the
    /// page tables again. One pin as [`pin_page`](Self::pin_page) takes it
    /// (a small page gains [`GUP_PIN_COUNTING_BIAS`](crate::GUP_PIN_COUNTING_BIAS)
    /// references, a large folio one reference and one pin), accounted the
    /// same way. The zero page is never pinned: adding a pin to it changes
    /// nothing and succeeds.
    ///
    /// The folio must already be pinned, as
    /// [`maybe_dma_pinned`](crate::maybe_dma_pinned) sees it (on a small
    /// page 1024 plain references look like a pin, as in Linux). Linux
    /// warns and adds anyway; gupio warns and refuses, since a pin taken
    /// without a page-table walk skips every check `pin_user_pages` makes.
    /// The check reads the counts before the add: it is exact for a caller
    /// that holds a pin, as it must, because that pin keeps the folio
    /// pinned meanwhile.
    ///
    /// # Errors
    /// [`PinError::NotPinned`] (warned: [`Warning::AddPinWithoutPin`]) if
    /// the folio holds no pin; otherwise as [`pin_page`](Self::pin_page).
    /// Nothing changes on error.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, PinError, Tracker};
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let page = Pfn::new(0);
    /// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
    /// let t = Tracker::new(&m);
    /// assert_eq!(t.add_pin(page), Err(PinError::NotPinned { pfn: page }), "not pinned yet");
    /// t.pin_page(page).unwrap();
    /// t.add_pin(page).unwrap();
    /// assert_eq!(m.counters(page).unwrap().refcount(), 1 + 2 * 1024);
    /// ```
    pub fn add_pin(&self, pfn: Pfn) -> Result<(), PinError> {
        let folio = self.lookup(pfn)?;
        let head = folio.head();
        if self.ops.is_zero_page(head) {
            return Ok(());
        }
        if !folio.maybe_dma_pinned() {
            let counters = folio.counters();
            self.ops.warn(Warning::AddPinWithoutPin {
                pfn: head,
                refcount: counters.refcount(),
                pincount: counters.pincount(),
            });
            return Err(PinError::NotPinned { pfn: head });
        }
        let pins = self.grab_run(folio, 1, GrabKind::Pin)?;
        if pins > 0 {
            self.ops.pins_acquired(pins);
        }
        Ok(())
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
    /// # use gupio_pin::doc_fixtures::Identity;
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
}

mod runs;

#[cfg(test)]
mod tests;
