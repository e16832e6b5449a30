//! What the benchmark targets share: the bench machine (a memory map over a
//! heap array, per-thread hooks, user buffers), the scenarios gupio runs and
//! the physical floors the README's performance targets measure them against.
//!
//! Every scenario is deterministic: the same pages, the same order, the same
//! bios on every run; only the clock differs.

// Each bench target uses part of this module.
#![allow(dead_code)]

use std::cell::Cell;
use std::hint::black_box;

use gupio::bio::{Bio, BioLimits, BioOp, BioStatus, BioVec, Sector};
use gupio::pfn::{Origin, PageGeometry, Pfn, TaggedPfn, PFN_MASK, PIN_BIT};
use gupio::pin::{
    maybe_dma_pinned, AddressSpace, FaultKind, FolioOrder, FolioRef, FolioShape, GupFlags, HeldRun,
    MappedRun, Mapping, MappingFlags, MemoryMap, PageCounters, PageOps, Tracker, UserAddr, Warning,
    GUP_PIN_COUNTING_BIAS,
};
use gupio::release::{
    add_user_range, release_pages, Completion, Ending, ReleaseWarning, SubmittedBio, Warn,
};
use gupio::sync::atomic::{AtomicU32, Ordering};

/// Bytes per page: 4 KiB, like every figure in the report.
pub const PAGE_SIZE: usize = 4096;
/// Pages per bio in the small-page runs: Linux's `BIO_MAX_VECS`, one bvec
/// per page.
pub const BIO_PAGES: usize = 256;
/// The order of a 2 MiB folio of 4 KiB pages.
pub const THP_ORDER: u32 = 9;
/// Where every bench memory map starts (any frame would do).
pub const FIRST_PFN: usize = 0x10_0000;
/// Where every bench user buffer starts.
pub const USER_START: usize = 0x7f00_0000_0000;

/// A bvec table of one bio.
pub type Table = heapless::Vec<BioVec, BIO_PAGES>;

/// A memory map over a heap array of [`PageCounters`], every folio of one
/// order handed out (head refcount 1), as a kernel's `struct page` array.
pub struct BenchMap {
    first: Pfn,
    order: FolioOrder,
    pages: Box<[PageCounters]>,
}

impl BenchMap {
    /// `nr_pages` pages from [`FIRST_PFN`] in folios of `2^order` pages.
    pub fn new(nr_pages: usize, order: u32) -> Self {
        let order = FolioOrder::try_new(order).expect("valid folio order");
        assert_eq!(nr_pages % order.nr_pages(), 0, "whole folios only");
        let pages: Box<[PageCounters]> = (0..nr_pages).map(|_| PageCounters::new()).collect();
        for (index, page) in pages.iter().enumerate() {
            let in_folio = u32::try_from(index % order.nr_pages()).expect("index fits");
            if in_folio == 0 {
                page.init(1, FolioShape::head(order));
            } else {
                page.init(0, FolioShape::new(order, in_folio).expect("tail index"));
            }
        }
        Self {
            first: Pfn::new(FIRST_PFN),
            order,
            pages,
        }
    }

    /// The first frame.
    pub fn first(&self) -> Pfn {
        self.first
    }

    /// The number of pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Panics unless every folio is back at its allocation reference with
    /// no pin: what a run that released everything it took leaves behind.
    pub fn assert_baseline(&self) {
        for head in self.pages.iter().step_by(self.order.nr_pages()) {
            assert_eq!((head.refcount(), head.pincount()), (1, 0), "{head:?}");
        }
    }
}

impl MemoryMap for BenchMap {
    #[inline]
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        self.pages.get(pfn.get().wrapping_sub(self.first.get()))
    }

    #[inline]
    fn is_zero_page(&self, _pfn: Pfn) -> bool {
        false
    }
}

/// One CPU's view of a [`BenchMap`]: its pin accounting in plain cells, as
/// a kernel keeps per-CPU counters, and a warn hook that fails the run.
pub struct Cpu<'m> {
    map: &'m BenchMap,
    acquired: Cell<usize>,
    released: Cell<usize>,
}

