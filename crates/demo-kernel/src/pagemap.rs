//! The kernel's memory map for gupio: a descriptor per frame of the managed
//! region (the kernel's `struct page`, which embeds gupio's
//! [`PageCounters`]), the page allocator that [`PageOps::free_folio`] returns
//! folios to, the zero page, the warn hook and pin accounting.
//!
//! [`PageMap`] implements gupio's [`MemoryMap`] (frame number to counters,
//! the zero page) and [`PageOps`] (free a folio, warn, account pins; locking
//! and dirtying use gupio's defaults, the bits in [`PageCounters`]). The
//! descriptors live in a `static` array in `.bss`, one per frame of a
//! [`MANAGED_PAGES`]-frame region of free RAM; the region's bytes belong to a
//! [`PhysMemory`].
//!
//! The allocator is first fit over naturally aligned runs: a folio of order
//! `n` starts at a multiple of `2^n` frames. Each descriptor records the
//! allocator's view (free, a folio's head with its order, or a tail), so a
//! free of anything but an allocated folio's head with its own order (a
//! double free, a stray pointer) is caught, reported and refused, never
//! applied. That check is why the allocator is by hand rather than a buddy
//! allocator crate: such a crate keeps its own free lists and takes a free
//! on trust, while here the state lives in the descriptors gupio reads.
//!
//! The kernel runs on one hart and polls: the statistics are atomics with
//! Relaxed ordering (nothing is published through them), and the record of
//! the last warning is a `Cell`, which makes a `PageMap` `!Sync`.

use core::cell::Cell;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use core::time::Duration;

use gupio::pfn::{PageGeometry, Pfn};
use gupio::pin::{
    FolioOrder, FolioRef, FolioShape, MemoryMap, PageCounters, PageFlags, PageOps, PinStats,
    Warning,
};
use gupio::release::{AnyWarning, ReleaseWarning, Warn};

use crate::mem::{FrameRun, PAGE_SIZE};
use crate::physmem::{AccessError, PhysExtent, PhysMemory};

/// Frames in the managed region: 16 MiB of 4 KiB pages.
pub const MANAGED_PAGES: usize = 4096;

/// The page geometry of the whole kernel: 4 KiB pages.
pub const GEOMETRY: PageGeometry = PageGeometry::FOUR_KIB;

const _: () = assert!(GEOMETRY.size() == PAGE_SIZE);

/// Allocator state of a frame: not allocated.
const FREE: u8 = 0;
/// Allocator state of a frame: a tail page of an allocated folio.
const TAIL: u8 = 1;
/// Allocator state of a frame: the head of an allocated folio of order
/// `state - HEAD_BASE`.
const HEAD_BASE: u8 = 2;

// Every order gupio knows fits the state byte.
const _: () = assert!(FolioOrder::MAX.get() < (u8::MAX - HEAD_BASE) as u32);

/// The allocator state of the head of a folio of `order`.
fn head_state(order: FolioOrder) -> u8 {
    // The order fits the state byte (asserted above).
    u8::try_from(order.get()).map_or(u8::MAX, |order| HEAD_BASE.saturating_add(order))
}

/// The kernel's descriptor of one frame: its `struct page`.
pub struct Page {
    /// What gupio tracks: reference count, pin count, flags, folio shape.
    counters: PageCounters,
    /// The allocator's record: [`FREE`], [`TAIL`], or `HEAD_BASE + order`.
    state: AtomicU8,
}

impl Page {
    /// A free small page.
    const fn new() -> Self {
        Self {
            counters: PageCounters::new(),
            state: AtomicU8::new(FREE),
        }
    }

    fn state(&self) -> u8 {
        // Relaxed: one hart; the state publishes nothing.
        self.state.load(Ordering::Relaxed)
    }

    fn set_state(&self, state: u8) {
        // Relaxed: as in `state`.
        self.state.store(state, Ordering::Relaxed);
    }
}

/// The descriptors of the managed region (80 KiB of `.bss`).
static PAGES: [Page; MANAGED_PAGES] = [const { Page::new() }; MANAGED_PAGES];

/// Set while a [`PageMap`] owns [`PAGES`].
///
/// Relaxed: one hart; the flag only refuses a second map.
static PAGES_CLAIMED: AtomicBool = AtomicBool::new(false);

