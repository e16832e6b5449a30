//! The FAT32 on-disk layout the kernel reads and mends at the block
//! layer: the boot sector, FAT entries and cluster chains, FSInfo's free
//! count, and a directory entry's first cluster.

use core::ops::Range;

use embedded_sdmmc::fat::{Bpb, InfoSector, OnDiskDirEntry};
use embedded_sdmmc::DirEntry;

use crate::pagecache::{CacheError, PageCache, MBR_BLOCKS, SECTORS_PER_PAGE};
use crate::pattern::SECTOR_SIZE;

use super::error::{cache_error, FilesError};

/// The on-disk layout of the FAT32 filesystem (sector numbers of the disk).
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    /// First sector of the first FAT.
    fat_start: u64,
    /// Sectors per FAT.
    fat_sectors: u64,
    /// FATs.
    pub(super) fats: u64,
    /// Sectors per cluster.
    cluster_sectors: u64,
    /// First sector of cluster 2.
    data_start: u64,
    /// Sector of the FSInfo structure.
    info_sector: u64,
    /// Sectors of the filesystem.
    total_sectors: u64,
}

// FAT entries are read and written here by hand: embedded-sdmmc walks and
// updates the FAT only inside its own volume code (its cluster-chain calls
// are private to the crate), and the kernel must free the chains the
// crate's delete leaves allocated.

/// FAT32 entries: the low 28 bits.
const FAT_MASK: u32 = 0x0fff_ffff;
/// Entries at or above this end a chain.
const END_OF_CHAIN: u32 = 0x0fff_fff8;
/// Where FSInfo keeps its free-cluster count (bytes 488..492).
const FSINFO_FREE_COUNT: Range<usize> = 488..492;
/// Bytes of a directory entry.
const DIR_ENTRY_LEN: usize = 32;

/// The FAT entry at byte `offset` of a FAT sector, as stored (top bits
/// included); `offset` is an entry's, so four bytes fit below 512.
fn fat_word(sector: &[u8; SECTOR_SIZE], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&sector[offset..offset + 4]);
    u32::from_le_bytes(word)
}

impl Geometry {
    /// Reads the boot sector through the cache and parses it with
    /// embedded-sdmmc's [`Bpb`], the parser its own mount uses.
    pub(super) fn read(cache: &PageCache<'_, '_>) -> Result<Self, FilesError> {
        const STEP: &str = "geometry";
        let mut boot = [0u8; SECTOR_SIZE];
        cache.read_sector(0, &mut boot).map_err(cache_error(STEP))?;
        let bpb = Bpb::create_from_bytes(&boot).map_err(|why| FilesError::Check(STEP, why))?;
        if usize::from(bpb.bytes_per_block()) != SECTOR_SIZE {
            return Err(FilesError::Check(STEP, "sectors are not 512 bytes"));
        }
        // Only FAT32 has an FSInfo sector.
        let info = bpb
            .fs_info_block()
            .ok_or(FilesError::Check(STEP, "not FAT32"))?;
        let fat_start = u64::from(bpb.reserved_block_count());
        let fats = u64::from(bpb.num_fats());
        let fat_sectors = u64::from(bpb.fat_size());
        let cluster_sectors = u64::from(bpb.blocks_per_cluster());
        let geometry = Self {
            fat_start,
            fat_sectors,
            fats,
            cluster_sectors,
            data_start: fat_start + fats * fat_sectors,
            info_sector: u64::from(info.0),
            total_sectors: u64::from(bpb.total_blocks()),
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
    pub(super) fn next(&self, cache: &PageCache<'_, '_>, cluster: u32) -> Result<u32, CacheError> {
        let (sector, offset) = self.entry(0, cluster);
        let mut bytes = [0u8; SECTOR_SIZE];
        cache.read_sector(sector, &mut bytes)?;
        let word = fat_word(&bytes, offset);
        Ok(word & FAT_MASK)
    }

    /// Sets `cluster`'s entry in every FAT to `value` (keeping the top bits).
    fn set(&self, cache: &PageCache<'_, '_>, cluster: u32, value: u32) -> Result<(), CacheError> {
        for fat in 0..self.fats {
            let (sector, offset) = self.entry(fat, cluster);
            let mut bytes = [0u8; SECTOR_SIZE];
            cache.read_sector(sector, &mut bytes)?;
            let old = fat_word(&bytes, offset);
            let new = (old & !FAT_MASK) | (value & FAT_MASK);
            bytes[offset..offset + 4].copy_from_slice(&new.to_le_bytes());
            cache.write_sector(sector, &bytes)?;
        }
        Ok(())
    }

    /// The first sector of `cluster`.
    pub(super) fn cluster_sector(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster.saturating_sub(2)) * self.cluster_sectors
    }

    /// Frees the chain from `first` in every FAT. Returns how many clusters
    /// were freed.
    pub(super) fn free_chain(
        &self,
        cache: &PageCache<'_, '_>,
        first: u32,
    ) -> Result<usize, CacheError> {
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
    pub(super) fn recount_free(&self, cache: &PageCache<'_, '_>) -> Result<(u32, u32), FilesError> {
        const STEP: &str = "free clusters";
        let cache_err = cache_error(STEP);
        let last = 2 + (self.total_sectors.saturating_sub(self.data_start)) / self.cluster_sectors;
        let mut free = 0u32;
        let mut bytes = [0u8; SECTOR_SIZE];
        let mut loaded = None;
        for cluster in 2..last {
            let cluster =
                u32::try_from(cluster).map_err(|_| cache_err(CacheError::OutOfRange(cluster)))?;
            let (sector, offset) = self.entry(0, cluster);
            if loaded != Some(sector) {
                cache.read_sector(sector, &mut bytes).map_err(&cache_err)?;
                loaded = Some(sector);
            }
            let word = fat_word(&bytes, offset);
            if word & FAT_MASK == 0 {
                free += 1;
            }
        }
        let mut info = [0u8; SECTOR_SIZE];
        cache
            .read_sector(self.info_sector, &mut info)
            .map_err(&cache_err)?;
        // embedded-sdmmc reads FSInfo (and checks its signatures) but has
        // no call that writes its free count: the store is by hand.
        let held = InfoSector::create_from_bytes(&info)
            .map_err(|why| FilesError::Check(STEP, why))?
            .free_count();
        if held != free {
            info[FSINFO_FREE_COUNT].copy_from_slice(&free.to_le_bytes());
            cache
                .write_sector(self.info_sector, &info)
                .map_err(&cache_err)?;
        }
        Ok((held, free))
    }
}

/// The first cluster in the on-disk directory entry that `entry` locates.
///
/// [`DirEntry`] holds it as a `ClusterId` whose number embedded-sdmmc keeps
/// to itself, so the entry is read again and parsed with the crate's
/// [`OnDiskDirEntry`].
pub(super) fn first_cluster(
    cache: &PageCache<'_, '_>,
    entry: &DirEntry,
) -> Result<u32, FilesError> {
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
        .get(at..at + DIR_ENTRY_LEN)
        .ok_or(FilesError::Check(STEP, "entry offset past the sector"))?;
    let raw = OnDiskDirEntry::new(raw);
    Ok(u32::from(raw.first_cluster_hi()) << 16 | u32::from(raw.first_cluster_lo()))
}
