//! The embedder's side: its memory map, its page hooks, and a ready-made
//! fixed-size memory map.

use core::fmt;

use gupio_pfn::{Folio, FolioOrder, Pfn};
use gupio_sync::atomic::{AtomicUsize, Ordering};
use gupio_sync::const_unless_loom;
use gupio_sync::Mutex;

use crate::counters::{FolioShape, PageCounters, PageFlags, GUP_PIN_COUNTING_BIAS};
use crate::{PinError, Warning};

/// The embedder's memory map: where the [`PageCounters`] of each page live,
/// and what kind of page a frame holds.
///
/// The queries a read-only user needs (`maybe_dma_pinned`, writeback
/// decisions) take only a `MemoryMap`; everything that changes a count needs
/// [`PageOps`] as well. Implementations must be cheap: the tracker calls
/// [`folio`](Self::folio) once per folio run and
/// [`is_zero_page`](Self::is_zero_page) once per folio run.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{MemoryMap, PageCounters};
///
/// /// Sixteen small pages from pfn 0x100; pfn 0x100 is the zero page.
/// struct Ram([PageCounters; 16]);
///
/// impl MemoryMap for Ram {
///     fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
///         self.0.get(pfn.get().checked_sub(0x100)?)
///     }
///     fn is_zero_page(&self, pfn: Pfn) -> bool {
///         pfn == Pfn::new(0x100)
///     }
/// }
///
/// let ram = Ram(core::array::from_fn(|_| PageCounters::new()));
/// assert!(ram.counters(Pfn::new(0x10f)).is_some());
/// assert_eq!(ram.folio(Pfn::new(0x101)).unwrap().head(), Pfn::new(0x101));
/// assert!(ram.folio(Pfn::new(0x110)).is_err());
/// ```
pub trait MemoryMap {
    /// The counters of the page at `pfn`, or `None` if the map has no such
    /// page (the tracker turns that into [`PinError::NotInMemoryMap`]).
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters>;

    /// Whether `pfn` is a page of a shared zero folio (Linux's
    /// `is_zero_folio`; there may be several, for cache colouring). Pinning
    /// such a page changes nothing and unpinning it is a no-op.
    fn is_zero_page(&self, pfn: Pfn) -> bool;

    /// Whether the page may be pinned long term (`FOLL_LONGTERM`). Linux
    /// refuses movable and CMA memory; the default allows every page.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{MemoryMap, PageCounters};
    /// # struct M;
    /// # impl MemoryMap for M {
    /// #     fn counters(&self, _: Pfn) -> Option<&PageCounters> { None }
    /// #     fn is_zero_page(&self, _: Pfn) -> bool { false }
    /// # }
    /// assert!(M.is_longterm_pinnable(Pfn::new(1)));
    /// ```
    fn is_longterm_pinnable(&self, pfn: Pfn) -> bool {
        let _ = pfn;
        true
    }

    /// The folio holding `pfn`: its head, its order and the head's counters.
    ///
    /// The default reads the page's [`FolioShape`], steps back to the head
    /// and checks that the head agrees. The caller must hold a reference on
    /// the folio (or otherwise keep it from being freed and re-shaped, as a
    /// page-table lock does for a mapped page).
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`] if `pfn` has no counters;
    /// [`PinError::CorruptCounters`] if the head is missing or disagrees.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
    /// let map = ArrayMemoryMap::<8>::new(Pfn::new(0));
    /// map.prepare_folio(Pfn::new(4), FolioOrder::try_new(2).unwrap()).unwrap();
    /// let folio = map.folio(Pfn::new(6)).unwrap();
    /// assert_eq!((folio.head(), folio.nr_pages()), (Pfn::new(4), 4));
    /// ```
    fn folio(&self, pfn: Pfn) -> Result<FolioRef<'_>, PinError> {
        let counters = self.counters(pfn).ok_or(PinError::NotInMemoryMap { pfn })?;
        let shape = counters.shape();
        let corrupt = PinError::CorruptCounters { pfn };
        if shape.is_head() {
            let folio = Folio::new(pfn, shape.order()).map_err(|_| corrupt)?;
            return Ok(FolioRef::new(folio, counters));
        }
        let index = usize::try_from(shape.index()).map_err(|_| corrupt)?;
        let head = pfn.checked_sub(index).ok_or(corrupt)?;
        let head_counters = self.counters(head).ok_or(corrupt)?;
        if head_counters.shape() != FolioShape::head(shape.order()) {
            return Err(corrupt);
        }
        let folio = Folio::new(head, shape.order()).map_err(|_| corrupt)?;
        Ok(FolioRef::new(folio, head_counters))
    }
}