impl<'m> Cpu<'m> {
    /// A view of `map`.
    pub fn new(map: &'m BenchMap) -> Self {
        Self {
            map,
            acquired: Cell::new(0),
            released: Cell::new(0),
        }
    }

    /// Pins taken minus pins released through this view.
    pub fn pins_in_flight(&self) -> usize {
        self.acquired.get() - self.released.get()
    }
}

impl MemoryMap for Cpu<'_> {
    #[inline]
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        self.map.counters(pfn)
    }

    #[inline]
    fn is_zero_page(&self, _pfn: Pfn) -> bool {
        false
    }
}

impl Warn for Cpu<'_> {
    fn warn(&self, warning: ReleaseWarning) {
        panic!("gupio's release path warned during a benchmark: {warning}");
    }
}

impl PageOps for Cpu<'_> {
    fn free_folio(&self, folio: FolioRef<'_>) {
        panic!("the bench still owns every folio, yet {folio:?} was freed");
    }

    fn warn(&self, warning: Warning) {
        panic!("gupio warned during a benchmark: {warning}");
    }

    #[inline]
    fn pins_acquired(&self, pages: usize) {
        self.acquired.set(self.acquired.get() + pages);
    }

    #[inline]
    fn pins_released(&self, pages: usize) {
        self.released.set(self.released.get() + pages);
    }
}

/// How a user buffer's pages map to frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// User page `i` maps frame `first + i`: physically contiguous, as a
    /// buffer backed by large folios.
    Ascending,
    /// User page `i` maps frame `first + (n - 1 - i)`: no page is
    /// physically followed by the next one, so none merge and each becomes
    /// its own bvec, as for scattered small pages.
    Descending,
}

/// A present, writable user buffer of `nr_pages` pages at [`USER_START`]
/// over frames `first ..`: the trivial page table the bench pins through.
#[derive(Clone, Copy, Debug)]
pub struct UserBuffer {
    start: usize,
    first: Pfn,
    nr_pages: usize,
    layout: Layout,
}

impl UserBuffer {
    /// The buffer of `nr_pages` pages over frames from `first`.
    pub fn new(first: Pfn, nr_pages: usize, layout: Layout) -> Self {
        Self {
            start: USER_START,
            first,
            nr_pages,
            layout,
        }
    }

    /// Its first user address.
    pub fn start(&self) -> UserAddr {
        UserAddr::new(self.start)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.nr_pages * PAGE_SIZE
    }

    /// The frame index (from `first`) user page `index` maps.
    #[inline]
    pub fn frame_index(&self, index: usize) -> usize {
        match self.layout {
            Layout::Ascending => index,
            Layout::Descending => self.nr_pages - 1 - index,
        }
    }

    /// The same layout over the `count` pages from user page `index`.
    pub fn sub(&self, index: usize, count: usize) -> Self {
        assert!(index + count <= self.nr_pages);
        let first = match self.layout {
            Layout::Ascending => self.first.get() + index,
            Layout::Descending => self.first.get() + (self.nr_pages - index - count),
        };
        Self {
            start: self.start + index * PAGE_SIZE,
            first: Pfn::new(first),
            nr_pages: count,
            layout: self.layout,
        }
    }
}

