//! Phase 3: the kernel keeps files, on a FAT32 filesystem over gupio's
//! page cache.
//!
//! The second virtio-blk drive holds a FAT32 filesystem (4 KiB clusters)
//! that `cargo xtask qemu` made with `mkfs.fat` and seeded with mtools; the
//! seeded files' names, sizes and checksums come on the kernel command line
//! (`/chosen/bootargs`, see [`SEED_KEY`]). The filesystem code is
//! embedded-sdmmc; every block it reads or writes goes through the kernel's
//! [`PageCache`] (referenced page-cache folios, bios on virtio-blk,
//! writeback by gupio-writeback's engine).
//!
//! 1. **Mount 1**: read every seeded file back and check its size and
//!    checksum; make a directory and a file in it, then append to that
//!    file; overwrite the middle of a file (across a cluster boundary);
//!    truncate a file and write it shorter; create and delete a file, and
//!    delete a seeded one; write `DIRECT.BIN` (eight pages) through the
//!    filesystem. Unmount. embedded-sdmmc 0.10's delete removes the
//!    directory entry but leaves the file's clusters allocated, and its
//!    truncate adds one freed cluster too few to the FSInfo free count, so
//!    the kernel finishes both at the block layer afterwards: it frees the
//!    deleted files' chains in both FATs (from the first cluster it read
//!    out of each directory entry before the delete) and recounts the free
//!    clusters in the FAT into FSInfo. `fsck.fat -n` finds nothing then.
//! 2. **Direct I/O under writeback**: embedded-sdmmc does all its I/O
//!    through its block device, so direct I/O happens at the block layer,
//!    on the file's clusters (found through its directory entry and FAT
//!    chain, checked contiguous and page aligned). A process `mmap`s the
//!    file's first four pages (shared: its page-table entries point at the
//!    page-cache folios) and stores new data through the mapping. It then
//!    writes that buffer with `O_DIRECT` to the file's last four pages: as
//!    Linux does, their cached pages are written back and invalidated
//!    first, then `add_user_range` pins the mapped pages, which are the
//!    file's own page-cache folios, into one write bio. While that bio is
//!    in flight, writeback of the file's cached pages runs with
//!    [`PinnedAction::Bounce`]: each pinned folio is write-protected, found
//!    maybe DMA-pinned, written through a bounce copy and left dirty (a
//!    read pin is not told apart from a write pin: gupio errs on the safe
//!    side). The bio runs and completes, its pins are released, the process
//!    unmaps, and an integrity pass (below) writes the final contents.
//!    Then the hazard of 2019 itself: the process maps the file's first
//!    two pages again and reads the start of `NOTES.TXT` into them with
//!    `O_DIRECT`: write pins on the file's page-cache folios, dirtied
//!    before submission, the device writing into them. Writeback with
//!    `Bounce` runs while that bio is in flight: the folios are bounced and
//!    stay dirty, the read completes and releases (dirtying again), and the
//!    next integrity pass writes what the device put there.
//! 3. **Integrity pass**: writeback of every cached page with
//!    [`PinnedAction::Wait`] (nothing is pinned now: all written in place
//!    and clean), then a flush bio.
//! 4. **Mount 2**: read every file back through the filesystem, check it
//!    against what the kernel wrote, check the deleted files are gone, and
//!    print the manifest ([`MANIFEST_PREFIX`]) that xtask checks with
//!    mtools and `fsck.fat` after QEMU exits. A last integrity pass, the
//!    cache dropped, and the accounting: every counter at baseline, pins
//!    acquired == released, no warning, no leak, no double free.
//!
//! [`SEED_KEY`]: crate::checksum::SEED_KEY
//! [`MANIFEST_PREFIX`]: crate::checksum::MANIFEST_PREFIX

use embedded_sdmmc::VolumeManager;
use gupio::pin::Tracker;
use gupio::writeback::PinnedAction;

use crate::blk;
use crate::mem::FrameAllocator;
use crate::pagecache::{gupio_error, FatDisk, PageCache};
use crate::pagemap::{PageMap, MANAGED_PAGES};
use crate::time::Clock;
use crate::userspace::UserSpace;
use crate::virtio::BlockDevice;

mod contents;
mod direct;
mod error;
mod fat;
mod mount;
mod seeds;
mod summary;
mod volume;

pub use error::FilesError;
pub use summary::Summary;

use contents::{DIRECT_PAGES, READ_PAGES};
use error::cache_error;
use fat::Geometry;
use seeds::{parse_seeds, Seed, MAX_SEEDS};
use volume::{FixedTime, Manager};

/// Frames in a 2 MiB run: the managed region is aligned to it.
const REGION_ALIGN_PAGES: usize = 512;
/// The FAT drive: the second block device in slot order.
const FAT_DRIVE: usize = 1;
/// Bvecs per bio.
const BIO_VECS: usize = 16;

struct Files<'c, 'm, 'u> {
    map: &'m PageMap,
    tracker: Tracker<'m, PageMap>,
    space: &'u UserSpace<'m>,
    cache: &'c PageCache<'m, 'u>,
    seeds: [Seed; MAX_SEEDS],
    seed_count: usize,
    summary: Summary,
}

