//! Physical memory: frames with gupio's counters and their data, the zero
//! page, a page allocator that catches double frees and leaks, and the
//! embedder hooks ([`MemoryMap`], [`PageOps`]) gupio runs on.

use std::cell::Cell;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;

use gupio::embed::{MemoryMap, PageOps};
use gupio::pfn::Pfn;
use gupio::pin::{FolioOrder, FolioRef, FolioShape, PageCounters, PinStats, Warning};
use gupio::release::{AnyWarning, ReleaseWarning, Warn};
use gupio::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::data::{fnv1a_atomic, WORDS_PER_PAGE};
use crate::HostError;

/// The first page-frame number of the simulated memory. Not zero, so a
/// frame number mistaken for an index shows up; aligned to the largest
/// folio (order 9), so folios of every order can be allocated aligned.
pub const BASE_PFN: Pfn = Pfn::new(0x8_0000);

/// The largest folio order the allocator hands out (2 MiB of 4 KiB pages).
pub const MAX_ORDER: u32 = 9;

/// What a freed word holds: data read from a freed page is recognisable.
const POISON: u64 = 0xdead_beef_dead_beef;

/// One 4 KiB frame: gupio's counters (what a kernel keeps in `struct page`)
/// and the page's data as atomic words, so a device thread can DMA into a
/// page while writeback reads it without a data race in the Rust sense:
/// racy at word granularity, which is exactly the hazard the harness shows.
pub struct Frame {
    counters: PageCounters,
    words: [AtomicU64; WORDS_PER_PAGE],
}

impl Frame {
    fn new() -> Self {
        Self {
            counters: PageCounters::new(),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The frame's gupio counters.
    pub fn counters(&self) -> &PageCounters {
        &self.counters
    }

    /// The frame's data words.
    pub fn words(&self) -> &[AtomicU64; WORDS_PER_PAGE] {
        &self.words
    }

    /// Word `index` (`Relaxed`; 0 past the page).
    pub fn load(&self, index: usize) -> u64 {
        // Relaxed: data; the I/O or lock that hands the page over orders it.
        self.words
            .get(index)
            .map_or(0, |word| word.load(Ordering::Relaxed))
    }

    /// Stores `value` at word `index` (`Relaxed`; ignored past the page).
    pub fn store(&self, index: usize, value: u64) {
        if let Some(word) = self.words.get(index) {
            // Relaxed: data; the I/O or lock that hands the page over orders it.
            word.store(value, Ordering::Relaxed);
        }
    }

    /// A copy of the page's words.
    pub fn snapshot(&self) -> Vec<u64> {
        (0..WORDS_PER_PAGE).map(|i| self.load(i)).collect()
    }

    /// FNV-1a over the page's current words.
    pub fn checksum(&self) -> u64 {
        fnv1a_atomic(&self.words)
    }

    fn fill(&self, value: u64) {
        for word in &self.words {
            // Relaxed: the allocator owns the frame; handing it out orders it.
            word.store(value, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// What the allocator knows about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    Head { order: u32 },
    Tail,
}

/// A free that the allocator refused: the frame was not an allocated
/// folio's head of that order (a double free, or a free of something never
/// allocated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadFree {
    /// The frame passed to the free.
    pub pfn: Pfn,
    /// What was wrong with it.
    pub kind: BadFreeKind,
}

/// Why a free was refused.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFreeKind {
    /// The frame is already free: a double free.
    AlreadyFree,
    /// The frame is a tail page of a folio.
    NotAHead,
    /// The folio was allocated with another order.
    OrderMismatch {
        /// The order it was allocated with.
        allocated: u32,
        /// The order it was freed with.
        freed: u32,
    },
    /// The frame is outside memory, or the zero page.
    NotFreeable,
}

impl fmt::Display for BadFree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pfn = self.pfn;
        match self.kind {
            BadFreeKind::AlreadyFree => write!(f, "double free of pfn {pfn:#x}"),
            BadFreeKind::NotAHead => write!(f, "free of tail page {pfn:#x}"),
            BadFreeKind::OrderMismatch { allocated, freed } => write!(
                f,
                "free of folio {pfn:#x} as order {freed}, allocated as order {allocated}"
            ),
            BadFreeKind::NotFreeable => write!(f, "free of pfn {pfn:#x}, which is not freeable"),
        }
    }
}

/// An allocated folio, as [`Memory::allocated_folios`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatedFolio {
    /// The head frame.
    pub head: Pfn,
    /// The folio order.
    pub order: u32,
    /// Its reference count now.
    pub refcount: u32,
    /// Its pin count now (large folios only).
    pub pincount: u32,
}

