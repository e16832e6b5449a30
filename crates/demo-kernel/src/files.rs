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

use core::fmt;
use core::ops::Range;
use core::time::Duration;

use embedded_sdmmc::{DirEntry, Mode, TimeSource, Timestamp, VolumeIdx, VolumeManager};
use gupio::bio::{Bio, BioOp, BioVec, BvecSlice, Origin, Sector as BioSector};
use gupio::pfn::Pfn;
use gupio::pin::{GupFlags, MemoryMap, PageFlags, Tracker, UserAddr};
use gupio::release::{add_user_range, Completion, SubmittedBio};
use gupio::writeback::{PinnedAction, WritebackCounts, WritebackError};

use crate::blk;
use crate::checksum::{Checksum, DELETED_SEED, MANIFEST_PREFIX, SEED_KEY};
use crate::mem::{FrameAllocator, MemError, PAGE_SIZE};
use crate::pagecache::{
    gupio_error, CacheError, CacheStats, FatDisk, PageCache, MBR_BLOCKS, SECTORS_PER_PAGE,
};
use crate::pagemap::{AllocatorStats, CounterMismatch, MapError, PageMap, MANAGED_PAGES};
use crate::pattern::SECTOR_SIZE;
use crate::time::Clock;
use crate::userspace::{UserError, UserSpace};
use crate::virtio::{BlockDevice, OpenError};

/// Frames in a 2 MiB run: the managed region is aligned to it.
const REGION_ALIGN_PAGES: usize = 512;
/// The FAT drive: the second block device in slot order.
const FAT_DRIVE: usize = 1;
/// Bvecs per bio.
const BIO_VECS: usize = 16;
/// Seeded files the command line may name.
const MAX_SEEDS: usize = 8;
/// Longest 8.3 name, with its dot.
const MAX_NAME: usize = 12;
/// Pages of `DIRECT.BIN`; the first half is mapped, the second written directly.
const DIRECT_PAGES: usize = 8;
const MAPPED_PAGES: usize = DIRECT_PAGES / 2;
/// Bytes of the direct write.
const DIRECT_LEN: usize = MAPPED_PAGES * PAGE_SIZE;
/// Pages of `NOTES.TXT` a direct read brings into the mapped start of `DIRECT.BIN`.
const READ_PAGES: usize = 2;
/// Bytes of the direct read.
const READ_LEN: usize = READ_PAGES * PAGE_SIZE;

/// A file the kernel writes: its path and how each byte was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    /// `LOGS/EVENTS.TXT`: created, then appended to.
    Events,
    /// `NOTES.TXT`: written, then overwritten in the middle.
    Notes,
    /// `TRUNC.TXT`: written, truncated, written shorter.
    Trunc,
    /// `DIRECT.BIN`: written through the cache, then by mmap and direct I/O.
    Direct,
}

const EVENTS_FIRST: usize = 3000;
const EVENTS_APPENDED: usize = 5000;
const NOTES_LEN: usize = 20_000;
/// Overwritten bytes of `NOTES.TXT`: across the cluster boundary at 8192.
const NOTES_MIDDLE: Range<usize> = 6000..9000;
const TRUNC_FIRST: usize = 12_000;
const TRUNC_LEN: usize = 1000;
const TEMP_LEN: usize = 5000;

/// What the generated text is made of.
const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";

/// Text bytes of the generator `seed`: lines of 63 letters and a newline.
fn text(seed: usize, index: usize) -> u8 {
    let (line, column) = (index / 64, index % 64);
    if column == 63 {
        b'\n'
    } else {
        LETTERS[(line * 7 + column * 3 + seed * 11) % LETTERS.len()]
    }
}

impl Written {
    const ALL: [Self; 4] = [Self::Events, Self::Notes, Self::Trunc, Self::Direct];

    /// The directory (`None`: root) and the name.
    fn path(self) -> (Option<&'static str>, &'static str) {
        match self {
            Self::Events => (Some("LOGS"), "EVENTS.TXT"),
            Self::Notes => (None, "NOTES.TXT"),
            Self::Trunc => (None, "TRUNC.TXT"),
            Self::Direct => (None, "DIRECT.BIN"),
        }
    }

    /// The final size.
    fn len(self) -> usize {
        match self {
            Self::Events => EVENTS_FIRST + EVENTS_APPENDED,
            Self::Notes => NOTES_LEN,
            Self::Trunc => TRUNC_LEN,
            Self::Direct => DIRECT_PAGES * PAGE_SIZE,
        }
    }

    /// Byte `index` of the final contents.
    fn final_byte(self, index: usize) -> u8 {
        match self {
            Self::Events if index < EVENTS_FIRST => text(1, index),
            Self::Events => text(2, index - EVENTS_FIRST),
            Self::Notes if NOTES_MIDDLE.contains(&index) => text(4, index - NOTES_MIDDLE.start),
            Self::Notes => text(3, index),
            Self::Trunc => text(6, index),
            // The direct read's bytes, then what the process stored
            // through its mapping, in both halves.
            Self::Direct if index < READ_LEN => Self::Notes.final_byte(index),
            Self::Direct => mapped_byte(index % DIRECT_LEN),
        }
    }

    /// The checksum of the final contents.
    fn checksum(self) -> Checksum {
        let mut sum = Checksum::new();
        for index in 0..self.len() {
            sum.update(&[self.final_byte(index)]);
        }
        sum
    }
}