impl AddressSpace for UserBuffer {
    #[inline]
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }

    #[inline]
    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let index = addr.get().wrapping_sub(self.start) / PAGE_SIZE;
        if index >= self.nr_pages {
            return Err(FaultKind::Unmapped);
        }
        let pfn = Pfn::new_truncate(self.first.get() + self.frame_index(index));
        Ok(Some(Mapping::new(pfn, MappingFlags::WRITABLE)))
    }

    fn fault_in(&self, _addr: UserAddr, _write: bool) -> Result<(), FaultKind> {
        Ok(())
    }

    #[inline]
    fn translate_run(
        &self,
        addr: UserAddr,
        max_pages: usize,
    ) -> Result<Option<MappedRun>, FaultKind> {
        let index = addr.get().wrapping_sub(self.start) / PAGE_SIZE;
        if index >= self.nr_pages {
            return Err(FaultKind::Unmapped);
        }
        let pages = match self.layout {
            // The whole rest of the buffer is one stretch of frames.
            Layout::Ascending => (self.nr_pages - index).min(max_pages),
            Layout::Descending => 1,
        };
        let pfn = Pfn::new_truncate(self.first.get() + self.frame_index(index));
        Ok(Some(MappedRun {
            pfn,
            pages,
            flags: MappingFlags::WRITABLE,
        }))
    }
}

/// The two memories the direct-I/O scenarios run over, each with the user
/// buffer layout the report compares: 4 KiB pages mapped in descending
/// order (every page its own bvec), or 2 MiB folios mapped in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DioMemory {
    /// Small pages, no two physically adjacent in the buffer.
    SmallPages,
    /// 2 MiB folios, the buffer over them in order.
    Folios2M,
}

impl DioMemory {
    /// A map holding a buffer of `pages` pages (rounded up to whole folios).
    pub fn map(self, pages: usize) -> BenchMap {
        match self {
            Self::SmallPages => BenchMap::new(pages, 0),
            Self::Folios2M => {
                let folio = 1 << THP_ORDER;
                BenchMap::new(pages.div_ceil(folio) * folio, THP_ORDER)
            }
        }
    }

    /// The user buffer of `pages` pages over `map`.
    pub fn buffer(self, map: &BenchMap, pages: usize) -> UserBuffer {
        let layout = match self {
            Self::SmallPages => Layout::Descending,
            Self::Folios2M => Layout::Ascending,
        };
        UserBuffer::new(map.first(), pages, layout)
    }
}

/// Where a scenario has got to, for the atomics counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Pages pinned (and added to a bio).
    Pinned,
    /// Pages released.
    Released,
}

/// The device limits of the bench: 4 KiB pages, 256 vecs, no segment limit.
pub fn limits() -> BioLimits {
    BioLimits::new(PageGeometry::FOUR_KIB)
}

/// A direct-I/O write of all of `buffer`, as a kernel does it: pin the user
/// pages into a bio of up to 256 vecs ([`add_user_range`]), submit it, let
/// the completion report it done, release its pages by origin; again with a
/// new bio until the buffer is done. `phase` hears after each pin and each
/// release. Returns the pages moved.
pub fn dio_write<M: PageOps + Warn>(
    tracker: &Tracker<'_, M>,
    buffer: &UserBuffer,
    table: &mut Table,
    completion: &Completion,
    mut phase: impl FnMut(Phase),
) -> usize {
    let total = buffer.len();
    let mut done = 0;
    while done < total {
        let mut bio = Bio::new(&mut *table, BioOp::Write, Sector(0), limits());
        let start = UserAddr::new(buffer.start().get() + done);
        let added = add_user_range(
            tracker,
            buffer,
            &mut bio,
            start,
            total - done,
            GupFlags::empty(),
        )
        .expect("the whole buffer is mapped");
        phase(Phase::Pinned);
        completion.start().expect("idle completion");
        let submitted = SubmittedBio::submit(bio)
            .map_err(|(_, error)| error)
            .expect("a valid bio");
        let Ending::Finished(status) = completion
            .complete(BioStatus::Ok, tracker.ops())
            .expect("first completion")
        else {
            panic!("an unchained bio finishes at its own completion");
        };
        let released = submitted.complete(status).release(tracker, false);
        released.result.expect("every page released");
        phase(Phase::Released);
        done += added;
    }
    done / PAGE_SIZE
}

