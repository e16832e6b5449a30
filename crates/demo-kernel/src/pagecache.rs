//! The kernel's page cache over a virtio-blk disk, built from gupio: the
//! filesystem side of the demo.
//!
//! A [`PageCache`] keeps up to [`CACHE_PAGES`] pages of the disk, each a
//! small page-cache folio of the [`PageMap`] that the cache holds one
//! reference on (gupio's [`Origin::Referenced`]). A miss allocates a folio
//! and reads the disk page into it through a one-bvec read bio, which takes
//! a reference of its own for the I/O and drops it at release; a write
//! copies into the cached page and marks the folio `DIRTY`. Nothing reaches
//! the disk until writeback.
//!
//! Writeback is gupio-writeback's [`Writeback`] engine: the cache implements
//! [`WritebackIo`]. `write_protect` clears the writable bit of every user
//! mapping of the folio (a process may `mmap` the cache), `write_in_place`
//! writes the folio itself through a referenced write bio, `write_bounced`
//! copies it into a fresh page and writes that page as a *borrowed* bvec
//! (the writeback owns the copy and frees it afterwards), and
//! `wait_until_unpinned` looks once: the kernel has one hart and polls, so
//! nothing can unpin while writeback waits. The engine decides from
//! `maybe_dma_pinned` whether a folio may be written in place and marked
//! clean, or is handed to the policy the caller chose ([`PinnedAction`]).
//!
//! Eviction takes the least recently used page that nobody else holds (no
//! user mapping, no bio, no pin: it must stay the one copy of its disk
//! page); a dirty one is written back first (waiting policy).
//!
//! [`FatDisk`] lends the cache to embedded-sdmmc as its
//! [`BlockDevice`](embedded_sdmmc::BlockDevice), in 512-byte blocks. The FAT
//! image `cargo xtask qemu` makes is a whole-disk filesystem (what
//! `mkfs.fat`, `fsck.fat` and mtools handle without offsets), while
//! embedded-sdmmc opens only volumes listed in a master boot record, so
//! `FatDisk` shows the filesystem as partition 1 of a disk whose first page
//! ([`MBR_BLOCKS`] blocks) is a read-only master boot record it makes up.
//! One page keeps the filesystem's 4 KiB clusters on page boundaries.
//!
//! [`PinnedAction`]: gupio::writeback::PinnedAction

use core::cell::{Cell, RefCell};
use core::fmt;
use core::ops::Range;

use embedded_sdmmc::{Block, BlockCount, BlockIdx};
use gupio::bio::{
    AddError, Bio, BioLimits, BioOp, BioStatus, BioVec, BvecSlice, BvecStorage, Origin,
    Sector as BioSector,
};
use gupio::pfn::Pfn;
use gupio::pin::{FolioOrder, FolioRef, MemoryMap, PageFlags, Tracker};
use gupio::release::{Completion, Ending, ReleaseStats, SubmittedBio};
use gupio::writeback::{
    PinnedAction, PinnedPolicy, Writeback, WritebackIo, WritebackStats, WritebackSummary,
};

use crate::blk;
use crate::mem::PAGE_SIZE;
use crate::pagemap::{MapError, PageMap};
use crate::pattern::SECTOR_SIZE;
use crate::userspace::UserSpace;
use crate::virtio::BlockDevice;

/// Pages the cache holds at most (256 KiB): small, so the scenario evicts.
pub const CACHE_PAGES: usize = 64;
/// Disk sectors per page.
pub const SECTORS_PER_PAGE: u64 = (PAGE_SIZE / SECTOR_SIZE) as u64;
/// Blocks of the made-up master boot record in front of the filesystem.
pub const MBR_BLOCKS: u32 = 8;
/// A page, as a bvec length.
const PAGE_LEN: u32 = 4096;

const _: () = assert!(PAGE_LEN as usize == PAGE_SIZE);
const _: () = assert!(MBR_BLOCKS as u64 == SECTORS_PER_PAGE);