/// What the process stores through its mapping of `DIRECT.BIN`.
fn mapped_byte(index: usize) -> u8 {
    text(9, index)
}

/// A seeded file named on the command line.
#[derive(Clone, Copy, Debug)]
struct Seed {
    name: [u8; MAX_NAME],
    name_len: usize,
    size: u32,
    sum: u32,
}

impl Seed {
    fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
}

/// The file the kernel creates and deletes.
const TEMP_NAME: &str = "TEMP.TXT";

/// The seeds of `gupio.seed=NAME:SIZE:SUM,...` in `bootargs`.
fn parse_seeds(bootargs: &[u8]) -> Result<([Seed; MAX_SEEDS], usize), FilesError> {
    const STEP: &str = "command line";
    let bad = |what| FilesError::Check(STEP, what);
    let line = core::str::from_utf8(bootargs).map_err(|_| bad("not UTF-8"))?;
    let list = line
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix(SEED_KEY))
        .ok_or(bad("no gupio.seed= argument"))?;
    let empty = Seed {
        name: [0; MAX_NAME],
        name_len: 0,
        size: 0,
        sum: 0,
    };
    let mut seeds = [empty; MAX_SEEDS];
    let mut count = 0;
    for item in list.split(',') {
        let mut fields = item.split(':');
        let (Some(name), Some(size), Some(sum), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("a seed is not NAME:SIZE:SUM"));
        };
        let slot = seeds.get_mut(count).ok_or(bad("too many seeds"))?;
        slot.name
            .get_mut(..name.len())
            .ok_or(bad("a seed name is longer than 8.3"))?
            .copy_from_slice(name.as_bytes());
        slot.name_len = name.len();
        slot.size = size
            .parse()
            .map_err(|_| bad("a seed size is not a number"))?;
        slot.sum = u32::from_str_radix(sum, 16).map_err(|_| bad("a seed sum is not hex"))?;
        count += 1;
    }
    Ok((seeds, count))
}