/// The performance targets' floor for pin + build + release of `buffer`:
/// per page, one atomic add to the page's 32-bit reference count (the pin),
/// a 16-byte descriptor written into a table of 256, read back, and one
/// atomic subtract (the unpin), over `counters` laid out like
/// [`PageCounters`]. No lookup, no check, no bio.
pub struct Floor {
    counters: Box<[[AtomicU32; 4]]>,
    table: Box<[RawBvec; BIO_PAGES]>,
}

/// A bare 16-byte descriptor: the tagged word, the length, the offset.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RawBvec {
    word: usize,
    len: u32,
    offset: u32,
}

impl Floor {
    /// Counters for `nr_pages` pages, each with one reference.
    pub fn new(nr_pages: usize) -> Self {
        let counters = (0..nr_pages)
            .map(|_| core::array::from_fn(|i| AtomicU32::new(u32::from(i == 0))))
            .collect();
        Self {
            counters,
            table: Box::new([RawBvec::default(); BIO_PAGES]),
        }
    }

    /// Pins, describes, reads back and unpins every page of `buffer`, 256
    /// at a time. Returns the pages.
    #[inline(never)]
    pub fn pin_build_release(&mut self, buffer: &UserBuffer) -> usize {
        let nr_pages = buffer.nr_pages;
        let base = buffer.first.get();
        let mut check = 0u32;
        let mut start = 0;
        while start < nr_pages {
            let count = BIO_PAGES.min(nr_pages - start);
            for (i, slot) in self.table[..count].iter_mut().enumerate() {
                let index = buffer.frame_index(start + i);
                // Relaxed: as gupio's pin (a reference derived from one held).
                self.counters[index][0].fetch_add(GUP_PIN_COUNTING_BIAS, Ordering::Relaxed);
                *slot = RawBvec {
                    word: (base + index) | PIN_BIT,
                    len: 4096,
                    offset: 0,
                };
            }
            let table = black_box(&mut self.table);
            for slot in &table[..count] {
                let index = (slot.word & PFN_MASK) - base;
                // Release: as gupio's unpin.
                let old =
                    self.counters[index][0].fetch_sub(GUP_PIN_COUNTING_BIAS, Ordering::Release);
                // Uses the whole descriptor, as a release reads all of it.
                check ^= old ^ slot.len ^ slot.offset;
            }
            start += count;
        }
        black_box(check);
        nr_pages
    }

    /// One Acquire load of each page's reference count and a comparison:
    /// the least a `maybe_dma_pinned` query can do. Returns the pages.
    #[inline(never)]
    pub fn query(&self) -> usize {
        let mut pinned = 0usize;
        for page in self.counters.iter() {
            // Acquire: as gupio's query.
            pinned += usize::from(page[0].load(Ordering::Acquire) >= GUP_PIN_COUNTING_BIAS);
        }
        black_box(pinned);
        self.counters.len()
    }

    /// Takes a pin on every other page (for the query floor).
    pub fn pin_every_other(&self) {
        for page in self.counters.iter().step_by(2) {
            page[0].fetch_add(GUP_PIN_COUNTING_BIAS, Ordering::Relaxed);
        }
    }
}

/// `maybe_dma_pinned` on every page of `map`. Returns the pages.
#[inline(never)]
pub fn query_all(map: &BenchMap) -> usize {
    let mut pinned = 0usize;
    let first = map.first().get();
    for index in 0..map.len() {
        let pfn = Pfn::new_truncate(first + index);
        pinned += usize::from(maybe_dma_pinned(map, pfn).expect("in the map"));
    }
    black_box(pinned);
    map.len()
}

/// How a word loaded back is consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Summed: independent per word, so a plain-word loop vectorizes.
    Sum,
    /// Folded into a running hash (rotate, xor): each word feeds dependent
    /// work, as a page number feeds the address of its counters.
    Chain,
}

/// Folds `value` into `acc` as `how` says.
#[inline(always)]
fn fold(acc: usize, value: usize, how: Use) -> usize {
    match how {
        Use::Sum => acc.wrapping_add(value),
        Use::Chain => acc.rotate_left(7) ^ value,
    }
}