/// The embedder's hooks for what changing a count entails: freeing a folio
/// whose last reference dropped, locking and dirtying a folio, reporting a
/// broken invariant, and counting pins.
///
/// One trait with defaults rather than several small ones: the tracker needs
/// all of these together on every path that changes a count (a put can free,
/// an unpin can warn and account), so one bound is what every caller writes;
/// the defaults cover what is the same in every kernel (the lock and dirty
/// bits in [`PageFlags`]). Read-only users need only the [`MemoryMap`]
/// supertrait.
///
/// Every hook but the lock and the dirtying may run from interrupt-like
/// completion context: they must not block. [`lock_folio`](Self::lock_folio)
/// runs only for the `*_dirty_lock` operations, which, as in Linux, belong in
/// process context.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{
///     ArrayMemoryMap, FolioRef, MemoryMap, PageCounters, PageOps, PinStats, Tracker, Warning,
/// };
///
/// struct Machine {
///     map: ArrayMemoryMap<4>,
///     stats: PinStats,
/// }
///
/// impl MemoryMap for Machine {
///     fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
///         self.map.counters(pfn)
///     }
///     fn is_zero_page(&self, pfn: Pfn) -> bool {
///         self.map.is_zero_page(pfn)
///     }
/// }
///
/// impl PageOps for Machine {
///     fn free_folio(&self, folio: FolioRef<'_>) {
///         // Hand the folio back to the page allocator.
///         let _ = folio.head();
///     }
///     fn warn(&self, warning: Warning) {
///         panic!("gupio: {warning}");
///     }
///     fn pins_acquired(&self, pages: usize) {
///         self.stats.record_acquired(pages);
///     }
///     fn pins_released(&self, pages: usize) {
///         self.stats.record_released(pages);
///     }
/// }
///
/// let m = Machine { map: ArrayMemoryMap::new(Pfn::new(0)), stats: PinStats::new() };
/// m.map.prepare_folio(Pfn::new(1), gupio_pin::FolioOrder::SMALL).unwrap();
/// let tracker = Tracker::new(&m);
/// tracker.pin_page(Pfn::new(1)).unwrap();
/// tracker.unpin_page(Pfn::new(1)).unwrap();
/// assert_eq!(m.stats.acquired(), m.stats.released());
/// ```
pub trait PageOps: MemoryMap {
    /// Frees `folio`: its last reference dropped. Called exactly once per
    /// drop to zero, after an Acquire fence, so every former holder's
    /// accesses happen before it.
    fn free_folio(&self, folio: FolioRef<'_>);

    /// Reports a broken invariant (Linux's `WARN_ON_ONCE`): a bug in the
    /// caller or the embedder. The operation also fails with a [`PinError`].
    fn warn(&self, warning: Warning);

    /// Counts `pages` pins taken (`nr_foll_pin_acquired`): a pin of N pages
    /// of a large folio counts N. Pins of the zero page are not counted.
    fn pins_acquired(&self, pages: usize);

    /// Counts `pages` pins released (`nr_foll_pin_released`); after balanced
    /// use it equals the pins acquired.
    fn pins_released(&self, pages: usize);

    /// Locks `folio` (Linux's `folio_lock`). The default spins on the
    /// [`PageFlags::LOCKED`] bit; a kernel with a scheduler sleeps instead.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::*;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let folio = m.folio(Pfn::new(0)).unwrap();
    /// m.lock_folio(folio);
    /// assert!(folio.counters().flags().contains(PageFlags::LOCKED));
    /// m.unlock_folio(folio);
    /// assert!(folio.counters().flags().is_empty());
    /// ```
    fn lock_folio(&self, folio: FolioRef<'_>) {
        while !folio.counters().try_lock() {
            gupio_sync::spin_loop();
        }
    }

    /// Locks `folio` if nobody holds it (Linux's `folio_trylock`); `true`
    /// when it is now held by the caller. The default tries the
    /// [`PageFlags::LOCKED`] bit; an embedder that overrides
    /// [`lock_folio`](Self::lock_folio) overrides this too.
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::*;
    /// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
    /// let folio = m.folio(Pfn::new(0)).unwrap();
    /// assert!(m.try_lock_folio(folio));
    /// assert!(!m.try_lock_folio(folio), "already held");
    /// m.unlock_folio(folio);
    /// ```
    fn try_lock_folio(&self, folio: FolioRef<'_>) -> bool {
        folio.counters().try_lock()
    }

    /// Unlocks `folio` (Linux's `folio_unlock`). The default clears the
    /// [`PageFlags::LOCKED`] bit.
    fn unlock_folio(&self, folio: FolioRef<'_>) {
        folio.counters().unlock();
    }

    /// Marks the locked `folio` dirty (Linux's `folio_mark_dirty`); a file
    /// page also tells its filesystem here. The default sets
    /// [`PageFlags::DIRTY`].
    fn mark_folio_dirty(&self, folio: FolioRef<'_>) {
        folio.counters().set_flags(PageFlags::DIRTY);
    }
}

/// A folio together with its head's counters: what [`MemoryMap::folio`]
/// answers, and what the tracker counts on.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
/// let map = ArrayMemoryMap::<4>::new(Pfn::new(8));
/// map.prepare_folio(Pfn::new(8), FolioOrder::try_new(1).unwrap()).unwrap();
/// let folio = map.folio(Pfn::new(9)).unwrap();
/// assert!(folio.contains(Pfn::new(8)) && folio.contains(Pfn::new(9)));
/// assert!(!folio.contains(Pfn::new(10)));
/// assert_eq!(folio.counters().refcount(), 1);
/// ```
#[derive(Clone, Copy)]
pub struct FolioRef<'a> {
    folio: Folio,
    counters: &'a PageCounters,
}

