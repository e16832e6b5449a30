//! The page cache: files made of folios cached in frames, buffered reads and
//! writes, writeback through gupio's engine (or the untracked path the
//! kernel had before pin tracking), and the final data check.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock, Weak};

use gupio::bio::{Bio, BioLimits, BioOp, BioStatus, Sector};
use gupio::embed::{MemoryMap, PageOps};
use gupio::pfn::{Origin, Pfn};
use gupio::pin::{PageFlags, Tracker};
use gupio::release::SubmittedBio;
use gupio::sync::atomic::{AtomicUsize, Ordering};
use gupio::writeback::{WritebackCounts, WritebackStats};

use crate::data::{SECTORS_PER_PAGE, WORDS_PER_PAGE};
use crate::device::{Device, OwnedBvecs, Waiter};
use crate::memory::{lock, MAX_ORDER};
use crate::{HostError, Memory};

mod writeback;

pub use writeback::{FileIo, WritebackMode};

/// A file's number in its page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub usize);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the reverse map needs of an address space that maps a file: making
/// some of its PTEs read-only. A process's address space implements it; the
/// page cache holds it weakly, so a mapping never keeps a process alive, and
/// the cache need not know how a process keeps its page table.
pub(crate) trait MappingSpace: Send + Sync {
    /// Makes the PTEs of the user pages `vpns` read-only.
    fn write_protect(&self, vpns: Range<usize>);
}

/// A process mapping part of a file (the reverse map writeback walks to
/// write-protect a folio).
struct Mapper {
    space: Weak<dyn MappingSpace>,
    first_vpn: usize,
    first_index: usize,
    pages: usize,
}

/// A file: pages on disk from `first_sector`, cached in folios whose
/// layout is fixed when the file is created.
pub struct File {
    id: FileId,
    first_sector: u64,
    /// The folio order of each folio, keyed by its first index.
    layout: Vec<(usize, u32)>,
    pages: usize,
    /// Index to cached page.
    cached: Mutex<Vec<Option<Pfn>>>,
    /// Cached folio head to its first index.
    heads: Mutex<HashMap<Pfn, usize>>,
    mappers: Mutex<Vec<Mapper>>,
}

impl File {
    /// The file's number.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// The file's size in pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The disk sector where page `index` lives.
    pub fn sector(&self, index: usize) -> u64 {
        self.first_sector + u64::try_from(index).unwrap_or(u64::MAX) * SECTORS_PER_PAGE
    }

    /// The first index and order of the folio holding page `index`.
    pub fn folio_span(&self, index: usize) -> Option<(usize, u32)> {
        if index >= self.pages {
            return None;
        }
        let position = self.layout.partition_point(|&(first, _)| first <= index);
        let &(first, order) = self.layout.get(position.checked_sub(1)?)?;
        Some((first, order))
    }

    /// The cached page at `index`, if any (no reference taken).
    pub fn cached_page(&self, index: usize) -> Option<Pfn> {
        lock(&self.cached).get(index).copied().flatten()
    }

    /// Every cached page, in index order.
    fn cached_pages(&self) -> Vec<(usize, Pfn)> {
        lock(&self.cached)
            .iter()
            .enumerate()
            .filter_map(|(index, page)| page.map(|pfn| (index, pfn)))
            .collect()
    }

    /// The head of every cached folio.
    pub(crate) fn cached_heads(&self) -> Vec<Pfn> {
        let mut heads: Vec<Pfn> = lock(&self.heads).keys().copied().collect();
        heads.sort_unstable();
        heads
    }

    fn index_of_head(&self, head: Pfn) -> Option<usize> {
        lock(&self.heads).get(&head).copied()
    }

    pub(crate) fn add_mapper(
        &self,
        space: Weak<dyn MappingSpace>,
        first_vpn: usize,
        first_index: usize,
        pages: usize,
    ) {
        lock(&self.mappers).push(Mapper {
            space,
            first_vpn,
            first_index,
            pages,
        });
    }

    /// Forgets the mapping of `space` that starts at `first_vpn`.
    pub(crate) fn remove_mapper(&self, space: &dyn MappingSpace, first_vpn: usize) {
        lock(&self.mappers).retain(|mapper| {
            !(mapper.first_vpn == first_vpn && std::ptr::addr_eq(mapper.space.as_ptr(), space))
        });
    }