struct Allocator {
    slots: Vec<Slot>,
    free_pages: usize,
}

impl Allocator {
    /// The first free, aligned run of `2^order` slots.
    fn find(&self, order: u32) -> Option<usize> {
        let pages = 1usize << order;
        (0..self.slots.len()).step_by(pages).find(|&start| {
            self.slots
                .get(start..start + pages)
                .is_some_and(|run| run.iter().all(|slot| *slot == Slot::Free))
        })
    }
}

/// Running totals of what memory did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Folios handed out by the allocator.
    pub folios_allocated: usize,
    /// Folios returned to it (through gupio's `free_folio`).
    pub folios_freed: usize,
    /// Times a folio lock was contended and the caller had to wait.
    pub lock_waits: usize,
    /// Folios dirtied through `mark_folio_dirty`.
    pub dirtied: usize,
    /// Folios a deferred direct-I/O read release found clean under the
    /// folio lock: writeback wrote and cleaned them while a device could
    /// write into them (see [`Memory::redirtying`]).
    pub cleaned_under_dma: usize,
}

/// The simulated physical memory: `N` frames from [`BASE_PFN`], the first of
/// which is the zero page, a page allocator over the rest, and the embedder
/// hooks gupio calls ([`MemoryMap`], [`PageOps`]). Every warning gupio
/// reports is recorded ([`Memory::warnings`]), pins are accounted in a
/// [`PinStats`], and refused frees are recorded ([`Memory::bad_frees`]).
///
/// ```
/// use gupio::prelude::*;
/// use gupio_host::Memory;
///
/// let memory = Memory::new(16).unwrap();
/// let head = memory.alloc_folio(2, true).unwrap(); // 4 pages, refcount 1
/// let tracker = Tracker::new(&memory);
/// tracker.pin_range(PageRange::new(head, 4)).unwrap();
/// assert!(maybe_dma_pinned(&memory, head).unwrap());
/// tracker.unpin_range(PageRange::new(head, 4)).unwrap();
/// tracker.put_page(head).unwrap(); // the last reference: back to the allocator
/// assert!(memory.allocated_folios().is_empty());
/// assert!(memory.warnings().is_empty() && memory.bad_frees().is_empty());
/// assert_eq!(memory.pin_stats().acquired(), memory.pin_stats().released());
/// ```
pub struct Memory {
    frames: Box<[Frame]>,
    allocator: Mutex<Allocator>,
    warnings: Mutex<Vec<AnyWarning>>,
    bad_frees: Mutex<Vec<BadFree>>,
    pins: PinStats,
    folios_allocated: AtomicUsize,
    folios_freed: AtomicUsize,
    lock_waits: AtomicUsize,
    dirtied: AtomicUsize,
    cleaned_under_dma: AtomicUsize,
}

/// Locks `mutex`, ignoring poisoning: the harness's locks protect plain
/// bookkeeping that a panicking thread leaves consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

std::thread_local! {
    /// Whether this thread is re-dirtying the pages of deferred direct-I/O
    /// reads (see [`Memory::redirtying`]).
    static REDIRTYING: Cell<bool> = const { Cell::new(false) };
}