impl<'a> FolioRef<'a> {
    /// `folio` with its head counters `counters` (for embedders that
    /// implement [`MemoryMap::folio`] themselves).
    ///
    /// ```
    /// use gupio_pfn::{Folio, Pfn};
    /// use gupio_pin::{FolioRef, PageCounters};
    /// let head = PageCounters::new();
    /// let folio = FolioRef::new(Folio::single(Pfn::new(4)), &head);
    /// assert_eq!(folio.nr_pages(), 1);
    /// ```
    pub const fn new(folio: Folio, counters: &'a PageCounters) -> Self {
        Self { folio, counters }
    }

    /// The folio: its head and order.
    #[inline]
    pub const fn folio(&self) -> Folio {
        self.folio
    }

    /// The head page's frame number.
    #[inline]
    pub const fn head(&self) -> Pfn {
        self.folio.head()
    }

    /// The folio's order.
    #[inline]
    pub const fn order(&self) -> FolioOrder {
        self.folio.order()
    }

    /// How many pages the folio spans.
    #[inline]
    pub const fn nr_pages(&self) -> usize {
        self.folio.nr_pages()
    }

    /// Whether the folio keeps an exact pin count (it is large) rather than
    /// counting each pin as [`GUP_PIN_COUNTING_BIAS`] references.
    #[inline]
    pub const fn has_pincount(&self) -> bool {
        self.folio.is_large()
    }