/// Why a page-cache operation failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CacheError {
    /// A page could not be allocated or reached.
    Map(MapError),
    /// A gupio call failed.
    Gupio(gupio::Error),
    /// A bio completed with an error status.
    Io(BioStatus),
    /// A bio's completion did not finish it (a bug).
    Unfinished,
    /// A sector past the end of the disk.
    OutOfRange(u64),
    /// Every cached page is held elsewhere or stays dirty: nothing to evict.
    Full,
    /// A folio writeback was asked to write is not in the cache.
    NotCached(Pfn),
    /// The made-up master boot record cannot be written: block number.
    BootRecord(u32),
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Map(error) => write!(f, "page cache: {error}"),
            Self::Gupio(error) => write!(f, "page cache: {error}"),
            Self::Io(status) => write!(f, "page cache: bio completed with {status}"),
            Self::Unfinished => write!(f, "page cache: a bio's completion did not finish"),
            Self::OutOfRange(sector) => write!(f, "page cache: sector {sector} past the end"),
            Self::Full => write!(f, "page cache: no page can be evicted"),
            Self::NotCached(pfn) => write!(f, "page cache: pfn {pfn:#x} is not cached"),
            Self::BootRecord(block) => {
                write!(
                    f,
                    "page cache: block {block} of the boot record is read-only"
                )
            }
        }
    }
}

impl core::error::Error for CacheError {}

impl From<MapError> for CacheError {
    fn from(error: MapError) -> Self {
        Self::Map(error)
    }
}

/// Maps any gupio error into a [`CacheError`].
pub fn gupio_error<E: Into<gupio::Error>>(error: E) -> CacheError {
    CacheError::Gupio(error.into())
}

/// What the cache did.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheStats {
    /// Lookups a cached page answered.
    pub hits: usize,
    /// Lookups that read the page from the disk.
    pub misses: usize,
    /// Pages dropped to make room.
    pub evictions: usize,
    /// Bios run on the device (flushes included).
    pub bios: usize,
    /// Bytes the device wrote into memory.
    pub bytes_in: usize,
    /// Bytes the device read from memory.
    pub bytes_out: usize,
    /// Write-protections of mapped folios (user entries made read-only).
    pub write_protected: usize,
    /// Pages released by bio completions, by origin.
    pub released: ReleaseStats,
}

/// One cached page.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Disk page number (sector / [`SECTORS_PER_PAGE`]).
    page: u64,
    /// The page-cache folio (order 0) holding it.
    pfn: Pfn,
    /// When it was last used, for eviction.
    used: u64,
}

/// The page cache of one disk; see the module docs.
pub struct PageCache<'m, 'u> {
    map: &'m PageMap,
    tracker: Tracker<'m, PageMap>,
    disk: RefCell<BlockDevice>,
    limits: BioLimits,
    /// Disk pages.
    pages: u64,
    /// The process whose mappings `write_protect` reaches, if any.
    user: Option<&'u UserSpace<'m>>,
    slots: [Cell<Option<Slot>>; CACHE_PAGES],
    uses: Cell<u64>,
    stats: Cell<CacheStats>,
    writeback: WritebackStats,
}

impl<'m, 'u> PageCache<'m, 'u> {
    /// An empty cache of `disk`, its pages from `map`, its bios within
    /// `limits`; `user` is the address space that may map cached pages.
    pub fn new(
        map: &'m PageMap,
        disk: BlockDevice,
        limits: BioLimits,
        user: Option<&'u UserSpace<'m>>,
    ) -> Self {
        let pages = disk.info().capacity / SECTORS_PER_PAGE;
        Self {
            map,
            tracker: Tracker::new(map),
            disk: RefCell::new(disk),
            limits,
            pages,
            user,
            slots: core::array::from_fn(|_| Cell::new(None)),
            uses: Cell::new(0),
            stats: Cell::new(CacheStats::default()),
            writeback: WritebackStats::new(),
        }
    }