/// A check of phase 3 that did not hold.
#[derive(Clone, Debug)]
pub enum FilesError {
    /// The managed region could not be carved out of free RAM.
    Memory(MemError),
    /// The memory map could not be set up.
    Map(MapError),
    /// The FAT drive could not be opened.
    Open(OpenError),
    /// The page cache failed: (step, error).
    Cache(&'static str, CacheError),
    /// The filesystem failed: (step, error).
    Fs(&'static str, embedded_sdmmc::Error<CacheError>),
    /// Writeback failed: (step, the first error).
    Writeback(&'static str, WritebackError<CacheError>),
    /// User memory could not be mapped or reached.
    User(&'static str, UserError),
    /// A file read back differs: (name, size found, sum found, size expected, sum expected).
    File(&'static str, u32, u32, u32, u32),
    /// A page's counters are not what they should be.
    Counters(CounterMismatch),
    /// A count differs: (step, what, found, expected).
    Count(&'static str, &'static str, usize, usize),
    /// A check of this step did not hold: (step, what).
    Check(&'static str, &'static str),
}

impl fmt::Display for FilesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(error) => write!(f, "managed region: {error}"),
            Self::Map(error) => write!(f, "memory map: {error}"),
            Self::Open(error) => write!(f, "FAT drive: {error}"),
            Self::Cache(step, error) => write!(f, "{step}: {error}"),
            Self::Fs(step, error) => write!(f, "{step}: filesystem: {error:?}"),
            Self::Writeback(step, error) => write!(f, "{step}: writeback: {error}"),
            Self::User(step, error) => write!(f, "{step}: user memory: {error}"),
            Self::File(name, size, sum, want_size, want_sum) => write!(
                f,
                "{name}: read back {size} bytes, sum {sum:08x}; expected {want_size} bytes, sum {want_sum:08x}"
            ),
            Self::Counters(mismatch) => write!(f, "accounting: counters off: {mismatch}"),
            Self::Count(step, what, found, expected) => {
                write!(f, "{step}: {what}: {found}, expected {expected}")
            }
            Self::Check(step, what) => write!(f, "{step}: {what}"),
        }
    }
}

/// What phase 3 did, for the summary it prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Seeded files read back intact.
    pub seeds_checked: usize,
    /// Files in the manifest.
    pub manifest_files: usize,
    /// Clusters of deleted files the kernel freed.
    pub clusters_freed: usize,
    /// Pages pinned by the direct write and the direct read.
    pub direct_pinned: usize,
    /// Folios writeback bounced while they were in flight.
    pub bounced_in_flight: usize,
    /// What the page cache did.
    pub cache: CacheStats,
    /// What writeback did, over the whole phase.
    pub writeback: WritebackCounts,
    /// Pins taken and dropped.
    pub pins_acquired: usize,
    /// Pins dropped.
    pub pins_released: usize,
    /// Warnings (must be zero).
    pub warnings: usize,
    /// The page allocator's counts at the end.
    pub allocator: AllocatorStats,
    /// Every counter of the managed region back at baseline at the end.
    pub counters_at_baseline: bool,
    /// Wall time (mtime).
    pub elapsed: Duration,
}

impl Summary {
    /// Prints the summary, several lines.
    pub fn print(&self) {
        let cache = &self.cache;
        let wb = &self.writeback;
        println!("gupio file summary:");
        println!(
            "  files                  {} seeded files intact, {} in the manifest, {} clusters of deleted files freed",
            self.seeds_checked, self.manifest_files, self.clusters_freed
        );
        println!(
            "  page cache             {} hits, {} misses, {} evictions; {} bios, {} bytes read, {} written; \
             released {} put, {} unpinned (bounce copies go out borrowed: nothing to release)",
            cache.hits,
            cache.misses,
            cache.evictions,
            cache.bios,
            cache.bytes_in,
            cache.bytes_out,
            cache.released.put,
            cache.released.unpinned
        );
        println!(
            "  writeback              {} folios examined: {} clean, {} written in place, {} bounced, \
             {} skipped, {} write errors; {} user mappings write-protected",
            wb.examined,
            wb.clean,
            wb.written_in_place,
            wb.bounced,
            wb.skipped,
            wb.write_errors,
            cache.write_protected
        );
        println!(
            "  direct I/O             {} page-cache pages pinned by a write bio and a read bio, {} bounced by writeback while they were in flight",
            self.direct_pinned, self.bounced_in_flight
        );
        println!(
            "  pins acquired/released {}/{}",
            self.pins_acquired, self.pins_released
        );
        println!("  warnings               {}", self.warnings);
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

/// A fixed clock for file timestamps: the kernel has no calendar.
struct FixedTime;

impl TimeSource for FixedTime {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp {
            year_since_1970: 56,
            zero_indexed_month: 0,
            zero_indexed_day: 0,
            hours: 12,
            minutes: 0,
            seconds: 0,
        }
    }
}

type Manager<'c, 'm, 'u> = VolumeManager<FatDisk<'c, 'm, 'u>, FixedTime, 4, 4, 1>;

fn fs(step: &'static str) -> impl Fn(embedded_sdmmc::Error<CacheError>) -> FilesError {
    move |error| FilesError::Fs(step, error)
}

fn cache_error(step: &'static str) -> impl Fn(CacheError) -> FilesError {
    move |error| FilesError::Cache(step, error)
}

/// The on-disk layout of the FAT32 filesystem (sector numbers of the disk).
#[derive(Clone, Copy, Debug)]
struct Geometry {
    /// First sector of the first FAT.
    fat_start: u64,
    /// Sectors per FAT.
    fat_sectors: u64,
    /// FATs.
    fats: u64,
    /// Sectors per cluster.
    cluster_sectors: u64,
    /// First sector of cluster 2.
    data_start: u64,
    /// Sector of the FSInfo structure.
    info_sector: u64,
    /// Sectors of the filesystem.
    total_sectors: u64,
}

/// FAT32 entries: the low 28 bits.
const FAT_MASK: u32 = 0x0fff_ffff;
/// Entries at or above this end a chain.
const END_OF_CHAIN: u32 = 0x0fff_fff8;

impl Geometry {
    /// Reads the boot sector through the cache.
    fn read(cache: &PageCache<'_, '_>) -> Result<Self, FilesError> {
        const STEP: &str = "geometry";
        let mut boot = [0u8; SECTOR_SIZE];
        cache.read_sector(0, &mut boot).map_err(cache_error(STEP))?;
        let u16_at = |at: usize| u64::from(u16::from_le_bytes([boot[at], boot[at + 1]]));
        let u32_at = |at: usize| {
            u64::from(u32::from_le_bytes([
                boot[at],
                boot[at + 1],
                boot[at + 2],
                boot[at + 3],
            ]))
        };
        if u16_at(11) != SECTOR_SIZE as u64 || boot[510..] != [0x55, 0xaa] {
            return Err(FilesError::Check(
                STEP,
                "not a FAT boot sector of 512-byte sectors",
            ));
        }
        // FAT32: no 16-bit FAT size, a 32-bit one.
        if u16_at(22) != 0 || u32_at(36) == 0 {
            return Err(FilesError::Check(STEP, "not FAT32"));
        }
        let fat_start = u16_at(14);
        let fats = u64::from(boot[16]);
        let fat_sectors = u32_at(36);
        let cluster_sectors = u64::from(boot[13]);
        let geometry = Self {
            fat_start,
            fat_sectors,
            fats,
            cluster_sectors,
            data_start: fat_start + fats * fat_sectors,
            info_sector: u16_at(48),
            total_sectors: u32_at(32),
        };
        if cluster_sectors != SECTORS_PER_PAGE
            || !geometry.data_start.is_multiple_of(SECTORS_PER_PAGE)
        {
            return Err(FilesError::Check(
                STEP,
                "clusters are not page sized and page aligned (mkfs.fat -s 8)",
            ));
        }
        Ok(geometry)
    }

    /// The FAT entry of `cluster` in FAT `fat`: (sector, byte offset).
    fn entry(&self, fat: u64, cluster: u32) -> (u64, usize) {
        let byte = u64::from(cluster) * 4;
        (
            self.fat_start + fat * self.fat_sectors + byte / SECTOR_SIZE as u64,
            // Below 512: always fits.
            usize::try_from(byte % SECTOR_SIZE as u64).unwrap_or(0),
        )
    }