    /// The head's counters, which hold the folio's counts and flags.
    #[inline]
    pub const fn counters(&self) -> &'a PageCounters {
        self.counters
    }

    /// Whether `pfn` is one of the folio's pages (no lookup: a folio is
    /// physically contiguous).
    #[inline]
    pub const fn contains(&self, pfn: Pfn) -> bool {
        self.folio.contains(pfn)
    }

    /// How many of the folio's pages lie at or after `pfn` (0 if `pfn` is
    /// not in the folio).
    #[inline]
    pub const fn pages_from(&self, pfn: Pfn) -> usize {
        self.folio.pages_from(pfn)
    }

    /// Whether a device may hold a pin on the folio (Linux's
    /// `folio_maybe_dma_pinned`): exact for a large folio (its pin count is
    /// non-zero); for a small page, a reference count of at least
    /// [`GUP_PIN_COUNTING_BIAS`], so many plain references read as a pin
    /// (a false positive) but a pin is never missed.
    ///
    /// Use [`maybe_dma_pinned`](crate::maybe_dma_pinned), which also knows
    /// the zero page is never pinned.
    #[inline]
    pub fn maybe_dma_pinned(&self) -> bool {
        if self.has_pincount() {
            self.counters.pincount_acquire() > 0
        } else {
            self.counters.refcount_acquire() >= GUP_PIN_COUNTING_BIAS
        }
    }

    /// Whether the folio may hold pins beyond `own`, the pins the caller
    /// holds on it itself (one per page it pinned): someone else's pin
    /// means a device may be writing into the folio. Exact for a large
    /// folio (its pin count exceeds `own`); for a small page, a reference
    /// count of at least `own + 1` times [`GUP_PIN_COUNTING_BIAS`], so
    /// plenty of plain references read as another pin (a false positive)
    /// but another pin is never missed.
    #[inline]
    pub fn pinned_beyond(&self, own: u32) -> bool {
        if self.has_pincount() {
            self.counters.pincount_acquire() > own
        } else {
            let floor = u64::from(own)
                .saturating_add(1)
                .saturating_mul(u64::from(GUP_PIN_COUNTING_BIAS));
            u64::from(self.counters.refcount_acquire()) >= floor
        }
    }
}

impl fmt::Debug for FolioRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FolioRef")
            .field("head", &self.head())
            .field("order", &self.order().get())
            .field("counters", self.counters)
            .finish()
    }
}

/// Whether a device may hold a pin on the page at `pfn`: false for the zero
/// page (never pinned), exact for large folios, and for small pages true
/// whenever a pin is held (false positives allowed, never false negatives).
///
/// The answer comes after (Acquire) every unpin it no longer counts, so
/// "false" means every former pinner's accesses are visible. A caller racing
/// new pinners (writeback write-protecting a page) issues a `SeqCst` fence
/// between its page-table change and this query; gupio's `pin_user_pages`
/// issues the matching fence after pinning.
///
/// # Errors
/// [`PinError::NotInMemoryMap`] or [`PinError::CorruptCounters`] from the
/// folio lookup.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{maybe_dma_pinned, ArrayMemoryMap, FolioOrder};
/// let map = ArrayMemoryMap::<2>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::try_new(1).unwrap()).unwrap();
/// assert_eq!(maybe_dma_pinned(&map, Pfn::new(1)), Ok(false));
/// ```
pub fn maybe_dma_pinned<M: MemoryMap + ?Sized>(map: &M, pfn: Pfn) -> Result<bool, PinError> {
    let folio = map.folio(pfn)?;
    if map.is_zero_page(folio.head()) {
        return Ok(false);
    }
    Ok(folio.maybe_dma_pinned())
}