    /// What the cache did so far.
    pub fn stats(&self) -> CacheStats {
        self.stats.get()
    }

    /// What writeback did so far.
    pub fn writeback_stats(&self) -> &WritebackStats {
        &self.writeback
    }

    /// The disk's capacity in sectors.
    pub fn sectors(&self) -> u64 {
        self.pages * SECTORS_PER_PAGE
    }

    /// The bio limits of the disk.
    pub fn limits(&self) -> BioLimits {
        self.limits
    }

    fn update(&self, f: impl FnOnce(&mut CacheStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    /// The cached folio of disk page `page`, if any.
    pub fn cached(&self, page: u64) -> Option<Pfn> {
        self.slots
            .iter()
            .find_map(|slot| slot.get().filter(|slot| slot.page == page))
            .map(|slot| slot.pfn)
    }

    /// The disk page cached in `pfn`, if any.
    fn page_of(&self, pfn: Pfn) -> Option<u64> {
        self.slots
            .iter()
            .find_map(|slot| slot.get().filter(|slot| slot.pfn == pfn))
            .map(|slot| slot.page)
    }

    /// Whether the folio holding `pfn` is dirty.
    pub fn is_dirty(&self, pfn: Pfn) -> bool {
        self.map
            .counters(pfn)
            .is_some_and(|counters| counters.flags().contains(PageFlags::DIRTY))
    }

    /// The folio caching disk page `page`, read from the disk on a miss.
    ///
    /// # Errors
    ///
    /// [`CacheError::OutOfRange`], the eviction's or the read's error.
    pub fn page(&self, page: u64) -> Result<Pfn, CacheError> {
        let used = self.uses.get() + 1;
        self.uses.set(used);
        if let Some(slot) = self
            .slots
            .iter()
            .find(|slot| slot.get().is_some_and(|slot| slot.page == page))
        {
            let mut found = slot.get().ok_or(CacheError::Unfinished)?;
            found.used = used;
            slot.set(Some(found));
            self.update(|stats| stats.hits += 1);
            return Ok(found.pfn);
        }
        if page >= self.pages {
            return Err(CacheError::OutOfRange(page * SECTORS_PER_PAGE));
        }
        let index = match self.slots.iter().position(|slot| slot.get().is_none()) {
            Some(index) => index,
            None => self.evict_one()?,
        };
        // The allocation's reference is the cache's.
        let pfn = self.map.alloc_folio(FolioOrder::SMALL)?;
        if let Err(error) = self.page_io(BioOp::Read, pfn, Origin::Referenced, page) {
            let _ = self.tracker.put_page(pfn);
            return Err(error);
        }
        self.slots[index].set(Some(Slot { page, pfn, used }));
        self.update(|stats| stats.misses += 1);
        Ok(pfn)
    }

    /// Drops the least recently used page that is clean or can be written
    /// back in place; returns its slot.
    fn evict_one(&self) -> Result<usize, CacheError> {
        let mut order: [usize; CACHE_PAGES] = core::array::from_fn(|index| index);
        order.sort_unstable_by_key(|&index| self.slots[index].get().map_or(0, |slot| slot.used));
        for index in order {
            let Some(slot) = self.slots[index].get() else {
                return Ok(index);
            };
            // Mapped by a process or held by a bio: it must stay the one
            // copy of its disk page.
            let shared = self
                .map
                .counters(slot.pfn)
                .is_none_or(|counters| counters.refcount() > 1 || counters.pincount() > 0);
            if shared {
                continue;
            }
            if self.is_dirty(slot.pfn) {
                // A failed or refused write leaves it dirty: try the next.
                let _ = self.engine().writeback_folio(slot.pfn, &PinnedAction::Wait);
                if self.is_dirty(slot.pfn) {
                    continue;
                }
            }
            self.drop_slot(index)?;
            self.update(|stats| stats.evictions += 1);
            return Ok(index);
        }
        Err(CacheError::Full)
    }

    /// Empties slot `index`, dropping the cache's reference.
    fn drop_slot(&self, index: usize) -> Result<(), CacheError> {
        if let Some(slot) = self.slots[index].replace(None) {
            self.tracker.put_page(slot.pfn).map_err(gupio_error)?;
        }
        Ok(())
    }

    /// Copies sector `sector` into `bytes` (512 of them).
    ///
    /// # Errors
    ///
    /// The lookup's error.
    pub fn read_sector(&self, sector: u64, bytes: &mut [u8]) -> Result<(), CacheError> {
        let pfn = self.page(sector / SECTORS_PER_PAGE)?;
        let offset = (sector % SECTORS_PER_PAGE) as usize * SECTOR_SIZE;
        let extent = self.map.extent(pfn, offset, bytes.len())?;
        self.map
            .memory()
            .with_bytes(extent, |page| bytes.copy_from_slice(page))
            .map_err(|error| CacheError::Map(error.into()))
    }

    /// Copies `bytes` (512 of them) into sector `sector` and dirties its page.
    ///
    /// # Errors
    ///
    /// The lookup's error.
    pub fn write_sector(&self, sector: u64, bytes: &[u8]) -> Result<(), CacheError> {
        let pfn = self.page(sector / SECTORS_PER_PAGE)?;
        let offset = (sector % SECTORS_PER_PAGE) as usize * SECTOR_SIZE;
        let extent = self.map.extent(pfn, offset, bytes.len())?;
        self.map
            .memory()
            .with_bytes_mut(extent, |page| page.copy_from_slice(bytes))
            .map_err(|error| CacheError::Map(error.into()))?;
        if let Some(counters) = self.map.counters(pfn) {
            counters.set_flags(PageFlags::DIRTY);
        }
        Ok(())
    }

    /// The writeback engine over this cache.
    fn engine(&self) -> Writeback<'_, PageMap, Self> {
        Writeback::new(self.map, self, &self.writeback)
    }

    /// Writes back every cached page of disk pages `pages` (in disk order)
    /// under `policy`.
    pub fn writeback_pages<P: PinnedPolicy + ?Sized>(
        &self,
        pages: Range<u64>,
        policy: &P,
    ) -> WritebackSummary<CacheError> {
        let mut pfns = [Pfn::ZERO; CACHE_PAGES];
        let mut count = 0;
        for page in pages {
            if let Some(pfn) = self.cached(page) {
                pfns[count] = pfn;
                count += 1;
            }
        }
        self.engine().writeback_folios(&pfns[..count], policy)
    }

    /// Writes back every cached page under `policy`, in disk order.
    pub fn writeback_all<P: PinnedPolicy + ?Sized>(
        &self,
        policy: &P,
    ) -> WritebackSummary<CacheError> {
        let mut slots = [(0u64, Pfn::ZERO); CACHE_PAGES];
        let mut count = 0;
        for slot in self.slots.iter().filter_map(Cell::get) {
            slots[count] = (slot.page, slot.pfn);
            count += 1;
        }
        slots[..count].sort_unstable_by_key(|&(page, _)| page);
        let mut pfns = [Pfn::ZERO; CACHE_PAGES];
        for (pfn, &(_, cached)) in pfns.iter_mut().zip(&slots[..count]) {
            *pfn = cached;
        }
        self.engine().writeback_folios(&pfns[..count], policy)
    }

    /// Drops the cached pages of disk pages `pages` (after a direct write
    /// to them). Returns how many were dropped.
    ///
    /// # Errors
    ///
    /// [`CacheError::Full`] if one is dirty (write it back first), or a
    /// refused put.
    pub fn invalidate(&self, pages: Range<u64>) -> Result<usize, CacheError> {
        let mut dropped = 0;
        for index in 0..CACHE_PAGES {
            let Some(slot) = self.slots[index].get() else {
                continue;
            };
            if pages.contains(&slot.page) {
                if self.is_dirty(slot.pfn) {
                    return Err(CacheError::Full);
                }
                self.drop_slot(index)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// Drops every page (all must be clean); returns how many.
    ///
    /// # Errors
    ///
    /// As [`invalidate`](Self::invalidate).
    pub fn drop_all(&self) -> Result<usize, CacheError> {
        self.invalidate(0..u64::MAX)
    }

    /// One page `pfn` as the only bvec of a bio at disk page `page`.
    fn page_io(&self, op: BioOp, pfn: Pfn, origin: Origin, page: u64) -> Result<(), CacheError> {
        let mut table = [BioVec::NONE; 1];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            op,
            BioSector(page * SECTORS_PER_PAGE),
            self.limits,
        );
        // A referenced bvec holds a reference of its own, dropped at release.
        if origin == Origin::Referenced {
            self.tracker.get_page(pfn).map_err(gupio_error)?;
        }
        if let Err(error) = bio.add_page(pfn, PAGE_LEN, 0, origin) {
            if origin == Origin::Referenced {
                let _ = self.tracker.put_page(pfn);
            }
            return Err(gupio_error::<AddError>(error));
        }
        self.run(bio).map(|_| ())
    }

    /// A flush bio through the same path.
    ///
    /// # Errors
    ///
    /// The flush's error.
    pub fn flush(&self) -> Result<(), CacheError> {
        let mut table = [BioVec::NONE; 1];
        let bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Flush,
            BioSector(0),
            self.limits,
        );
        self.run(bio).map(|_| ())
    }

    /// Submits `bio`, runs it and releases it (no dirtying).
    fn run<S: BvecStorage>(&self, bio: Bio<S>) -> Result<ReleaseStats, CacheError> {
        let completion = Completion::new();
        completion.start().map_err(gupio_error)?;
        let submitted = match SubmittedBio::submit(bio) {
            Ok(submitted) => submitted,
            Err((bio, error)) => {
                // The pages go back; any failure was warned by gupio.
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(gupio_error(error));
            }
        };
        self.finish(&completion, submitted, false)
    }

    /// Runs a submitted bio on the disk, completes it through `completion`
    /// (which must finish with it) and releases its pages, dirtying them if
    /// `dirty`. Returns what the release did.
    ///
    /// # Errors
    ///
    /// The device's, the completion's or the release's error; the pages are
    /// released whatever happened.
    pub fn finish<S: BvecStorage>(
        &self,
        completion: &Completion,
        submitted: SubmittedBio<S>,
        dirty: bool,
    ) -> Result<ReleaseStats, CacheError> {
        let result = blk::execute(&mut self.disk.borrow_mut(), self.map, submitted.bio());
        let status = match result {
            Ok(moved) => {
                self.update(|stats| {
                    stats.bios += 1;
                    stats.bytes_in += moved.bytes_in;
                    stats.bytes_out += moved.bytes_out;
                });
                BioStatus::Ok
            }
            Err(error) => {
                println!("  page cache: request failed: {error}");
                BioStatus::IoError
            }
        };
        let (completed, ended) = match completion.complete(status, self.map) {
            Ok(Ending::Finished(status)) => (submitted.complete(status), Ok(status)),
            Ok(Ending::Pending) => (
                submitted.complete(BioStatus::IoError),
                Err(CacheError::Unfinished),
            ),
            Err(error) => (
                submitted.complete(BioStatus::IoError),
                Err(gupio_error(error)),
            ),
        };
        let released = completed.release(&self.tracker, dirty).result;
        let released = released.map_err(gupio_error)?;
        self.update(|stats| {
            stats.released.unpinned += released.unpinned;
            stats.released.put += released.put;
            stats.released.borrowed += released.borrowed;
            stats.released.bvecs += released.bvecs;
        });
        let status = ended?;
        if status.is_err() {
            return Err(CacheError::Io(status));
        }
        Ok(released)
    }
}

impl WritebackIo for PageCache<'_, '_> {
    type Error = CacheError;

    fn write_protect(&self, folio: FolioRef<'_>) {
        if let Some(user) = self.user {
            let protected = user.write_protect(folio.head());
            self.update(|stats| stats.write_protected += protected);
        }
    }

    fn write_in_place(&self, folio: FolioRef<'_>) -> Result<(), CacheError> {
        let head = folio.head();
        let page = self.page_of(head).ok_or(CacheError::NotCached(head))?;
        self.page_io(BioOp::Write, head, Origin::Referenced, page)
    }

    fn write_bounced(&self, folio: FolioRef<'_>) -> Result<(), CacheError> {
        let head = folio.head();
        let page = self.page_of(head).ok_or(CacheError::NotCached(head))?;
        // The bounce page is writeback's own: lent to the bio (borrowed),
        // freed by its one put afterwards.
        let bounce = self.map.alloc_folio(FolioOrder::SMALL)?;
        let copied = self
            .map
            .extent(head, 0, PAGE_SIZE)
            .and_then(|from| {
                let to = self.map.extent(bounce, 0, PAGE_SIZE)?;
                Ok(self.map.memory().copy(from, to.addr)?)
            })
            .map_err(CacheError::Map);
        let written =
            copied.and_then(|()| self.page_io(BioOp::Write, bounce, Origin::Borrowed, page));
        let freed = self.tracker.put_page(bounce).map_err(gupio_error);
        written.and(freed)
    }

    fn wait_until_unpinned(&self, folio: FolioRef<'_>) -> bool {
        // One hart, polled I/O: nothing can unpin while this waits.
        !folio.maybe_dma_pinned()
    }
}

/// The page cache as embedded-sdmmc's block device, behind a made-up
/// master boot record (see the module docs).
pub struct FatDisk<'c, 'm, 'u>(pub &'c PageCache<'m, 'u>);

impl FatDisk<'_, '_, '_> {
    /// Block `index` of the boot record: a partition table with one FAT32
    /// (LBA) partition from block [`MBR_BLOCKS`] to the end; zeros after it.
    fn boot_record(&self, index: u32, block: &mut Block) -> Result<(), CacheError> {
        block.contents.fill(0);
        if index == 0 {
            let sectors = u32::try_from(self.0.sectors())
                .map_err(|_| CacheError::OutOfRange(self.0.sectors()))?;
            let entry = &mut block.contents[446..462];
            // Status 0 (not bootable), CHS fields unused, type 0x0c: FAT32 LBA.
            entry[4] = 0x0c;
            entry[8..12].copy_from_slice(&MBR_BLOCKS.to_le_bytes());
            entry[12..16].copy_from_slice(&sectors.to_le_bytes());
            block.contents[510] = 0x55;
            block.contents[511] = 0xaa;
        }
        Ok(())
    }
}

impl embedded_sdmmc::BlockDevice for FatDisk<'_, '_, '_> {
    type Error = CacheError;

    fn read(&self, blocks: &mut [Block], start_block_idx: BlockIdx) -> Result<(), CacheError> {
        for (index, block) in (start_block_idx.0..).zip(blocks.iter_mut()) {
            match index.checked_sub(MBR_BLOCKS) {
                Some(sector) => self.0.read_sector(u64::from(sector), &mut block.contents)?,
                None => self.boot_record(index, block)?,
            }
        }
        Ok(())
    }

    fn write(&self, blocks: &[Block], start_block_idx: BlockIdx) -> Result<(), CacheError> {
        for (index, block) in (start_block_idx.0..).zip(blocks.iter()) {
            let sector = index
                .checked_sub(MBR_BLOCKS)
                .ok_or(CacheError::BootRecord(index))?;
            self.0.write_sector(u64::from(sector), &block.contents)?;
        }
        Ok(())
    }

    fn num_blocks(&self) -> Result<BlockCount, CacheError> {
        let blocks = self.0.sectors() + u64::from(MBR_BLOCKS);
        u32::try_from(blocks)
            .map(BlockCount)
            .map_err(|_| CacheError::OutOfRange(blocks))
    }
}