/// The plain-word floor of the encoding: store `words.len()` usize values,
/// load them back and use each. Returns the words.
#[inline(never)]
pub fn plain_words(words: &mut [usize], first: usize, how: Use) -> usize {
    for (i, word) in words.iter_mut().enumerate() {
        *word = first + i;
    }
    let words = black_box(words);
    let mut acc = 0usize;
    for word in words.iter() {
        acc = fold(acc, *word, how);
    }
    black_box(acc);
    words.len()
}

/// The same through the tagged word: encode each page with `origin`,
/// store it, load it back, decode page and origin and use both. Returns
/// the words.
#[inline(never)]
pub fn tagged_words(words: &mut [TaggedPfn], first: usize, origin: Origin, how: Use) -> usize {
    for (i, word) in words.iter_mut().enumerate() {
        *word = TaggedPfn::new(Pfn::new_truncate(first + i), origin);
    }
    let words = black_box(words);
    let mut acc = 0usize;
    for word in words.iter() {
        if let Some((pfn, origin)) = word.decode() {
            acc = fold(acc, pfn.get() + usize::from(origin.tag()), how);
        }
    }
    black_box(acc);
    words.len()
}

/// Pins and builds bios over `buffer` (256 pages each, untimed set-up for
/// the release runs). Each table in `tables` holds one bio's bvecs.
pub fn build_bios<'t, M: PageOps>(
    tracker: &Tracker<'_, M>,
    buffer: &UserBuffer,
    tables: &'t mut [Table],
) -> Vec<Bio<&'t mut Table>> {
    let mut bios = Vec::with_capacity(tables.len());
    for (index, table) in tables.iter_mut().enumerate() {
        let part = buffer.sub(index * BIO_PAGES, BIO_PAGES);
        let mut bio = Bio::new(table, BioOp::Write, Sector(0), limits());
        let added = add_user_range(
            tracker,
            &part,
            &mut bio,
            part.start(),
            part.len(),
            GupFlags::empty(),
        )
        .expect("the whole buffer is mapped");
        assert_eq!(added, part.len());
        bios.push(bio);
    }
    bios
}

/// Releases every bio of `bios` (the completion path's work). Returns the
/// pages.
#[inline(never)]
pub fn release_all<M: PageOps + Warn, S: gupio::bio::BvecStorage>(
    tracker: &Tracker<'_, M>,
    bios: &[Bio<S>],
) -> usize {
    let mut pages = 0;
    for bio in bios {
        pages += release_pages(tracker, bio, false)
            .expect("every page released")
            .pages();
    }
    pages
}

/// gup_test's acquire loop: `pin_user_pages` over `buffer` in calls of
/// `per_call` pages, keeping every run it hands out in `runs`. Returns the
/// pages pinned.
#[inline(never)]
pub fn gup_pin<'a, M: PageOps>(
    tracker: &Tracker<'a, M>,
    buffer: &UserBuffer,
    runs: &mut Vec<HeldRun<'a, M>>,
    per_call: usize,
) -> usize {
    let mut pinned = 0;
    let mut call = 0;
    while pinned < buffer.nr_pages {
        let count = per_call.min(buffer.nr_pages - pinned);
        let addr = UserAddr::new(buffer.start().get() + call * per_call * PAGE_SIZE);
        for run in tracker
            .pin_user_pages(buffer, addr, count, GupFlags::WRITE)
            .expect("valid flags")
        {
            let run = run.expect("mapped");
            pinned += run.pages();
            runs.push(run);
        }
        call += 1;
    }
    pinned
}

/// gup_test's release: every run `gup_pin` kept, unpinned. Returns the
/// pages.
#[inline(never)]
pub fn gup_unpin<M: PageOps>(tracker: &Tracker<'_, M>, runs: &mut Vec<HeldRun<'_, M>>) -> usize {
    let mut pages = 0;
    for run in runs.drain(..) {
        pages += run.pages();
        tracker.release_held(run, false).expect("every page pinned");
    }
    pages
}