/// Ready-made pin accounting (Linux's `nr_foll_pin_acquired` and
/// `nr_foll_pin_released`) for a [`PageOps`] implementation to forward to.
///
/// ```
/// let stats = gupio_pin::PinStats::new();
/// stats.record_acquired(3);
/// stats.record_released(1);
/// assert_eq!((stats.acquired(), stats.released(), stats.in_flight()), (3, 1, 2));
/// ```
pub struct PinStats {
    acquired: AtomicUsize,
    released: AtomicUsize,
}

impl PinStats {
    const_unless_loom! {
        /// Both counters at zero.
        ///
        /// ```
        /// static STATS: gupio_pin::PinStats = gupio_pin::PinStats::new();
        /// assert_eq!(STATS.acquired(), 0);
        /// ```
        pub fn new() -> Self {
            Self {
                acquired: AtomicUsize::new(0),
                released: AtomicUsize::new(0),
            }
        }
    }

    /// Adds `pages` to the pins acquired (wrapping, like a vmstat counter).
    ///
    /// ```
    /// let s = gupio_pin::PinStats::new();
    /// s.record_acquired(2);
    /// assert_eq!(s.acquired(), 2);
    /// ```
    pub fn record_acquired(&self, pages: usize) {
        // Relaxed: a statistic; it orders nothing.
        self.acquired.fetch_add(pages, Ordering::Relaxed);
    }

    /// Adds `pages` to the pins released (wrapping, like a vmstat counter).
    ///
    /// ```
    /// let s = gupio_pin::PinStats::new();
    /// s.record_released(2);
    /// assert_eq!(s.released(), 2);
    /// ```
    pub fn record_released(&self, pages: usize) {
        // Relaxed: a statistic; it orders nothing.
        self.released.fetch_add(pages, Ordering::Relaxed);
    }

    /// Pins acquired so far.
    pub fn acquired(&self) -> usize {
        // Relaxed: a statistic; it orders nothing.
        self.acquired.load(Ordering::Relaxed)
    }

    /// Pins released so far.
    pub fn released(&self) -> usize {
        // Relaxed: a statistic; it orders nothing.
        self.released.load(Ordering::Relaxed)
    }

    /// Pins acquired and not yet released (a snapshot; wrapping).
    pub fn in_flight(&self) -> usize {
        self.acquired().wrapping_sub(self.released())
    }
}

impl Default for PinStats {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PinStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinStats")
            .field("acquired", &self.acquired())
            .field("released", &self.released())
            .finish()
    }
}

