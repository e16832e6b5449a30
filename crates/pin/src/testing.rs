//! Test support: a memory map that records every free, warning, lock and
//! dirtying (unit tests and loom models only; not part of the API).

use gupio_pfn::Pfn;
use gupio_sync::atomic::{AtomicU32, Ordering};
use gupio_sync::Mutex;

use crate::{
    ArrayMemoryMap, Folio, FolioOrder, MemoryMap, PageCounters, PageOps, PinStats, Warning,
};

/// A machine of `N` pages from `base` whose [`PageOps`] hooks record what
/// they see: frees per page, warnings, locks, dirtyings and pin accounting.
pub struct TestMachine<const N: usize> {
    /// The pages.
    pub map: ArrayMemoryMap<N>,
    /// Pin accounting.
    pub stats: PinStats,
    frees: [AtomicU32; N],
    warnings: AtomicU32,
    last_warning: Mutex<Option<Warning>>,
    locks: AtomicU32,
    dirtied: AtomicU32,
}

impl<const N: usize> TestMachine<N> {
    /// `N` free pages from frame `base`.
    pub fn new(base: usize) -> Self {
        Self::with_map(ArrayMemoryMap::new(Pfn::new(base)))
    }

    /// A machine over `map`.
    pub fn with_map(map: ArrayMemoryMap<N>) -> Self {
        Self {
            map,
            stats: PinStats::new(),
            frees: core::array::from_fn(|_| AtomicU32::new(0)),
            warnings: AtomicU32::new(0),
            last_warning: Mutex::new(None),
            locks: AtomicU32::new(0),
            dirtied: AtomicU32::new(0),
        }
    }

    /// Allocates a folio of order `order` at frame `head` (one reference).
    ///
    /// # Panics
    /// If the folio does not fit or its pages are in use.
    pub fn prepare(&self, head: usize, order: u32) -> Pfn {
        let head = Pfn::new(head);
        let order = FolioOrder::try_new(order).expect("test folio order");
        self.map.prepare_folio(head, order).expect("test folio");
        head
    }

    /// The counters of frame `pfn`.
    ///
    /// # Panics
    /// If `pfn` is not in the map.
    pub fn page(&self, pfn: usize) -> &PageCounters {
        self.map.counters(Pfn::new(pfn)).expect("test pfn in map")
    }

    /// How often the folio headed by `pfn` was freed.
    ///
    /// # Panics
    /// If `pfn` is not in the map.
    pub fn frees(&self, pfn: usize) -> u32 {
        let index = self.map.index_of(Pfn::new(pfn)).expect("test pfn in map");
        // Relaxed: read after the threads that free were joined.
        self.frees[index].load(Ordering::Relaxed)
    }

    /// Frees of every folio together.
    pub fn total_frees(&self) -> u32 {
        // Relaxed: read after the threads that free were joined.
        self.frees.iter().map(|f| f.load(Ordering::Relaxed)).sum()
    }

    /// Warnings reported so far.
    pub fn warnings(&self) -> u32 {
        // Relaxed: a test statistic.
        self.warnings.load(Ordering::Relaxed)
    }

    /// The last warning reported.
    pub fn last_warning(&self) -> Option<Warning> {
        *self.last_warning.lock()
    }

    /// Folio locks taken so far.
    pub fn locks(&self) -> u32 {
        // Relaxed: a test statistic.
        self.locks.load(Ordering::Relaxed)
    }

    /// Folios marked dirty so far.
    pub fn dirtied(&self) -> u32 {
        // Relaxed: a test statistic.
        self.dirtied.load(Ordering::Relaxed)
    }
}

impl<const N: usize> MemoryMap for TestMachine<N> {
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        self.map.counters(pfn)
    }

    fn is_zero_page(&self, pfn: Pfn) -> bool {
        self.map.is_zero_page(pfn)
    }

    fn is_longterm_pinnable(&self, pfn: Pfn) -> bool {
        self.map.is_longterm_pinnable(pfn)
    }
}

impl<const N: usize> PageOps for TestMachine<N> {
    fn free_folio(&self, folio: Folio<'_>) {
        let index = self.map.index_of(folio.head()).expect("freed folio in map");
        assert_eq!(folio.counters().refcount(), 0, "freed with references");
        // Relaxed: a test statistic, read after joining.
        self.frees[index].fetch_add(1, Ordering::Relaxed);
    }

    fn warn(&self, warning: Warning) {
        // Relaxed: a test statistic.
        self.warnings.fetch_add(1, Ordering::Relaxed);
        *self.last_warning.lock() = Some(warning);
    }

    fn pins_acquired(&self, pages: usize) {
        self.stats.record_acquired(pages);
    }

    fn pins_released(&self, pages: usize) {
        self.stats.record_released(pages);
    }

    fn lock_folio(&self, folio: Folio<'_>) {
        // Relaxed: a test statistic.
        self.locks.fetch_add(1, Ordering::Relaxed);
        while !folio.counters().try_lock() {
            gupio_sync::spin_loop();
        }
    }

    fn mark_folio_dirty(&self, folio: Folio<'_>) {
        assert!(
            folio.counters().flags().contains(crate::PageFlags::LOCKED),
            "dirtied without the folio lock"
        );
        // Relaxed: a test statistic.
        self.dirtied.fetch_add(1, Ordering::Relaxed);
        folio.counters().set_flags(crate::PageFlags::DIRTY);
    }
}
