//! Phase 2: gupio in a real kernel, with a real (emulated) device DMAing
//! into the pages it tracks.
//!
//! Setup: a [`PageMap`] over 16 MiB of free RAM (a descriptor with gupio's
//! counters per frame, a page allocator, the zero page) and a
//! [`UserSpace`] whose page table maps a 96 KiB "user" buffer: four small
//! pages at descending frames, an order-4 folio (16 pages, 64 KiB), the
//! zero page read-only, a demand-zero page, and two more small pages.
//!
//! 1. **Direct-I/O read** of 94 KiB of the disk into the user buffer, from
//!    mid-page to mid-page: [`add_user_range`] pins the pages (faulting in
//!    the demand-zero page and breaking copy-on-write of the zero page) into
//!    bios of at most three bvecs, so the range takes several bios, each
//!    filled short and continued in the next, as Linux's
//!    `__blkdev_direct_IO` does. Each bio is dirtied before submission,
//!    chained to one parent completion (the dio), run on the device,
//!    completed, and released through `complete_dio_read`. In one bio a
//!    writeback that ignores pins cleans a page while the device writes it
//!    (the 2019 hazard): completion sees it and defers the release to the
//!    "process context" worker, which re-dirties the page first.
//! 2. **Mixed-origin read**: a page-cache page (referenced: `get_page` +
//!    [`Origin::Referenced`]), two pinned user pages inside the large
//!    folio, and part of a kernel buffer the caller keeps
//!    ([`Origin::Borrowed`]: its count never moves), in one bio, released
//!    with dirtying.
//! 3. **Mixed-origin write** of 12 KiB from pinned user pages, a
//!    referenced page-cache page and a borrowed kernel buffer to
//!    [`SCENARIO_WRITTEN`], then a flush bio; xtask checks the image
//!    afterwards. A second completion of the same bio is refused and warned
//!    without releasing anything twice.
//! 4. **Read-back** of the written sectors (and one on either side) into a
//!    referenced order-3 kernel folio (`add_folio`, one reference per page).
//! 5. **Refusals**: pinning a hole in the address space fails with a fault
//!    and pins nothing; a read pin of the zero page changes no counter.
//! 6. **Exit with a bio in flight**: a second process maps three pages (one
//!    demand-zero) and pins them into a read bio, which is submitted; its
//!    address space is torn down before the device runs the bio. Exit drops
//!    only the mappings' references: no page is freed, each is held by its
//!    pin alone, the device reads into them, the completion's release frees
//!    them.
//! 7. **Teardown**: `munmap` of the user buffer and the last puts of the
//!    kernel pages free every folio; a stray second put is refused and
//!    warned, and never reaches the allocator as a double free.
//!
//! After every release the user pages' counters are back at their baseline
//! (one reference per mapping, no pin); at the end every counter of the
//! region is, pins acquired equal pins released, the only warnings are the
//! two expected ones, and the allocator saw no double free and no leak.

use core::fmt;
use core::ops::Range;
use core::time::Duration;

use gupio::bio::{
    AddError, Bio, BioError, BioLimits, BioOp, BioStatus, BioVec, BvecSlice, BvecStorage, Folio,
    Origin, Sector as BioSector,
};
use gupio::pfn::Pfn;
use gupio::pin::{
    FaultKind, FolioOrder, GupFlags, MemoryMap, PageFlags, PageRange, PinError, Tracker, UserAddr,
    Warning, GUP_PIN_COUNTING_BIAS,
};
use gupio::release::{
    add_user_range, release_deferred, set_pages_dirty, AnyWarning, CompletedBio, Completion,
    DeferredList, DioRead, Ending, ReleaseError, ReleaseStats, ReleaseWarning, Released,
    SubmittedBio,
};

use crate::blk::{self, RequestError};
use crate::mem::{FrameAllocator, MemError, PAGE_SIZE};
use crate::pagemap::{AllocatorStats, CounterMismatch, MapError, PageMap, MANAGED_PAGES};
use crate::pattern::{self, SCENARIO_WRITTEN, SECTOR_SIZE};
use crate::selftest::Mismatch;
use crate::time::Clock;
use crate::userspace::{FaultStats, Pte, UserError, UserSpace, USER_PAGES};
use crate::virtio::{BlockDevice, OpenError};

/// Frames in a 2 MiB run: the managed region is aligned to it.
const REGION_ALIGN_PAGES: usize = 512;
/// Bvecs per bio for the direct-I/O read: small, so the buffer takes
/// several bios and `add_user_range` comes back short.
const DIO_MAX_VECS: usize = 3;
/// Bio tables the direct-I/O read may use.
const DIO_MAX_BIOS: usize = 8;
/// Bios the deferred-release list holds.
const DEFERRED_CAPACITY: usize = 4;
/// Bvecs per bio elsewhere.
const BIO_VECS: usize = 16;

/// User pages 0..4: four small pages, mapped at descending frames.
const SCATTERED: Range<usize> = 0..4;
/// User pages 4..20: one order-4 folio.
const FOLIO_PAGES: Range<usize> = 4..20;
/// The large folio's order.
const FOLIO_ORDER: u32 = 4;
/// User page 20: the zero page, read-only (an anonymous page never written).
const ZERO_MAPPED: usize = 20;
/// User page 21: demand-zero anonymous memory, not present.
const DEMAND_ZERO: usize = 21;
/// User pages 22..24: two more small pages.
const TAIL_PAGES: Range<usize> = 22..24;
/// User pages in the buffer.
const BUFFER_PAGES: usize = 24;
/// User page 24: a hole; pinning it must fault.
const HOLE: usize = 24;
/// User page 25: another read-only zero-page mapping, for a read pin.
const ZERO_READ: usize = 25;

const _: () = assert!(FOLIO_PAGES.end - FOLIO_PAGES.start == 1 << FOLIO_ORDER);
/// User page 26: a page mapped read-only (not the zero page), which no
/// write pin may reach.
const READ_ONLY: usize = 26;

const _: () = assert!(READ_ONLY < USER_PAGES);

/// Where the direct-I/O read starts in the user buffer, and what it leaves
/// out at the end: both inside a page.
const DIO_HEAD_SKIP: usize = 1536;
const DIO_TAIL_SKIP: usize = 512;
/// Bytes of the direct-I/O read (94 KiB).
const DIO_LEN: usize = BUFFER_PAGES * PAGE_SIZE - DIO_HEAD_SKIP - DIO_TAIL_SKIP;
/// First disk sector of the direct-I/O read.
const DIO_FIRST: u64 = 64;

/// The mixed read: a page-cache page, 6 KiB of user pages 8 and 9 (inside
/// the folio) from byte 1024, 2 KiB of a borrowed buffer from byte 1024.
const MIXED_READ_FIRST: u64 = 512;
const MIXED_USER_PAGE: usize = 8;
const MIXED_USER_OFFSET: usize = 1024;
const MIXED_USER_LEN: usize = 6144;
const MIXED_BORROWED: Range<usize> = 1024..3072;

/// The mixed write: 6 KiB of user pages 1 and 2 from byte 2048, a whole
/// page-cache page, the first 2 KiB of the borrowed buffer.
const WRITE_USER_PAGE: usize = 1;
const WRITE_USER_OFFSET: usize = 2048;
const WRITE_USER_LEN: usize = 6144;
const WRITE_BORROWED: Range<usize> = 0..2048;
const WRITE_LEN: usize = WRITE_USER_LEN + PAGE_SIZE + (WRITE_BORROWED.end - WRITE_BORROWED.start);

/// The read-back: the written sectors and one on either side, into an
/// order-3 kernel folio.
const BACK_ORDER: u32 = 3;
const BACK_FIRST: u64 = SCENARIO_WRITTEN.start - 1;
const BACK_LEN: usize = sector_bytes(SCENARIO_WRITTEN.end - SCENARIO_WRITTEN.start + 2);

/// The exit step: three user pages of a second process, read from sector
/// [`EXIT_FIRST`] (clear of every other step's sectors).
const EXIT_PAGES: usize = 3;
const EXIT_FIRST: u64 = 768;
const EXIT_LEN: usize = EXIT_PAGES * PAGE_SIZE;

/// Whole sectors in `bytes`.
const fn sectors(bytes: usize) -> u64 {
    (bytes / SECTOR_SIZE) as u64
}

