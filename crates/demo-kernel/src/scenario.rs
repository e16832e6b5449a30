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
//!
//! [`add_user_range`]: gupio::release::add_user_range
//! [`SCENARIO_WRITTEN`]: crate::pattern::SCENARIO_WRITTEN

use core::ops::Range;

use gupio::bio::{
    AddError, Bio, BioLimits, BioOp, BioStatus, BioVec, BvecSlice, BvecStorage, Origin,
    Sector as BioSector,
};
use gupio::pfn::Pfn;
use gupio::pin::{FolioOrder, GupFlags, MemoryMap, PageFlags, PageRange, Tracker, UserAddr};
use gupio::release::{
    add_user_range, CompletedBio, Completion, ReleaseStats, Released, SubmittedBio,
};

use crate::blk::{self, RequestError};
use crate::mem::FrameAllocator;
use crate::pagemap::{MapError, PageMap, MANAGED_PAGES};
use crate::pattern::SECTOR_SIZE;
use crate::selftest::Mismatch;
use crate::time::Clock;
use crate::userspace::{UserError, UserSpace, USER_PAGES};
use crate::virtio::BlockDevice;

mod dio;
mod error;
mod exit;
mod layout;
mod mixed_read;
mod mixed_write;
mod read_back;
mod refusals;
mod summary;
mod teardown;

pub use error::ScenarioError;
pub use summary::Summary;

use error::gupio_error;
use layout::{
    BIO_VECS, BUFFER_PAGES, DEMAND_ZERO, DIO_MAX_VECS, FOLIO_ORDER, FOLIO_PAGES,
    REGION_ALIGN_PAGES, SCATTERED, TAIL_PAGES, ZERO_MAPPED, ZERO_READ,
};

/// A completion, started: the bio's own I/O is pending on it.
fn started(step: &'static str) -> Result<Completion, ScenarioError> {
    let completion = Completion::new();
    completion.start().map_err(gupio_error(step))?;
    Ok(completion)
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

    /// The device's interrupt: ends the lone bio from `completion`
    /// ([`SubmittedBio::end`]) and hands it on for release. A bio whose
    /// completion does not finish (which only a bug causes) is still
    /// completed with an error so its pages are released, and the error
    /// returned after.
    fn complete<S: BvecStorage>(
        &self,
        step: &'static str,
        completion: &Completion,
        submitted: SubmittedBio<S>,
        status: BioStatus,
    ) -> (CompletedBio<S>, Result<BioStatus, ScenarioError>) {
        let ended = submitted.end(completion, status, self.map);
        (ended.bio, ended.result.map_err(gupio_error(step)))
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

    /// A bio of `op` from `sector` over `table`, with the default limits.
    fn bio<'t>(&self, table: &'t mut [BioVec], op: BioOp, sector: u64) -> Bio<BvecSlice<'t>> {
        Bio::new(BvecSlice::new(table), op, BioSector(sector), self.limits)
    }

    /// Pins `len` bytes of the user buffer from `start` into `bio` with
    /// `flags`; fewer bytes than `len` is an error.
    fn add_user<S: BvecStorage>(
        &self,
        step: &'static str,
        bio: &mut Bio<S>,
        start: usize,
        len: usize,
        flags: GupFlags,
    ) -> Result<(), ScenarioError> {
        let added = add_user_range(
            &self.tracker,
            self.space,
            bio,
            UserAddr::new(start),
            len,
            flags,
        )
        .map_err(gupio_error(step))?;
        if added != len {
            return Err(ScenarioError::Count(step, "user bytes added", added, len));
        }
        Ok(())
    }

    /// Adds the bytes `range` of the kernel page `pfn` as borrowed: the
    /// caller keeps its reference, the bio takes none.
    fn add_borrowed<S: BvecStorage>(
        &self,
        step: &'static str,
        bio: &mut Bio<S>,
        pfn: Pfn,
        range: Range<usize>,
    ) -> Result<(), ScenarioError> {
        let too_long = ScenarioError::Check(step, "a borrowed range does not fit a bvec");
        let len = u32::try_from(range.len()).map_err(|_| too_long)?;
        let offset = u32::try_from(range.start).map_err(|_| too_long)?;
        let added = bio
            .add_page(pfn, len, offset, Origin::Borrowed)
            .map_err(gupio_error::<AddError>(step))?;
        if added.duplicate().is_some() {
            return Err(ScenarioError::Check(step, "a borrowed page was duplicated"));
        }
        Ok(())
    }

    /// Runs `submitted` on the device, completes it and releases its pages
    /// (dirtying them if `mark_dirty`). Then reports, in this order, a
    /// failed release, the in-flight check `checked`, a completion that did
    /// not finish and an I/O error. Returns what the release did.
    fn run_and_release<S: BvecStorage>(
        &mut self,
        step: &'static str,
        completion: &Completion,
        submitted: SubmittedBio<S>,
        mark_dirty: bool,
        checked: Result<(), ScenarioError>,
    ) -> Result<ReleaseStats, ScenarioError> {
        let status = self.run_on_device(step, submitted.bio());
        let (completed, ended) = self.complete(step, completion, submitted, status);
        let stats = self.released(step, completed.release(&self.tracker, mark_dirty))?;
        checked?;
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(step, status));
        }
        Ok(stats)
    }

    /// Checks that a mixed bio's release unpinned its two user pages, put
    /// its page-cache page and left its borrowed buffer alone.
    fn expect_mixed_release(step: &'static str, stats: ReleaseStats) -> Result<(), ScenarioError> {
        if (stats.unpinned, stats.put, stats.borrowed) != (2, 1, 1) {
            return Err(ScenarioError::Check(
                step,
                "release did not unpin 2, put 1 and leave 1 borrowed page",
            ));
        }
        Ok(())
    }

    /// Checks `len` bytes of the kernel memory from `pfn` against
    /// `expected` from sector `first`; returns the bytes checked.
    fn verify_kernel(
        &self,
        step: &'static str,
        pfn: Pfn,
        len: usize,
        first: u64,
        expected: fn(u64, usize) -> u8,
    ) -> Result<usize, ScenarioError> {
        let extent = self
            .map
            .extent(pfn, 0, len)
            .map_err(|error| ScenarioError::Map(step, error))?;
        self.map
            .memory()
            .with_bytes(extent, |bytes| {
                verify_bytes(step, bytes, extent.addr, first, expected)
            })
            .map_err(|error| ScenarioError::Map(step, error.into()))?
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