    /// The next cluster after `cluster` (the first FAT's entry).
    fn next(&self, cache: &PageCache<'_, '_>, cluster: u32) -> Result<u32, CacheError> {
        let (sector, offset) = self.entry(0, cluster);
        let mut bytes = [0u8; SECTOR_SIZE];
        cache.read_sector(sector, &mut bytes)?;
        let word = u32::from_le_bytes([
            bytes[offset],
            bytes[offset + 1],
            bytes[offset + 2],
            bytes[offset + 3],
        ]);
        Ok(word & FAT_MASK)
    }

    /// Sets `cluster`'s entry in every FAT to `value` (keeping the top bits).
    fn set(&self, cache: &PageCache<'_, '_>, cluster: u32, value: u32) -> Result<(), CacheError> {
        for fat in 0..self.fats {
            let (sector, offset) = self.entry(fat, cluster);
            let mut bytes = [0u8; SECTOR_SIZE];
            cache.read_sector(sector, &mut bytes)?;
            let old = u32::from_le_bytes([
                bytes[offset],
                bytes[offset + 1],
                bytes[offset + 2],
                bytes[offset + 3],
            ]);
            let new = (old & !FAT_MASK) | (value & FAT_MASK);
            bytes[offset..offset + 4].copy_from_slice(&new.to_le_bytes());
            cache.write_sector(sector, &bytes)?;
        }
        Ok(())
    }

    /// The first sector of `cluster`.
    fn cluster_sector(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster.saturating_sub(2)) * self.cluster_sectors
    }

    /// Frees the chain from `first` in every FAT. Returns how many clusters
    /// were freed.
    fn free_chain(&self, cache: &PageCache<'_, '_>, first: u32) -> Result<usize, CacheError> {
        let mut freed = 0usize;
        let mut cluster = first;
        while (2..END_OF_CHAIN).contains(&cluster) {
            let next = self.next(cache, cluster)?;
            self.set(cache, cluster, 0)?;
            freed += 1;
            cluster = next;
        }
        Ok(freed)
    }

    /// Counts the free clusters in the first FAT and stores the count in
    /// FSInfo. Returns (the count FSInfo held, the true count).
    fn recount_free(&self, cache: &PageCache<'_, '_>) -> Result<(u32, u32), CacheError> {
        let last = 2 + (self.total_sectors.saturating_sub(self.data_start)) / self.cluster_sectors;
        let mut free = 0u32;
        let mut bytes = [0u8; SECTOR_SIZE];
        let mut loaded = None;
        for cluster in 2..last {
            let cluster = u32::try_from(cluster).map_err(|_| CacheError::OutOfRange(cluster))?;
            let (sector, offset) = self.entry(0, cluster);
            if loaded != Some(sector) {
                cache.read_sector(sector, &mut bytes)?;
                loaded = Some(sector);
            }
            let word = u32::from_le_bytes([
                bytes[offset],
                bytes[offset + 1],
                bytes[offset + 2],
                bytes[offset + 3],
            ]);
            if word & FAT_MASK == 0 {
                free += 1;
            }
        }
        let mut info = [0u8; SECTOR_SIZE];
        cache.read_sector(self.info_sector, &mut info)?;
        let held = u32::from_le_bytes([info[488], info[489], info[490], info[491]]);
        if held != free {
            info[488..492].copy_from_slice(&free.to_le_bytes());
            cache.write_sector(self.info_sector, &info)?;
        }
        Ok((held, free))
    }
}

/// The first cluster in the on-disk directory entry that `entry` locates.
fn first_cluster(cache: &PageCache<'_, '_>, entry: &DirEntry) -> Result<u32, FilesError> {
    const STEP: &str = "directory entry";
    let block = entry
        .entry_block
        .0
        .checked_sub(MBR_BLOCKS)
        .ok_or(FilesError::Check(STEP, "an entry in the boot record"))?;
    let mut bytes = [0u8; SECTOR_SIZE];
    cache
        .read_sector(u64::from(block), &mut bytes)
        .map_err(cache_error(STEP))?;
    let at = entry.entry_offset as usize;
    let raw = bytes
        .get(at..at + 32)
        .ok_or(FilesError::Check(STEP, "entry offset past the sector"))?;
    let high = u32::from(u16::from_le_bytes([raw[20], raw[21]]));
    let low = u32::from(u16::from_le_bytes([raw[26], raw[27]]));
    Ok(high << 16 | low)
}

struct Files<'c, 'm, 'u> {
    map: &'m PageMap,
    tracker: Tracker<'m, PageMap>,
    space: &'u UserSpace<'m>,
    cache: &'c PageCache<'m, 'u>,
    seeds: [Seed; MAX_SEEDS],
    seed_count: usize,
    summary: Summary,
}

/// Writes `len` bytes of `byte_at(offset + i)` to `file` in sector-sized pieces.
fn write_generated<D, T, const A: usize, const B: usize, const C: usize>(
    file: &embedded_sdmmc::File<'_, D, T, A, B, C>,
    len: usize,
    byte_at: impl Fn(usize) -> u8,
) -> Result<(), embedded_sdmmc::Error<D::Error>>
where
    D: embedded_sdmmc::BlockDevice,
    T: TimeSource,
{
    let mut buffer = [0u8; SECTOR_SIZE];
    let mut done = 0;
    while done < len {
        let piece = (len - done).min(SECTOR_SIZE);
        for (index, byte) in buffer[..piece].iter_mut().enumerate() {
            *byte = byte_at(done + index);
        }
        file.write(&buffer[..piece])?;
        done += piece;
    }
    Ok(())
}