    /// Makes every user mapping of pages `first..first + pages` read-only.
    fn write_protect(&self, first: usize, pages: usize) {
        let targets: Vec<(Weak<dyn MappingSpace>, Range<usize>)> = lock(&self.mappers)
            .iter()
            .filter_map(|mapper| {
                let start = first.max(mapper.first_index);
                let end = (first + pages).min(mapper.first_index + mapper.pages);
                (start < end).then(|| {
                    let vpn = mapper.first_vpn + (start - mapper.first_index);
                    (mapper.space.clone(), vpn..vpn + (end - start))
                })
            })
            .collect();
        for (space, vpns) in targets {
            if let Some(space) = space.upgrade() {
                space.write_protect(vpns);
            }
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("id", &self.id)
            .field("first_sector", &self.first_sector)
            .field("pages", &self.pages)
            .field("folios", &self.layout.len())
            .finish_non_exhaustive()
    }
}

/// The result of the final data check of a file ([`PageCache::verify`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCheck {
    /// Cached pages checked.
    pub pages: usize,
    /// Pages whose memory differs from the disk: a write that never
    /// reached it (lost writes).
    pub lost_writes: usize,
    /// Pages still dirty.
    pub dirty: usize,
}

impl FileCheck {
    /// Whether every page is clean and on disk.
    pub fn is_ok(&self) -> bool {
        self.lost_writes == 0 && self.dirty == 0
    }
}

/// Running totals of the page cache's I/O.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Folios read in from disk.
    pub fills: usize,
    /// Pages written straight from the page cache.
    pub pages_written_in_place: usize,
    /// Pages written through a bounce copy.
    pub pages_bounced: usize,
    /// Folios the untracked path wrote in place (a subset of the above).
    pub untracked_writes: usize,
}

/// The page cache: files, their cached folios, buffered I/O and writeback.
///
/// The cache holds one reference on each cached folio. Folios are filled
/// with a read bio whose pages are [`Origin::Borrowed`] (the cache keeps
/// ownership during the read); writeback writes a folio in place with a
/// bio of [`Origin::Referenced`] pages (a reference taken for the I/O, put
/// at completion), or a bounce copy whose allocation reference the
/// completion puts, freeing it. Each page written carries the checksum the
/// cache computed at submission, which the device verifies.
///
/// ```
/// use gupio::writeback::PinnedAction;
/// use gupio_host::{Machine, MachineConfig, WritebackMode};
/// let machine = Machine::new(MachineConfig::small()).unwrap();
/// let cache = machine.cache();
/// let file = cache.create_file(8, &[2]).unwrap(); // an order-2 folio, then 4 small pages
/// cache.write(&file, 1, 0, &[0xfeed]).unwrap();   // buffered write: dirty
/// let summary = cache.writeback(&file, WritebackMode::Tracked(PinnedAction::Bounce));
/// assert_eq!(summary.counts.written_in_place, 1);
/// assert!(cache.verify(&file).is_ok());
/// ```
pub struct PageCache {
    memory: Arc<Memory>,
    device: Arc<Device>,
    files: RwLock<Vec<Arc<File>>>,
    next_sector: Mutex<u64>,
    writeback_stats: WritebackStats,
    fills: AtomicUsize,
    pages_written_in_place: AtomicUsize,
    pages_bounced: AtomicUsize,
    untracked_writes: AtomicUsize,
}

impl PageCache {
    pub(crate) fn new(memory: Arc<Memory>, device: Arc<Device>) -> Self {
        Self {
            memory,
            device,
            files: RwLock::new(Vec::new()),
            next_sector: Mutex::new(0),
            writeback_stats: WritebackStats::new(),
            fills: AtomicUsize::new(0),
            pages_written_in_place: AtomicUsize::new(0),
            pages_bounced: AtomicUsize::new(0),
            untracked_writes: AtomicUsize::new(0),
        }
    }