/// Bytes in `count` sectors; only for the small constants of this file
/// (checked at compile time).
#[allow(clippy::cast_possible_truncation)] // checked by the assert
const fn sector_bytes(count: u64) -> usize {
    assert!(count <= (u32::MAX as u64) / SECTOR_SIZE as u64);
    count as usize * SECTOR_SIZE
}

/// `bytes` as a bvec length or offset; only for the constants of this file
/// (checked at compile time).
#[allow(clippy::cast_possible_truncation)] // checked by the assert
const fn bvec_u32(bytes: usize) -> u32 {
    assert!(bytes <= u32::MAX as usize);
    bytes as u32
}

/// A page, as a bvec length.
const PAGE_LEN: u32 = bvec_u32(PAGE_SIZE);

/// Whether `[first, first + count)` overlaps a range the kernel writes.
const fn touches_written(first: u64, count: u64) -> bool {
    let mut sector = first;
    while sector < first + count {
        if pattern::is_written(sector) {
            return true;
        }
        sector += 1;
    }
    false
}

// The writes cover exactly SCENARIO_WRITTEN; the reads compared against the
// image as created never touch a written sector; the read-back fits its folio.
const _: () = assert!(sectors(WRITE_LEN) == SCENARIO_WRITTEN.end - SCENARIO_WRITTEN.start);
const _: () = assert!(!touches_written(DIO_FIRST, sectors(DIO_LEN)));
const _: () = assert!(!touches_written(
    MIXED_READ_FIRST,
    sectors(PAGE_SIZE + MIXED_USER_LEN + (MIXED_BORROWED.end - MIXED_BORROWED.start))
));
const _: () = assert!(BACK_LEN <= (PAGE_SIZE << BACK_ORDER));
const _: () =
    assert!(MIXED_USER_PAGE >= FOLIO_PAGES.start && MIXED_USER_PAGE + 2 <= FOLIO_PAGES.end);
const _: () = assert!(WRITE_USER_PAGE + 2 <= SCATTERED.end);