/// Why the memory map could not be set up, or could not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The region does not have [`MANAGED_PAGES`] frames; carries its frame count.
    RegionSize(usize),
    /// Another [`PageMap`] owns the descriptors.
    AlreadyClaimed,
    /// A frame number gupio cannot encode; carries it.
    PfnOutOfRange(usize),
    /// A frame outside the managed region; carries its number.
    NotManaged(Pfn),
    /// No free, aligned run of `2^order` frames; carries the order.
    OutOfMemory(u32),
    /// The region's bytes could not be reached.
    Access(AccessError),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RegionSize(pages) => {
                write!(f, "region of {pages} frames, {MANAGED_PAGES} expected")
            }
            Self::AlreadyClaimed => write!(f, "the page descriptors are already in use"),
            Self::PfnOutOfRange(raw) => write!(f, "frame number {raw:#x} is not encodable"),
            Self::NotManaged(pfn) => write!(f, "pfn {pfn:#x} is outside the managed region"),
            Self::OutOfMemory(order) => write!(f, "no free folio of order {order}"),
            Self::Access(error) => write!(f, "{error}"),
        }
    }
}

impl From<AccessError> for MapError {
    fn from(error: AccessError) -> Self {
        Self::Access(error)
    }
}

/// The values of one descriptor: what a failed check reports (see
/// [`PageMap::check_baseline`] and [`PageMap::snapshot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterMismatch {
    /// The frame.
    pub pfn: Pfn,
    /// Its reference count.
    pub refcount: u32,
    /// Its pin count.
    pub pincount: u32,
    /// Its flag bits.
    pub flags: u32,
    /// Its allocator state byte.
    pub state: u8,
}

impl fmt::Display for CounterMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pfn {:#x}: refcount {}, pincount {}, flags {:#x}, allocator state {}",
            self.pfn, self.refcount, self.pincount, self.flags, self.state
        )
    }
}

/// What the page allocator did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Folios handed out (the zero page included).
    pub folios_allocated: usize,
    /// Folios returned through [`PageOps::free_folio`].
    pub folios_freed: usize,
    /// Frames allocated now.
    pub pages_in_use: usize,
    /// Frees of something that was not an allocated folio (double frees): refused.
    pub bad_frees: usize,
}

impl AllocatorStats {
    /// Prints the last lines of a phase's summary: these counts, whether
    /// every counter of the region was back at baseline, the time taken.
    pub fn print_summary_end(&self, counters_at_baseline: bool, elapsed: Duration) {
        println!(
            "  page allocator         {} folios allocated, {} freed, {} frames in use (1 expected: the zero page), {} double frees",
            self.folios_allocated, self.folios_freed, self.pages_in_use, self.bad_frees
        );
        let baseline = if counters_at_baseline { "yes" } else { "no" };
        println!("  counters at baseline   {baseline}");
        println!("  time                   {} ms", elapsed.as_millis());
    }
}

/// The kernel's memory map over the managed region; see the module docs.
pub struct PageMap {
    pages: &'static [Page; MANAGED_PAGES],
    base: Pfn,
    memory: PhysMemory,
    zero_page: Pfn,
    pins: PinStats,
    folios_allocated: AtomicUsize,
    folios_freed: AtomicUsize,
    pages_in_use: AtomicUsize,
    bad_frees: AtomicUsize,
    warnings: AtomicUsize,
    last_warning: Cell<Option<AnyWarning>>,
}

impl PageMap {
    /// A memory map over `region` ([`MANAGED_PAGES`] frames, owned from now
    /// on), every frame free, with a zero page allocated from it.
    ///
    /// # Errors
    ///
    /// [`MapError::RegionSize`], [`MapError::PfnOutOfRange`],
    /// [`MapError::AlreadyClaimed`].
    pub fn new(region: FrameRun) -> Result<Self, MapError> {
        if region.pages() != MANAGED_PAGES {
            return Err(MapError::RegionSize(region.pages()));
        }
        let base = Pfn::try_new(region.first_pfn())
            .map_err(|_| MapError::PfnOutOfRange(region.first_pfn()))?;
        let last = region.first_pfn() + MANAGED_PAGES - 1;
        Pfn::try_new(last).map_err(|_| MapError::PfnOutOfRange(last))?;
        if PAGES_CLAIMED.swap(true, Ordering::Relaxed) {
            return Err(MapError::AlreadyClaimed);
        }
        // Nobody else references the descriptors: reset any earlier owner's state.
        for page in &PAGES {
            page.counters.init(0, FolioShape::SMALL);
            page.set_state(FREE);
        }
        let mut map = Self {
            pages: &PAGES,
            base,
            memory: PhysMemory::new(region),
            zero_page: base,
            pins: PinStats::new(),
            folios_allocated: AtomicUsize::new(0),
            folios_freed: AtomicUsize::new(0),
            pages_in_use: AtomicUsize::new(0),
            bad_frees: AtomicUsize::new(0),
            warnings: AtomicUsize::new(0),
            last_warning: Cell::new(None),
        };
        // The zero page: zeroed, and its allocation reference is never dropped.
        map.zero_page = map.alloc_folio(FolioOrder::SMALL)?;
        Ok(map)
    }