/// A memory map of `N` pages starting at a base frame, with their counters
/// inline, and the simplest [`PageOps`]: enough for a small bare-metal kernel
/// (in a `static`), for examples and for tests.
///
/// Its allocator is [`prepare_folio`](Self::prepare_folio), which hands out
/// any range of free pages; freeing a folio therefore only counts it (its
/// pages are free again once its reference count is zero). Every warning
/// goes through [`report`](Self::report), its one warn hook, which counts
/// it, keeps the first [`WARNING_LOG_LEN`] in order (so a test can assert
/// which fired: [`warning_log`](Self::warning_log)) and passes it to an
/// optional hook function. `W` is the type of warning the map reports: the
/// tracker's [`Warning`] by default; the release path's crate lets a map
/// whose `W` also holds its warnings report those through the same hook.
/// Pins are accounted in a
/// [`PinStats`]; locking and dirtying use the [`PageFlags`] bits. Optionally
/// one page is the zero page and a range of pages is movable (not long-term
/// pinnable, like Linux's `ZONE_MOVABLE`). An embedder with its own page
/// allocator or logging wraps it and forwards the [`MemoryMap`] queries.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, PageRange, Tracker, Warning};
///
/// fn report(warning: Warning) {
///     panic!("gupio: {warning}");
/// }
///
/// static RAM: ArrayMemoryMap<64> = ArrayMemoryMap::new(Pfn::new(0x8000))
///     .with_zero_page(Pfn::new(0x8000))
///     .with_movable(PageRange::new(Pfn::new(0x8030), 16))
///     .with_warn_hook(report);
///
/// RAM.prepare_folio(Pfn::new(0x8000), FolioOrder::SMALL).unwrap();
/// assert!(RAM.is_zero_page(Pfn::new(0x8000)));
/// assert!(!RAM.is_longterm_pinnable(Pfn::new(0x8031)));
/// assert!(RAM.counters(Pfn::new(0x8040)).is_none());
///
/// let buffer = Pfn::new(0x8010);
/// RAM.prepare_folio(buffer, FolioOrder::try_new(2).unwrap()).unwrap();
/// let tracker = Tracker::new(&RAM);
/// tracker.pin_range(PageRange::new(buffer, 4)).unwrap();
/// tracker.unpin_range(PageRange::new(buffer, 4)).unwrap();
/// tracker.put_page(buffer).unwrap();
/// assert_eq!(RAM.folios_freed(), 1);
/// assert_eq!(RAM.stats().acquired(), RAM.stats().released());
/// ```
pub struct ArrayMemoryMap<const N: usize, W = Warning> {
    base: Pfn,
    zero_page: Option<Pfn>,
    movable: Option<crate::PageRange>,
    warn_hook: Option<fn(W)>,
    stats: PinStats,
    folios_freed: AtomicUsize,
    warnings: AtomicUsize,
    log: [Mutex<Option<W>>; WARNING_LOG_LEN],
    pages: [PageCounters; N],
}

/// How many warnings an [`ArrayMemoryMap`] keeps in its log; later ones
/// are only counted and passed to the hook.
pub const WARNING_LOG_LEN: usize = 32;

impl<const N: usize, W> ArrayMemoryMap<N, W> {
    const_unless_loom! {
        /// `N` free small pages starting at frame `base`.
        ///
        /// ```
        /// use gupio_pfn::Pfn;
        /// use gupio_pin::{ArrayMemoryMap, MemoryMap};
        /// let map = ArrayMemoryMap::<4>::new(Pfn::new(100));
        /// assert_eq!(map.counters(Pfn::new(103)).unwrap().refcount(), 0);
        /// ```
        pub fn new(base: Pfn) -> Self {
            Self {
                base,
                zero_page: None,
                movable: None,
                warn_hook: None,
                stats: PinStats::new(),
                folios_freed: AtomicUsize::new(0),
                warnings: AtomicUsize::new(0),
                log: new_log(),
                pages: new_pages::<N>(),
            }
        }
    }

    const_unless_loom! {
        /// The same map, with `pfn` as its zero page. Prepare that page
        /// (usually with one reference the kernel never drops) before use.
        ///
        /// ```
        /// use gupio_pfn::Pfn;
        /// use gupio_pin::{ArrayMemoryMap, MemoryMap};
        /// let map = ArrayMemoryMap::<2>::new(Pfn::new(0)).with_zero_page(Pfn::new(1));
        /// assert!(map.is_zero_page(Pfn::new(1)));
        /// ```
        pub fn with_zero_page(mut self, pfn: Pfn) -> Self {
            self.zero_page = Some(pfn);
            self
        }
    }

    const_unless_loom! {
        /// The same map, with the pages of `range` movable: never long-term
        /// pinned.
        ///
        /// ```
        /// use gupio_pfn::Pfn;
        /// use gupio_pin::{ArrayMemoryMap, MemoryMap, PageRange};
        /// let map = ArrayMemoryMap::<4>::new(Pfn::new(0))
        ///     .with_movable(PageRange::new(Pfn::new(2), 2));
        /// assert!(map.is_longterm_pinnable(Pfn::new(1)));
        /// assert!(!map.is_longterm_pinnable(Pfn::new(3)));
        /// ```
        pub fn with_movable(mut self, range: crate::PageRange) -> Self {
            self.movable = Some(range);
            self
        }
    }

