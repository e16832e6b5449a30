//! Test support: a memory map that records every free, warning, lock and
//! dirtying, and holds a little page data that frees snapshot (unit tests
//! and loom models only; not part of the API), and a page table of scripted
//! entries (unit tests only).

use gupio_pfn::Pfn;
use gupio_sync::atomic::{AtomicU32, Ordering};
use gupio_sync::Mutex;

use crate::{
    ArrayMemoryMap, FolioOrder, FolioRef, MemoryMap, PageCounters, PageOps, PinStats, Warning,
};

// The scripted page table keeps its entries in a `Vec`, which the no_std
// loom build does not have.
#[cfg(test)]
pub mod space;

/// Words of data each page of a [`TestMachine`] holds: one per user a model
/// gives the page (the owner, a device).
pub const DATA_WORDS: usize = 2;

/// A machine of `N` pages from `base` whose [`PageOps`] hooks record what
/// they see: frees per page, warnings, locks, dirtyings and pin accounting.
///
/// Each page also holds [`DATA_WORDS`] words of data, atomics used as plain
/// memory (every access `Relaxed`), so that under loom only the
/// happens-before gupio's counters provide makes a write visible: a model
/// writes them as a page's users ([`write_data`](Self::write_data)),
/// and [`PageOps::free_folio`] snapshots every word of the folio it frees
/// ([`data_seen_at_free`](Self::data_seen_at_free)), as an allocator reusing
/// the memory would read it.
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
    data: [[AtomicU32; DATA_WORDS]; N],
    seen_at_free: [[AtomicU32; DATA_WORDS]; N],
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
            data: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU32::new(0))),
            seen_at_free: core::array::from_fn(|_| core::array::from_fn(|_| AtomicU32::new(0))),
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

    /// Counts a warning that reached the machine through another crate's
    /// hook (the release path's), so [`warnings`](Self::warnings) counts
    /// every warning the machine saw.
    pub fn count_warning(&self) {
        // Relaxed: a test statistic.
        self.warnings.fetch_add(1, Ordering::Relaxed);
    }

    /// The last warning of the tracker reported.
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

    /// Stores `value` in data word `word` of frame `pfn`, as a user of the
    /// page (a CPU or a device) writes its memory.
    ///
    /// # Panics
    /// If `pfn` is not in the map or `word` is not below [`DATA_WORDS`].
    pub fn write_data(&self, pfn: usize, word: usize, value: u32) {
        // Relaxed: page data, ordered only by what the model under test
        // provides (a pin, a reference, a lock).
        self.data[self.index(pfn)][word].store(value, Ordering::Relaxed);
    }

    /// Loads data word `word` of frame `pfn`, as a user of the page reads it.
    ///
    /// # Panics
    /// If `pfn` is not in the map or `word` is not below [`DATA_WORDS`].
    pub fn read_data(&self, pfn: usize, word: usize) -> u32 {
        // Relaxed: page data, as in `write_data`.
        self.data[self.index(pfn)][word].load(Ordering::Relaxed)
    }

    /// Data word `word` of frame `pfn` as the last `free_folio` of its folio
    /// read it (0 if never freed).
    ///
    /// # Panics
    /// If `pfn` is not in the map or `word` is not below [`DATA_WORDS`].
    pub fn data_seen_at_free(&self, pfn: usize, word: usize) -> u32 {
        // Relaxed: read after the threads that free were joined.
        self.seen_at_free[self.index(pfn)][word].load(Ordering::Relaxed)
    }

    fn index(&self, pfn: usize) -> usize {
        self.map.index_of(Pfn::new(pfn)).expect("test pfn in map")
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
    fn free_folio(&self, folio: FolioRef<'_>) {
        let index = self.map.index_of(folio.head()).expect("freed folio in map");
        assert_eq!(folio.counters().refcount(), 0, "freed with references");
        // The allocator reads the memory it takes back: every former
        // user's writes must be visible here (PageOps::free_folio runs
        // after the last reference's Acquire fence).
        for page in index..index + folio.nr_pages() {
            for (word, seen) in self.data[page].iter().zip(&self.seen_at_free[page]) {
                // Relaxed: page data; `seen` is read after joining.
                seen.store(word.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
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

    fn lock_folio(&self, folio: FolioRef<'_>) {
        // Relaxed: a test statistic.
        self.locks.fetch_add(1, Ordering::Relaxed);
        while !folio.counters().try_lock() {
            gupio_sync::spin_loop();
        }
    }

    fn mark_folio_dirty(&self, folio: FolioRef<'_>) {
        assert!(
            folio.counters().flags().contains(crate::PageFlags::LOCKED),
            "dirtied without the folio lock"
        );
        // Relaxed: a test statistic.
        self.dirtied.fetch_add(1, Ordering::Relaxed);
        folio.counters().set_flags(crate::PageFlags::DIRTY);
    }
}