impl Memory {
    /// Runs `release`, the deferred release of direct-I/O reads (which
    /// dirties each folio still clean under its lock), counting the folios
    /// it finds clean in [`MemoryStats::cleaned_under_dma`]: folios that
    /// writeback wrote and cleaned while a device could still write into
    /// them. A completion that merely saw a folio clean while a writeback
    /// pass was deciding (the pass clears the dirty bit, then sets it again
    /// for a pinned folio, all under the lock) is not counted.
    pub fn redirtying<R>(&self, release: impl FnOnce() -> R) -> R {
        let before = REDIRTYING.with(|flag| flag.replace(true));
        let result = release();
        REDIRTYING.with(|flag| flag.set(before));
        result
    }

    /// Memory of `frames` frames; the first is the zero page, the rest are
    /// free.
    ///
    /// # Errors
    /// [`HostError::OutOfMemory`] if `frames` is 0 (there is no room for the
    /// zero page).
    ///
    /// ```
    /// let memory = gupio_host::Memory::new(3).unwrap();
    /// assert_eq!(memory.free_pages(), 2);
    /// assert!(gupio_host::Memory::new(0).is_err());
    /// ```
    pub fn new(frames: usize) -> Result<Self, HostError> {
        if frames == 0 {
            return Err(HostError::OutOfMemory { order: 0 });
        }
        let frames: Box<[Frame]> = (0..frames).map(|_| Frame::new()).collect();
        let mut slots = vec![Slot::Free; frames.len()];
        if let (Some(slot), Some(zero)) = (slots.first_mut(), frames.first()) {
            // The zero page: allocated forever, one reference held by memory.
            *slot = Slot::Head { order: 0 };
            zero.counters.init(1, FolioShape::SMALL);
        }
        let free_pages = frames.len() - 1;
        Ok(Self {
            frames,
            allocator: Mutex::new(Allocator { slots, free_pages }),
            warnings: Mutex::new(Vec::new()),
            bad_frees: Mutex::new(Vec::new()),
            pins: PinStats::new(),
            folios_allocated: AtomicUsize::new(0),
            folios_freed: AtomicUsize::new(0),
            lock_waits: AtomicUsize::new(0),
            dirtied: AtomicUsize::new(0),
            cleaned_under_dma: AtomicUsize::new(0),
        })
    }

    /// How many frames memory has (the zero page included).
    pub fn nr_frames(&self) -> usize {
        self.frames.len()
    }

    /// The zero page: all zeroes, never pinned, never freed.
    pub fn zero_page(&self) -> Pfn {
        BASE_PFN
    }

    /// The frame `pfn`, if it is in memory.
    pub fn frame(&self, pfn: Pfn) -> Option<&Frame> {
        self.frames.get(self.index_of(pfn)?)
    }

    fn index_of(&self, pfn: Pfn) -> Option<usize> {
        pfn.get()
            .checked_sub(BASE_PFN.get())
            .filter(|&index| index < self.frames.len())
    }

    fn pfn_at(index: usize) -> Pfn {
        // Below BASE_PFN + frames, which `new` could allocate.
        Pfn::new_truncate(BASE_PFN.get() + index)
    }