    /// The bytes of the managed region.
    pub fn memory(&self) -> &PhysMemory {
        &self.memory
    }

    /// The first frame of the region.
    pub fn base(&self) -> Pfn {
        self.base
    }

    /// The shared zero page.
    pub fn zero_page(&self) -> Pfn {
        self.zero_page
    }

    /// The index of `pfn` in the descriptor array.
    fn index_of(&self, pfn: Pfn) -> Option<usize> {
        pfn.get()
            .checked_sub(self.base.get())
            .filter(|&index| index < MANAGED_PAGES)
    }

    /// The frame `base + index` (always encodable: `new` checked the last one).
    fn pfn_at(&self, index: usize) -> Pfn {
        Pfn::new_truncate(self.base.get() + index)
    }

    /// `len` bytes from byte `offset` of the frame run starting at `pfn`.
    ///
    /// # Errors
    ///
    /// [`MapError::NotManaged`] unless the whole run lies in the region.
    pub fn extent(&self, pfn: Pfn, offset: usize, len: usize) -> Result<PhysExtent, MapError> {
        let index = self.index_of(pfn).ok_or(MapError::NotManaged(pfn))?;
        // index < MANAGED_PAGES: the frame's address lies in the region.
        let frame = self.memory.region().start + index * PAGE_SIZE;
        let addr = frame.checked_add(offset).ok_or(MapError::NotManaged(pfn))?;
        if !self.memory.region().contains_range(addr, len) {
            return Err(MapError::NotManaged(pfn));
        }
        Ok(PhysExtent::new(addr, len))
    }

    /// Allocates a zeroed folio of `order` (`2^order` frames, naturally
    /// aligned) holding one reference, the caller's; returns its head.
    ///
    /// # Errors
    ///
    /// [`MapError::OutOfMemory`], or [`MapError::Access`] if the frames
    /// cannot be zeroed now (the region is lent to the device).
    pub fn alloc_folio(&self, order: FolioOrder) -> Result<Pfn, MapError> {
        let count = order.nr_pages();
        let first = (0..MANAGED_PAGES)
            .step_by(count)
            .find(|&start| {
                self.pages
                    .get(start..start + count)
                    .is_some_and(|run| run.iter().all(|page| page.state() == FREE))
            })
            .ok_or(MapError::OutOfMemory(order.get()))?;
        let head = self.pfn_at(first);
        let bytes = self.extent(head, 0, count * PAGE_SIZE)?;
        self.memory.with_bytes_mut(bytes, |bytes| bytes.fill(0))?;
        let run = &self.pages[first..first + count];
        for (index, page) in run.iter().enumerate().skip(1) {
            // index < 2^order <= 2^24 fits a u32, and is a valid tail index.
            let shape = u32::try_from(index)
                .ok()
                .and_then(|index| FolioShape::new(order, index).ok())
                .unwrap_or(FolioShape::SMALL);
            page.counters.init(0, shape);
            page.set_state(TAIL);
        }
        run[0].counters.init(1, FolioShape::head(order));
        run[0].set_state(head_state(order));
        // Relaxed: statistics.
        self.folios_allocated.fetch_add(1, Ordering::Relaxed);
        self.pages_in_use.fetch_add(count, Ordering::Relaxed);
        Ok(head)
    }

    /// The pin accounting (`nr_foll_pin_acquired` / `_released`).
    pub fn pins(&self) -> &PinStats {
        &self.pins
    }

    /// What the allocator did so far.
    pub fn allocator_stats(&self) -> AllocatorStats {
        // Relaxed: statistics.
        AllocatorStats {
            folios_allocated: self.folios_allocated.load(Ordering::Relaxed),
            folios_freed: self.folios_freed.load(Ordering::Relaxed),
            pages_in_use: self.pages_in_use.load(Ordering::Relaxed),
            bad_frees: self.bad_frees.load(Ordering::Relaxed),
        }
    }

    /// The power-off checks every scenario makes after
    /// [`check_baseline`](Self::check_baseline): pins acquired equal pins
    /// released, no warning beyond the `expected` ones, no double free, and
    /// every folio but the zero page freed. The error names the count that
    /// is off, the value seen and the value expected.
    pub fn check_power_off(&self, expected: usize) -> Result<(), (&'static str, usize, usize)> {
        let pins = self.pins();
        if pins.acquired() != pins.released() {
            return Err(("pins released", pins.released(), pins.acquired()));
        }
        let unexpected = self.warnings().saturating_sub(expected);
        if unexpected != 0 {
            return Err(("unexpected warnings", unexpected, 0));
        }
        let allocator = self.allocator_stats();
        if allocator.bad_frees != 0 {
            return Err(("double frees", allocator.bad_frees, 0));
        }
        // Everything but the zero page came back.
        if allocator.pages_in_use != 1 || allocator.folios_freed + 1 != allocator.folios_allocated {
            return Err((
                "folios freed (leak)",
                allocator.folios_freed,
                allocator.folios_allocated.saturating_sub(1),
            ));
        }
        Ok(())
    }