    const_unless_loom! {
        /// The same map, calling `hook` with every warning (after counting
        /// and logging it). Without a hook warnings are only counted and
        /// logged.
        ///
        /// ```
        /// use gupio_pfn::Pfn;
        /// use gupio_pin::{ArrayMemoryMap, Tracker, Warning};
        /// fn ignore(_: Warning) {}
        /// let map = ArrayMemoryMap::<1>::new(Pfn::new(0)).with_warn_hook(ignore);
        /// assert!(Tracker::new(&map).get_page(Pfn::new(0)).is_err(), "a free page");
        /// assert_eq!(map.warnings(), 1);
        /// ```
        pub fn with_warn_hook(mut self, hook: fn(W)) -> Self {
            self.warn_hook = Some(hook);
            self
        }
    }

    /// The pin accounting of this map.
    pub const fn stats(&self) -> &PinStats {
        &self.stats
    }

    /// How many folios have been freed (their last reference dropped).
    pub fn folios_freed(&self) -> usize {
        // Relaxed: a statistic; it orders nothing.
        self.folios_freed.load(Ordering::Relaxed)
    }

    /// How many warnings have been reported.
    pub fn warnings(&self) -> usize {
        // Relaxed: a statistic; it orders nothing.
        self.warnings.load(Ordering::Relaxed)
    }

    /// The first frame of the map.
    pub const fn base(&self) -> Pfn {
        self.base
    }

    /// The number of pages in the map.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the map has no pages.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    /// The index of `pfn` in the map, if it is there.
    pub const fn index_of(&self, pfn: Pfn) -> Option<usize> {
        match pfn.get().checked_sub(self.base.get()) {
            Some(index) if index < N => Some(index),
            _ => None,
        }
    }

    /// Hands out a folio of order `order` at `head` (the allocator's job):
    /// the head gets one reference, every page the shape, pin counts and
    /// flags are cleared.
    ///
    /// The pages must be free: no page in the range may belong to a folio
    /// that still has references. The caller's allocator serialises
    /// allocations of overlapping ranges.
    ///
    /// # Errors
    /// [`PinError::NotInMemoryMap`] if the folio does not fit the map,
    /// [`PinError::PageInUse`] if one of its pages is still referenced
    /// (nothing is changed then).
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{ArrayMemoryMap, FolioOrder, PinError};
    /// let map = ArrayMemoryMap::<4>::new(Pfn::new(0));
    /// map.prepare_folio(Pfn::new(2), FolioOrder::try_new(1).unwrap()).unwrap();
    /// assert_eq!(
    ///     map.prepare_folio(Pfn::new(3), FolioOrder::SMALL),
    ///     Err(PinError::PageInUse { pfn: Pfn::new(3) })
    /// );
    /// ```
    pub fn prepare_folio(&self, head: Pfn, order: FolioOrder) -> Result<(), PinError> {
        Folio::new(head, order)?;
        let first = self
            .index_of(head)
            .ok_or(PinError::NotInMemoryMap { pfn: head })?;
        let count = order.nr_pages();
        let last = head
            .checked_add(count - 1)
            .ok_or(PinError::NotInMemoryMap { pfn: head })?;
        let pages = self
            .index_of(last)
            .and_then(|_| self.pages.get(first..first + count))
            .ok_or(PinError::NotInMemoryMap { pfn: last })?;
        for offset in 0..count {
            // head + offset <= last, which is a valid frame number.
            let pfn = Pfn::new_truncate(head.get() + offset);
            // A page whose folio lookup fails was left corrupt; it has no
            // live folio to protect, so it may be re-shaped.
            if let Ok(folio) = self.folio(pfn) {
                if folio.counters().refcount() != 0 {
                    return Err(PinError::PageInUse { pfn });
                }
            }
        }
        for (offset, page) in pages.iter().enumerate().skip(1) {
            let index = u32::try_from(offset).map_err(|_| PinError::InvalidFolioShape {
                order: order.get(),
                index: u32::MAX,
            })?;
            page.init(0, FolioShape::new(order, index)?);
        }
        if let Some(head_page) = pages.first() {
            head_page.init(1, FolioShape::head(order));
        }
        Ok(())
    }
}