    /// Allocates a folio of `2^order` pages, aligned to its size, with one
    /// reference (the caller's) and no flags; with `zeroed`, its data is
    /// zero, otherwise it holds whatever was there (poison, once freed).
    ///
    /// # Errors
    /// [`HostError::OutOfMemory`] if no aligned run of free frames is left,
    /// or `order` is above [`MAX_ORDER`].
    ///
    /// ```
    /// let memory = gupio_host::Memory::new(8).unwrap();
    /// let head = memory.alloc_folio(2, true).unwrap();
    /// assert_eq!(head.get() % 4, 0, "aligned to its size");
    /// assert!(memory.alloc_folio(3, true).is_err(), "only 7 frames were free");
    /// ```
    pub fn alloc_folio(&self, order: u32, zeroed: bool) -> Result<Pfn, HostError> {
        if order > MAX_ORDER {
            return Err(HostError::OutOfMemory { order });
        }
        let folio_order = FolioOrder::try_new(order)?;
        let pages = folio_order.nr_pages();
        let start = {
            let mut allocator = lock(&self.allocator);
            let start = allocator
                .find(order)
                .ok_or(HostError::OutOfMemory { order })?;
            if let Some(run) = allocator.slots.get_mut(start..start + pages) {
                for (offset, slot) in run.iter_mut().enumerate() {
                    *slot = if offset == 0 {
                        Slot::Head { order }
                    } else {
                        Slot::Tail
                    };
                }
            }
            allocator.free_pages -= pages;
            start
        };
        // The allocator now owns these frames exclusively until published.
        let run = self.frames.get(start..start + pages).unwrap_or_default();
        for (offset, frame) in run.iter().enumerate().skip(1) {
            let index = u32::try_from(offset).map_err(|_| HostError::OutOfMemory { order })?;
            frame.counters.init(0, FolioShape::new(folio_order, index)?);
        }
        for frame in run {
            if zeroed {
                frame.fill(0);
            }
        }
        if let Some(head) = run.first() {
            head.counters.init(1, FolioShape::head(folio_order));
        }
        // Relaxed: a statistic; it orders nothing.
        self.folios_allocated.fetch_add(1, Ordering::Relaxed);
        Ok(Self::pfn_at(start))
    }

    /// Frames not allocated.
    pub fn free_pages(&self) -> usize {
        lock(&self.allocator).free_pages
    }

    /// Every allocated folio but the zero page, in frame order.
    pub fn allocated_folios(&self) -> Vec<AllocatedFolio> {
        let allocator = lock(&self.allocator);
        allocator
            .slots
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(index, slot)| match *slot {
                Slot::Head { order } => {
                    let counters = &self.frames.get(index)?.counters;
                    Some(AllocatedFolio {
                        head: Self::pfn_at(index),
                        order,
                        refcount: counters.refcount(),
                        pincount: counters.pincount(),
                    })
                }
                Slot::Free | Slot::Tail => None,
            })
            .collect()
    }

    /// Every warning gupio reported through either warn hook (the tracker's
    /// and the release path's), oldest first.
    pub fn warnings(&self) -> Vec<AnyWarning> {
        lock(&self.warnings).clone()
    }

    /// Removes and returns the recorded warnings (for a test that provokes
    /// one on purpose and checks it).
    pub fn take_warnings(&self) -> Vec<AnyWarning> {
        std::mem::take(&mut *lock(&self.warnings))
    }

    /// Every free the allocator refused (double frees among them).
    pub fn bad_frees(&self) -> Vec<BadFree> {
        lock(&self.bad_frees).clone()
    }

    /// Removes and returns the refused frees.
    pub fn take_bad_frees(&self) -> Vec<BadFree> {
        std::mem::take(&mut *lock(&self.bad_frees))
    }

    /// Pin accounting: pins acquired and released, in pages.
    pub fn pin_stats(&self) -> &PinStats {
        &self.pins
    }

    /// Running totals.
    pub fn stats(&self) -> MemoryStats {
        // Relaxed: statistics; they order nothing.
        MemoryStats {
            folios_allocated: self.folios_allocated.load(Ordering::Relaxed),
            folios_freed: self.folios_freed.load(Ordering::Relaxed),
            lock_waits: self.lock_waits.load(Ordering::Relaxed),
            dirtied: self.dirtied.load(Ordering::Relaxed),
            cleaned_under_dma: self.cleaned_under_dma.load(Ordering::Relaxed),
        }
    }

    fn refuse_free(&self, pfn: Pfn, kind: BadFreeKind) {
        lock(&self.bad_frees).push(BadFree { pfn, kind });
    }
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory")
            .field("frames", &self.frames.len())
            .field("free_pages", &self.free_pages())
            .field("pins", &self.pins)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl MemoryMap for Memory {
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        self.frame(pfn).map(Frame::counters)
    }

    fn is_zero_page(&self, pfn: Pfn) -> bool {
        pfn == self.zero_page()
    }
}