/// Reads `file` to its end: (size, checksum).
fn read_all<D, T, const A: usize, const B: usize, const C: usize>(
    file: &embedded_sdmmc::File<'_, D, T, A, B, C>,
) -> Result<(u32, Checksum), embedded_sdmmc::Error<D::Error>>
where
    D: embedded_sdmmc::BlockDevice,
    T: TimeSource,
{
    let mut buffer = [0u8; SECTOR_SIZE];
    let mut sum = Checksum::new();
    let mut size = 0u32;
    while !file.is_eof() {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        sum.update(&buffer[..read]);
        size += u32::try_from(read).unwrap_or(u32::MAX);
    }
    Ok((size, sum))
}

impl<'c, 'm, 'u> Files<'c, 'm, 'u> {
    fn manager(&self) -> Manager<'c, 'm, 'u> {
        VolumeManager::new_with_limits(FatDisk(self.cache), FixedTime, 0)
    }

    /// Mount 1: check the seeds, then create, append, overwrite, truncate,
    /// delete. Returns the first clusters of the deleted files and the
    /// directory entries of `DIRECT.BIN` and `NOTES.TXT`.
    fn first_mount(&mut self) -> Result<([u32; 2], DirEntry, DirEntry), FilesError> {
        const STEP: &str = "mount 1";
        let manager = self.manager();
        let volume = manager.open_volume(VolumeIdx(0)).map_err(fs(STEP))?;
        let root = volume.open_root_dir().map_err(fs(STEP))?;

        // The seeded files, as xtask wrote them.
        let seeds = self.seeds;
        for seed in &seeds[..self.seed_count] {
            let file = root
                .open_file_in_dir(seed.name(), Mode::ReadOnly)
                .map_err(fs("seeded file"))?;
            let (size, sum) = read_all(&file).map_err(fs("seeded file"))?;
            file.close().map_err(fs("seeded file"))?;
            if (size, sum.get()) != (seed.size, seed.sum) {
                println!(
                    "  seeded {}: read {size} bytes, sum {:08x}; the command line says {} bytes, sum {:08x}",
                    seed.name(),
                    sum.get(),
                    seed.size,
                    seed.sum
                );
                return Err(FilesError::Check("seeded file", "a seeded file differs"));
            }
            self.summary.seeds_checked += 1;
        }
        println!(
            "  {STEP}: {} seeded files read back through the page cache: sizes and checksums match the command line",
            self.summary.seeds_checked
        );

        // A directory, a file in it, appended to.
        root.make_dir_in_dir("LOGS").map_err(fs("mkdir"))?;
        let logs = root.open_dir("LOGS").map_err(fs("mkdir"))?;
        let events = logs
            .open_file_in_dir("EVENTS.TXT", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&events, EVENTS_FIRST, |index| text(1, index)).map_err(fs("create"))?;
        events.close().map_err(fs("create"))?;
        let events = logs
            .open_file_in_dir("EVENTS.TXT", Mode::ReadWriteAppend)
            .map_err(fs("append"))?;
        write_generated(&events, EVENTS_APPENDED, |index| text(2, index)).map_err(fs("append"))?;
        events.close().map_err(fs("append"))?;
        logs.close().map_err(fs("append"))?;

        // Written, then overwritten in the middle.
        let notes = root
            .open_file_in_dir("NOTES.TXT", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&notes, NOTES_LEN, |index| text(3, index)).map_err(fs("create"))?;
        notes.close().map_err(fs("create"))?;
        let notes = root
            .open_file_in_dir("NOTES.TXT", Mode::ReadWriteAppend)
            .map_err(fs("overwrite"))?;
        let start = u32::try_from(NOTES_MIDDLE.start).unwrap_or(u32::MAX);
        notes.seek_from_start(start).map_err(fs("overwrite"))?;
        write_generated(&notes, NOTES_MIDDLE.len(), |index| text(4, index))
            .map_err(fs("overwrite"))?;
        if notes.length() as usize != NOTES_LEN {
            return Err(FilesError::Check("overwrite", "the file grew"));
        }
        notes.close().map_err(fs("overwrite"))?;

        // Written, truncated, written shorter.
        let trunc = root
            .open_file_in_dir("TRUNC.TXT", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&trunc, TRUNC_FIRST, |index| text(5, index)).map_err(fs("create"))?;
        trunc.close().map_err(fs("create"))?;
        let trunc = root
            .open_file_in_dir("TRUNC.TXT", Mode::ReadWriteTruncate)
            .map_err(fs("truncate"))?;
        if trunc.length() != 0 {
            return Err(FilesError::Check("truncate", "the file is not empty"));
        }
        write_generated(&trunc, TRUNC_LEN, |index| text(6, index)).map_err(fs("truncate"))?;
        trunc.close().map_err(fs("truncate"))?;

        // Created and deleted; a seeded file deleted.
        let temp = root
            .open_file_in_dir(TEMP_NAME, Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&temp, TEMP_LEN, |index| text(7, index)).map_err(fs("create"))?;
        temp.close().map_err(fs("create"))?;
        let mut deleted = [0u32; 2];
        for (first, name) in deleted.iter_mut().zip([TEMP_NAME, DELETED_SEED]) {
            let entry = root.find_directory_entry(name).map_err(fs("delete"))?;
            *first = first_cluster(self.cache, &entry)?;
            root.delete_entry_in_dir(name).map_err(fs("delete"))?;
        }

        // DIRECT.BIN through the filesystem: eight pages of its first contents.
        let direct = root
            .open_file_in_dir("DIRECT.BIN", Mode::ReadWriteCreate)
            .map_err(fs("create"))?;
        write_generated(&direct, DIRECT_PAGES * PAGE_SIZE, |index| text(8, index))
            .map_err(fs("create"))?;
        direct.close().map_err(fs("create"))?;
        let notes = root
            .find_directory_entry("NOTES.TXT")
            .map_err(fs("create"))?;
        let direct = root
            .find_directory_entry("DIRECT.BIN")
            .map_err(fs("create"))?;

        root.close().map_err(fs(STEP))?;
        volume.close().map_err(fs(STEP))?;
        if manager.has_open_handles() {
            return Err(FilesError::Check(STEP, "handles left open"));
        }
        drop(manager);
        println!(
            "  {STEP}: made LOGS/ and LOGS/EVENTS.TXT ({EVENTS_FIRST} bytes, then {EVENTS_APPENDED} appended); \
             NOTES.TXT ({NOTES_LEN} bytes, bytes {}..{} overwritten); TRUNC.TXT ({TRUNC_FIRST} bytes, truncated, \
             {TRUNC_LEN} written); {TEMP_NAME} made and deleted, seeded {DELETED_SEED} deleted; \
             DIRECT.BIN ({} bytes); unmounted",
            NOTES_MIDDLE.start,
            NOTES_MIDDLE.end,
            DIRECT_PAGES * PAGE_SIZE
        );
        Ok((deleted, direct, notes))
    }

    /// Frees the chains embedded-sdmmc's delete left allocated.
    fn free_deleted(&mut self, geometry: &Geometry, deleted: [u32; 2]) -> Result<(), FilesError> {
        const STEP: &str = "free clusters";
        for first in deleted {
            self.summary.clusters_freed += geometry
                .free_chain(self.cache, first)
                .map_err(cache_error(STEP))?;
        }
        let (held, free) = geometry
            .recount_free(self.cache)
            .map_err(cache_error(STEP))?;
        println!(
            "  {STEP}: the deleted files' {} clusters freed in {} FATs; FSInfo free count {held} \
             corrected to {free} (counted in the FAT)",
            self.summary.clusters_freed, geometry.fats
        );
        Ok(())
    }

    /// The disk pages of the first `count` clusters of the file at `entry`,
    /// checked contiguous.
    fn file_pages(
        &self,
        geometry: &Geometry,
        entry: &DirEntry,
        count: usize,
    ) -> Result<Range<u64>, FilesError> {
        const STEP: &str = "direct I/O";
        if (entry.size as usize).div_ceil(PAGE_SIZE) < count {
            return Err(FilesError::Check(STEP, "a file is shorter than expected"));
        }
        let first = first_cluster(self.cache, entry)?;
        let mut cluster = first;
        for index in 1..count {
            let next = geometry
                .next(self.cache, cluster)
                .map_err(cache_error(STEP))?;
            if next != cluster + 1 {
                println!(
                    "  {STEP}: cluster {index} of {} is {next:#x}, after {cluster:#x}",
                    entry.name
                );
                return Err(FilesError::Check(STEP, "a file is not contiguous"));
            }
            cluster = next;
        }
        let start = geometry.cluster_sector(first) / SECTORS_PER_PAGE;
        Ok(start..start + count as u64)
    }

    /// Step 2: mmap, direct write, writeback with bouncing while it is in flight.
    fn direct_io(&mut self, pages: Range<u64>) -> Result<(), FilesError> {
        const STEP: &str = "direct I/O";
        let cache_err = cache_error(STEP);
        let user = |error| FilesError::User(STEP, error);
        let mapped = pages.start..pages.start + MAPPED_PAGES as u64;
        let target = mapped.end..pages.end;

        // The process maps the file's first half (shared) and stores through it.
        let mut folios = [Pfn::ZERO; MAPPED_PAGES];
        for (index, (page, pfn)) in mapped.clone().zip(folios.iter_mut()).enumerate() {
            *pfn = self.cache.page(page).map_err(&cache_err)?;
            self.space
                .map_page(&self.tracker, UserSpace::page_addr(index), *pfn, true)
                .map_err(user)?;
        }
        let buffer = UserSpace::page_addr(0);
        self.space
            .fill(buffer, DIRECT_LEN, mapped_byte)
            .map_err(user)?;
        // The stores through a shared writable mapping dirty the folios.
        for &pfn in &folios {
            if let Some(counters) = self.map.counters(pfn) {
                counters.set_flags(PageFlags::DIRTY);
            }
        }

        // O_DIRECT write of the buffer to the second half: the cached pages
        // there are written back and dropped first.
        let before = self
            .cache
            .writeback_pages(target.clone(), &PinnedAction::Wait);
        before
            .into_result()
            .map_err(|error| FilesError::Writeback(STEP, error))?;
        self.cache.invalidate(target.clone()).map_err(&cache_err)?;

        let completion = Completion::new();
        completion
            .start()
            .map_err(|error| FilesError::Cache(STEP, gupio_error(error)))?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Write,
            BioSector(target.start * SECTORS_PER_PAGE),
            self.cache.limits(),
        );
        let pins = self.map.pins().acquired();
        // The device only reads the buffer: a read pin.
        let added = add_user_range(
            &self.tracker,
            self.space,
            &mut bio,
            UserAddr::new(buffer),
            DIRECT_LEN,
            GupFlags::empty(),
        );
        let added = match added {
            Ok(added) => added,
            Err(error) => {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(FilesError::Cache(STEP, gupio_error(error)));
            }
        };
        self.summary.direct_pinned = self.map.pins().acquired() - pins;
        if added != DIRECT_LEN || !bio.origins().has(Origin::Pinned) {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            return Err(FilesError::Count(STEP, "bytes pinned", added, DIRECT_LEN));
        }
        let submitted = match SubmittedBio::submit(bio) {
            Ok(submitted) => submitted,
            Err((bio, error)) => {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(FilesError::Cache(STEP, gupio_error(error)));
            }
        };

        // In flight: the file's cached pages are pinned; writeback bounces them.
        let pinned = folios
            .iter()
            .all(|&pfn| self.tracker.maybe_dma_pinned(pfn).unwrap_or(false));
        let during = self
            .cache
            .writeback_pages(pages.clone(), &PinnedAction::Bounce);
        let still_dirty = folios.iter().all(|&pfn| self.cache.is_dirty(pfn));
        let protected = folios.iter().enumerate().all(|(index, _)| {
            matches!(
                self.space.pte(UserSpace::page_addr(index)),
                crate::userspace::Pte::Present {
                    writable: false,
                    ..
                }
            )
        });

        let released = self.cache.finish(&completion, submitted, false);
        let unmapped = self.space.unmap_all(&self.tracker).map_err(user);
        let released = released.map_err(&cache_err)?;
        unmapped?;
        self.summary.bounced_in_flight = during.counts.bounced;
        if !pinned {
            return Err(FilesError::Check(
                STEP,
                "a page in flight does not read as maybe DMA-pinned",
            ));
        }
        if !during.is_ok() || during.counts.bounced != MAPPED_PAGES {
            return Err(FilesError::Count(
                STEP,
                "folios bounced in flight",
                during.counts.bounced,
                MAPPED_PAGES,
            ));
        }
        if !still_dirty || !protected {
            return Err(FilesError::Check(
                STEP,
                "a bounced folio was cleaned, or its mapping left writable",
            ));
        }
        if released.unpinned != MAPPED_PAGES {
            return Err(FilesError::Count(
                STEP,
                "pages unpinned",
                released.unpinned,
                MAPPED_PAGES,
            ));
        }
        println!(
            "  {STEP}: DIRECT.BIN at disk pages {}..{}: the process maps its first half (disk pages {}..{}) and \
             stores {DIRECT_LEN} bytes; an O_DIRECT write of that buffer to the second half (disk pages {}..{}) \
             pins the {} page-cache folios; writeback with \
             Bounce meanwhile: {} bounced (still dirty, mappings write-protected), {} clean; released {} unpinned",
            pages.start,
            pages.end,
            mapped.start,
            mapped.end,
            target.start,
            target.end,
            self.summary.direct_pinned,
            during.counts.bounced,
            during.counts.clean,
            released.unpinned
        );
        Ok(())
    }

    /// Step 2b: a direct read into the page cache under writeback. The
    /// process maps the start of `DIRECT.BIN` again and reads the start of
    /// `NOTES.TXT` into it with `O_DIRECT`: write pins on the file's
    /// page-cache folios, dirtied before submission, the device writing
    /// into them. Writeback meanwhile (Bounce) must leave them dirty, so the
    /// next integrity pass writes what the device put there.
    fn direct_read(&mut self, direct: Range<u64>, source: Range<u64>) -> Result<(), FilesError> {
        const STEP: &str = "direct read";
        let cache_err = cache_error(STEP);
        let user = |error| FilesError::User(STEP, error);
        let mut folios = [Pfn::ZERO; READ_PAGES];
        for (index, (page, pfn)) in direct.clone().zip(folios.iter_mut()).enumerate() {
            *pfn = self.cache.page(page).map_err(&cache_err)?;
            self.space
                .map_page(&self.tracker, UserSpace::page_addr(index), *pfn, true)
                .map_err(user)?;
        }
        let clean_before = folios.iter().all(|&pfn| !self.cache.is_dirty(pfn));
        let buffer = UserSpace::page_addr(0);
        let completion = Completion::new();
        completion
            .start()
            .map_err(|error| FilesError::Cache(STEP, gupio_error(error)))?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Read,
            BioSector(source.start * SECTORS_PER_PAGE),
            self.cache.limits(),
        );
        let pins = self.map.pins().acquired();
        // The device writes into the buffer: a write pin.
        let added = add_user_range(
            &self.tracker,
            self.space,
            &mut bio,
            UserAddr::new(buffer),
            READ_LEN,
            GupFlags::WRITE,
        );
        let built = match added {
            Ok(added) if added == READ_LEN => Ok(()),
            Ok(added) => Err(FilesError::Count(STEP, "bytes pinned", added, READ_LEN)),
            Err(error) => Err(FilesError::Cache(STEP, gupio_error(error))),
        };
        if let Err(error) = built {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            let _ = self.space.unmap_all(&self.tracker);
            return Err(error);
        }
        let pinned = self.map.pins().acquired() - pins;
        // Dirtied before the device writes (Linux's bio_set_pages_dirty).
        let dirtied = gupio::release::set_pages_dirty(&self.tracker, &bio);
        let submitted = match SubmittedBio::submit(bio) {
            Ok(submitted) => submitted,
            Err((bio, error)) => {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                let _ = self.space.unmap_all(&self.tracker);
                return Err(FilesError::Cache(STEP, gupio_error(error)));
            }
        };
        let during = self
            .cache
            .writeback_pages(direct.clone(), &PinnedAction::Bounce);
        let released = self.cache.finish(&completion, submitted, true);
        let dirty_after = folios.iter().all(|&pfn| self.cache.is_dirty(pfn));
        let unmapped = self.space.unmap_all(&self.tracker).map_err(user);
        let released = released.map_err(&cache_err)?;
        unmapped?;
        dirtied.map_err(|error| FilesError::Cache(STEP, gupio_error(error)))?;
        self.summary.direct_pinned += pinned;
        self.summary.bounced_in_flight += during.counts.bounced;
        if !clean_before {
            return Err(FilesError::Check(
                STEP,
                "the folios were dirty before the read",
            ));
        }
        if !during.is_ok() || during.counts.bounced != READ_PAGES {
            return Err(FilesError::Count(
                STEP,
                "folios bounced in flight",
                during.counts.bounced,
                READ_PAGES,
            ));
        }
        if !dirty_after || released.unpinned != READ_PAGES {
            return Err(FilesError::Check(
                STEP,
                "the folios the device wrote are not dirty, or not all unpinned",
            ));
        }
        println!(
            "  {STEP}: the process maps DIRECT.BIN's disk pages {}..{} again; an O_DIRECT read of NOTES.TXT \
             (disk pages {}..{}) into them write-pins {pinned} page-cache folios, dirtied before submission; \
             writeback with Bounce meanwhile: {} bounced, left dirty; the device writes them; released \
             {} unpinned, still dirty for the next pass",
            direct.start,
            direct.start + READ_PAGES as u64,
            source.start,
            source.end,
            during.counts.bounced,
            released.unpinned
        );
        Ok(())
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

    /// Mount 2: every file read back and checked; the manifest.
    fn second_mount(&mut self) -> Result<(), FilesError> {
        const STEP: &str = "mount 2";
        let manager = self.manager();
        let volume = manager.open_volume(VolumeIdx(0)).map_err(fs(STEP))?;
        let root = volume.open_root_dir().map_err(fs(STEP))?;
        let seeds = self.seeds;
        for seed in seeds[..self.seed_count]
            .iter()
            .filter(|seed| seed.name() != DELETED_SEED)
        {
            let file = root
                .open_file_in_dir(seed.name(), Mode::ReadOnly)
                .map_err(fs(STEP))?;
            let (size, sum) = read_all(&file).map_err(fs(STEP))?;
            file.close().map_err(fs(STEP))?;
            if (size, sum.get()) != (seed.size, seed.sum) {
                return Err(FilesError::File(
                    "a seeded file",
                    size,
                    sum.get(),
                    seed.size,
                    seed.sum,
                ));
            }
            println!(
                "{MANIFEST_PREFIX}file {} {size} {:08x}",
                seed.name(),
                sum.get()
            );
            self.summary.manifest_files += 1;
        }
        for written in Written::ALL {
            let (dir, name) = written.path();
            let (size, sum) = match dir {
                Some(dir) => {
                    let dir = root.open_dir(dir).map_err(fs(STEP))?;
                    let file = dir
                        .open_file_in_dir(name, Mode::ReadOnly)
                        .map_err(fs(STEP))?;
                    let read = read_all(&file).map_err(fs(STEP))?;
                    file.close().map_err(fs(STEP))?;
                    dir.close().map_err(fs(STEP))?;
                    read
                }
                None => {
                    let file = root
                        .open_file_in_dir(name, Mode::ReadOnly)
                        .map_err(fs(STEP))?;
                    let read = read_all(&file).map_err(fs(STEP))?;
                    file.close().map_err(fs(STEP))?;
                    read
                }
            };
            let want = (
                u32::try_from(written.len()).unwrap_or(u32::MAX),
                written.checksum().get(),
            );
            if (size, sum.get()) != want {
                return Err(FilesError::File(name, size, sum.get(), want.0, want.1));
            }
            match dir {
                Some(dir) => println!(
                    "{MANIFEST_PREFIX}file {dir}/{name} {size} {:08x}",
                    sum.get()
                ),
                None => println!("{MANIFEST_PREFIX}file {name} {size} {:08x}", sum.get()),
            }
            self.summary.manifest_files += 1;
        }
        for name in [TEMP_NAME, DELETED_SEED] {
            match root.find_directory_entry(name) {
                Err(embedded_sdmmc::Error::NotFound) => {}
                Ok(_) => return Err(FilesError::Check(STEP, "a deleted file is still there")),
                Err(error) => return Err(FilesError::Fs(STEP, error)),
            }
            println!("{MANIFEST_PREFIX}gone {name}");
        }
        root.close().map_err(fs(STEP))?;
        volume.close().map_err(fs(STEP))?;
        drop(manager);
        println!(
            "  {STEP}: {} files read back through the filesystem match what was written; 2 deleted files are gone",
            self.summary.manifest_files
        );
        Ok(())
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