impl<const N: usize, W: Copy> ArrayMemoryMap<N, W> {
    /// The map's one warn hook: counts `warning`, logs it if the log has
    /// room, and passes it to the hook function. [`PageOps::warn`] reports
    /// the tracker's warnings through it; the release path reports its own.
    ///
    /// Lock-free but for the log slot, which no other reporter takes: a
    /// report claims its slot with one atomic increment, so a report from
    /// an interrupt never waits for the thread it interrupted.
    pub fn report(&self, warning: W) {
        // Relaxed: it only hands out slots; each slot's lock orders the
        // value written into it with its readers.
        let slot = self.warnings.fetch_add(1, Ordering::Relaxed);
        if let Some(entry) = self.log.get(slot) {
            *entry.lock() = Some(warning);
        }
        if let Some(hook) = self.warn_hook {
            hook(warning);
        }
    }

    /// The warnings reported so far, in the order they fired (the first
    /// [`WARNING_LOG_LEN`]; [`warnings`](Self::warnings) counts them all).
    /// A report still being written when this runs may be missing.
    pub fn warning_log(&self) -> impl Iterator<Item = W> + '_ {
        let logged = self.warnings().min(WARNING_LOG_LEN);
        self.log
            .iter()
            .take(logged)
            .filter_map(|entry| *entry.lock())
    }
}

impl<const N: usize, W> MemoryMap for ArrayMemoryMap<N, W> {
    #[inline]
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        self.pages.get(self.index_of(pfn)?)
    }

    fn is_zero_page(&self, pfn: Pfn) -> bool {
        self.zero_page == Some(pfn)
    }

    fn is_longterm_pinnable(&self, pfn: Pfn) -> bool {
        !self.movable.is_some_and(|range| range.contains(pfn))
    }
}

impl<const N: usize, W: From<Warning> + Copy> PageOps for ArrayMemoryMap<N, W> {
    fn free_folio(&self, _folio: FolioRef<'_>) {
        // The pages are free again now that the count is zero:
        // `prepare_folio` may hand them out.
        // Relaxed: a statistic; it orders nothing.
        self.folios_freed.fetch_add(1, Ordering::Relaxed);
    }

    fn warn(&self, warning: Warning) {
        self.report(warning.into());
    }

    fn pins_acquired(&self, pages: usize) {
        self.stats.record_acquired(pages);
    }

    fn pins_released(&self, pages: usize) {
        self.stats.record_released(pages);
    }
}

impl<const N: usize, W> fmt::Debug for ArrayMemoryMap<N, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayMemoryMap")
            .field("base", &self.base)
            .field("len", &N)
            .field("zero_page", &self.zero_page)
            .field("movable", &self.movable)
            .field("stats", &self.stats)
            .field("folios_freed", &self.folios_freed())
            .field("warnings", &self.warnings())
            .finish_non_exhaustive()
    }
}

#[cfg(not(loom))]
const fn new_pages<const N: usize>() -> [PageCounters; N] {
    [const { PageCounters::new() }; N]
}

#[cfg(loom)]
fn new_pages<const N: usize>() -> [PageCounters; N] {
    core::array::from_fn(|_| PageCounters::new())
}

#[cfg(not(loom))]
const fn new_log<W>() -> [Mutex<Option<W>>; WARNING_LOG_LEN] {
    [const { Mutex::new(None) }; WARNING_LOG_LEN]
}

#[cfg(loom)]
fn new_log<W>() -> [Mutex<Option<W>>; WARNING_LOG_LEN] {
    core::array::from_fn(|_| Mutex::new(None))
}

#[cfg(test)]
mod tests;