    fn tracker(&self) -> Tracker<'_, Memory> {
        Tracker::new(&self.memory)
    }

    /// Reserves `sectors` sectors of the disk for the caller (a raw region
    /// for direct I/O); returns the first.
    ///
    /// # Errors
    /// [`HostError::PastEndOfDisk`] if the disk is full.
    pub fn reserve_sectors(&self, sectors: u64) -> Result<u64, HostError> {
        let mut next = lock(&self.next_sector);
        let first = *next;
        let end = first
            .checked_add(sectors)
            .filter(|&end| end <= self.device.disk().sectors())
            .ok_or(HostError::PastEndOfDisk {
                sector: first,
                sectors,
            })?;
        *next = end;
        Ok(first)
    }

    /// Creates a file of `pages` pages on a fresh disk region. Its folios
    /// have the orders in `orders`, one after the other from index 0, each
    /// aligned to its size; small pages fill the rest.
    ///
    /// # Errors
    /// [`HostError::MisalignedFolio`] if a folio would not be aligned or
    /// would run past the file, [`HostError::OutOfMemory`] for an order
    /// above the largest, [`HostError::PastEndOfDisk`] if the disk is full.
    ///
    /// ```
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let cache = machine.cache();
    /// assert!(cache.create_file(16, &[3, 2, 2]).is_ok());
    /// assert!(cache.create_file(16, &[2, 3]).is_err(), "order 3 at index 4 is not aligned");
    /// ```
    pub fn create_file(&self, pages: usize, orders: &[u32]) -> Result<Arc<File>, HostError> {
        let mut layout = Vec::new();
        let mut index = 0usize;
        for &order in orders {
            if order > MAX_ORDER {
                return Err(HostError::OutOfMemory { order });
            }
            let size = 1usize << order;
            if index % size != 0 || index + size > pages {
                return Err(HostError::MisalignedFolio { index, order });
            }
            layout.push((index, order));
            index += size;
        }
        layout.extend((index..pages).map(|index| (index, 0)));
        let sectors = u64::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(SECTORS_PER_PAGE))
            .ok_or(HostError::BadMapping { pages })?;
        let first_sector = self.reserve_sectors(sectors)?;
        let mut files = self
            .files
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = Arc::new(File {
            id: FileId(files.len()),
            first_sector,
            layout,
            pages,
            cached: Mutex::new(vec![None; pages]),
            heads: Mutex::new(HashMap::new()),
            mappers: Mutex::new(Vec::new()),
        });
        files.push(file.clone());
        Ok(file)
    }

    /// The file `id`.
    pub fn file(&self, id: FileId) -> Option<Arc<File>> {
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id.0)
            .cloned()
    }

    /// Every file.
    pub(crate) fn files(&self) -> Vec<Arc<File>> {
        self.files
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The page at `index` of `file`, read in if it is not cached, with one
    /// more reference taken for the caller (who puts it).
    ///
    /// # Errors
    /// [`HostError::PastEndOfFile`], [`HostError::OutOfMemory`], or the
    /// device's error reading the folio in.
    pub fn get_page(&self, file: &File, index: usize) -> Result<Pfn, HostError> {
        let page = self.lookup_or_fill(file, index)?;
        self.tracker().get_page(page)?;
        Ok(page)
    }

    /// The cached page at `index`, filling its folio first if needed.
    fn lookup_or_fill(&self, file: &File, index: usize) -> Result<Pfn, HostError> {
        let past = HostError::PastEndOfFile {
            file: file.id,
            index,
        };
        let (first, order) = file.folio_span(index).ok_or(past)?;
        // The file's cache lock is held across the fill: one filler per
        // file at a time; the device never takes it.
        let mut cached = lock(&file.cached);
        if let Some(page) = cached.get(index).copied().flatten() {
            return Ok(page);
        }
        let head = self.fill(file, first, order)?;
        for (offset, slot) in cached.iter_mut().skip(first).take(1 << order).enumerate() {
            *slot = Some(Pfn::new_truncate(head.get() + offset));
        }
        lock(&file.heads).insert(head, first);
        Ok(Pfn::new_truncate(head.get() + (index - first)))
    }

    /// Allocates the folio for pages `first..` of order `order` and reads
    /// it from disk; it holds the allocation reference (the cache's).
    fn fill(&self, file: &File, first: usize, order: u32) -> Result<Pfn, HostError> {
        let head = self.memory.alloc_folio(order, false)?;
        let pages = 1usize << order;
        let mut bio = Bio::new(
            OwnedBvecs::with_capacity(1),
            BioOp::Read,
            Sector(file.sector(first)),
            BioLimits::default(),
        );
        let read = gupio::bio::FolioOrder::try_new(order)
            .and_then(|order| gupio::bio::Folio::new(head, order))
            .map_err(HostError::from)
            .and_then(|folio| {
                let bytes = u32::try_from(pages * crate::data::PAGE_SIZE)
                    .map_err(|_| HostError::OutOfMemory { order })?;
                bio.add_folio(folio, bytes, 0, Origin::Borrowed)
                    .map_err(HostError::from)
            })
            .and_then(|_| SubmittedBio::submit(bio).map_err(|(_, error)| error.into()))
            .and_then(|submitted| {
                let waiter = Waiter::new();
                let done = waiter.setter();
                self.device.submit(
                    submitted,
                    None,
                    Box::new(move |bio| {
                        // Borrowed pages: nothing to release.
                        done.set(bio.status());
                    }),
                );
                waiter.wait(&self.device)
            });
        match read {
            Ok(BioStatus::Ok) => {
                if let Some(frame) = self.memory.frame(head) {
                    frame.counters().set_flags(PageFlags::UPTODATE);
                }
                // Relaxed: a statistic; it orders nothing.
                self.fills.fetch_add(1, Ordering::Relaxed);
                Ok(head)
            }
            failed => {
                // Back to the allocator: nobody else saw the folio.
                let _ = self.tracker().put_page(head);
                Err(match failed {
                    Ok(status) => HostError::Io { status },
                    Err(error) => error,
                })
            }
        }
    }

    /// Reads every page of `file` into the cache.
    ///
    /// # Errors
    /// As [`get_page`](Self::get_page).
    pub fn populate(&self, file: &File) -> Result<(), HostError> {
        for index in 0..file.pages {
            self.lookup_or_fill(file, index)?;
        }
        Ok(())
    }

    /// A buffered read: the words of page `index`.
    ///
    /// # Errors
    /// As [`get_page`](Self::get_page).
    pub fn read(&self, file: &File, index: usize) -> Result<Vec<u64>, HostError> {
        let page = self.lookup_or_fill(file, index)?;
        let folio = self.memory.folio(page)?;
        // Under the folio lock: never a half-done buffered write.
        self.memory.lock_folio(folio);
        let words = self
            .memory
            .frame(page)
            .map(crate::memory::Frame::snapshot)
            .unwrap_or_default();
        self.memory.unlock_folio(folio);
        Ok(words)
    }

    /// A buffered write of `words` at word `first_word` of page `index`
    /// (clipped to the page): under the folio lock, so it waits for
    /// writeback of the folio to finish (stable pages), then dirties it.
    ///
    /// # Errors
    /// As [`get_page`](Self::get_page).
    pub fn write(
        &self,
        file: &File,
        index: usize,
        first_word: usize,
        words: &[u64],
    ) -> Result<(), HostError> {
        let page = self.lookup_or_fill(file, index)?;
        let folio = self.memory.folio(page)?;
        self.memory.lock_folio(folio);
        if let Some(frame) = self.memory.frame(page) {
            for (offset, &word) in words.iter().enumerate() {
                if first_word + offset < WORDS_PER_PAGE {
                    frame.store(first_word + offset, word);
                }
            }
        }
        self.memory.mark_folio_dirty(folio);
        self.memory.unlock_folio(folio);
        Ok(())
    }

    /// Whether page `index` is cached and dirty.
    ///
    /// # Errors
    /// [`HostError::PastEndOfFile`].
    pub fn is_dirty(&self, file: &File, index: usize) -> Result<bool, HostError> {
        if index >= file.pages {
            return Err(HostError::PastEndOfFile {
                file: file.id,
                index,
            });
        }
        Ok(file
            .cached_page(index)
            .and_then(|page| self.memory.folio(page).ok())
            .is_some_and(|folio| folio.counters().flags().contains(PageFlags::DIRTY)))
    }

    /// The final data check of `file`: every cached page must be clean and
    /// equal to its disk copy. Run it once all I/O is done and a last
    /// writeback (with no pins left) has run.
    pub fn verify(&self, file: &File) -> FileCheck {
        let mut check = FileCheck::default();
        let disk = self.device.disk();
        for (index, page) in file.cached_pages() {
            check.pages += 1;
            let memory = self
                .memory
                .frame(page)
                .map(crate::memory::Frame::snapshot)
                .unwrap_or_default();
            if disk.read_words(file.sector(index), WORDS_PER_PAGE).ok() != Some(memory) {
                check.lost_writes += 1;
            }
            let dirty = self
                .memory
                .folio(page)
                .is_ok_and(|folio| folio.counters().flags().contains(PageFlags::DIRTY));
            if dirty {
                check.dirty += 1;
            }
        }
        check
    }

    /// Drops the cache's reference on every cached folio of every file
    /// (the machine shuts down); returns the folios still dirty.
    pub(crate) fn evict_all(&self) -> usize {
        let mut dirty = 0;
        for file in self.files() {
            let heads: Vec<Pfn> = lock(&file.heads).drain().map(|(head, _)| head).collect();
            lock(&file.cached).iter_mut().for_each(|slot| *slot = None);
            for head in heads {
                if self
                    .memory
                    .counters(head)
                    .is_some_and(|c| c.flags().contains(PageFlags::DIRTY))
                {
                    dirty += 1;
                }
                let _ = self.tracker().put_page(head);
            }
        }
        dirty
    }

    /// Running totals.
    pub fn stats(&self) -> CacheStats {
        // Relaxed: statistics; they order nothing.
        CacheStats {
            fills: self.fills.load(Ordering::Relaxed),
            pages_written_in_place: self.pages_written_in_place.load(Ordering::Relaxed),
            pages_bounced: self.pages_bounced.load(Ordering::Relaxed),
            untracked_writes: self.untracked_writes.load(Ordering::Relaxed),
        }
    }

    /// What gupio's writeback engine did, over every tracked pass.
    pub fn writeback_counts(&self) -> WritebackCounts {
        self.writeback_stats.snapshot()
    }
}

impl fmt::Debug for PageCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageCache")
            .field("files", &self.files().len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