/// A check of the scenario that did not hold.
#[derive(Clone, Copy, Debug)]
pub enum ScenarioError {
    /// The managed region could not be carved out of free RAM.
    Memory(MemError),
    /// The memory map could not be set up, or a page not allocated.
    Map(&'static str, MapError),
    /// The block device could not be opened.
    Open(OpenError),
    /// The device's limits do not make gupio limits.
    Limits(BioError),
    /// User memory could not be mapped or reached, or held the wrong byte.
    User(&'static str, UserError),
    /// A gupio call of this step failed.
    Gupio(&'static str, gupio::Error),
    /// A bio completed with an error status.
    Io(&'static str, BioStatus),
    /// A byte in a kernel page differs from the disk's.
    Data(Mismatch),
    /// A page's counters are not what they should be.
    Counters(&'static str, CounterMismatch),
    /// A count differs: (step, what, found, expected).
    Count(&'static str, &'static str, usize, usize),
    /// A check of this step did not hold: (step, what).
    Check(&'static str, &'static str),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(error) => write!(f, "managed region: {error}"),
            Self::Map(step, error) => write!(f, "{step}: memory map: {error}"),
            Self::Open(error) => write!(f, "virtio-blk: {error}"),
            Self::Limits(error) => write!(f, "queue limits: {error}"),
            Self::User(step, error) => write!(f, "{step}: user memory: {error}"),
            Self::Gupio(step, error) => write!(f, "{step}: {error}"),
            Self::Io(step, status) => write!(f, "{step}: bio completed with {status}"),
            Self::Data(m) => write!(
                f,
                "{}: sector {} byte {} at {:#x}: expected {:#04x}, found {:#04x}",
                m.step, m.sector, m.offset, m.address, m.expected, m.found
            ),
            Self::Counters(step, mismatch) => write!(f, "{step}: counters off: {mismatch}"),
            Self::Count(step, what, found, expected) => {
                write!(f, "{step}: {what}: {found}, expected {expected}")
            }
            Self::Check(step, what) => write!(f, "{step}: {what}"),
        }
    }
}

/// What the scenario did, for the summary it prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Bios submitted to the device (flush included).
    pub bios: usize,
    /// Data segments those bios carried.
    pub segments: usize,
    /// Bytes the device wrote into tracked pages.
    pub bytes_read: usize,
    /// Bytes the device read from tracked pages.
    pub bytes_written: usize,
    /// Bytes compared against the disk's contents.
    pub bytes_checked: usize,
    /// Pins taken (`nr_foll_pin_acquired`).
    pub pins_acquired: usize,
    /// Pins dropped (`nr_foll_pin_released`).
    pub pins_released: usize,
    /// Pages the completions released, by origin.
    pub released: ReleaseStats,
    /// `add_user_range` calls that came back short (bio full).
    pub short_adds: usize,
    /// Bios whose release was deferred to process context.
    pub deferred: usize,
    /// Faults the address space resolved.
    pub faults: FaultStats,
    /// Warnings the scenario provoked on purpose.
    pub expected_warnings: usize,
    /// Every other warning (must be zero).
    pub unexpected_warnings: usize,
    /// The page allocator's counts at the end.
    pub allocator: AllocatorStats,
    /// Every counter of the managed region back at baseline at the end.
    pub counters_at_baseline: bool,
    /// Wall time (mtime).
    pub elapsed: Duration,
}

/// Adds `stats` to `total`.
fn accumulate(total: &mut ReleaseStats, stats: ReleaseStats) {
    total.unpinned += stats.unpinned;
    total.put += stats.put;
    total.borrowed += stats.borrowed;
    total.bvecs += stats.bvecs;
}

impl Summary {
    fn add_released(&mut self, stats: ReleaseStats) {
        accumulate(&mut self.released, stats);
    }

    /// Prints the summary, several lines.
    pub fn print(&self) {
        println!("gupio scenario summary:");
        println!(
            "  bios submitted         {} ({} segments)",
            self.bios, self.segments
        );
        println!(
            "  bytes DMA'd            {} read into tracked pages, {} written from them; {} checked",
            self.bytes_read, self.bytes_written, self.bytes_checked
        );
        println!(
            "  pages pinned           {} into bios, {} more dropped at once (bio full); {} short adds, \
             {} deferred releases, faults: {} demand-zero, {} copy-on-write",
            self.released.unpinned,
            self.pins_acquired.saturating_sub(self.released.unpinned),
            self.short_adds,
            self.deferred,
            self.faults.demand_zero,
            self.faults.copy_on_write
        );
        println!(
            "  pages released         {} unpinned, {} put, {} borrowed (left alone), in {} bvecs",
            self.released.unpinned, self.released.put, self.released.borrowed, self.released.bvecs
        );
        println!(
            "  pins acquired/released {}/{}",
            self.pins_acquired, self.pins_released
        );
        println!(
            "  warnings               {} expected, {} unexpected",
            self.expected_warnings, self.unexpected_warnings
        );
        println!(
            "  page allocator         {} folios allocated, {} freed, {} frames in use (1 expected: the zero page), {} double frees",
            self.allocator.folios_allocated,
            self.allocator.folios_freed,
            self.allocator.pages_in_use,
            self.allocator.bad_frees
        );
        println!(
            "  counters at baseline   {}",
            if self.counters_at_baseline {
                "yes"
            } else {
                "no"
            }
        );
        println!("  time                   {} ms", self.elapsed.as_millis());
    }
}

/// Maps any gupio error of `step` into a [`ScenarioError`].
fn gupio_error<E: Into<gupio::Error>>(step: &'static str) -> impl FnOnce(E) -> ScenarioError {
    move |error| ScenarioError::Gupio(step, error.into())
}

/// Compares `bytes`, taken as a run from byte `skip` of sector `first`,
/// with `expected(sector, offset)`; `address` is the run's physical address.
fn verify_bytes(
    step: &'static str,
    bytes: &[u8],
    address: usize,
    first: u64,
    expected: fn(u64, usize) -> u8,
) -> Result<usize, ScenarioError> {
    for (index, &found) in bytes.iter().enumerate() {
        let sector = first + (index / SECTOR_SIZE) as u64;
        let offset = index % SECTOR_SIZE;
        let want = expected(sector, offset);
        if found != want {
            return Err(ScenarioError::Data(Mismatch {
                step,
                sector,
                offset,
                expected: want,
                found,
                address: address + index,
            }));
        }
    }
    Ok(bytes.len())
}

/// The kernel's own pages used by the mixed bios.
struct KernelPages {
    /// A page-cache page the mixed read fills (referenced).
    read_cache: Pfn,
    /// A page-cache page the mixed write writes out (referenced).
    write_cache: Pfn,
    /// A kernel buffer the bios borrow (its owner keeps its reference).
    borrowed: Pfn,
}

struct Scenario<'m, 's> {
    map: &'m PageMap,
    tracker: Tracker<'m, PageMap>,
    space: &'s UserSpace<'m>,
    disk: BlockDevice,
    /// Limits for the direct-I/O bios.
    dio_limits: BioLimits,
    /// Limits for the other bios.
    limits: BioLimits,
    summary: Summary,
    kernel: Option<KernelPages>,
}

impl<'m> Scenario<'m, '_> {
    fn alloc(&self, step: &'static str, order: u32) -> Result<Pfn, ScenarioError> {
        let order = FolioOrder::try_new(order).map_err(gupio_error(step))?;
        self.map
            .alloc_folio(order)
            .map_err(|error| ScenarioError::Map(step, error))
    }

    fn user(step: &'static str) -> impl FnOnce(UserError) -> ScenarioError {
        move |error| ScenarioError::User(step, error)
    }

    /// Maps the user buffer (see the module docs).
    fn map_user_buffer(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "user buffer";
        let map = |error| ScenarioError::User(STEP, error);
        let mut small = [Pfn::ZERO; SCATTERED.end - SCATTERED.start];
        for pfn in &mut small {
            *pfn = self.alloc(STEP, 0)?;
        }
        // Descending frames: no two neighbouring user pages are contiguous.
        for (page, &pfn) in SCATTERED.zip(small.iter().rev()) {
            self.space
                .map_page(&self.tracker, UserSpace::page_addr(page), pfn, true)
                .map_err(map)?;
            // The mapping's reference is now the only one.
            self.tracker.put_page(pfn).map_err(gupio_error(STEP))?;
        }
        let folio = self.alloc(STEP, FOLIO_ORDER)?;
        for (index, page) in FOLIO_PAGES.enumerate() {
            let pfn = folio
                .checked_add(index)
                .ok_or(ScenarioError::Check(STEP, "folio pfn overflow"))?;
            self.space
                .map_page(&self.tracker, UserSpace::page_addr(page), pfn, true)
                .map_err(map)?;
        }
        self.tracker.put_page(folio).map_err(gupio_error(STEP))?;
        self.space
            .map_zero_page(UserSpace::page_addr(ZERO_MAPPED))
            .map_err(map)?;
        self.space
            .map_demand_zero(UserSpace::page_addr(DEMAND_ZERO))
            .map_err(map)?;
        let mut tail = [Pfn::ZERO; TAIL_PAGES.end - TAIL_PAGES.start];
        for (page, pfn) in TAIL_PAGES.zip(tail.iter_mut()) {
            *pfn = self.alloc(STEP, 0)?;
            self.space
                .map_page(&self.tracker, UserSpace::page_addr(page), *pfn, true)
                .map_err(map)?;
            self.tracker.put_page(*pfn).map_err(gupio_error(STEP))?;
        }
        self.space
            .map_zero_page(UserSpace::page_addr(ZERO_READ))
            .map_err(map)?;
        println!(
            "  user buffer: {BUFFER_PAGES} pages at {:#x}: pages 0-3 at pfns {:#x}, {:#x}, {:#x}, {:#x}; \
             4-19 an order-{FOLIO_ORDER} folio at pfn {folio:#x}; 20 the zero page (pfn {:#x}, read-only); \
             21 demand-zero; 22-23 at pfns {:#x}, {:#x}; 24 a hole",
            UserSpace::page_addr(0),
            small[3],
            small[2],
            small[1],
            small[0],
            self.map.zero_page(),
            tail[0],
            tail[1]
        );
        self.check_runs(STEP)?;
        self.check_user_baseline(STEP)
    }

    /// Checks the address space's native `translate_run` against
    /// page-by-page translation over the whole page table.
    fn check_runs(&self, step: &'static str) -> Result<(), ScenarioError> {
        let compared = self.space.check_runs().map_err(Self::user(step))?;
        println!(
            "  {step}: translate_run walks the page table once per run; it matches page-by-page \
             translation at {compared} (address, page limit) pairs"
        );
        Ok(())
    }

    /// Checks every mapped user page: its folio holds one reference per
    /// mapping of its pages and no pin.
    fn check_user_baseline(&self, step: &'static str) -> Result<(), ScenarioError> {
        let mut heads = [(Pfn::ZERO, 0u32); USER_PAGES];
        let mut count = 0;
        for pfn in self.space.mapped_frames() {
            let folio = self.map.folio(pfn).map_err(gupio_error(step))?;
            match heads[..count]
                .iter_mut()
                .find(|(head, _)| *head == folio.head())
            {
                Some((_, mappings)) => *mappings += 1,
                None => {
                    // At most one head per entry, so there is always a slot.
                    let slot = heads
                        .get_mut(count)
                        .ok_or(ScenarioError::Check(step, "more folios than entries"))?;
                    *slot = (folio.head(), 1);
                    count += 1;
                }
            }
        }
        for &(head, mappings) in &heads[..count] {
            self.expect_counters(step, head, mappings)?;
        }
        Ok(())
    }

    /// Checks that the folio at `head` holds `refcount` references and no pin.
    fn expect_counters(
        &self,
        step: &'static str,
        head: Pfn,
        refcount: u32,
    ) -> Result<(), ScenarioError> {
        let counters = self
            .map
            .counters(head)
            .ok_or(ScenarioError::Map(step, MapError::NotManaged(head)))?;
        let pinned = self
            .tracker
            .maybe_dma_pinned(head)
            .map_err(gupio_error(step))?;
        if counters.refcount() != refcount || counters.pincount() != 0 || pinned {
            let snapshot = self
                .map
                .snapshot(head)
                .ok_or(ScenarioError::Map(step, MapError::NotManaged(head)))?;
            return Err(ScenarioError::Counters(step, snapshot));
        }
        Ok(())
    }

    /// Whether the folio holding `pfn` is dirty.
    fn is_dirty(&self, step: &'static str, pfn: Pfn) -> Result<bool, ScenarioError> {
        let folio = self.map.folio(pfn).map_err(gupio_error(step))?;
        Ok(folio.counters().flags().contains(PageFlags::DIRTY))
    }

    /// Submits `bio`. A refused bio is released here (its pages go back as
    /// their origins say) and the refusal returned.
    fn submit<'t>(
        &mut self,
        step: &'static str,
        bio: Bio<BvecSlice<'t>>,
    ) -> Result<SubmittedBio<BvecSlice<'t>>, ScenarioError> {
        match SubmittedBio::submit(bio) {
            Ok(submitted) => Ok(submitted),
            Err((bio, error)) => {
                // The pages go back; any failure was warned by gupio.
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                Err(gupio_error(step)(error))
            }
        }
    }

    /// Checks a bio in flight: every pinned page reads as maybe DMA-pinned.
    fn check_in_flight<S: BvecStorage>(
        &self,
        step: &'static str,
        bio: &Bio<S>,
    ) -> Result<(), ScenarioError> {
        for page in bio.all_pages() {
            if let Some((pfn, Origin::Pinned)) = page.decode() {
                let pinned = self
                    .tracker
                    .maybe_dma_pinned(pfn)
                    .map_err(gupio_error(step))?;
                if !pinned {
                    return Err(ScenarioError::Check(
                        step,
                        "a pinned page in flight does not read as maybe DMA-pinned",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Runs the bio on the device; a failure is printed and becomes the
    /// status the bio completes with.
    fn run_on_device<S: BvecStorage>(&mut self, step: &'static str, bio: &Bio<S>) -> BioStatus {
        match blk::execute(&mut self.disk, self.map, bio) {
            Ok(stats) => {
                self.summary.bios += 1;
                self.summary.segments += stats.segments;
                self.summary.bytes_read += stats.bytes_in;
                self.summary.bytes_written += stats.bytes_out;
                BioStatus::Ok
            }
            Err(error) => {
                println!("  {step}: the request failed: {error}");
                match error {
                    RequestError::NotSupported(_) => BioStatus::NotSupported,
                    _ => BioStatus::IoError,
                }
            }
        }
    }

    /// The device's interrupt: reports the bio's own I/O to `completion`
    /// and, when that finishes it, hands the bio on for release. A bio
    /// whose completion does not finish (which only a bug causes) is still
    /// completed with an error so its pages are released, and the error
    /// returned after.
    fn complete<S: BvecStorage>(
        &self,
        step: &'static str,
        completion: &Completion,
        submitted: SubmittedBio<S>,
        status: BioStatus,
    ) -> (CompletedBio<S>, Result<BioStatus, ScenarioError>) {
        match completion.complete(status, self.map) {
            Ok(Ending::Finished(status)) => (submitted.complete(status), Ok(status)),
            Ok(Ending::Pending) => (
                submitted.complete(BioStatus::IoError),
                Err(ScenarioError::Check(
                    step,
                    "a bio without children did not finish",
                )),
            ),
            Err(error) => (
                submitted.complete(BioStatus::IoError),
                Err(gupio_error(step)(error)),
            ),
        }
    }

    /// Takes what a release gave back into the summary; its error, if any.
    fn released<S>(
        &mut self,
        step: &'static str,
        released: Released<S>,
    ) -> Result<ReleaseStats, ScenarioError> {
        let stats = released.result.map_err(gupio_error(step))?;
        self.summary.add_released(stats);
        Ok(stats)
    }

    /// Step 1: the direct-I/O read into the user buffer.
    fn direct_io_read(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "direct-I/O read";
        let start = UserSpace::page_addr(0) + DIO_HEAD_SKIP;
        let mut tables = [[BioVec::NONE; DIO_MAX_VECS]; DIO_MAX_BIOS];
        let deferred: DeferredList<CompletedBio<BvecSlice<'_>>, DEFERRED_CAPACITY> =
            DeferredList::new();
        // The dio's own completion: each bio is chained to it, and its end_io
        // runs once, after the last bio.
        let dio = Completion::new();
        dio.start().map_err(gupio_error(STEP))?;
        let walks = self.space.run_walks();
        let submitted = self.direct_io_bios(&mut tables, &deferred, &dio, start);
        // The worker in process context: re-dirty, then release. It runs even
        // after a failure, so no bio stays pinned.
        let mut worker_error = None;
        let mut worker_stats = ReleaseStats::default();
        let drained =
            release_deferred(&deferred, &self.tracker, |released| match released.result {
                Ok(stats) => accumulate(&mut worker_stats, stats),
                Err(error) => {
                    worker_error.get_or_insert(error);
                }
            });
        self.summary.add_released(worker_stats);
        let walks = self.space.run_walks() - walks;
        let (bios, pages) = submitted?;
        if let Some(error) = worker_error {
            return Err(gupio_error(STEP)(error));
        }
        if drained != self.summary.deferred {
            return Err(ScenarioError::Count(
                STEP,
                "bios released by the worker",
                drained,
                self.summary.deferred,
            ));
        }
        // The submitter drops the dio's own part: end_io runs now, once.
        match dio.complete(BioStatus::Ok, self.map) {
            Ok(Ending::Finished(BioStatus::Ok)) => {}
            Ok(Ending::Finished(status)) => return Err(ScenarioError::Io(STEP, status)),
            Ok(Ending::Pending) => {
                return Err(ScenarioError::Check(STEP, "the dio did not finish"))
            }
            Err(error) => return Err(gupio_error(STEP)(error)),
        }

        // The data, read through the user page table as the process sees it.
        let user = Self::user(STEP);
        self.summary.bytes_checked += self
            .space
            .verify(start, DIO_LEN, |index| {
                pattern::image_byte(
                    DIO_FIRST + (index / SECTOR_SIZE) as u64,
                    index % SECTOR_SIZE,
                )
            })
            .map_err(user)?;
        // Outside the range the device wrote nothing.
        self.space
            .verify(UserSpace::page_addr(0), DIO_HEAD_SKIP, |_| 0)
            .map_err(Self::user(STEP))?;
        self.space
            .verify(start + DIO_LEN, DIO_TAIL_SKIP, |_| 0)
            .map_err(Self::user(STEP))?;
        // Every page the device wrote is dirty, the one writeback cleaned too.
        for page in 0..BUFFER_PAGES {
            let Pte::Present { pfn, .. } = self.space.pte(UserSpace::page_addr(page)) else {
                return Err(ScenarioError::Check(STEP, "a user page is not present"));
            };
            if !self.is_dirty(STEP, pfn)? {
                return Err(ScenarioError::Check(
                    STEP,
                    "a page the device wrote is not dirty",
                ));
            }
        }
        self.check_user_baseline(STEP)?;
        let faults = self.space.faults();
        println!(
            "  {STEP}: {DIO_LEN} bytes, sectors {DIO_FIRST}..{} into user {start:#x}: {pages} pages pinned \
             ({walks} run translations, {} demand-zero fault, {} copy-on-write of the zero page) in \
             {bios} bios of at most {DIO_MAX_VECS} bvecs ({} short adds), chained to one dio; {} release \
             deferred and re-dirtied by the worker; data ok, all pages dirty, counters at baseline",
            DIO_FIRST + sectors(DIO_LEN),
            faults.demand_zero,
            faults.copy_on_write,
            self.summary.short_adds,
            self.summary.deferred
        );
        // The faults changed the page table: the walk still agrees.
        self.check_runs(STEP)
    }

    /// The bios of the direct-I/O read; returns (bios, pages pinned).
    fn direct_io_bios<'t>(
        &mut self,
        tables: &'t mut [[BioVec; DIO_MAX_VECS]; DIO_MAX_BIOS],
        deferred: &DeferredList<CompletedBio<BvecSlice<'t>>, DEFERRED_CAPACITY>,
        dio: &Completion,
        start: usize,
    ) -> Result<(usize, usize), ScenarioError> {
        const STEP: &str = "direct-I/O read";
        let mut done = 0usize;
        let mut bios = 0usize;
        let mut pages = 0usize;
        for table in tables.iter_mut() {
            if done == DIO_LEN {
                break;
            }
            let sector = BioSector(DIO_FIRST + sectors(done));
            // The bio's completion, chained to the dio's, before any page is held.
            let completion = Completion::new();
            completion.start().map_err(gupio_error(STEP))?;
            let token = dio.chain().map_err(gupio_error(STEP))?;
            let mut bio = Bio::new(BvecSlice::new(table), BioOp::Read, sector, self.dio_limits);
            let in_flight = self.map.pins().in_flight();
            let added = add_user_range(
                &self.tracker,
                self.space,
                &mut bio,
                UserAddr::new(start + done),
                DIO_LEN - done,
                GupFlags::WRITE,
            )
            .map_err(gupio_error(STEP))?;
            if added < DIO_LEN - done {
                self.summary.short_adds += 1;
            }
            // Every pin the bio did not take was dropped: one pin per page per bvec.
            let bio_pins = bio
                .all_pages()
                .filter(|page| page.origin() == Some(Origin::Pinned))
                .count();
            let taken = self.map.pins().in_flight().wrapping_sub(in_flight);
            if taken != bio_pins {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(ScenarioError::Count(
                    STEP,
                    "pins held after add_user_range",
                    taken,
                    bio_pins,
                ));
            }
            pages += bio_pins;
            // Before submission: the device is about to write these pages.
            if let Err(error) = set_pages_dirty(&self.tracker, &bio) {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(gupio_error(STEP)(error));
            }
            let submitted = match self.submit(STEP, bio) {
                Ok(submitted) => submitted,
                Err(error) => {
                    // Report the child so the dio can still finish.
                    let _ = dio.child_complete(token, BioStatus::IoError, self.map);
                    return Err(error);
                }
            };
            let checked = self.check_in_flight(STEP, submitted.bio());
            if bios == 1 {
                // A writeback that ignores pins cleans a page the device is
                // writing: completion must notice.
                if let Some(pfn) = submitted.bio().all_pages().find_map(|page| page.page()) {
                    if let Ok(folio) = self.map.folio(pfn) {
                        folio.counters().clear_flags(PageFlags::DIRTY);
                    }
                }
            }
            let status = self.run_on_device(STEP, submitted.bio());
            let (completed, ended) = self.complete(STEP, &completion, submitted, status);
            let child = dio.child_complete(token, status, self.map);
            // Release now, or defer to the worker if a page was cleaned.
            match completed.complete_dio_read(&self.tracker, deferred) {
                Ok(DioRead::Released(released)) => {
                    self.released(STEP, released)?;
                }
                Ok(DioRead::Deferred) => self.summary.deferred += 1,
                Err(full) => {
                    let released = full.into_inner().release(&self.tracker, true);
                    self.released(STEP, released)?;
                }
            }
            checked?;
            let ended = ended?;
            match child {
                Ok(Ending::Pending) => {}
                Ok(Ending::Finished(_)) => {
                    return Err(ScenarioError::Check(
                        STEP,
                        "the dio finished before its own part was dropped",
                    ))
                }
                Err(error) => return Err(gupio_error(STEP)(error)),
            }
            if ended.is_err() {
                return Err(ScenarioError::Io(STEP, ended));
            }
            done += added;
            bios += 1;
        }
        if done != DIO_LEN {
            return Err(ScenarioError::Count(
                STEP,
                "bytes read (out of bio tables)",
                done,
                DIO_LEN,
            ));
        }
        if self.summary.deferred == 0 {
            return Err(ScenarioError::Check(
                STEP,
                "the release of the bio whose page was cleaned was not deferred",
            ));
        }
        Ok((bios, pages))
    }

    /// Allocates the kernel pages of the mixed bios.
    fn kernel_pages(&mut self) -> Result<&KernelPages, ScenarioError> {
        const STEP: &str = "kernel pages";
        if self.kernel.is_none() {
            let pages = KernelPages {
                read_cache: self.alloc(STEP, 0)?,
                write_cache: self.alloc(STEP, 0)?,
                borrowed: self.alloc(STEP, 0)?,
            };
            self.kernel = Some(pages);
        }
        self.kernel
            .as_ref()
            .ok_or(ScenarioError::Check(STEP, "kernel pages missing"))
    }

    /// Adds a kernel page the bio takes a reference of its own on.
    fn add_referenced<S: BvecStorage>(
        &self,
        step: &'static str,
        bio: &mut Bio<S>,
        pfn: Pfn,
        len: u32,
        offset: u32,
    ) -> Result<(), ScenarioError> {
        self.tracker.get_page(pfn).map_err(gupio_error(step))?;
        match bio.add_page(pfn, len, offset, Origin::Referenced) {
            Ok(added) => {
                if let Some((page, origin)) = added.duplicate() {
                    let range = PageRange::single(page);
                    let _ = self.tracker.release_range(range, origin, false);
                }
                Ok(())
            }
            Err(error) => {
                // The bio did not take the reference: drop it.
                let _ = self.tracker.put_page(pfn);
                Err(gupio_error::<AddError>(step)(error))
            }
        }
    }

    /// Builds the rest of a bio; on failure releases what it holds.
    fn build<S: BvecStorage>(
        &self,
        bio: &Bio<S>,
        built: Result<(), ScenarioError>,
    ) -> Result<(), ScenarioError> {
        if built.is_err() {
            let _ = gupio::release::release_pages(&self.tracker, bio, false);
        }
        built
    }

    /// Step 2: one read bio with a referenced, pinned and borrowed page.
    fn mixed_read(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "mixed-origin read";
        let pages = self.kernel_pages()?;
        let (cache, borrowed) = (pages.read_cache, pages.borrowed);
        let user_start = UserSpace::page_addr(MIXED_USER_PAGE) + MIXED_USER_OFFSET;
        let borrowed_len = MIXED_BORROWED.end - MIXED_BORROWED.start;
        let completion = Completion::new();
        completion.start().map_err(gupio_error(STEP))?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Read,
            BioSector(MIXED_READ_FIRST),
            self.limits,
        );
        let built = (|| {
            self.add_referenced(STEP, &mut bio, cache, PAGE_LEN, 0)?;
            let added = add_user_range(
                &self.tracker,
                self.space,
                &mut bio,
                UserAddr::new(user_start),
                MIXED_USER_LEN,
                GupFlags::WRITE,
            )
            .map_err(gupio_error(STEP))?;
            if added != MIXED_USER_LEN {
                return Err(ScenarioError::Count(
                    STEP,
                    "user bytes added",
                    added,
                    MIXED_USER_LEN,
                ));
            }
            let added = bio
                .add_page(
                    borrowed,
                    const { bvec_u32(MIXED_BORROWED.end - MIXED_BORROWED.start) },
                    const { bvec_u32(MIXED_BORROWED.start) },
                    Origin::Borrowed,
                )
                .map_err(gupio_error::<AddError>(STEP))?;
            if added.duplicate().is_some() {
                return Err(ScenarioError::Check(STEP, "a borrowed page was duplicated"));
            }
            Ok(())
        })();
        self.build(&bio, built)?;
        let origins = bio.origins();
        if !(origins.has(Origin::Pinned)
            && origins.has(Origin::Referenced)
            && origins.has(Origin::Borrowed))
        {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            return Err(ScenarioError::Check(STEP, "the bio lacks an origin"));
        }
        let vecs = bio.vcnt();
        let submitted = self.submit(STEP, bio)?;
        let checked = self.check_in_flight(STEP, submitted.bio()).and_then(|()| {
            // In flight: the bio holds a reference on the page-cache page,
            // none on the borrowed buffer.
            let cache_refs = self.map.counters(cache).map_or(0, |c| c.refcount());
            let borrowed_refs = self.map.counters(borrowed).map_or(0, |c| c.refcount());
            if (cache_refs, borrowed_refs) != (2, 1) {
                return Err(ScenarioError::Check(
                    STEP,
                    "in flight, the referenced page must hold 2 references and the borrowed 1",
                ));
            }
            Ok(())
        });
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        // A read: the device wrote the pages, so dirty them as they go.
        let released = completed.release(&self.tracker, true);
        let stats = self.released(STEP, released)?;
        checked?;
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        if (stats.unpinned, stats.put, stats.borrowed) != (2, 1, 1) {
            return Err(ScenarioError::Check(
                STEP,
                "release did not unpin 2, put 1 and leave 1 borrowed page",
            ));
        }

        // The data: page-cache page, user pages, borrowed buffer, in disk order.
        let memory = self.map.memory();
        let map_error = |error| ScenarioError::Map(STEP, error);
        let cache_extent = self.map.extent(cache, 0, PAGE_SIZE).map_err(map_error)?;
        let checked = memory
            .with_bytes(cache_extent, |bytes| {
                verify_bytes(
                    STEP,
                    bytes,
                    cache_extent.addr,
                    MIXED_READ_FIRST,
                    pattern::image_byte,
                )
            })
            .map_err(|error| map_error(error.into()))??;
        self.summary.bytes_checked += checked;
        let user_first = MIXED_READ_FIRST + sectors(PAGE_SIZE);
        self.summary.bytes_checked += self
            .space
            .verify(user_start, MIXED_USER_LEN, |index| {
                pattern::image_byte(
                    user_first + (index / SECTOR_SIZE) as u64,
                    index % SECTOR_SIZE,
                )
            })
            .map_err(Self::user(STEP))?;
        let borrowed_first = user_first + sectors(MIXED_USER_LEN);
        let borrowed_extent = self.map.extent(borrowed, 0, PAGE_SIZE).map_err(map_error)?;
        let checked = memory
            .with_bytes(borrowed_extent, |bytes| {
                let checked = verify_bytes(
                    STEP,
                    &bytes[MIXED_BORROWED],
                    borrowed_extent.addr + MIXED_BORROWED.start,
                    borrowed_first,
                    pattern::image_byte,
                )?;
                let untouched = bytes[..MIXED_BORROWED.start]
                    .iter()
                    .chain(&bytes[MIXED_BORROWED.end..])
                    .all(|&byte| byte == 0);
                if !untouched {
                    return Err(ScenarioError::Check(
                        STEP,
                        "the device wrote outside the borrowed segment",
                    ));
                }
                Ok(checked)
            })
            .map_err(|error| map_error(error.into()))??;
        self.summary.bytes_checked += checked;

        // Released by origin: the page-cache page is dirty and back to the
        // kernel's one reference; the borrowed buffer was never touched.
        self.expect_counters(STEP, cache, 1)?;
        self.expect_counters(STEP, borrowed, 1)?;
        if !self.is_dirty(STEP, cache)? || self.is_dirty(STEP, borrowed)? {
            return Err(ScenarioError::Check(
                STEP,
                "release must dirty the referenced page and leave the borrowed one alone",
            ));
        }
        self.check_user_baseline(STEP)?;
        println!(
            "  {STEP}: sectors {MIXED_READ_FIRST}..{} into {vecs} bvecs: referenced page-cache pfn {cache:#x}, \
             2 pinned pages of the folio (user {user_start:#x}), borrowed pfn {borrowed:#x} [{}, {}); \
             released: {} unpinned, {} put, {} borrowed; data ok, counters at baseline",
            borrowed_first + sectors(borrowed_len),
            MIXED_BORROWED.start,
            MIXED_BORROWED.end,
            stats.unpinned,
            stats.put,
            stats.borrowed
        );
        Ok(())
    }

    /// Writes `written_byte` for `len` bytes from sector `first` into a kernel page.
    fn fill_kernel(
        &self,
        step: &'static str,
        pfn: Pfn,
        offset: usize,
        len: usize,
        first: u64,
    ) -> Result<(), ScenarioError> {
        let extent = self
            .map
            .extent(pfn, offset, len)
            .map_err(|error| ScenarioError::Map(step, error))?;
        self.map
            .memory()
            .with_bytes_mut(extent, |bytes| {
                for (index, byte) in bytes.iter_mut().enumerate() {
                    *byte = pattern::written_byte(
                        first + (index / SECTOR_SIZE) as u64,
                        index % SECTOR_SIZE,
                    );
                }
            })
            .map_err(|error| ScenarioError::Map(step, error.into()))
    }

    /// Step 3: one write bio with pinned user pages, a referenced page-cache
    /// page and a borrowed buffer; a flush; a refused double completion.
    fn mixed_write(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "mixed-origin write";
        let pages = self.kernel_pages()?;
        let (cache, borrowed) = (pages.write_cache, pages.borrowed);
        let first = SCENARIO_WRITTEN.start;
        let user_start = UserSpace::page_addr(WRITE_USER_PAGE) + WRITE_USER_OFFSET;
        let borrowed_len = WRITE_BORROWED.end - WRITE_BORROWED.start;
        // The data: the process writes its buffer, the kernel its pages.
        self.space
            .fill(user_start, WRITE_USER_LEN, |index| {
                pattern::written_byte(first + (index / SECTOR_SIZE) as u64, index % SECTOR_SIZE)
            })
            .map_err(Self::user(STEP))?;
        let cache_first = first + sectors(WRITE_USER_LEN);
        self.fill_kernel(STEP, cache, 0, PAGE_SIZE, cache_first)?;
        let borrowed_first = cache_first + sectors(PAGE_SIZE);
        self.fill_kernel(
            STEP,
            borrowed,
            WRITE_BORROWED.start,
            borrowed_len,
            borrowed_first,
        )?;

        let completion = Completion::new();
        completion.start().map_err(gupio_error(STEP))?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Write,
            BioSector(first),
            self.limits,
        );
        let built = (|| {
            // The device only reads the user pages: no WRITE pin.
            let added = add_user_range(
                &self.tracker,
                self.space,
                &mut bio,
                UserAddr::new(user_start),
                WRITE_USER_LEN,
                GupFlags::empty(),
            )
            .map_err(gupio_error(STEP))?;
            if added != WRITE_USER_LEN {
                return Err(ScenarioError::Count(
                    STEP,
                    "user bytes added",
                    added,
                    WRITE_USER_LEN,
                ));
            }
            self.add_referenced(STEP, &mut bio, cache, PAGE_LEN, 0)?;
            let added = bio
                .add_page(
                    borrowed,
                    const { bvec_u32(WRITE_BORROWED.end - WRITE_BORROWED.start) },
                    const { bvec_u32(WRITE_BORROWED.start) },
                    Origin::Borrowed,
                )
                .map_err(gupio_error::<AddError>(STEP))?;
            if added.duplicate().is_some() {
                return Err(ScenarioError::Check(STEP, "a borrowed page was duplicated"));
            }
            Ok(())
        })();
        self.build(&bio, built)?;
        let vecs = bio.vcnt();
        let submitted = self.submit(STEP, bio)?;
        let checked = self.check_in_flight(STEP, submitted.bio());
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        // A write: the device only read the pages; nothing to dirty.
        let released = completed.release(&self.tracker, false);
        let stats = self.released(STEP, released)?;
        checked?;
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        if (stats.unpinned, stats.put, stats.borrowed) != (2, 1, 1) {
            return Err(ScenarioError::Check(
                STEP,
                "release did not unpin 2, put 1 and leave 1 borrowed page",
            ));
        }
        self.flush()?;

        // A driver bug reports the same completion again: refused and
        // warned, and nothing is released twice.
        let warnings = self.map.warnings();
        let pins = (self.map.pins().acquired(), self.map.pins().released());
        match completion.complete(BioStatus::Ok, self.map) {
            Err(ReleaseError::DoubleCompletion) => {}
            _ => {
                return Err(ScenarioError::Check(
                    STEP,
                    "a second completion was not refused",
                ))
            }
        }
        let warned = self.map.warnings() - warnings == 1
            && self.map.last_warning()
                == Some(AnyWarning::Release(ReleaseWarning::DoubleCompletion));
        if !warned {
            return Err(ScenarioError::Check(
                STEP,
                "a second completion was not warned exactly once",
            ));
        }
        self.summary.expected_warnings += 1;
        if (self.map.pins().acquired(), self.map.pins().released()) != pins {
            return Err(ScenarioError::Check(
                STEP,
                "a refused completion changed the pin accounting",
            ));
        }
        self.expect_counters(STEP, cache, 1)?;
        self.expect_counters(STEP, borrowed, 1)?;
        self.check_user_baseline(STEP)?;
        println!(
            "  {STEP}: {WRITE_LEN} bytes to sectors {}..{} from {vecs} bvecs: 2 pinned user pages \
             (user {user_start:#x}, discontiguous), referenced page-cache pfn {cache:#x}, borrowed \
             pfn {borrowed:#x} [{}, {}); flushed; a second completion was refused and warned, \
             nothing released twice; counters at baseline",
            SCENARIO_WRITTEN.start, SCENARIO_WRITTEN.end, WRITE_BORROWED.start, WRITE_BORROWED.end
        );
        Ok(())
    }

    /// A flush bio: no pages, through the same submit and completion path.
    fn flush(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "flush";
        let mut table = [BioVec::NONE; 1];
        let bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Flush,
            BioSector(0),
            self.limits,
        );
        let completion = Completion::new();
        completion.start().map_err(gupio_error(STEP))?;
        let submitted = self.submit(STEP, bio)?;
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        let stats = self.released(STEP, completed.release(&self.tracker, false))?;
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        if stats.pages() != 0 {
            return Err(ScenarioError::Check(STEP, "a flush released pages"));
        }
        Ok(())
    }

    /// Step 4: the written sectors, read back into a referenced kernel folio.
    fn read_back(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "read-back";
        let folio = self.alloc(STEP, BACK_ORDER)?;
        let result = self.read_back_into(folio);
        // The kernel's own reference: the folio is freed.
        let put = self.tracker.put_page(folio).map_err(gupio_error(STEP));
        result?;
        put
    }

    fn read_back_into(&mut self, folio: Pfn) -> Result<(), ScenarioError> {
        const STEP: &str = "read-back";
        let touched = BACK_LEN.div_ceil(PAGE_SIZE);
        let bio_folio = FolioOrder::try_new(BACK_ORDER)
            .and_then(|order| Folio::new(folio, order))
            .map_err(gupio_error(STEP))?;
        let completion = Completion::new();
        completion.start().map_err(gupio_error(STEP))?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Read,
            BioSector(BACK_FIRST),
            self.limits,
        );
        // One reference per page the bio covers: what it releases.
        let range = PageRange::new(folio, touched);
        self.tracker.get_range(range).map_err(gupio_error(STEP))?;
        if let Err(error) = bio.add_folio(
            bio_folio,
            const { bvec_u32(BACK_LEN) },
            0,
            Origin::Referenced,
        ) {
            let _ = self.tracker.put_range(range);
            return Err(gupio_error::<AddError>(STEP)(error));
        }
        let submitted = self.submit(STEP, bio)?;
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        let stats = self.released(STEP, completed.release(&self.tracker, false))?;
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        if stats.put != touched {
            return Err(ScenarioError::Count(STEP, "pages put", stats.put, touched));
        }
        let extent = self
            .map
            .extent(folio, 0, BACK_LEN)
            .map_err(|error| ScenarioError::Map(STEP, error))?;
        let checked = self
            .map
            .memory()
            .with_bytes(extent, |bytes| {
                verify_bytes(
                    STEP,
                    bytes,
                    extent.addr,
                    BACK_FIRST,
                    pattern::expected_final_byte,
                )
            })
            .map_err(|error| ScenarioError::Map(STEP, error.into()))??;
        self.summary.bytes_checked += checked;
        self.expect_counters(STEP, folio, 1)?;
        println!(
            "  {STEP}: sectors {BACK_FIRST}..{} into a referenced order-{BACK_ORDER} folio at pfn {folio:#x} \
             ({touched} pages, one bvec, {} puts at release): the write landed, its neighbours are untouched",
            BACK_FIRST + sectors(BACK_LEN),
            stats.put
        );
        Ok(())
    }

    /// Step 5: refusals that must change nothing.
    fn refusals(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "refusals";
        let warnings = self.map.warnings();
        let pins = (self.map.pins().acquired(), self.map.pins().released());

        // Pinning a hole: a fault on the first page, nothing pinned or added.
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Read,
            BioSector(0),
            self.limits,
        );
        let hole = UserSpace::page_addr(HOLE);
        match add_user_range(
            &self.tracker,
            self.space,
            &mut bio,
            UserAddr::new(hole),
            PAGE_SIZE,
            GupFlags::WRITE,
        ) {
            Err(ReleaseError::Extract {
                error:
                    PinError::Fault {
                        kind: FaultKind::Unmapped,
                        ..
                    },
                ..
            }) => {}
            Ok(_) => {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(ScenarioError::Check(STEP, "a hole was pinned"));
            }
            Err(error) => return Err(gupio_error(STEP)(error)),
        }
        if bio.vcnt() != 0 {
            return Err(ScenarioError::Check(STEP, "a failed add left a bvec"));
        }

        // A read pin of the zero page: one run of the zero page, never counted.
        let zero = self.map.zero_page();
        let mut runs = self
            .tracker
            .pin_user_pages(
                self.space,
                UserAddr::new(UserSpace::page_addr(ZERO_READ)),
                1,
                GupFlags::empty(),
            )
            .map_err(gupio_error(STEP))?;
        let run = match runs.next() {
            Some(Ok(run)) => run,
            Some(Err(error)) => return Err(gupio_error(STEP)(error)),
            None => {
                return Err(ScenarioError::Check(
                    STEP,
                    "a read pin of one page yielded no run",
                ))
            }
        };
        // One page was asked for: the walk must end with this run. Anything
        // more is given back (a refusal is warned by gupio).
        let more = match runs.next() {
            Some(Ok(extra)) => {
                let _ = self.tracker.release_held(extra, false);
                true
            }
            Some(Err(_)) => true,
            None => false,
        };
        let returned = !more && run.first() == zero && run.pages() == 1;
        // Held: the zero page's counters have not moved.
        let held = self.expect_counters(STEP, zero, 1);
        let released = self.tracker.release_held(run, false);
        if !returned {
            return Err(ScenarioError::Check(
                STEP,
                "a read pin of a zero-page mapping did not return the zero page alone",
            ));
        }
        held?;
        released.map_err(gupio_error(STEP))?;
        self.expect_counters(STEP, zero, 1)?;

        // A long-term write pin of a read-only mapping: refused from the
        // mapping's kind before any fault, the entry and counts untouched.
        let read_only = self.alloc(STEP, 0)?;
        let read_only_addr = UserSpace::page_addr(READ_ONLY);
        self.space
            .map_page(&self.tracker, read_only_addr, read_only, false)
            .map_err(Self::user(STEP))?;
        self.tracker
            .put_page(read_only)
            .map_err(gupio_error(STEP))?;
        let faults = self.space.faults();
        let refused = self
            .tracker
            .pin_user_pages(
                self.space,
                UserAddr::new(read_only_addr),
                1,
                GupFlags::WRITE | GupFlags::LONGTERM,
            )
            .map_err(gupio_error(STEP))?
            .next();
        match refused {
            Some(Err(PinError::Fault {
                kind: FaultKind::AccessDenied,
                ..
            })) => {}
            Some(Ok(run)) => {
                let _ = self.tracker.release_held(run, false);
                return Err(ScenarioError::Check(
                    STEP,
                    "a read-only mapping was pinned for writing",
                ));
            }
            Some(Err(error)) => return Err(gupio_error(STEP)(error)),
            None => return Err(ScenarioError::Check(STEP, "a refused pin yielded nothing")),
        }
        let entry = Pte::Present {
            pfn: read_only,
            writable: false,
        };
        if self.space.faults() != faults || self.space.pte(read_only_addr) != entry {
            return Err(ScenarioError::Check(
                STEP,
                "a refused write pin faulted or changed the entry",
            ));
        }
        self.expect_counters(STEP, read_only, 1)?;

        if self.map.warnings() != warnings
            || (self.map.pins().acquired(), self.map.pins().released()) != pins
        {
            return Err(ScenarioError::Check(
                STEP,
                "a refusal warned or changed the pin accounting",
            ));
        }
        println!(
            "  {STEP}: pinning the hole at {hole:#x} faults and pins nothing; a read pin of the zero \
             page (pfn {zero:#x}) returns it without touching its counters; a long-term write pin \
             of the read-only page at {read_only_addr:#x} is refused before any fault"
        );
        Ok(())
    }

    /// Step 6: a process exits while a bio holding its pinned pages is
    /// submitted and not yet run by the device.
    fn exit_in_flight(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "exit with a bio in flight";
        let process = UserSpace::new(self.map);
        if let Err(error) = self.map_exit_buffer(STEP, &process) {
            let _ = process.exit(&self.tracker);
            return Err(error);
        }
        let completion = Completion::new();
        if let Err(error) = completion.start() {
            let _ = process.exit(&self.tracker);
            return Err(gupio_error(STEP)(error));
        }
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Read,
            BioSector(EXIT_FIRST),
            self.limits,
        );
        let added = add_user_range(
            &self.tracker,
            &process,
            &mut bio,
            UserAddr::new(UserSpace::page_addr(0)),
            EXIT_LEN,
            GupFlags::WRITE,
        );
        let added = match added {
            Ok(added) if added == EXIT_LEN => added,
            outcome => {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                let _ = process.exit(&self.tracker);
                return Err(match outcome {
                    Err(error) => gupio_error(STEP)(error),
                    Ok(added) => ScenarioError::Count(STEP, "bytes added", added, EXIT_LEN),
                });
            }
        };
        let mut pages = [Pfn::ZERO; EXIT_PAGES];
        for (slot, page) in pages.iter_mut().zip(bio.all_pages()) {
            *slot = page.decode().map_or(Pfn::ZERO, |(pfn, _)| pfn);
        }
        if let Err(error) = set_pages_dirty(&self.tracker, &bio) {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            let _ = process.exit(&self.tracker);
            return Err(gupio_error(STEP)(error));
        }
        let submitted = match self.submit(STEP, bio) {
            Ok(submitted) => submitted,
            Err(error) => {
                let _ = process.exit(&self.tracker);
                return Err(error);
            }
        };

        // The process exits with the bio submitted, not yet run.
        let freed = self.map.allocator_stats().folios_freed;
        let exited = process.exit(&self.tracker).map_err(Self::user(STEP));
        let held = self.held_by_pins_alone(STEP, &pages);
        let kept = self.map.allocator_stats().folios_freed == freed;
        let checked = self.check_in_flight(STEP, submitted.bio());

        // The device runs the bio into the pages; the data is checked
        // before the release, the release frees them.
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        let landed = if status.is_ok() {
            pages
                .iter()
                .enumerate()
                .try_fold(0, |total, (index, &pfn)| {
                    let first = EXIT_FIRST + sectors(index * PAGE_SIZE);
                    Ok(total + self.check_page(STEP, pfn, first)?)
                })
        } else {
            Ok(0)
        };
        let stats = self.released(STEP, completed.release(&self.tracker, true))?;
        let unmapped = exited?;
        held?;
        checked?;
        if !kept {
            return Err(ScenarioError::Check(
                STEP,
                "a pinned page was freed at exit",
            ));
        }
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        self.summary.bytes_checked += landed?;
        if stats.unpinned != EXIT_PAGES {
            return Err(ScenarioError::Count(
                STEP,
                "pages unpinned",
                stats.unpinned,
                EXIT_PAGES,
            ));
        }
        let freed_by_release = self.map.allocator_stats().folios_freed - freed;
        if freed_by_release != EXIT_PAGES {
            return Err(ScenarioError::Count(
                STEP,
                "folios freed by the release",
                freed_by_release,
                EXIT_PAGES,
            ));
        }
        println!(
            "  {STEP}: {added} bytes from sector {EXIT_FIRST} pinned into a submitted read bio; the \
             process exited ({unmapped} mappings removed) before the device ran it: no page freed, \
             each held by its pin alone; the device read into them (data ok), the release unpinned \
             {} and freed them",
            stats.unpinned
        );
        Ok(())
    }

    /// Maps the exit step's buffer into `process`: two fresh pages, then a
    /// demand-zero one.
    fn map_exit_buffer(
        &self,
        step: &'static str,
        process: &UserSpace<'m>,
    ) -> Result<(), ScenarioError> {
        for page in 0..EXIT_PAGES - 1 {
            let pfn = self.alloc(step, 0)?;
            let mapped = process.map_page(&self.tracker, UserSpace::page_addr(page), pfn, true);
            // The mapping's reference, if any, is now the only one.
            self.tracker.put_page(pfn).map_err(gupio_error(step))?;
            mapped.map_err(Self::user(step))?;
        }
        process
            .map_demand_zero(UserSpace::page_addr(EXIT_PAGES - 1))
            .map_err(Self::user(step))
    }

    /// Checks that each of `pages` is still allocated and held by exactly
    /// one pin and nothing else.
    fn held_by_pins_alone(&self, step: &'static str, pages: &[Pfn]) -> Result<(), ScenarioError> {
        for &pfn in pages {
            let counters = self
                .map
                .counters(pfn)
                .ok_or(ScenarioError::Map(step, MapError::NotManaged(pfn)))?;
            if counters.refcount() != GUP_PIN_COUNTING_BIAS {
                let snapshot = self
                    .map
                    .snapshot(pfn)
                    .ok_or(ScenarioError::Map(step, MapError::NotManaged(pfn)))?;
                return Err(ScenarioError::Counters(step, snapshot));
            }
        }
        Ok(())
    }

    /// Checks the page `pfn` against the disk from sector `first`.
    fn check_page(&self, step: &'static str, pfn: Pfn, first: u64) -> Result<usize, ScenarioError> {
        let extent = self
            .map
            .extent(pfn, 0, PAGE_SIZE)
            .map_err(|error| ScenarioError::Map(step, error))?;
        self.map
            .memory()
            .with_bytes(extent, |bytes| {
                verify_bytes(
                    step,
                    bytes,
                    extent.addr,
                    first,
                    pattern::expected_final_byte,
                )
            })
            .map_err(|error| ScenarioError::Map(step, error.into()))?
    }

    /// Step 7: unmap the user buffer, drop the kernel pages, and try one put too many.
    fn teardown(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "teardown";
        let unmapped = self
            .space
            .unmap_all(&self.tracker)
            .map_err(Self::user(STEP))?;
        let Some(pages) = self.kernel.take() else {
            return Err(ScenarioError::Check(STEP, "kernel pages missing"));
        };
        for pfn in [pages.read_cache, pages.write_cache, pages.borrowed] {
            self.tracker.put_page(pfn).map_err(gupio_error(STEP))?;
        }
        // One put too many, on a page already freed: refused and warned; the
        // allocator never sees a second free.
        let warnings = self.map.warnings();
        let bad_frees = self.map.allocator_stats().bad_frees;
        match self.tracker.put_page(pages.read_cache) {
            Err(PinError::NoReference { .. }) => {}
            _ => {
                return Err(ScenarioError::Check(
                    STEP,
                    "a put of a freed page was not refused",
                ))
            }
        }
        let warned = self.map.warnings() - warnings == 1
            && matches!(
                self.map.last_warning(),
                Some(AnyWarning::Pin(Warning::PutWithoutReference { .. }))
            );
        if !warned {
            return Err(ScenarioError::Check(
                STEP,
                "a put of a freed page was not warned exactly once",
            ));
        }
        self.summary.expected_warnings += 1;
        if self.map.allocator_stats().bad_frees != bad_frees {
            return Err(ScenarioError::Check(
                STEP,
                "a refused put reached the allocator",
            ));
        }
        println!(
            "  {STEP}: {unmapped} user mappings removed and 3 kernel pages put: every folio freed; \
             a second put of pfn {:#x} was refused and warned, no double free",
            pages.read_cache
        );
        Ok(())
    }

    fn steps(&mut self) -> Result<(), ScenarioError> {
        self.map_user_buffer()?;
        self.direct_io_read()?;
        self.mixed_read()?;
        self.mixed_write()?;
        self.read_back()?;
        self.refusals()?;
        self.exit_in_flight()?;
        self.teardown()
    }

    /// The final accounting, filled into the summary whatever happened.
    fn account(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "accounting";
        let pins = self.map.pins();
        self.summary.pins_acquired = pins.acquired();
        self.summary.pins_released = pins.released();
        self.summary.faults = self.space.faults();
        self.summary.unexpected_warnings = self
            .map
            .warnings()
            .saturating_sub(self.summary.expected_warnings);
        self.summary.allocator = self.map.allocator_stats();
        let baseline = self.map.check_baseline();
        self.summary.counters_at_baseline = baseline.is_ok();
        if let Err(mismatch) = baseline {
            return Err(ScenarioError::Counters(STEP, mismatch));
        }
        self.map
            .check_power_off(self.summary.expected_warnings)
            .map_err(|(what, seen, expected)| ScenarioError::Count(STEP, what, seen, expected))
    }
}