impl Memory {
    /// The one warn hook both of gupio's doors lead to: records `warning`.
    fn report(&self, warning: AnyWarning) {
        lock(&self.warnings).push(warning);
    }
}

/// The release path's warnings go to the same record as the tracker's.
impl Warn for Memory {
    fn warn(&self, warning: ReleaseWarning) {
        self.report(warning.into());
    }
}

impl PageOps for Memory {
    /// Returns the folio's frames to the allocator, poisoning their data;
    /// a free of a frame that is not an allocated head of that order is
    /// recorded in [`Memory::bad_frees`] and changes nothing.
    fn free_folio(&self, folio: FolioRef<'_>) {
        let pfn = folio.head();
        let freed = folio.order().get();
        let Some(index) = self.index_of(pfn).filter(|&index| index != 0) else {
            self.refuse_free(pfn, BadFreeKind::NotFreeable);
            return;
        };
        let pages = folio.nr_pages();
        {
            let mut allocator = lock(&self.allocator);
            match allocator.slots.get(index).copied() {
                Some(Slot::Head { order }) if order == freed => {}
                Some(Slot::Head { order }) => {
                    drop(allocator);
                    let kind = BadFreeKind::OrderMismatch {
                        allocated: order,
                        freed,
                    };
                    self.refuse_free(pfn, kind);
                    return;
                }
                Some(Slot::Free) => {
                    drop(allocator);
                    self.refuse_free(pfn, BadFreeKind::AlreadyFree);
                    return;
                }
                Some(Slot::Tail) | None => {
                    drop(allocator);
                    self.refuse_free(pfn, BadFreeKind::NotAHead);
                    return;
                }
            }
            // Poison under the allocator lock: nobody can be handed these
            // frames before the poison is in.
            for frame in self.frames.get(index..index + pages).unwrap_or_default() {
                frame.fill(POISON);
            }
            if let Some(run) = allocator.slots.get_mut(index..index + pages) {
                run.fill(Slot::Free);
            }
            allocator.free_pages += pages;
        }
        // Relaxed: a statistic; it orders nothing.
        self.folios_freed.fetch_add(1, Ordering::Relaxed);
    }

    fn warn(&self, warning: Warning) {
        self.report(warning.into());
    }

    fn pins_acquired(&self, pages: usize) {
        self.pins.record_acquired(pages);
    }

    fn pins_released(&self, pages: usize) {
        self.pins.record_released(pages);
    }

    /// Takes the folio lock bit, yielding the CPU while another thread holds
    /// it (writeback holds it for a whole write).
    fn lock_folio(&self, folio: FolioRef<'_>) {
        if folio.counters().try_lock() {
            return;
        }
        // Relaxed: a statistic; it orders nothing.
        self.lock_waits.fetch_add(1, Ordering::Relaxed);
        while !folio.counters().try_lock() {
            thread::yield_now();
        }
    }

    fn mark_folio_dirty(&self, folio: FolioRef<'_>) {
        let was = folio.counters().set_flags(gupio::pin::PageFlags::DIRTY);
        // Relaxed: statistics; they order nothing.
        self.dirtied.fetch_add(1, Ordering::Relaxed);
        if !was.contains(gupio::pin::PageFlags::DIRTY) && REDIRTYING.with(Cell::get) {
            // Clean under the folio lock at a deferred release: writeback
            // really wrote and cleaned it while a device could write it (a
            // writeback pass in progress holds the lock, so a folio it is
            // about to dirty again is never seen here).
            self.cleaned_under_dma.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