    /// Warnings gupio reported through the warn hook so far.
    pub fn warnings(&self) -> usize {
        // Relaxed: a statistic.
        self.warnings.load(Ordering::Relaxed)
    }

    /// The most recent warning, if any.
    pub fn last_warning(&self) -> Option<AnyWarning> {
        self.last_warning.get()
    }

    /// The descriptor of `pfn` as it is now, for reports.
    pub fn snapshot(&self, pfn: Pfn) -> Option<CounterMismatch> {
        let page = self.pages.get(self.index_of(pfn)?)?;
        Some(CounterMismatch {
            pfn,
            refcount: page.counters.refcount(),
            pincount: page.counters.pincount(),
            flags: page.counters.flags().bits(),
            state: page.state(),
        })
    }

    /// Checks that every descriptor is at its baseline: the zero page holds
    /// its one reference and no pin; every other frame is free, with no
    /// reference, no pin, no flag and a small-page shape. Returns the
    /// frames checked.
    ///
    /// # Errors
    ///
    /// The first descriptor that differs.
    pub fn check_baseline(&self) -> Result<usize, CounterMismatch> {
        for (index, page) in self.pages.iter().enumerate() {
            let pfn = self.pfn_at(index);
            let counters = &page.counters;
            let (refcount, state) = if pfn == self.zero_page {
                (1, HEAD_BASE)
            } else {
                (0, FREE)
            };
            let at_baseline = counters.refcount() == refcount
                && counters.pincount() == 0
                && counters.flags() == PageFlags::empty()
                && counters.shape() == FolioShape::SMALL
                && page.state() == state;
            if !at_baseline {
                return Err(self.snapshot(pfn).unwrap_or(CounterMismatch {
                    pfn,
                    refcount: counters.refcount(),
                    pincount: counters.pincount(),
                    flags: counters.flags().bits(),
                    state: page.state(),
                }));
            }
        }
        Ok(MANAGED_PAGES)
    }
}

impl Drop for PageMap {
    fn drop(&mut self) {
        PAGES_CLAIMED.store(false, Ordering::Relaxed);
    }
}

impl MemoryMap for PageMap {
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        Some(&self.pages.get(self.index_of(pfn)?)?.counters)
    }

    fn is_zero_page(&self, pfn: Pfn) -> bool {
        pfn == self.zero_page
    }
}

impl PageMap {
    /// The kernel's one warn hook: the pin tracker's warnings and the
    /// release path's both end here.
    fn report(&self, warning: AnyWarning) {
        // Relaxed: a statistic.
        self.warnings.fetch_add(1, Ordering::Relaxed);
        self.last_warning.set(Some(warning));
        println!("[gupio WARNING] {warning}");
    }
}

impl Warn for PageMap {
    fn warn(&self, warning: ReleaseWarning) {
        self.report(warning.into());
    }
}

impl PageOps for PageMap {
    fn free_folio(&self, folio: FolioRef<'_>) {
        let head = folio.head();
        let count = folio.nr_pages();
        let run = self
            .index_of(head)
            .and_then(|first| self.pages.get(first..first.checked_add(count)?));
        let expected_head = head_state(folio.order());
        let Some(run) = run.filter(|run| {
            run[0].state() == expected_head && run[1..].iter().all(|page| page.state() == TAIL)
        }) else {
            // Relaxed: a statistic.
            self.bad_frees.fetch_add(1, Ordering::Relaxed);
            let state = self
                .index_of(head)
                .map_or(FREE, |index| self.pages[index].state());
            println!(
                "page allocator: REFUSED free of folio {head:#x} (order {}): not an allocated folio (state {state}): double free?",
                folio.order().get()
            );
            return;
        };
        // The last reference is gone (gupio fenced before calling): the
        // allocator owns the pages again and resets their descriptors.
        for page in run {
            page.counters.init(0, FolioShape::SMALL);
            page.set_state(FREE);
        }
        // Relaxed: statistics.
        self.folios_freed.fetch_add(1, Ordering::Relaxed);
        self.pages_in_use.fetch_sub(count, Ordering::Relaxed);
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
}