impl<'c, 'm, 'u> Files<'c, 'm, 'u> {
    fn manager(&self) -> Manager<'c, 'm, 'u> {
        VolumeManager::new_with_limits(FatDisk(self.cache), FixedTime, 0)
    }

    /// A data-integrity pass: every cached page written (waiting policy:
    /// nothing may be left pinned), then a flush. Returns (examined,
    /// written).
    fn integrity_pass(&self, step: &'static str) -> Result<(usize, usize), FilesError> {
        let summary = self.cache.writeback_all(&PinnedAction::Wait);
        let counts = summary.counts;
        if let Some(error) = summary.first_error {
            return Err(FilesError::Writeback(step, error));
        }
        if counts.left_dirty() != 0 {
            return Err(FilesError::Count(
                step,
                "folios left dirty",
                counts.left_dirty(),
                0,
            ));
        }
        self.cache.flush().map_err(cache_error(step))?;
        Ok((counts.examined, counts.written_in_place))
    }

    fn steps(&mut self) -> Result<(), FilesError> {
        let (deleted, direct, notes) = self.first_mount()?;
        let geometry = Geometry::read(self.cache)?;
        self.free_deleted(&geometry, deleted)?;
        let pages = self.file_pages(&geometry, &direct, DIRECT_PAGES)?;
        self.direct_io(pages.clone())?;
        let (examined, written) = self.integrity_pass("integrity pass")?;
        println!(
            "  integrity pass: writeback (Wait) of {examined} cached folios, {written} written in place, none left dirty; flushed"
        );
        let source = self.file_pages(&geometry, &notes, READ_PAGES)?;
        self.direct_read(pages, source)?;
        let (examined, written) = self.integrity_pass("integrity pass")?;
        println!(
            "  integrity pass: writeback (Wait) of {examined} cached folios, {written} written in place, none left dirty; flushed"
        );
        self.second_mount()?;
        let (examined, written) = self.integrity_pass("final writeback")?;
        let dropped = self
            .cache
            .drop_all()
            .map_err(cache_error("final writeback"))?;
        println!(
            "  final writeback: {examined} cached folios examined, {written} written; {dropped} pages dropped from the cache"
        );
        Ok(())
    }

    fn account(&mut self) -> Result<(), FilesError> {
        const STEP: &str = "accounting";
        let pins = self.map.pins();
        self.summary.cache = self.cache.stats();
        self.summary.writeback = self.cache.writeback_stats().snapshot();
        self.summary.pins_acquired = pins.acquired();
        self.summary.pins_released = pins.released();
        self.summary.warnings = self.map.warnings();
        self.summary.allocator = self.map.allocator_stats();
        let baseline = self.map.check_baseline();
        self.summary.counters_at_baseline = baseline.is_ok();
        baseline.map_err(FilesError::Counters)?;
        self.map
            .check_power_off(0)
            .map_err(|(what, seen, expected)| FilesError::Count(STEP, what, seen, expected))
    }
}

/// Runs phase 3 on the second block device with the seeds of `bootargs`
/// and a managed region of [`MANAGED_PAGES`] frames from `frames`. Returns
/// the summary (as far as it got) and the verdict.
pub fn run(
    frames: &mut FrameAllocator,
    clock: Clock,
    bootargs: &[u8],
) -> (Summary, Result<(), FilesError>) {
    let started = clock.now();
    let (seeds, seed_count) = match parse_seeds(bootargs) {
        Ok(seeds) => seeds,
        Err(error) => return (Summary::default(), Err(error)),
    };
    let region = match frames.alloc(MANAGED_PAGES, REGION_ALIGN_PAGES) {
        Ok(region) => region,
        Err(error) => return (Summary::default(), Err(FilesError::Memory(error))),
    };
    let map = match PageMap::new(region) {
        Ok(map) => map,
        Err(error) => return (Summary::default(), Err(FilesError::Map(error))),
    };
    let disk = match BlockDevice::open_nth(FAT_DRIVE, clock) {
        Ok(disk) => disk,
        Err(error) => return (Summary::default(), Err(FilesError::Open(error))),
    };
    let info = disk.info();
    let limits = match blk::queue_limits(&info, BIO_VECS) {
        Ok(limits) => limits,
        Err(error) => {
            return (
                Summary::default(),
                Err(FilesError::Cache("queue limits", gupio_error(error))),
            )
        }
    };
    println!(
        "  FAT drive: virtio-mmio slot {}, {} sectors ({} MiB); {} seeded files on the command line",
        info.slot,
        info.capacity,
        info.capacity / 2048,
        seed_count
    );
    let space = UserSpace::new(&map);
    let cache = PageCache::new(&map, disk, limits, Some(&space));
    let mut files = Files {
        map: &map,
        tracker: Tracker::new(&map),
        space: &space,
        cache: &cache,
        seeds,
        seed_count,
        summary: Summary::default(),
    };
    let result = files.steps();
    if result.is_err() {
        // Give back what the failed step held, so the accounting says what leaked.
        let _ = space.unmap_all(&files.tracker);
    }
    let accounted = files.account();
    files.summary.elapsed = clock.since(started);
    (files.summary, result.and(accounted))
}