/// Runs the scenario on the first block device, with a managed region of
/// [`MANAGED_PAGES`] frames taken from `frames`. Returns the summary (filled
/// in as far as the scenario got) and the verdict.
pub fn run(frames: &mut FrameAllocator, clock: Clock) -> (Summary, Result<(), ScenarioError>) {
    let started = clock.now();
    let region = match frames.alloc(MANAGED_PAGES, REGION_ALIGN_PAGES) {
        Ok(region) => region,
        Err(error) => return (Summary::default(), Err(ScenarioError::Memory(error))),
    };
    let map = match PageMap::new(region) {
        Ok(map) => map,
        Err(error) => return (Summary::default(), Err(ScenarioError::Map("setup", error))),
    };
    println!(
        "  memory map: {MANAGED_PAGES} frames from pfn {:#x} ({}), descriptors with gupio counters in .bss, zero page pfn {:#x}",
        map.base(),
        map.memory().region(),
        map.zero_page()
    );
    let disk = match BlockDevice::open_first(clock) {
        Ok(disk) => disk,
        Err(error) => return (Summary::default(), Err(ScenarioError::Open(error))),
    };
    let info = disk.info();
    let limits = blk::queue_limits(&info, BIO_VECS);
    let dio_limits = blk::queue_limits(&info, DIO_MAX_VECS);
    let (limits, dio_limits) = match (limits, dio_limits) {
        (Ok(limits), Ok(dio_limits)) => (limits, dio_limits),
        (Err(error), _) | (_, Err(error)) => {
            return (Summary::default(), Err(ScenarioError::Limits(error)))
        }
    };
    let space = UserSpace::new(&map);
    let mut scenario = Scenario {
        map: &map,
        tracker: Tracker::new(&map),
        space: &space,
        disk,
        dio_limits,
        limits,
        summary: Summary::default(),
        kernel: None,
    };
    let result = scenario.steps();
    let accounted = scenario.account();
    scenario.summary.elapsed = clock.since(started);
    (scenario.summary, result.and(accounted))
}
